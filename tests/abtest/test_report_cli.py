"""``sessionrec abtest report|plan|simulate``: the page, the summary and one-line errors."""

import json

import numpy as np
import pytest

from sessionrec._errors import DataError
from sessionrec.abtest.analysis import analyze
from sessionrec.abtest.export import SessionLog, write_session_log
from sessionrec.abtest.report import SECTION_IDS, build_html, summary_lines
from sessionrec.cli import main


def _pilot(n=4000, seed=0, b_share=0.5, lift=0.0):
    rng = np.random.default_rng(seed)
    variants = np.where(rng.random(n) < b_share, "b", "default").astype(object)
    impressions = rng.integers(1, 8, n)
    rate = np.where(variants == "b", 0.1 * (1 + lift), 0.1)
    return SessionLog(
        session_ids=np.array([f"s{i}" for i in range(n)], dtype=object),
        variants=variants,
        impressions=impressions,
        clicks=rng.binomial(impressions, 0.2),
        carts=rng.binomial(1, 0.15, n),
        purchases=(rng.random(n) < rate).astype(np.int64),
        revenue=rng.random(n) * 5,
        first_seen=np.sort(rng.random(n)) * 86_400 + 1_767_225_600,
    )


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_analysis_has_every_metric_variant_and_test():
    result = analyze(_pilot(), planned_sessions=4000)
    assert result["control"] == "default"
    assert list(result["variants"]) == ["default", "b"]
    assert [block["metric"] for block in result["metrics"]] == [
        "conversion", "cart_rate", "ctr", "revenue_per_session",
    ]  # fmt: skip
    for block in result["metrics"]:
        control, treatment = block["rows"]
        assert "uplift" not in control
        low, high = treatment["uplift_ci"]
        assert low < treatment["uplift"] < high
    assert len(result["sequential"]) == 4
    assert all(seq["looks"] and "spending_stop" in seq for seq in result["sequential"])
    traffic = result["traffic"]
    assert traffic["sessions_per_day"] * traffic["days"] == pytest.approx(4000)
    smallest = min(result["variants"].values())
    assert traffic["reached"] == pytest.approx(smallest / 4000)
    # at the pace so far, the rest of the plan takes (1 - reached) / reached of the days
    assert traffic["days_left"] == pytest.approx(
        (1 - traffic["reached"]) * traffic["days"] / traffic["reached"]
    )
    json.dumps(result)  # JSON-ready


def test_a_large_planted_lift_is_found_by_both_sequential_tests():
    result = analyze(_pilot(n=20_000, lift=0.5), metrics=("conversion",), planned_sessions=10_000)
    (seq,) = result["sequential"]
    assert seq["msprt_stop"] is not None and seq["spending_stop"] is not None
    assert seq["p_always_valid"] < 0.05


def test_html_page_has_its_sections_and_plots():
    pytest.importorskip("matplotlib")
    page = build_html(analyze(_pilot()), "Pilot <1>")
    for sid in SECTION_IDS:
        assert f'id="{sid}"' in page
    assert page.count("data:image/png;base64,") == 2
    assert "Pilot &lt;1&gt;" in page
    assert "http://" not in page and "https://" not in page


def test_a_stray_first_seen_is_refused_instead_of_looking_for_decades():
    log = _pilot()
    log.first_seen[0] = 0.0  # 1970: 490,000 hourly looks
    with pytest.raises(DataError, match=r"span 2045\d days: 4909\d\d looks .* \(--look-every\)"):
        analyze(log)


def test_summary_warns_about_a_sample_ratio_mismatch():
    lines = summary_lines(analyze(_pilot(b_share=0.45), metrics=("conversion",)))
    assert "MISMATCH" in lines[1]


