"""The ``sessionrec`` command line's argument parser: every subcommand, its options, their
help and defaults. The commands themselves live in :mod:`sessionrec.cli`, which hands them
to :func:`build_parser`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from sessionrec._version import __version__

Command = Callable[[argparse.Namespace], int]


def add_model_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--model", required=required, help="registered model name (see `models`)")
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="hyperparameter (repeatable); typed by the model's default",
    )
    parser.add_argument("--params-file", help="JSON object of hyperparameters (e.g. from tune)")
    parser.add_argument(
        "--refit",
        action="store_true",
        help="neural models with valid_fraction: after validation chooses the epochs, train "
        "again on all the training sessions for that many epochs",
    )


def add_objective_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--objective",
        choices=["click", "cart", "purchase"],
        help="session-kNN models: what to predict (the objective hyperparameter); cart and "
        "purchase read the event types of a prepared dataset folder",
    )


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that ends every option's text with its default, ``(default: X)``.

    Left out where there is nothing to say: no default (None), an empty list (a repeatable
    option given no value), a flag that is off, or a text that places ``%(default)s``
    itself.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default is None or default is argparse.SUPPRESS:
            return text
        if default == [] or (action.nargs == 0 and not default):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
        return text


def build_parser(commands: Mapping[str, Command]) -> argparse.ArgumentParser:
    """The parser of every subcommand; ``commands`` maps each name to its function (kept in
    :mod:`sessionrec.cli`, which this module must not import)."""
    parser = argparse.ArgumentParser(
        prog="sessionrec",
        formatter_class=DefaultsHelpFormatter,
        description="Session-based recommendation: from a click log to next-item predictions.",
    )
    parser.add_argument("--version", action="version", version=f"sessionrec {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="synthetic shop -> train -> evaluate -> example session -> live demo shop",
        description="Train and evaluate on a synthetic shop, save two models and the catalog, "
        "then serve them (A/B) with a storefront page at http://HOST:PORT/demo.",
    )
    p.add_argument("--events", type=int, default=200_000, help="synthetic clicks to generate")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic shop")
    p.add_argument("--model", default="sr", help="main model to train and serve")
    p.add_argument(
        "--ab-model", default="vsknn", help="second model served as A/B variant ('none': none)"
    )
    p.add_argument(
        "--output",
        help="demo folder for the models and catalog (default: $SESSIONREC_DEMO_DIR or "
        "~/.cache/sessionrec/demo)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address the service listens on")
    p.add_argument("--port", type=int, default=8000, help="port of the service")
    p.add_argument("--no-serve", action="store_true", help="stop after the report")
    p.set_defaults(func=commands["demo"])

    p = sub.add_parser("prepare", help="raw click log -> cleaned, split dataset folder")
    p.add_argument("input", help="click log file (CSV/TSV/Parquet/JSONL, optionally .gz)")
    p.add_argument("-o", "--output", required=True, help="dataset folder to write")
    p.add_argument("--preset", help="yoochoose, diginetica, retailrocket, otto, gru4rec, ...")
    p.add_argument("--format", help="csv, tsv, parquet or jsonl (default: from the extension)")
    p.add_argument("--columns", help='JSON column mapping, e.g. {"session_id": "sid", ...}')
    p.add_argument("--time-unit", choices=["s", "ms", "us", "ns"], help="numeric time unit")
    p.add_argument(
        "--event-map",
        action="append",
        metavar="RAW=CANONICAL",
        help="map a raw event type to view, cart or purchase (repeatable; over the "
        "preset's map), e.g. --event-map fav=cart",
    )
    p.add_argument(
        "--purchases",
        help="the preset's purchase file (yoochoose-buys.dat, train-purchases.csv; "
        "default: read when it sits beside the log)",
    )
    p.add_argument("--gap", type=float, default=1800.0, help="inactivity gap (s) for visitor logs")
    p.add_argument("--keep-repeats", action="store_true", help="keep consecutive repeated clicks")
    p.add_argument(
        "--min-session-length", type=int, default=2, help="sessions with fewer clicks are dropped"
    )
    p.add_argument(
        "--min-item-support",
        type=int,
        default=5,
        help="items with fewer clicks are dropped (with short sessions, until both hold)",
    )
    p.add_argument(
        "--test-days",
        type=float,
        help="last N days become the test set (default: the preset's standard test period, "
        "7 for diginetica; otherwise 1)",
    )
    p.add_argument("--valid-days", type=float, default=1.0, help="validation cut from train")
    p.add_argument(
        "--split-by",
        choices=["start", "end"],
        default="end",
        help="the click that places a session in the test (validation) days: its first "
        "(start) or its last (end)",
    )
    p.add_argument(
        "--on-bad-rows",
        choices=["raise", "skip"],
        default="raise",
        help="rows that cannot be read: stop with an error, or skip them (counted)",
    )
    p.add_argument(
        "--engine",
        choices=["polars", "spark"],
        default="polars",
        help="polars (streams on one machine) or spark (the same result; "
        "needs the spark extra and Java 17+)",
    )
    p.add_argument(
        "--spark-master",
        help="Spark master URL for --engine spark (default local[2]; e.g. spark://host:7077)",
    )
    p.add_argument("--driver-memory", help="Spark driver memory for --engine spark (default 4g)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=commands["prepare"])

    p = sub.add_parser("train", help="fit a model on a benchmark folder and save it")
    p.add_argument("--benchmark", required=True, help="folder with train_sessions.txt")
    add_model_options(p, required=True)
    add_objective_option(p)
    p.add_argument("--output", required=True, help="model folder to write (atomically)")
    p.add_argument(
        "--init-from",
        metavar="MODEL_DIR",
        help="fine-tune: start from this folder's trained neural model (the same --model and "
        "architecture; --param may change n_epochs, learning_rate, ...) and train on the "
        "benchmark's sessions, adding their new items (docs/fine-tuning.md)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=commands["train"])

    p = sub.add_parser("evaluate", help="benchmark protocol: full ranking of every test case")
    p.add_argument("--benchmark", required=True, help="folder with train/test_sessions.txt")
    add_model_options(p, required=False)
    add_objective_option(p)
    p.add_argument(
        "--protocol",
        choices=["benchmark", "otto"],
        default="benchmark",
        help="benchmark: every next click ranked; otto: sessions cut at a seeded random point, "
        "Recall@20 of the next click, later carts and later orders (event types from a "
        "prepared dataset folder)",
    )
    p.add_argument("--model-dir", help="evaluate a saved model instead of fitting one")
    p.add_argument(
        "--allow-other-data",
        action="store_true",
        help="with --model-dir: evaluate a model trained on other data than this benchmark's "
        "train_sessions.txt (warns instead of refusing)",
    )
    p.add_argument("--cutoffs", default="5,10,20", help="comma-separated K values")
    p.add_argument(
        "--ties",
        choices=["pessimistic", "optimistic", "average"],
        default="pessimistic",
        help="rank of a target tied with other items: after all of them, before, or between",
    )
    p.add_argument("--predictions", help="write the top-K list of every case to this file")
    p.add_argument(
        "--save-results",
        metavar="FILE.json",
        help="also save what `sessionrec report` needs (curves, lengths, latency, history)",
    )
    p.add_argument(
        "--latency-calls",
        type=int,
        default=500,
        help="with --save-results: single-session recommend calls to time (0: none)",
    )
    p.add_argument("--latency-seed", type=int, default=0, help="seed of the timed sessions")
    p.add_argument(
        "--label",
        metavar="NAME",
        help="with --save-results: the name `sessionrec report` shows for this run "
        "(default: the model's name)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=commands["evaluate"])

    p = sub.add_parser("report", help="HTML report comparing saved evaluation results")
    p.add_argument("results", nargs="+", help="results files from evaluate --save-results")
    p.add_argument("-o", "--output", required=True, help="HTML file to write")
    p.add_argument("--title", default="Evaluation report", help="page title")
    p.add_argument(
        "--allow-mixed-splits",
        action="store_true",
        help="build the report even if the results come from different splits (warns)",
    )
    p.add_argument(
        "--label",
        action="append",
        metavar="NAME",
        help="name of a result in the report, once per results file in their order "
        "(repeatable; a file without one shows its saved label: evaluate --label, else "
        "the model's name)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=commands["report"])

    from sessionrec.models.registry import MODELS
    from sessionrec.tuning import (
        COMPOSITE_TUNING,
        DEFAULT_TRIAL_SECONDS,
        DEFAULT_TRIALS,
        SEARCH_SPACES,
        tunable_models,
    )

    no_space = [n for n in MODELS if n not in SEARCH_SPACES and n not in COMPOSITE_TUNING]
    p = sub.add_parser(
        "tune",
        help="search hyperparameters on a validation split cut from the training data",
        description="Search a model's hyperparameters with Optuna on the chronologically last "
        "--valid-fraction of the training sessions (the test file is never read) and write the "
        "best to a JSON file for train/evaluate --params-file. Tunable models: "
        f"{', '.join(tunable_models())}. "
        + " ".join(f"{name} {what}." for name, what in COMPOSITE_TUNING.items())
        + f" Nothing to tune in {', '.join(no_space)} (no hyperparameters). Neural models: "
        "each trial trains for at most --trial-seconds, validating every epoch, and the file "
        "trains the chosen setting for the epochs validation chose.",
    )
    p.add_argument(
        "--benchmark",
        required=True,
        help="folder with train_sessions.txt, or a prepared folder (sessionrec prepare: with "
        "event types)",
    )
    p.add_argument(
        "--model",
        required=True,
        help=f"model to tune: {', '.join(tunable_models())}",
    )
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="hyperparameter held fixed, not searched (repeatable; for repeat: base=NAME, "
        "base_params=JSON)",
    )
    p.add_argument(
        "--trials",
        type=int,
        help=f"number of trials (default: {DEFAULT_TRIALS} when --time-budget is not given)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        help="seconds after which no new trial starts (default: no limit)",
    )
    p.add_argument(
        "--trial-seconds",
        type=float,
        default=DEFAULT_TRIAL_SECONDS,
        help="neural models: the most seconds one trial trains (whole epochs; the first "
        "always runs)",
    )
    add_objective_option(p)
    p.add_argument(
        "--metric",
        help="validation metric to maximise: mrr@K, hr@K, ndcg@K (next click) or the OTTO "
        "recalls orders@K, carts@K, otto@K; with --objective cart / purchase: carts@20 / "
        "orders@20 unless given (default: mrr@20)",
    )
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=0.1,
        help="chronologically last share of training sessions used for validation",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler")
    p.add_argument("--output", required=True, help="JSON file for train/evaluate --params-file")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=commands["tune"])

    p = sub.add_parser(
        "auto", help="choose, tune and train a model on validation within a time budget"
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--benchmark", help="folder with train_sessions.txt")
    source.add_argument("--events", help="raw click log, prepared with --preset")
    p.add_argument("--preset", help="input preset of --events (as for `prepare`)")
    p.add_argument("--budget", default="60m", help="wall-clock budget: 60m, 90s, 1.5h")
    p.add_argument("--output", required=True, help="model folder to write")
    p.add_argument("--work-dir", help="studies, leaderboard, candidates (default OUTPUT.auto)")
    p.add_argument("--trials", type=int, help="cap on Optuna trials per kNN model")
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=0.1,
        help="chronologically last share of training sessions used for validation",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the searches and trainings")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=commands["auto"])

    p = sub.add_parser("recommend", help="top-k items for one session given as item ids")
    p.add_argument("--model-dir", required=True, help="saved model folder (from train)")
    p.add_argument(
        "items", nargs="*", help="the session's item ids in click order (none: a new session)"
    )
    p.add_argument("-k", type=int, default=10, help="number of recommendations")
    p.add_argument("--exclude-seen", action="store_true", help="never recommend session items")
    p.add_argument(
        "--popularity",
        help="clicks for the fallback instead of the model folder's training counts: "
        "train_sessions.txt or a table with item_id,count",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=commands["recommend"])

    p = sub.add_parser("models", help="list the registered models and their defaults")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=commands["models"])

    from sessionrec.abtest.cli import add_parsers as add_abtest_parsers
    from sessionrec.serve.cli import add_parsers as add_serve_parsers

    add_serve_parsers(sub)  # serve, replay (imports the serve extra only when they run)
    add_abtest_parsers(sub)  # abtest report|plan|simulate
    for subparser in sub.choices.values():  # serve's and replay's too: one help style
        subparser.formatter_class = DefaultsHelpFormatter
    return parser
