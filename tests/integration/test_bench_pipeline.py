"""``nightshift bench`` on a tiny night: the real steps, children and baselines produce rows
with a verdict, and a missed target turns into a non-zero exit code. Nothing here is timed."""

from __future__ import annotations

import json

from nightshift_dev.bench import pipeline
from nightshift_dev.bench.harness import Target


def test_a_tiny_bench_measures_every_row_and_a_miss_fails_it(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "LAND_VS_FLOOR", Target("<=", 0.0))  # impossible: must be reported as a miss
    sizes = pipeline.Sizes(requests=120, small=40, row_by_row_sample=20)
    report = pipeline.run(sizes, groups=("land", "memory", "submit"), out=tmp_path / "bench.json", log=lambda _: None)

    rows = {row.name: row for row in report.rows}
    assert not [row for row in report.rows if row.error], [row.error for row in report.rows]
    assert {row.group for row in report.rows} == {"land", "memory", "submit"}
    floor = rows["land 120 results (stream, parse, validate, write)"]
    assert floor.value > 0 and floor.baseline > 0 and floor.passed is False
    assert rows["land 120 results vs row by row"].note.endswith("timed on 20 results, scaled ×6")
    assert rows["land peak RSS, 120 vs 40 requests"].baseline > 50  # MB: a whole interpreter
    assert report.exit_code() == 1 and "land: land 120 results (stream, parse, validate, write)" in \
        json.loads((tmp_path / "bench.json").read_text())["misses"]

    for row in report.rows:  # the same measurements against targets any run meets
        if row.target is not None:
            row.target = Target("<=", float("inf"), on=row.target.on)
    assert report.exit_code() == 0
