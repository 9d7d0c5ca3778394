"""The ``sessionrec`` command line.

stdout carries only results (JSON with ``--json``); logs and progress bars go to stderr.
Every error sessionrec raises on purpose becomes one line ``sessionrec: error: ...`` and
exit status 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sessionrec._errors import ConfigError, SessionrecError
from sessionrec._version import __version__
from sessionrec.cli_checks import check_model_data, check_outputs, recorded_fit_seconds
from sessionrec.cli_logging import configure_logging
from sessionrec.data.reliability import SMALL_TEST_NOTE, small_test_warning
from sessionrec.models.registry import load_model

log = logging.getLogger("sessionrec")


# ----------------------------------------------------------------- helpers
def _model_params(args: argparse.Namespace) -> dict[str, Any]:
    """Hyperparameters from ``--params-file`` (JSON) overridden by ``--param key=value``."""
    from sessionrec.models.registry import parse_params

    params: dict[str, Any] = {}
    if getattr(args, "params_file", None):
        path = Path(args.params_file)
        try:
            loaded = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read parameters: {exc}") from None
        if isinstance(loaded, dict) and isinstance(loaded.get("params"), dict):
            loaded = loaded["params"]  # the file `sessionrec tune` writes
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a JSON object of hyperparameters")
        params.update(loaded)
    params.update(parse_params(args.model, args.param))
    return params


def _fit(args: argparse.Namespace, train: Any) -> tuple[Any, float]:
    from sessionrec.models.registry import create_model

    model = create_model(args.model, _model_params(args))
    refit = getattr(args, "refit", False)
    if refit and not model.get_params().get("valid_fraction"):
        raise ConfigError(
            "--refit trains again for the epochs a validation split chose: it needs a neural "
            "model and --param valid_fraction=F (e.g. 0.1)"
        )
    log.info("fitting %r on %s", model, train)
    started = time.perf_counter()
    model.fit(train)
    if refit:
        from sessionrec.models.neural.common import refit_params

        # Every model with a valid_fraction (the neural ones) records the epoch it chose.
        history = model.training_history()
        if history is None:
            raise ConfigError(f"--refit needs a model trained in epochs; {args.model} is not")
        epochs = history.best_epoch
        log.info("validation chose %d epoch(s): training again on all the sessions", epochs)
        model = create_model(args.model, refit_params(model.get_params(), epochs))
        model.fit(train)
    return model, time.perf_counter() - started


def _cutoffs(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--cutoffs expects comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise ConfigError(f"--cutoffs must be positive integers, got {text!r}")
    return values


def _emit(payload: dict[str, Any], as_json: bool, notes: dict[str, str] | None = None) -> None:
    """Print ``payload`` as JSON or as aligned lines; ``notes`` go after the named values
    (text only: JSON carries its warnings in the payload)."""
    if as_json:
        sys.stdout.write(json.dumps(payload, sort_keys=False) + "\n")
        return
    for key, value in payload.items():
        if key == "warnings":  # already on stderr, and noted next to the value concerned
            continue
        if isinstance(value, float):
            value = round(value, 4)
        note = (notes or {}).get(key)
        sys.stdout.write(f"{key:>16}  {value}" + (f"  {note}" if note else "") + "\n")


# ---------------------------------------------------------------- commands
def _launched_world_size() -> int:
    """How many processes ``torchrun`` started for this command (1 without torchrun)."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"WORLD_SIZE must be an integer, got {text!r}") from None


def cmd_train(args: argparse.Namespace) -> int:
    from sessionrec.evaluation.protocol import BenchmarkFolder

    if _launched_world_size() > 1:
        return _train_distributed(args)
    folder = BenchmarkFolder(Path(args.benchmark))
    train = folder.train()
    model, fit_seconds = _fit(args, train)
    path = model.save(args.output, metrics={"fit_seconds": fit_seconds})
    log.info("fitted in %.2fs, saved to %s", fit_seconds, path)
    _emit({"model": args.model, "output": str(path), "fit_seconds": fit_seconds}, args.json)
    return 0


