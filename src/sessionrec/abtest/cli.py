"""``sessionrec abtest report|plan|simulate``.

The main CLI (:mod:`sessionrec.cli`) calls :func:`add_parsers` with its subparsers; the
statistics, matplotlib and the models are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from sessionrec._errors import ConfigError

log = logging.getLogger("sessionrec.abtest")


def add_parsers(subparsers: Any) -> None:
    """Add ``abtest`` (with ``report``, ``plan`` and ``simulate``) to the main CLI."""
    top = subparsers.add_parser(
        "abtest",
        help="A/B pilots: report with intervals and sequential tests, plan, simulate",
        description="Statistics of A/B pilots from a per-session export (CSV or JSONL with "
        "session_id, variant, impressions, clicks, carts, purchases, revenue, first_seen; see "
        "sessionrec.abtest.export), or from the per-session summaries the service keeps in its "
        "Redis store (report --store redis://...).",
    )
    sub = top.add_subparsers(dest="abtest_command", required=True, metavar="ABTEST_COMMAND")
    _report_parser(sub)
    _plan_parser(sub)
    _simulate_parser(sub)


_DEFAULT = " (default: %(default)s)"
"""Appended by hand to the help of options with a default: these nested parsers are not
reached by the main CLI's help formatter (DefaultsHelpFormatter), which adds it itself."""


def _report_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="estimates, intervals, uplift, sample-ratio check and sequential tests",
        description="Per variant and metric: the estimate with its interval, the relative "
        "uplift over the control, a sample-ratio-mismatch check and always-valid sequential "
        "tests looked at every --look-every seconds. Prints a summary; -o writes HTML.",
    )
    p.add_argument("export", nargs="?", metavar="EXPORT", help="per-session export (CSV/JSONL)")
    p.add_argument(
        "--store",
        metavar="URL",
        help="read the pilot from the service's Redis store (redis://...) instead of EXPORT: "
        "the per-session summaries it keeps for --kpi-retention",
    )
    p.add_argument(
        "--redis-prefix",
        default="sessionrec:",
        help="key prefix of the service (its --redis-prefix)" + _DEFAULT,
    )
    p.add_argument(
        "--limit",
        type=int,
        default=1_000_000,
        help="most sessions read from --store" + _DEFAULT,
    )
    p.add_argument("-o", "--output", help="write the HTML report here")
    p.add_argument("--title", default="A/B test report", help="title of the HTML report" + _DEFAULT)
    p.add_argument(
        "--control",
        help="control variant (default: 'default' if present, else the alphabetically first)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level" + _DEFAULT)
    p.add_argument("--metric", action="append", help="metric to report (repeatable; default: all)")
    p.add_argument(
        "--min-sessions", type=int, default=100, help="sessions a variant needs" + _DEFAULT
    )
    p.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="NAME=WEIGHT",
        help="configured traffic weight of a variant, for the sample-ratio check (repeatable; "
        "default: an even split)",
    )
    p.add_argument(
        "--look-every", type=float, default=3600.0, help="seconds between looks" + _DEFAULT
    )
    p.add_argument(
        "--mde",
        type=float,
        default=0.05,
        help="relative effect the mSPRT is tuned to detect" + _DEFAULT,
    )
    p.add_argument(
        "--planned-sessions",
        type=int,
        help="sessions per variant of the plan (sessionrec abtest plan): adds the "
        "alpha-spending test",
    )
    p.add_argument(
        "--spending",
        default="obrien-fleming",
        choices=("obrien-fleming", "pocock"),  # sequential.SPENDING_KINDS (scipy stays unloaded)
        help="alpha-spending function" + _DEFAULT,
    )
    p.add_argument("--json", action="store_true", help="print the analysis as one JSON object")
    p.set_defaults(func=cmd_report)


def _plan_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="sessions needed for a minimum detectable effect, and the pilot's duration",
        description="Sessions per variant to detect a change of a conversion rate (two-sided "
        "two-proportion test), and the days it takes at the shop's traffic.",
    )
    p.add_argument("--baseline", type=float, required=True, help="control's conversion rate")
    p.add_argument(
        "--mde", type=float, required=True, help="minimum detectable effect (relative: 0.05)"
    )
    p.add_argument("--absolute", action="store_true", help="--mde is in rate points")
    p.add_argument("--alpha", type=float, default=0.05, help="false-positive rate" + _DEFAULT)
    p.add_argument(
        "--power", type=float, default=0.8, help="chance to detect the effect" + _DEFAULT
    )
    p.add_argument(
        "--variants", type=int, default=2, help="variants sharing the traffic" + _DEFAULT
    )
    p.add_argument("--daily-sessions", type=float, help="sessions a day, all variants together")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_plan)


