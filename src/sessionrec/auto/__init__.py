"""``sessionrec auto``: choose and train a model within a wall-clock budget.

Selection uses the one validation split of the product only
(:func:`sessionrec.data.split.last_fraction_split`: the chronologically last 10% of the
training sessions); the test file is never opened. Every candidate is fitted on the first
part and ranked on the validation cases (MRR@20 chooses, HR@20 is reported). The stages, in
order of cost, each started only while the budget lasts:

1. baselines and rules (``pop``, ``spop``, ``markov``, ``sr``); ``pop`` always runs, so a
   budget too small for anything else still ends with a servable folder;
2. Optuna TPE on the session-kNN family (``vsknn``, ``stan``, ``vstan``, ``vmisknn``), each
   with an equal share of the budget left for this stage; the best trial is the candidate;
3. the neural models (``gru4rec``, ``sasrec``; on the GPU when there is one), each trained
   for at most its share of half the budget left, half of it kept for its refit; the epoch
   is chosen on validation; with too little time left (under :data:`MIN_NEURAL_SECONDS`
   per fit) they are skipped;
4. the repeat layer (:meth:`RepeatAware.wrap`) over the two best candidates;
5. an ensemble (:meth:`Ensemble.from_fitted`) of the best candidates of distinct bases.

The chosen model is the best on validation (ties: the earlier, cheaper one), so it is never
worse there than any single candidate tried. It is then refitted on all the training
sessions the way its own ``fit(train)`` does: a plain model from scratch (a neural one for
the epochs validation chose, without time limit), the repeat layer
keeps its mixture learned on validation and refits its base, the ensemble keeps its weights
and refits its members of positive weight. Deterministic for a seed when the number of
trials is fixed (``trials``); a time budget alone stops the search where the clock says.

Resumable: the work folder holds the Optuna studies (SQLite), the leaderboard (appended as
candidates finish) and the fitted candidates; a second run with the same arguments reuses
finished stages. The model folder is written atomically, so an interrupted run leaves the
old folder or none.
"""

from sessionrec.auto.board import Candidate, write_leaderboard_html
from sessionrec.auto.run import auto, check_split, parse_budget, refit

__all__ = ["Candidate", "auto", "check_split", "parse_budget", "refit", "write_leaderboard_html"]