def _train_distributed(args: argparse.Namespace) -> int:
    """``sessionrec train`` as one rank of a ``torchrun`` group: every rank reads the data and
    trains on its shard; rank 0 alone writes the model folder (atomically)."""
    from sessionrec.evaluation.protocol import BenchmarkFolder
    from sessionrec.models.registry import model_class

    if not model_class(args.model).trains_distributed:
        raise ConfigError(
            f"model {args.model!r} does not train on several processes; run it without "
            "torchrun (only the neural models do)"
        )
    params = _model_params(args)
    from sessionrec.models.neural import distributed

    workers = distributed.init_from_env(str(params.get("device", "auto")))
    try:
        train = BenchmarkFolder(Path(args.benchmark)).train()
        model, fit_seconds = _fit(args, train)
        if workers.rank == 0:
            metrics = {"fit_seconds": fit_seconds, "processes": workers.world_size}
            path = model.save(args.output, metrics=metrics)
            log.info(
                "fitted on %d processes in %.2fs, saved to %s",
                workers.world_size,
                fit_seconds,
                path,
            )
            payload = {
                "model": args.model,
                "output": str(path),
                "fit_seconds": fit_seconds,
                "processes": workers.world_size,
            }
            _emit(payload, args.json)
    except BaseException:
        distributed.abandon()  # no barrier: the other ranks may be gone
        raise
    distributed.shutdown()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sessionrec.evaluation.protocol import BenchmarkFolder, evaluate, write_predictions

    if bool(args.model) == bool(args.model_dir):
        raise ConfigError("evaluate needs exactly one of --model NAME or --model-dir DIR")
    if args.model_dir and args.refit:
        raise ConfigError("--refit fits the model again: it goes with --model, not --model-dir")
    cutoffs = _cutoffs(args.cutoffs)
    folder = BenchmarkFolder(Path(args.benchmark))
    train = folder.train()
    fit_seconds: float | None = None
    if args.model_dir:
        model = load_model(args.model_dir)
        check_model_data(model, train, folder, args.model_dir, args.allow_other_data)
        fit_seconds = recorded_fit_seconds(args.model_dir)
    else:
        model, fit_seconds = _fit(args, train)
    if args.latency_calls < 0:
        raise ConfigError(f"--latency-calls must be 0 or more, got {args.latency_calls}")
    evaluated = cutoffs
    if args.save_results:
        from sessionrec.evaluation.results import REPORT_K

        evaluated = (*cutoffs, REPORT_K)  # the results file always holds the @20 views
    test = folder.test()
    result = evaluate(model, test, protocol="benchmark", cutoffs=evaluated, ties=args.ties)
    result.fit_seconds = fit_seconds
    counts = train.with_vocab(model.vocab_).item_counts()
    # print the cutoffs asked for, even when the results file needed another
    shown = dataclasses.replace(result, cutoffs=tuple(sorted(set(cutoffs))))
    payload = {"model": model.name, **shown.metrics(item_counts=counts)}
    notes = {}
    warning = small_test_warning(result.n_cases)
    if warning is not None:
        log.warning("%s", warning)
        payload["warnings"] = [warning]
        notes["n_cases"] = SMALL_TEST_NOTE
    if args.predictions:
        write_predictions(result, model, args.predictions)
    if args.save_results:
        _save_results(args, model, result, train, test, counts)
    _emit(payload, args.json, notes)
    return 0


def _save_results(
    args: argparse.Namespace, model: Any, result: Any, train: Any, test: Any, counts: Any
) -> None:
    from sessionrec.evaluation.protocol import measure_latency
    from sessionrec.evaluation.results import REPORT_K, build_results, save_results

    latency = None
    if args.latency_calls:
        latency = measure_latency(
            model, test, n_calls=args.latency_calls, k=REPORT_K, seed=args.latency_seed
        )
    results = build_results(
        result,
        model,
        benchmark=args.benchmark,
        train=train,
        test=test,
        item_counts=counts,
        latency_ms=latency,
        latency_seed=args.latency_seed,
    )
    if getattr(args, "label", None):  # `report` shows the run by this name
        results["label"] = args.label
    path = save_results(results, args.save_results)
    log.info("saved evaluation results to %s", path)


def cmd_report(args: argparse.Namespace) -> int:
    from sessionrec.evaluation.report import write_report

    path = write_report(
        args.results,
        args.output,
        title=args.title,
        allow_mixed_splits=args.allow_mixed_splits,
        labels=args.label,
    )
    _emit({"output": str(path), "results": len(args.results)}, args.json)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from sessionrec.models.registry import parse_params
    from sessionrec.tuning import tune

    result = tune(
        Path(args.benchmark),
        args.model,
        trials=args.trials,
        time_budget=args.time_budget,
        valid_fraction=args.valid_fraction,
        metric=args.metric,
        seed=args.seed,
        output=args.output,
        fixed_params=parse_params(args.model, args.param),
        trial_seconds=args.trial_seconds,
    )
    _emit(result, args.json)
    return 0