def test_cli_report_writes_html_and_prints_the_summary(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    export = write_session_log(_pilot(), tmp_path / "pilot.csv")
    code, out, _ = run(capsys, "abtest", "report", str(export), "-o", str(tmp_path / "r.html"))
    assert code == 0
    assert out.splitlines()[0].startswith("4000 sessions (default ")
    assert "conversion:" in out and "always-valid p" in out
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    code, out, _ = run(capsys, "abtest", "report", str(export), "--json", "--metric", "ctr")
    assert code == 0
    assert [m["metric"] for m in json.loads(out)["metrics"]] == ["ctr"]


def test_cli_report_refuses_too_few_sessions_in_one_line(tmp_path, capsys):
    export = write_session_log(_pilot(n=150, seed=3), tmp_path / "small.csv")
    code, out, err = run(capsys, "abtest", "report", str(export))
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("sessionrec: error: too few sessions for intervals")
    assert "more needed" in err


def test_cli_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "session_id,variant,impressions,clicks,carts,purchases,revenue,first_seen\n"
        "s1,a,1,one,0,0,0,5\n"
    )
    cases = [
        (("abtest", "report", str(bad)), f"{bad}:2, field 'clicks'"),
        (("abtest", "report", "--store", "memory"), "must be a redis:// URL"),
        (("abtest", "report", "--store", "redis://127.0.0.1:1/0"), "cannot read the pilot"),
        (("abtest", "report", str(bad), "--store", "redis://x"), "not both"),
        (("abtest", "report"), "give the per-session export"),
        (("abtest", "plan", "--baseline", "1.5", "--mde", "0.05"), "baseline must lie"),
        (("abtest", "simulate", "--test", str(bad), "--variant", "a", "-o", "x.csv"),
         "is not NAME=VALUE"),
    ]  # fmt: skip
    for argv, message in cases:
        code, _, err = run(capsys, *argv)
        assert code == 1, argv
        assert err.count("\n") == 1 and err.startswith("sessionrec: error: "), err
        assert message in err


def test_cli_plan_prints_sessions_and_days(capsys):
    code, out, _ = run(
        capsys, "abtest", "plan", "--baseline", "0.1", "--mde", "0.2", "--daily-sessions", "1000"
    )
    assert code == 0
    assert out.startswith("3841 sessions per variant (7682 in all)")
    assert "7.7 days" in out
    code, out, _ = run(capsys, "abtest", "plan", "--baseline", "0.1", "--mde", "0.02",
                       "--absolute", "--json")  # fmt: skip
    assert json.loads(out)["sessions_per_variant"] == 3841


def test_cli_simulate_then_report(tmp_path, capsys):
    from sessionrec.data.split import temporal_split
    from sessionrec.data.synthetic import generate_shop

    shop = generate_shop(20_000, seed=4, days=6)
    train, test = temporal_split(shop.clicks, days=2)
    train.write_csv(tmp_path / "train.csv")
    test.write_csv(tmp_path / "test.csv")
    from sessionrec.data.sessions import SessionData
    from sessionrec.models.registry import create_model

    saved = create_model("pop").fit(SessionData.from_frame(train)).save(tmp_path / "pop-model")
    export = tmp_path / "pilot.jsonl"
    code, out, err = run(
        capsys, "abtest", "simulate", "--train", str(tmp_path / "train.csv"),
        "--test", str(tmp_path / "test.csv"), "--variant", f"default={saved}",
        "--variant", "b=sr", "--plant-uplift", "b=0.1", "-o", str(export),
    )  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in export.read_text().splitlines()]
    assert {row["variant"] for row in rows} == {"default", "b"}
    assert sum(row["clicks"] for row in rows) > 0
    code, out, err = run(capsys, "abtest", "report", str(export), "--json", "--min-sessions", "50")
    assert code == 0, err
    ctr = next(m for m in json.loads(out)["metrics"] if m["metric"] == "ctr")
    assert ctr["rows"][1]["uplift"] > 0  # session-based rules beat popularity on next clicks


def test_nested_help_shows_defaults_and_the_spending_choices(capsys):
    from sessionrec.abtest.sequential import SPENDING_KINDS

    with pytest.raises(SystemExit) as info:
        main(["abtest", "report", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "seconds between looks (default: 3600.0)" in out
    assert "{" + ",".join(SPENDING_KINDS) + "}" in out
    assert "(default: None)" not in out


def test_a_variant_without_impressions_is_named():
    log = _pilot()
    log.impressions[log.variants == "b"] = 0
    with pytest.raises(DataError, match=r"ctr of variant 'b': .* denominator is 0"):
        analyze(log, metrics=("ctr",))
