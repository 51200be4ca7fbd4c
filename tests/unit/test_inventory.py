"""`nightshift inventory`: reading traffic files, verdicts with their evidence, savings arithmetic, outputs.

Dollar figures are worked by hand from src/nightshift/data/prices.yaml in the comments beside them:
claude-haiku-4-5 $1 in / $5 out per million, 1-hour cache write $2, read $0.10, minimum 4,096
tokens; claude-sonnet-5-5 $2 / $10, write 1 h $4, read $0.20, minimum 1,024; batch = half.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest

from nightshift import paths
from nightshift.costs import price_table
from nightshift.inventory import classify as rules
from nightshift.inventory.classify import Verdict, classify
from nightshift.inventory.cli import main
from nightshift.inventory.inventory import build_inventory
from nightshift.inventory.records import FORMATS, read_traffic
from nightshift.inventory.render import to_csv, to_json
from nightshift.inventory.savings import project

SAMPLE = paths.include_dir() / "samples" / "traffic-sample.jsonl"
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-5-5"
COLUMNS = ("time", "feature", "trigger", "destination", "model", "input_tokens", "output_tokens",
           "cache_creation_input_tokens", "cache_read_input_tokens", "seconds_to_first_read", "prefix_hash",
           "prefix_tokens", "requests", "task")


def row(feature: str, trigger: str = "schedule", destination: str = "table", *, time: str = "2026-11-16T02:00:00Z",
        model: str = HAIKU, input_tokens: int = 1000, output_tokens: int = 100, **extra) -> dict:
    return {"time": time, "feature": feature, "trigger": trigger, "destination": destination, "model": model,
            "input_tokens": input_tokens, "output_tokens": output_tokens, **extra}


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})
    return path


def inventory_of(path: Path, **kw):
    return build_inventory(read_traffic(path), **kw)


def by_feature(inv) -> dict:
    return {f.feature: f for f in inv.features}


# --- verdicts and their explanations ---------------------------------------------------------------

def crafted_traffic() -> list[dict]:
    rows = []
    rows += [row("nightly", "schedule", "table", seconds_to_first_read=7200) for _ in range(10)]
    # 23 of 25 (92%) background rows; two clicks do not spoil a batch candidate
    rows += [row("mostly-nightly", "schedule", "table", seconds_to_first_read=30_000) for _ in range(23)]
    rows += [row("mostly-nightly", "user_click", "ui", seconds_to_first_read=4) for _ in range(2)]
    rows += [row("read-soon", "queue", "table", seconds_to_first_read=s) for s in [600] * 5 + [9000] * 5]
    rows += [row("digest", "schedule", "email", seconds_to_first_read=9 * 3600) for _ in range(6)]
    rows += [row("chat", "user_click", "chat", seconds_to_first_read=3) for _ in range(8)]
    rows += [row("watched-table", "schedule", "table", seconds_to_first_read=20) for _ in range(5)]
    rows += [row("mixed", "schedule", "table") for _ in range(5)] + [row("mixed", "user_click", "ui") for _ in range(5)]
    rows += [row("partner-api", "api", "table", seconds_to_first_read=50_000) for _ in range(4)]
    # weighted by request count: one row of 9 queued requests outweighs one click
    rows += [row("grouped", "queue", "file", requests=9), row("grouped", "user_click", "ui")]
    return rows


@pytest.fixture
def crafted(tmp_path) -> dict:
    return by_feature(inventory_of(write_jsonl(tmp_path / "crafted.jsonl", crafted_traffic())))


def test_each_verdict_on_a_crafted_file(crafted):
    verdicts = {name: f.verdict for name, f in crafted.items()}
    assert verdicts == {
        "nightly": Verdict.BATCH, "mostly-nightly": Verdict.BATCH, "grouped": Verdict.BATCH,
        "read-soon": Verdict.GRAY, "digest": Verdict.GRAY, "mixed": Verdict.GRAY, "partner-api": Verdict.GRAY,
        "chat": Verdict.LIVE, "watched-table": Verdict.LIVE,
    }


def test_explanations_quote_the_evidence(crafted):
    def why(name: str) -> str:
        return crafted[name].classification.explanation

    assert why("nightly") == ("All 10 requests were triggered by `schedule` and landed in a `table`; "
                              "median first read 2.0 h after the request.")
    assert why("mostly-nightly").startswith("92% of 25 requests were triggered by `schedule` and landed in a `table`")
    assert "known for 92% of them" not in why("mostly-nightly")  # every row had a read time
    assert "50% of the results with a known first read were read within 1 h" in why("read-soon")
    assert "triggered by `schedule` but delivered to `email` for a person to read" in why("digest")
    assert "median first read 9.0 h" in why("digest")
    assert why("chat").startswith("All 8 requests had a person waiting (triggered by `user_click`, answered in `chat`)")
    assert "median first read 3 s" in why("chat")
    assert "results read within 60 s" in why("watched-table")
    assert "mixed triggers (`schedule` 50%, `user_click` 50%)" in why("mixed")
    assert "triggered by `api`, which does not say whether a person waits" in why("partner-api")
    assert why("grouped").startswith("90% of 10 requests were triggered by `queue` and landed in a `file`")
    assert "no first-read times recorded" in why("grouped")


def test_the_first_read_threshold_is_configurable(tmp_path):
    rows = [row("hourly", "schedule", "table", seconds_to_first_read=2400) for _ in range(5)]
    assert classify("hourly", _records(tmp_path, rows)).verdict is Verdict.GRAY
    relaxed = classify("hourly", _records(tmp_path, rows), batch_read_after_seconds=1800)
    assert relaxed.verdict is Verdict.BATCH
    assert rules.BATCH_READ_AFTER_SECONDS == 3600  # the documented default


def test_a_read_within_the_batch_threshold_for_a_minority_keeps_the_candidate(tmp_path):
    share = rules.MOST_REQUESTS_SHARE
    late = round(10 * share)
    rows = ([row("f", seconds_to_first_read=7200) for _ in range(late)]
            + [row("f", seconds_to_first_read=300) for _ in range(10 - late)])
    assert classify("f", _records(tmp_path, rows)).verdict is Verdict.BATCH
    rows[0]["seconds_to_first_read"] = 300  # one more early reader tips it under the share
    assert classify("f", _records(tmp_path, rows)).verdict is Verdict.GRAY


def _records(tmp_path: Path, rows: list[dict]):
    return read_traffic(write_jsonl(tmp_path / "rows.jsonl", rows)).records


# --- savings arithmetic ----------------------------------------------------------------------------

def test_batch_alone_is_half_of_today_with_the_actual_cache_tokens(tmp_path):
    # today: (1,000 x $1 + 200 x $5 + 4,000 5-minute writes x $1.25) / 1e6 = $0.007; batch alone $0.0035
    rows = [row("job", input_tokens=1000, output_tokens=200, cache_creation_input_tokens=4000)]
    inv = inventory_of(write_jsonl(tmp_path / "t.jsonl", rows), days_in_month=30)
    p = by_feature(inv)["job"].projection
    assert p.today_in_file == Decimal("0.007")
    assert p.batch_alone_in_file == Decimal("0.0035")
    assert inv.span.days == 1 and inv.month_factor == 30
    assert p.today_monthly == Decimal("0.21") and p.batch_alone_monthly == Decimal("0.105")
    assert p.batch_cache_in_file == p.batch_alone_in_file  # no prefix_hash: nothing to cache
    assert any("no prefix_hash" in note for note in p.caching_notes)


def test_caching_a_shared_prefix_above_the_minimum(tmp_path):
    # sonnet, 10 requests over 2 days (5 a day), each 5,000 input of which a 2,000-token prefix, 100 output.
    # today: 10 x (5,000 x $2 + 100 x $10) / 1e6 = $0.11; batch alone $0.055
    # batch + cache: 30,000 plain x $2 = $0.06; 2 writes (one a day) x 2,000 x $4 = $0.016;
    #   8 reads x 2,000 x $0.10 (Sonnet 5.5's cache read since 2026-10-07) = $0.0016; 1,000 output x $10 = $0.01
    #   -> $0.0876, half = $0.0438
    rows = [row("enrich", model=SONNET, input_tokens=5000, output_tokens=100, prefix_hash="p1", prefix_tokens=2000,
                time=f"2026-11-{16 + day}T02:0{i}:00Z") for day in range(2) for i in range(5)]
    inv = inventory_of(write_jsonl(tmp_path / "t.jsonl", rows), days_in_month=30)
    p = by_feature(inv)["enrich"].projection
    assert p.today_in_file == Decimal("0.11")
    assert p.batch_alone_in_file == Decimal("0.055")
    assert p.batch_cache_in_file == Decimal("0.0438")
    assert inv.month_factor == 15  # two days of traffic, a 30-day month
    assert p.batch_cache_monthly == Decimal("0.657")
    assert p.saving_share == 1 - Decimal("0.0438") / Decimal("0.11")
    assert p.cached_requests == 8
    assert "written once a day at the 1-hour rate on 2 of 2 day(s)" in p.caching_notes[0]


def test_a_prefix_under_the_models_minimum_earns_no_caching_saving_and_says_so(tmp_path):
    # haiku's minimum is 4,096: a 2,000-token prefix is not cached however many requests share it
    rows = [row("relabel", "queue", "file", input_tokens=2500, output_tokens=50, prefix_hash="short",
                prefix_tokens=2000) for _ in range(50)]
    p = by_feature(inventory_of(write_jsonl(tmp_path / "t.jsonl", rows)))["relabel"].projection
    # 50 x (2,500 x $1 + 50 x $5) / 1e6 = $0.1375 today, half in a batch, and no better with caching
    assert p.today_in_file == Decimal("0.1375")
    assert p.batch_cache_in_file == p.batch_alone_in_file == Decimal("0.06875")
    assert "under claude-haiku-4-5's minimum cacheable length of 4,096 tokens: no caching saving" in p.caching_notes[0]


def test_a_day_where_a_cache_write_would_not_pay_stays_at_batch_alone(tmp_path):
    # 2 haiku requests of 5,100 input sharing a 5,000-token prefix, no output:
    # batch alone 2 x 5,100 x $1 / 2 / 1e6 = $0.0051; cached (200 + 5,000 x 2 + 5,000 x 0.1) / 2 / 1e6 = $0.00535
    rows = [row("pair", input_tokens=5100, output_tokens=0, prefix_hash="p", prefix_tokens=5000) for _ in range(2)]
    p = project(_records(tmp_path, rows), price_table(), Decimal(1), migrate=True)
    assert p.batch_alone_in_file == Decimal("0.0051")
    assert p.batch_cache_in_file == Decimal("0.0051")
    assert "too few requests a day for a cache write to pay off" in p.caching_notes[0]


def test_a_prefix_no_other_request_shares_is_not_cached(tmp_path):
    rows = [row("solo", input_tokens=9000, prefix_hash="only-me", prefix_tokens=5000), row("solo")]
    p = project(_records(tmp_path, rows), price_table(), Decimal(1), migrate=True)
    assert p.batch_cache_in_file == p.batch_alone_in_file
    assert any("no other request of the feature shares" in n for n in p.caching_notes)


def test_live_and_gray_features_keep_todays_spend_in_the_total(tmp_path):
    rows = [row("batchable", input_tokens=1000, output_tokens=0),       # $0.001 today, $0.0005 batched
            row("chat", "user_click", "chat", input_tokens=3000, output_tokens=0)]  # $0.003, stays
    inv = inventory_of(write_jsonl(tmp_path / "t.jsonl", rows), days_in_month=1)
    totals = inv.totals
    assert totals.today_monthly == Decimal("0.004")
    assert totals.after_migration_monthly == Decimal("0.0035")
    assert by_feature(inv)["chat"].projection.batch_alone_in_file is None


# --- the routing lever -----------------------------------------------------------------------------
# claude-haiku-5-5: $0.10 in / $0.50 out, 1-hour write $0.20, read $0.01, minimum 512 tokens; over 100,000
# prompt tokens a request pays $0.50 / $2.50.

HAIKU_55 = "claude-haiku-5-5"


def test_a_sonnet_classification_feature_shows_the_routing_lever_beside_batch_and_caching(tmp_path):
    # 10 sonnet classification requests on one day, each 5,000 input of which a 2,000-token prefix, 100 output.
    # today $0.11, batch alone $0.055, batch + cache $0.0399 (30,000 plain x $2 + 2,000 x $4 + 18,000 x $0.10
    #   + 1,000 x $10 = $0.0798, halved)
    # routed (Sonnet 5.5 and Haiku 5.5 share a tokenizer): 10 x (5,000 x $0.10 + 100 x $0.50) / 1e6 = $0.0055
    # all three: 30,000 x $0.10 + 2,000 x $0.20 + 18,000 x $0.01 + 1,000 x $0.50 = $0.00408, halved = $0.00204
    rows = [row("labels", model=SONNET, input_tokens=5000, output_tokens=100, prefix_hash="p", prefix_tokens=2000,
                task="Classification", time=f"2026-11-16T02:0{i}:00Z") for i in range(10)]
    inv = inventory_of(write_jsonl(tmp_path / "t.jsonl", rows), days_in_month=30)
    f = by_feature(inv)["labels"]
    p = f.projection
    assert (p.today_in_file, p.batch_alone_in_file, p.batch_cache_in_file) == (
        Decimal("0.11"), Decimal("0.055"), Decimal("0.0399"))
    assert p.routed_today_in_file == Decimal("0.0055")
    assert p.all_levers_in_file == Decimal("0.00204")
    assert p.all_levers_monthly == Decimal("0.0612") and inv.totals.all_levers_monthly == Decimal("0.0612")
    assert inv.totals.routed_monthly == Decimal("0.165")
    assert f.routing.eligible and f.routing.moved_requests == 10 and f.routing.from_models == {SONNET: 10}
    assert "All 10 requests are classification/extraction/routing work (`classification` 100%)" in (
        f.routing.explanation)
    assert "prove it with `nightshift trial` before switching" in f.routing.explanation


def test_routing_from_an_older_tokenizer_counts_thirty_percent_more_tokens(tmp_path):
    # haiku 4.5 extraction, live: 1,000 in / 100 out -> 1,300 / 130 on haiku 5.5:
    # (1,300 x $0.10 + 130 x $0.50) / 1e6 = $0.000195 a request; today (1,000 x $1 + 100 x $5) / 1e6 = $0.0015
    rows = [row("extract", "user_click", "chat", task="extraction") for _ in range(4)]
    p = by_feature(inventory_of(write_jsonl(tmp_path / "t.jsonl", rows)))["extract"].projection
    assert p.today_in_file == Decimal("0.006")
    assert p.routed_today_in_file == p.all_levers_in_file == Decimal("0.00078")
    assert p.batch_alone_in_file is None  # a live feature is not batched: routing is its only lever


def test_the_routing_lever_is_conservative(tmp_path):
    rows = ([row("mixed-work", model=SONNET, task="classification") for _ in range(7)]
            + [row("mixed-work", model=SONNET, task="summarization") for _ in range(3)]   # 70% < 80%
            + [row("drafting", model=SONNET, task="generation") for _ in range(5)]
            + [row("untagged", model=SONNET) for _ in range(5)]                            # no task: never guessed
            + [row("already-cheap", model=HAIKU_55, task="routing") for _ in range(5)])
    inv = inventory_of(write_jsonl(tmp_path / "t.jsonl", rows))
    features = by_feature(inv)
    for name in features:
        p = features[name].projection
        assert not features[name].routing.eligible and p.routed_today_in_file is None, name
        assert p.all_levers_in_file == p.batch_cache_in_file, name  # batch and caching only
    assert "70% of 10 requests are classification/extraction/routing work" in features["mixed-work"].routing.explanation
    assert "split the feature before routing it" in features["mixed-work"].routing.explanation
    assert features["drafting"].routing.explanation.startswith("None of the 5 requests is")
    assert features["untagged"].routing.explanation is None
    assert "already run where they cost no more than on claude-haiku-5-5" in (
        features["already-cheap"].routing.explanation)
    assert inv.totals.routed_monthly == inv.totals.today_monthly


def test_an_aggregated_row_pays_a_long_prompt_band_only_when_its_average_request_is_long(tmp_path):
    # 40 haiku 5.5 requests of 5,000 input and 100 output in one row: 200,000 input tokens in all, but each
    # request is far under the 100,000-token band: (200,000 x $0.10 + 4,000 x $0.50) / 1e6 = $0.022, not the
    # band's (200,000 x $0.50 + 4,000 x $2.50) / 1e6 = $0.11
    rows = [row("grouped", model=HAIKU_55, input_tokens=200_000, output_tokens=4_000, requests=40),
            row("long", model=HAIKU_55, input_tokens=150_000, output_tokens=1_000)]
    features = by_feature(inventory_of(write_jsonl(tmp_path / "t.jsonl", rows)))
    assert features["grouped"].projection.today_in_file == Decimal("0.022")
    assert features["long"].projection.today_in_file == Decimal("0.0775")  # 150,000 x $0.50 + 1,000 x $2.50


def test_the_three_levers_are_in_every_output_with_the_rule_and_its_source(tmp_path, capsys):
    rows = [row("labels", model=SONNET, task="classification", time=f"2026-11-16T02:0{i}:00Z") for i in range(5)]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    assert main([str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (labels,) = doc["features"]
    assert labels["routed_to"] == "claude-haiku-5-5" and labels["routed_requests"] == 5
    assert labels["routed_monthly_usd"] < labels["today_monthly_usd"]
    assert labels["all_levers_monthly_usd"] < labels["batch_cache_monthly_usd"]
    assert doc["totals"]["all_levers_monthly_usd"] == labels["all_levers_monthly_usd"]
    assert doc["routing_rule"]["source"] == "https://platform.claude.com/docs/en/models/haiku-5-5/overview"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", doc["routing_rule"]["read_on"])

    csv_row = next(csv.DictReader(to_csv(inventory_of(path)).splitlines()))
    assert float(csv_row["all_levers_monthly_usd"]) == pytest.approx(labels["all_levers_monthly_usd"])

    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "Three levers: monthly saving" in out
    assert re.search(r"labels\s+│\s+\$[\d.]+\s+│\s+\$[\d.]+\s+│\s+\$[\d.]+\s+│\s+\$[\d.]+\s+│", out)
    assert "routing: All 5 requests are classification/extraction/routing work" in out
    assert "haiku-5-5/overview, read" in out and "run `nightshift trial`" in out


# --- errors: malformed rows and unknown models -----------------------------------------------------

def test_malformed_rows_are_reported_by_line_and_field_and_the_rest_flows(tmp_path, capsys):
    lines = [
        row("ok"),
        row("ok", input_tokens="12k"),                       # line 2
        row("ok"),
        '{"time": "2026-11-16T02:00:00Z", "feature": "ok"',  # line 4: cut short
        row("ok", time="not a time", output_tokens=-1),      # line 5: two fields
        "",                                                   # blank lines are skipped, and still counted
        {k: v for k, v in row("ok").items() if k != "model"},  # line 7
        row("ok", input_tokens=100, prefix_hash="h", prefix_tokens=500),  # line 8: prefix longer than the prompt
        row("ok"),
    ]
    parsed = read_traffic(write_jsonl(tmp_path / "t.jsonl", lines))
    assert len(parsed.records) == 3
    assert [(e.line, e.fields) for e in parsed.errors] == [
        (2, ["input_tokens"]), (4, ["(json)"]), (5, ["time", "output_tokens"]), (7, ["model"]),
        (8, ["prefix_tokens"])]
    assert str(parsed.errors[0]).startswith("line 2: field 'input_tokens': Input should be a valid integer")
    assert "(got '12k')" in str(parsed.errors[0])
    assert str(parsed.errors[1]).startswith("line 4: not valid JSON")
    assert str(parsed.errors[3]) == "line 7: field 'model': required, but missing or empty"

    assert main([str(tmp_path / "t.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "5 malformed row(s) skipped" in out and "line 5: field 'time'" in out
    assert re.search(r"ok\s+│\s+3\s+│", out)  # the three good rows were counted


def test_csv_rows_carry_their_line_numbers_too(tmp_path):
    path = write_csv(tmp_path / "t.csv", [row("ok"), row("ok", trigger="", output_tokens="lots"), row("ok")])
    parsed = read_traffic(path)
    assert len(parsed.records) == 2
    assert [(e.line, e.fields) for e in parsed.errors] == [(3, ["trigger", "output_tokens"])]  # line 1 is the header


def test_an_unknown_model_is_reported_as_unpriced_never_as_zero(tmp_path, capsys):
    rows = [row("known"), row("mystery", model="claude-imaginary-1"), row("mystery", model=HAIKU)]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    inv = inventory_of(path)
    mystery = by_feature(inv)["mystery"].projection
    assert not mystery.priced and mystery.today_in_file is None
    assert "model 'claude-imaginary-1' is not in the price table" in mystery.unpriced_reason
    assert "unpriced (1 request)" in mystery.unpriced_reason
    assert inv.totals.unpriced_features == ["mystery"]
    assert inv.totals.today_monthly == by_feature(inv)["known"].projection.today_monthly

    assert main([str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    feature = next(f for f in doc["features"] if f["feature"] == "mystery")
    assert feature["today_monthly_usd"] is None and "claude-imaginary-1" in feature["unpriced_reason"]
    assert doc["totals"]["unpriced_features"] == ["mystery"]

    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"mystery\s+│\s+2\s+│\s+batch candidate\s+│\s+unpriced", out)
    assert "leaves out unpriced feature(s): mystery" in out


# --- input formats and outputs ---------------------------------------------------------------------

def test_csv_and_jsonl_inputs_give_the_same_inventory(tmp_path):
    rows = crafted_traffic() + [
        row("enrich", model=SONNET, input_tokens=5000, output_tokens=100, prefix_hash="p1", prefix_tokens=2000,
            cache_read_input_tokens=10, time=f"2026-11-17T0{i}:00:00Z") for i in range(6)]
    from_jsonl = json.loads(to_json(inventory_of(write_jsonl(tmp_path / "t.jsonl", rows))))
    from_csv = json.loads(to_json(inventory_of(write_csv(tmp_path / "t.csv", rows))))
    for doc in (from_jsonl, from_csv):
        del doc["file"], doc["format"]
    assert from_csv == from_jsonl
    assert len(from_csv["features"]) == 10 and from_csv["totals"]["today_monthly_usd"] > 0


def test_csv_and_json_outputs_have_one_row_per_feature(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", crafted_traffic())
    inv = inventory_of(path)
    csv_rows = list(csv.DictReader(to_csv(inv).splitlines()))
    assert [r["feature"] for r in csv_rows] == [f.feature for f in inv.features]
    nightly = next(r for r in csv_rows if r["feature"] == "nightly")
    assert nightly["verdict"] == "batch candidate"
    assert float(nightly["batch_alone_monthly_usd"]) == pytest.approx(float(nightly["today_monthly_usd"]) / 2)
    out = tmp_path / "out.json"
    assert main([str(path), "--format", "json", "--output", str(out)]) == 0
    assert [f["feature"] for f in json.loads(out.read_text())["features"]] == [f.feature for f in inv.features]


def test_a_file_that_cannot_be_read_is_an_error_not_an_empty_report(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("whatever\n")
    assert main([str(tmp_path / "t.txt")]) == 2
    assert ".csv (with a header) or .jsonl" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("time,feature,model\n2026-11-16T00:00:00Z,f,claude-haiku-4-5\n")
    assert main([str(tmp_path / "t.csv")]) == 2
    assert "lacks required column(s) trigger, destination, input_tokens, output_tokens" in capsys.readouterr().err
    assert set(FORMATS) == {".csv", ".jsonl"}


# --- the shipped sample ----------------------------------------------------------------------------

def test_the_shipped_sample_is_what_its_script_makes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_sample", SAMPLE.with_name("make_sample.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert SAMPLE.read_text().splitlines() == module.generate()


def test_the_shipped_sample_gives_a_table_and_a_chart_with_a_bar_per_feature(tmp_path):
    table, chart = tmp_path / "table.txt", tmp_path / "chart.html"
    assert main([str(SAMPLE), "--output", str(table), "--chart", str(chart)]) == 0
    inv = inventory_of(SAMPLE)
    verdicts = {f.feature: f.verdict for f in inv.features}
    assert verdicts == {  # what make_sample.py built each feature to be
        "catalogue-enrichment": Verdict.BATCH, "ticket-classification": Verdict.BATCH,
        "backlog-relabel": Verdict.BATCH, "changelog-drafts": Verdict.BATCH,
        "weekly-report-summaries": Verdict.GRAY, "support-chat": Verdict.LIVE, "explain-this": Verdict.LIVE,
    }
    assert len(inv.parsed.errors) == 6 and inv.totals.unpriced_features == ["changelog-drafts"]
    assert inv.span.days == 7

    text = table.read_text()
    for feature, verdict in verdicts.items():
        assert re.search(rf"{feature}\s+│\s+[\d,]+\s+│\s+{verdict.value}", text), feature
    assert "6 malformed row(s) skipped" in text

    page = chart.read_text()
    assert "<script" not in page.lower() and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", page, re.S).group(0))
    ns = "{http://www.w3.org/2000/svg}"
    bars: dict[tuple[str, str], float] = {}
    for rect in svg.iter(f"{ns}rect"):
        kind = "today" if "today" in rect.get("class").split() else "after"
        bars[(rect.get("data-feature"), kind)] = float(rect.get("width"))
    priced = [f for f in inv.features if f.projection.priced]
    assert {name for name, _ in bars} == {f.feature for f in priced} | {"total"}
    for f in priced:
        today, after = bars[(f.feature, "today")], bars[(f.feature, "after")]
        if f.verdict is Verdict.BATCH:
            assert after < today * 0.6, f.feature  # at least the batch discount
        else:
            assert after == today, f.feature
    assert bars[("total", "today")] == max(bars.values())
    assert "changelog-drafts" in page and "claude-sonnet-5" in page  # named, without a bar
