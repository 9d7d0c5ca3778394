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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sessionrec import cli_parser
from sessionrec._errors import ConfigError, SessionrecError
from sessionrec.cli_checks import check_model_data, check_outputs, recorded_fit_seconds
from sessionrec.cli_fit import (
    fine_tune_model,
    fit_model,
    launched_world_size,
    params_from_args,
    typed_train,
)
from sessionrec.cli_logging import configure_logging
from sessionrec.cli_parser import Command
from sessionrec.data.reliability import SMALL_TEST_NOTE, small_test_warning
from sessionrec.models.registry import load_model

log = logging.getLogger("sessionrec")


# ----------------------------------------------------------------- helpers
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
def cmd_train(args: argparse.Namespace) -> int:
    from sessionrec.evaluation.protocol import BenchmarkFolder

    if launched_world_size() > 1:
        if args.init_from:
            raise ConfigError("--init-from fine-tunes in one process: run it without torchrun")
        return _train_distributed(args)
    folder = BenchmarkFolder(Path(args.benchmark))
    train = typed_train(args, folder.train())
    if args.init_from:
        model, fit_seconds = fine_tune_model(args, train)
    else:
        model, fit_seconds = fit_model(args, train)
    path = model.save(args.output, metrics={"fit_seconds": fit_seconds})
    log.info("fitted in %.2fs, saved to %s", fit_seconds, path)
    payload = {"model": args.model, "output": str(path), "fit_seconds": fit_seconds}
    if args.init_from:
        payload.update(init_from=args.init_from, n_items=model.n_items)
    _emit(payload, args.json)
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
    params = params_from_args(args)
    from sessionrec.models.neural import distributed

    workers = distributed.init_from_env(str(params.get("device", "auto")))
    try:
        train = BenchmarkFolder(Path(args.benchmark)).train()
        model, fit_seconds = fit_model(args, train)
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
        model, fit_seconds = fit_model(args, typed_train(args, train))
    if args.protocol == "otto":
        return _evaluate_otto(args, model, folder)
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


def _evaluate_otto(args: argparse.Namespace, model: Any, folder: Any) -> int:
    from sessionrec.evaluation.otto import evaluate_otto, typed_folder_parts

    if args.save_results or args.predictions:
        raise ConfigError("--save-results and --predictions go with --protocol benchmark")
    typed = typed_folder_parts(args.benchmark)
    test = folder.test() if typed is None else typed[1]
    result = evaluate_otto(model, test)
    _emit({"model": model.name, **result.as_dict()}, args.json)
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

    fixed = parse_params(args.model, args.param)
    if args.objective:
        fixed["objective"] = args.objective
    result = tune(
        Path(args.benchmark),
        args.model,
        trials=args.trials,
        time_budget=args.time_budget,
        valid_fraction=args.valid_fraction,
        metric=args.metric,
        seed=args.seed,
        output=args.output,
        fixed_params=fixed,
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
    from sessionrec.data.events.event_types import parse_event_map
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
        event_map=parse_event_map(args.event_map) or None,
        purchases=args.purchases,
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


COMMANDS: dict[str, Command] = {
    "demo": cmd_demo,
    "prepare": cmd_prepare,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "report": cmd_report,
    "tune": cmd_tune,
    "auto": cmd_auto,
    "recommend": cmd_recommend,
    "models": cmd_models,
}
"""Each subcommand's function, by the name ``build_parser`` sets it under."""


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (see :mod:`sessionrec.cli_parser`)."""
    return cli_parser.build_parser(COMMANDS)


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
        if args.func is not cmd_train and launched_world_size() > 1:
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