def cmd_auto(args: argparse.Namespace) -> int:
    from sessionrec.auto import auto, parse_budget
    from sessionrec.evaluation.protocol import BenchmarkFolder

    if args.events is not None:  # a raw log: cleaned and split as `prepare` does
        from sessionrec.data.prepare import prepare

        if args.preset is None:
            from sessionrec.data.events.files import guess_preset

            guess = guess_preset(Path(args.events))
            hint = f"; it looks like a {guess} log: --preset {guess}" if guess else ""
            raise ConfigError(f"auto --events needs --preset (see `sessionrec prepare`){hint}")
        train = prepare(args.events, preset=args.preset).train_full
    else:
        train = BenchmarkFolder(Path(args.benchmark)).train()
    summary = auto(
        train,
        args.output,
        parse_budget(args.budget),
        work_dir=args.work_dir,
        seed=args.seed,
        valid_fraction=args.valid_fraction,
        trials=args.trials,
    )
    _emit(summary, args.json)
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    """Top-k for one session, ranked as the service ranks it. A session the model cannot
    answer (empty, only unknown items, nothing with evidence) gets the popularity fallback
    (the folder's training counts, or ``--popularity``), flagged. Every id is printed as a
    string, whatever the vocabulary's kind, as the service returns ids; ``k`` is bounded
    by the service's largest ``k``."""
    from sessionrec.models.base import check_k
    from sessionrec.serve.catalog import NO_COUNTS_WARNING, fallback_popularity, read_popularity
    from sessionrec.serve.config import ServeConfig
    from sessionrec.serve.rules import ItemRules

    k = check_k(args.k)
    if k > ServeConfig.max_k:
        raise ConfigError(
            f"k must be at most {ServeConfig.max_k} (the service's largest k), got {k}"
        )
    popularity = read_popularity(args.popularity) if args.popularity else None
    model = load_model(args.model_dir)
    unknown = [item for item in args.items if item not in model.vocab_]
    if unknown:
        log.warning("ignored %d item(s) unknown to the model: %s", len(unknown), " ".join(unknown))
    counts = fallback_popularity(model, popularity)
    if counts is None:
        log.warning(NO_COUNTS_WARNING, args.model_dir)
    rules = ItemRules(model.vocab_, popularity=counts)
    # Without a known item the popularity fallback answers, as in the service; otherwise the
    # model does, and popular items only stand in for an empty list (never pad a short one).
    no_known_item = len(unknown) == len(args.items)
    ranked = rules.recommend(
        model, args.items, k, exclude_seen=args.exclude_seen, fallback=no_known_item
    )
    if not ranked.items and not no_known_item:
        ranked = rules.recommend(
            model, args.items, k, exclude_seen=args.exclude_seen, fallback=True
        )
    items = [
        {"item_id": item, "score": score, "source": source}
        for item, score, source in zip(ranked.items, ranked.scores, ranked.sources, strict=True)
    ]
    if args.json:
        payload = {
            "model": model.name,
            "session": args.items,
            "fallback": ranked.fallback,
            "items": items,
        }
        _emit(payload, True)
    else:
        if ranked.fallback:
            log.info("the model has no answer of its own for this session: a fallback")
        for rank, rec in enumerate(items, 1):
            source = "" if rec["source"] == "model" else f"  ({rec['source']})"
            sys.stdout.write(f"{rank:>3}  {rec['item_id']}  {rec['score']:.6g}{source}\n")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from sessionrec.data.prepare import PrepareOptions, prepare, write_prepared

    columns = None
    if args.columns:
        try:
            columns = json.loads(args.columns)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--columns expects a JSON object: {exc}") from None
    options = PrepareOptions(
        preset=args.preset,
        format=args.format,
        columns=columns,
        time_unit=args.time_unit,
        gap=args.gap,
        dedupe=not args.keep_repeats,
        min_session_length=args.min_session_length,
        min_item_support=args.min_item_support,
        test_days=args.test_days,
        valid_days=args.valid_days,
        split_by=args.split_by,
        on_bad_rows=args.on_bad_rows,
    )
    if args.engine == "spark":
        from sessionrec.data.spark import prepare_spark

        result = prepare_spark(
            args.input, options, master=args.spark_master, driver_memory=args.driver_memory
        )
    else:
        result = prepare(args.input, options)
    folder = write_prepared(result, args.output)
    payload = {"output": str(folder), **result.summary()}
    notes = {}
    warning = small_test_warning(payload["test_cases"])
    if warning is not None:  # prepare has logged it
        payload["warnings"] = [warning]
        notes["test_cases"] = SMALL_TEST_NOTE
    _emit(payload, args.json, notes)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sessionrec.demo import check_port_free, default_demo_dir, run_demo, serve_demo

    if not args.verbose:  # the demo prints its own story; pipeline details only with -v
        logging.getLogger("sessionrec").setLevel(logging.WARNING)
    if not args.no_serve:  # a missing extra or a busy port fails now, not after the training
        from sessionrec.serve import require_serve_extra

        require_serve_extra()
        check_port_free(args.host, args.port)
    ab_model = None if args.ab_model.lower() == "none" else args.ab_model
    result = run_demo(
        n_events=args.events,
        seed=args.seed,
        model_name=args.model,
        output=Path(args.output) if args.output else default_demo_dir(),
        out=sys.stdout,
        ab_model=ab_model,
    )
    if not args.no_serve:
        assert result.folder is not None
        serve_demo(result.folder, args.host, args.port, list(result.models), out=sys.stdout)
    return 0


