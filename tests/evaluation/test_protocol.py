import numpy as np
import pytest

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.evaluation.protocol import evaluate, make_cases, write_predictions
from sessionrec.models.base import Recommender, SessionBatch
from sessionrec.models.topk import rank_targets


class FixedScores(Recommender):
    """Test double: every session gets the same score vector; records what it was given."""

    name = "fixed"

    def __init__(self, values=(0.5, 0.9, 0.1, float("-inf"))):
        self.values = values

    def _fit(self, train, valid):
        self.seen_batches_ = []

    def score(self, batch: SessionBatch) -> np.ndarray:
        self.seen_batches_.append([batch.session(i).tolist() for i in range(len(batch))])
        return np.tile(np.asarray(self.values, dtype=np.float32), (len(batch), 1))

    def _get_state(self):
        return {}

    def _set_state(self, state):
        pass


TRAIN = SessionData.from_sequences([["a", "b", "c", "d"]])


def test_cases_next_and_last():
    test = SessionData.from_sequences([["a", "b", "c"], ["d"], ["a", "c"]])
    cases = make_cases(test, "next")
    np.testing.assert_array_equal(cases.sessions, [0, 0, 2])
    np.testing.assert_array_equal(cases.lengths, [1, 2, 1])
    np.testing.assert_array_equal(cases.starts, [0, 0, 4])
    last = make_cases(test, "last")
    np.testing.assert_array_equal(last.sessions, [0, 2])
    np.testing.assert_array_equal(last.lengths, [2, 1])
    with pytest.raises(ConfigError, match="unknown protocol"):
        make_cases(test, "random")


def test_rank_tie_policies():
    scores = np.array([[3, 1, 3, 2]] * 4, dtype=np.float32)
    scores[3, 2] = -np.inf
    targets = np.array([0, 1, -1, 2])
    np.testing.assert_array_equal(
        rank_targets(scores, targets, "pessimistic"), [2, 4, np.inf, np.inf]
    )
    np.testing.assert_array_equal(
        rank_targets(scores, targets, "optimistic"), [1, 4, np.inf, np.inf]
    )
    np.testing.assert_array_equal(
        rank_targets(scores, targets, "average"), [1.5, 4, np.inf, np.inf]
    )


def test_evaluate_ranks_every_target_against_the_whole_vocabulary():
    model = FixedScores().fit(TRAIN)
    # scores a=.5 b=.9 c=.1 d=-inf -> ranks b:1 a:2 c:3 d:miss; "zz" unknown -> miss
    test = SessionData.from_sequences([["a", "b", "a", "c"], ["zz", "d"], ["c", "zz"]])
    result = evaluate(model, test, cutoffs=(1, 2, 3))
    np.testing.assert_array_equal(result.ranks, [1, 2, 3, np.inf, np.inf])
    np.testing.assert_array_equal(result.prefix_lengths, [1, 2, 3, 1, 1])
    got = result.metrics()
    assert got["n_cases"] == 5
    assert got["hr@1"] == pytest.approx(20.0)
    assert got["hr@3"] == pytest.approx(60.0)
    assert got["mrr@3"] == pytest.approx(100 * (1 + 1 / 2 + 1 / 3) / 5)
    # unknown prefix items are dropped from the model's input, the case still counts
    inputs = [s for batch in model.seen_batches_ for s in batch]
    assert inputs == [[0], [0, 1], [0, 1, 0], [], [2]]


def test_batch_size_does_not_change_results():
    model = FixedScores().fit(TRAIN)
    test = SessionData.from_sequences([["a", "b", "c", "d", "a"], ["b", "c", "a"]])
    big = evaluate(model, test, batch_size=100)
    small = evaluate(model, test, batch_size=1)
    np.testing.assert_array_equal(big.ranks, small.ranks)
    np.testing.assert_array_equal(big.top_items, small.top_items)


def test_top_lists_consistent_with_pessimistic_ranks():
    model = FixedScores(values=(0.5, 0.5, 0.5, 0.1)).fit(TRAIN)
    test = SessionData.from_sequences([["d", "a", "d", "b"]])
    result = evaluate(model, test, cutoffs=(2,))
    # a, b, c tie at the top: rank 3 pessimistic, and the tie group straddles place 2
    np.testing.assert_array_equal(result.ranks, [3, 4, 3])
    assert (result.top_items == -1).all()
    for k in (1, 2):
        in_list = (result.top_items[:, :k] == np.array([0, 3, 1])[:, None]).any(axis=1)
        np.testing.assert_array_equal(in_list, result.ranks <= k)


def test_predictions_file_format(tmp_path):
    model = FixedScores().fit(TRAIN)
    test = SessionData.from_sequences([["a", "b", "c"]])
    result = evaluate(model, test, cutoffs=(2,))
    path = write_predictions(result, model, tmp_path / "pred.tsv")
    lines = path.read_text().splitlines()
    assert lines == ["0\tb a\t0.899999976 0.5", "1\tb a\t0.899999976 0.5"]


def test_evaluate_rejects_bad_arguments():
    model = FixedScores().fit(TRAIN)
    test = SessionData.from_sequences([["a", "b"]])
    with pytest.raises(ConfigError):
        evaluate(model, test, cutoffs=(0,))
    with pytest.raises(ConfigError):
        evaluate(model, test, ties="lucky")
    with pytest.raises(DataError, match="no evaluation cases"):
        evaluate(model, SessionData.from_sequences([["a"]]))


def test_test_set_with_its_own_vocabulary_is_mapped_by_external_id():
    model = FixedScores().fit(SessionData.from_sequences([[10, 20, 30, 40]]))
    # the test file lists items in another order, so its internal indices differ
    test = SessionData.from_sequences([[40, 20, 10, 99]], vocab=ItemVocab([99, 40, 10, 20]))
    result = evaluate(model, test, cutoffs=(3,))
    # model scores: 10 -> .5, 20 -> .9, 30 -> .1, 40 -> -inf; 99 is unknown
    np.testing.assert_array_equal(result.ranks, [1, 2, np.inf])
    assert [s for b in model.seen_batches_ for s in b] == [[3], [3, 1], [3, 1, 0]]