def _simulate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="replay test sessions against A/B variants and write the per-session export",
        description="Assign each test session to a variant, replay it under a simple "
        "behaviour model (a visitor clicks a recommendation that is their next item, converts "
        "when a later cart/purchase of theirs was recommended) and write the export that "
        "`abtest report` reads.",
    )
    p.add_argument("--test", required=True, help="test click log (with event types)")
    p.add_argument("--train", help="training click log (for variants given by model name)")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        required=True,
        metavar="NAME=MODEL[:WEIGHT]",
        help="a variant: a saved model folder or a registered model name (fitted on --train); "
        "repeat for each variant",
    )
    p.add_argument("-k", type=int, default=10, help="recommendations per list" + _DEFAULT)
    p.add_argument("--seed", type=int, default=0, help="seed of the assignment" + _DEFAULT)
    p.add_argument(
        "--plant-uplift",
        metavar="NAME=UPLIFT",
        help="raise a variant's conversion by a relative UPLIFT (a known answer to check)",
    )
    p.add_argument("-o", "--output", required=True, help="export to write (CSV or .jsonl)")
    p.set_defaults(func=cmd_simulate)


# ------------------------------------------------------------------ commands
def _pairs(texts: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{what} {text!r} is not NAME=VALUE")
        if name.strip() in out:
            raise ConfigError(f"{what} {name.strip()!r} is given twice")
        out[name.strip()] = value.strip()
    return out


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a number") from None


def cmd_report(args: argparse.Namespace) -> int:
    from sessionrec.abtest.analysis import analyze
    from sessionrec.abtest.export import read_session_log, read_store_sessions
    from sessionrec.abtest.report import summary_lines, write_html

    if args.store and args.export:
        raise ConfigError("give either the per-session export (EXPORT) or --store, not both")
    if not args.export and not args.store:
        raise ConfigError("give the per-session export to report on (EXPORT) or --store URL")
    if args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if args.store:
        sessions = read_store_sessions(args.store, prefix=args.redis_prefix, limit=args.limit)
        if len(sessions) >= args.limit:
            log.warning("read the first %d sessions only (--limit)", args.limit)
    else:
        sessions = read_session_log(args.export)
    weights = {
        name: _number(value, f"weight of {name!r}")
        for name, value in _pairs(args.weight, "weight").items()
    } or None
    analysis = analyze(
        sessions,
        control=args.control,
        alpha=args.alpha,
        metrics=args.metric or _all_metrics(),
        min_sessions=args.min_sessions,
        weights=weights,
        look_every=args.look_every,
        mde=args.mde,
        planned_sessions=args.planned_sessions,
        spending=args.spending,
    )
    if args.output:
        write_html(analysis, args.output, args.title)
        log.info("wrote the A/B report to %s", args.output)
    if args.json:
        print(json.dumps(analysis))
    else:
        print("\n".join(summary_lines(analysis)))
    return 0


def _all_metrics() -> tuple[str, ...]:
    from sessionrec.abtest.stats import METRIC_NAMES

    return METRIC_NAMES


def cmd_plan(args: argparse.Namespace) -> int:
    from sessionrec.abtest.planner import plan

    result = plan(
        args.baseline,
        args.mde,
        relative=not args.absolute,
        alpha=args.alpha,
        power=args.power,
        variants=args.variants,
        daily_sessions=args.daily_sessions,
    )
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(
        f"{result.sessions_per_variant} sessions per variant ({result.total_sessions} in all) "
        f"to detect {result.baseline:.4g} -> {result.target:.4g} with power "
        f"{result.power:g} at alpha {result.alpha:g}"
        + ("" if result.days is None else f"; {result.days:.1f} days at the given traffic")
    )
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import numpy as np

    from sessionrec.abtest.export import write_session_log
    from sessionrec.abtest.simulate import plant_uplift, simulate_pilot

    specs = _pairs(args.variant, "variant")
    if len(specs) < 2:
        raise ConfigError("a pilot needs at least two --variant NAME=MODEL")
    weights: dict[str, float] = {}
    sources: dict[str, str] = {}
    for name, spec in specs.items():
        source, sep, weight = spec.rpartition(":")
        if sep and weight and not Path(spec).exists():
            sources[name], weights[name] = source, _number(weight, f"weight of {name!r}")
        else:
            sources[name], weights[name] = spec, 1.0
    test = _read_sessions(args.test)
    train = None
    models = {}
    for name, source in sources.items():
        if Path(source).is_dir():
            from sessionrec.models.registry import load_model

            models[name] = load_model(source)
            continue
        from sessionrec.models.registry import create_model

        if args.train is None:
            raise ConfigError(f"variant {name!r} names model {source!r}: give --train to fit it")
        train = train if train is not None else _read_sessions(args.train)
        models[name] = create_model(source).fit(train)
    pilot = simulate_pilot(test, models, weights=weights, k=args.k, seed=args.seed)
    if args.plant_uplift:
        planted = _pairs([args.plant_uplift], "--plant-uplift")
        for name, value in planted.items():
            pilot = plant_uplift(
                pilot, name, _number(value, "uplift"), np.random.default_rng(args.seed + 1)
            )
    write_session_log(pilot, args.output)
    print(f"wrote {len(pilot)} simulated sessions to {args.output}")
    return 0


def _read_sessions(path: str) -> Any:
    from sessionrec.data.events.reading import read_events
    from sessionrec.data.sessions import SessionData

    return SessionData.from_frame(read_events(path))


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: sessionrec abtest ...")
