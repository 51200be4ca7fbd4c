"""The benchmark's verdict logic: targets, ratios, misses and the exit code (nothing timed)."""

from __future__ import annotations

import json
import math

import pytest

from nightshift import cli
from nightshift_dev.bench import pipeline
from nightshift_dev.bench.harness import Report, Row, Target, ratio_row


@pytest.mark.parametrize(("target", "number", "met"), [
    (Target("<=", 2.0), 1.99, True), (Target("<=", 2.0), 2.0, True), (Target("<=", 2.0), 2.01, False),
    (Target(">=", 20.0), 25.0, True), (Target(">=", 20.0), 19.9, False),
    (Target("<=", 2.0), None, False), (Target("<=", 2.0), math.nan, False),
])
def test_a_target_is_met_only_by_a_real_number_on_the_right_side(target, number, met):
    assert target.met(number) is met


def test_ratios_and_faster_than_rows():
    slower = ratio_row("land", "vs floor", 3.0, 1.5, "s", baseline_name="floor", target=Target("<=", 2.0))
    assert slower.ratio == 2.0 and slower.passed is True
    faster = ratio_row("land", "vs row by row", 3.0, 90.0, "s", baseline_name="row by row",
                       target=Target(">=", 20.0), faster=True)
    assert faster.ratio == 30.0 and faster.passed is True
    absolute = Row("memory", "peak", 310.0, "MB", target=Target("<=", 300.0, on="value"))
    assert absolute.passed is False and absolute.target.describe("MB") == "≤ 300 MB"
    assert Row("memory", "context", 94.0, "MB").passed is None  # no target: context only


def test_a_miss_or_a_failed_measurement_makes_the_exit_code_non_zero(tmp_path):
    report = Report()
    report.add(ratio_row("submit", "ok", 1.0, 1.0, "s", baseline_name="bare", target=Target("<=", 2.0)))
    report.add(Row("memory", "context", 94.0, "MB"))
    assert report.passed and report.exit_code() == 0

    report.add(ratio_row("land", "slow", 5.0, 1.0, "s", baseline_name="floor", target=Target("<=", 2.0)))
    assert report.exit_code() == 1 and [r.name for r in report.misses] == ["slow"]

    broken = Report()
    broken.failed("wait", "1,000 waits", RuntimeError("the child died"))
    assert broken.exit_code() == 1

    written = json.loads(report.write(tmp_path / "bench.json").read_text())
    assert written["passed"] is False and written["misses"] == ["land: slow"]
    assert {r["name"]: r["passed"] for r in written["rows"]} == {"ok": True, "context": None, "slow": False}
    report.print()  # renders without error


def test_the_command_exits_with_the_reports_verdict(monkeypatch, tmp_path):
    verdicts = iter([Target("<=", 100.0), Target("<=", 0.5)])

    def fake_run(sizes, *, groups, out):
        assert sizes.requests == 300 and groups == ("land",)
        report = Report()
        report.add(ratio_row("land", "land", 1.0, 1.0, "s", baseline_name="floor", target=next(verdicts)))
        report.write(out)
        return report

    monkeypatch.setattr(pipeline, "run", fake_run)
    argv = ["bench", "--requests", "300", "--only", "land", "--out", str(tmp_path / "b.json")]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 1
    assert cli.main(["bench", "--only", "nope"]) == 2
