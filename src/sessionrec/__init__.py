"""sessionrec: session-based recommendation for shops with anonymous visitors.

The public API (everything else is internal and may change):

- data: :func:`read_events` (presets and column mappings), :func:`prepare` (read, cut,
  clean, split), :class:`SessionData` / :class:`ItemVocab`, sessions-txt I/O, and the
  synthetic shop generator;
- models: :func:`create_model` by registry name, the :class:`Recommender` contract (with
  :class:`Reason`, what :meth:`Recommender.explain` returns), :func:`load_model` for any
  saved model folder;
- evaluation: :func:`evaluate` (full ranking, pessimistic ties) and its result.
"""

from sessionrec._errors import (
    ConfigError,
    DataError,
    ModelError,
    NotFittedError,
    SessionrecError,
)
from sessionrec._version import __version__
from sessionrec.data.cleaning import filter_sessions, remove_consecutive_repeats, sessionize
from sessionrec.data.events import read_events
from sessionrec.data.formats import read_sessions_txt, write_sessions_txt
from sessionrec.data.prepare import (
    PreparedData,
    PrepareOptions,
    prepare,
    read_prepared,
    write_prepared,
)
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.data.split import last_fraction_split, restrict_items, temporal_split
from sessionrec.data.synthetic import generate_clicks, generate_shop, make_catalog
from sessionrec.evaluation.protocol import BenchmarkFolder, EvaluationResult, evaluate
from sessionrec.models.base import Reason, Recommender, ScoredItem, SessionBatch
from sessionrec.models.registry import MODELS, create_model, load_model

__all__ = [
    "MODELS",
    "BenchmarkFolder",
    "ConfigError",
    "DataError",
    "EvaluationResult",
    "ItemVocab",
    "ModelError",
    "NotFittedError",
    "PrepareOptions",
    "PreparedData",
    "Reason",
    "Recommender",
    "ScoredItem",
    "SessionBatch",
    "SessionData",
    "SessionrecError",
    "__version__",
    "create_model",
    "evaluate",
    "filter_sessions",
    "generate_clicks",
    "generate_shop",
    "last_fraction_split",
    "load_model",
    "make_catalog",
    "prepare",
    "read_events",
    "read_prepared",
    "read_sessions_txt",
    "remove_consecutive_repeats",
    "restrict_items",
    "sessionize",
    "temporal_split",
    "write_prepared",
    "write_sessions_txt",
]