# ------------------------------------------------------------------ parser
def _add_model_options(parser: argparse.ArgumentParser, required: bool) -> None:
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


def cmd_models(args: argparse.Namespace) -> int:
    from sessionrec.models.registry import MODELS, model_params

    payload = {name: model_params(name) for name in MODELS}
    if args.json:
        _emit(payload, True)
    else:
        for name, params in payload.items():
            text = ", ".join(f"{k}={v!r}" for k, v in params.items())
            sys.stdout.write(f"{name:<10} {MODELS[name].__name__}({text})\n")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
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
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("prepare", help="raw click log -> cleaned, split dataset folder")
    p.add_argument("input", help="click log file (CSV/TSV/Parquet/JSONL, optionally .gz)")
    p.add_argument("-o", "--output", required=True, help="dataset folder to write")
    p.add_argument("--preset", help="yoochoose, diginetica, retailrocket, otto, gru4rec, ...")
    p.add_argument("--format", help="csv, tsv, parquet or jsonl (default: from the extension)")
    p.add_argument("--columns", help='JSON column mapping, e.g. {"session_id": "sid", ...}')
    p.add_argument("--time-unit", choices=["s", "ms", "us", "ns"], help="numeric time unit")
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
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="fit a model on a benchmark folder and save it")
    p.add_argument("--benchmark", required=True, help="folder with train_sessions.txt")
    _add_model_options(p, required=True)
    p.add_argument("--output", required=True, help="model folder to write (atomically)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="benchmark protocol: full ranking of every test case")
    p.add_argument("--benchmark", required=True, help="folder with train/test_sessions.txt")
    _add_model_options(p, required=False)
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
    p.set_defaults(func=cmd_evaluate)

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
    p.set_defaults(func=cmd_report)

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
    p.add_argument("--benchmark", required=True, help="folder with train_sessions.txt")
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
    p.add_argument("--metric", default="mrr@20", help="validation metric to maximise")
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=0.1,
        help="chronologically last share of training sessions used for validation",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler")
    p.add_argument("--output", required=True, help="JSON file for train/evaluate --params-file")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_tune)

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
    p.set_defaults(func=cmd_auto)

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
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("models", help="list the registered models and their defaults")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_models)

    from sessionrec.abtest.cli import add_parsers as add_abtest_parsers
    from sessionrec.serve.cli import add_parsers as add_serve_parsers

    add_serve_parsers(sub)  # serve, replay (imports the serve extra only when they run)
    add_abtest_parsers(sub)  # abtest report|plan|simulate
    for subparser in sub.choices.values():  # serve's and replay's too: one help style
        subparser.formatter_class = DefaultsHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # Building the parser reads the serve options' environment variables: a bad one is
        # an error like any other (one line, exit 1), not a traceback.
        parser = build_parser()
    except SessionrecError as exc:
        sys.stderr.write(f"sessionrec: error: {exc}\n")
        return 1
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    try:
        if args.func is not cmd_train and _launched_world_size() > 1:
            raise ConfigError("only `sessionrec train` runs under torchrun with several processes")
        check_outputs(args)
        return int(args.func(args))
    except SessionrecError as exc:
        sys.stderr.write(f"sessionrec: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("sessionrec: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
