"""The dashboard's JSON and CSV endpoints against SQL on a ledger the real pipeline wrote."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest

from nightshift.ledger import dashboard as queries
from tests.ui.support import PRODUCTS, TICKETS, move_night, sql_one

pytestmark = pytest.mark.airflow

COSTS = ("cost_usd", "streaming_uncached_usd", "streaming_cached_usd", "savings_usd", "savings_pct", "cache_hit_ratio")


def money(value):
    return None if value is None else float(value)


def expected_night(conn, run_pk: int) -> dict:
    """What a night row must say, computed here from the ledger tables directly."""
    counts = dict(conn.execute("SELECT status, count(*) FROM nightshift.items WHERE run_pk = %s GROUP BY 1",
                               (run_pk,)).fetchall())
    reasons = dict(conn.execute("SELECT error_type, count(*) FROM nightshift.items WHERE run_pk = %s "
                                "AND status = 'failed' GROUP BY 1", (run_pk,)).fetchall())
    rounds, batches = conn.execute("SELECT count(DISTINCT round), count(*) FROM nightshift.batches WHERE run_pk = %s",
                                   (run_pk,)).fetchone()
    cost = sql_one(conn, f"SELECT {', '.join(COSTS)} FROM nightshift.run_costs WHERE run_pk = %s", run_pk)
    return {"requests": sum(counts.values()), "succeeded": counts.get("succeeded", 0),
            "failed": counts.get("failed", 0), "failed_by_reason": reasons, "rounds": rounds,
            "retry_rounds": rounds - 1, "batches": batches, "cost": {k: money(v) for k, v in cost.items()}}


def test_nights_match_the_ledger(dashboard, app_db, two_nights):
    body = dashboard.get("/api/nights").json()

    assert body["ledger_present"] is True and body["total"] == 2
    by_run = {n["run_pk"]: n for n in body["nights"]}
    assert [n["run_pk"] for n in body["nights"]] == [two_nights.products, two_nights.tickets]  # newest first
    for run_pk in (two_nights.tickets, two_nights.products):
        got = by_run[run_pk]
        assert {k: got[k] for k in expected_night(app_db, run_pk)} == expected_night(app_db, run_pk)
        assert got["links"]["dashboard"] == f"/runs/{run_pk}"
    tickets = by_run[two_nights.tickets]
    # The fixture's faults, as the ledger recorded them: retries happened and every reason shows.
    assert tickets["workload"] == TICKETS and tickets["status"] == "succeeded"
    assert tickets["retry_rounds"] == 2
    assert set(tickets["failed_by_reason"]) == {"invalid_input", "invalid_request", "overloaded_error_after_retries"}
    assert tickets["cost"]["cost_usd"] > 0 and tickets["cost"]["savings_usd"] > 0


def test_nights_paginate_and_filter_by_workload(dashboard, two_nights):
    first = dashboard.get("/api/nights", params={"limit": 1}).json()
    second = dashboard.get("/api/nights", params={"limit": 1, "offset": 1}).json()
    assert first["total"] == second["total"] == 2
    assert [n["run_pk"] for n in first["nights"] + second["nights"]] == [two_nights.products, two_nights.tickets]
    assert dashboard.get("/api/nights", params={"limit": 1, "offset": 2}).json()["nights"] == []

    only = dashboard.get("/api/nights", params={"workload": PRODUCTS}).json()
    assert only["total"] == 1 and [n["run_pk"] for n in only["nights"]] == [two_nights.products]
    assert dashboard.get("/api/nights", params={"limit": 0}).status_code == 422
    assert dashboard.get("/api/nights", params={"limit": 501}).status_code == 422


def test_a_night_lists_its_batches_rounds_and_console_links(dashboard, app_db, two_nights, monkeypatch):
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__CONSOLE_BATCH_URL", "https://console.example/batches/{batch_id}?ws=night")
    body = dashboard.get(f"/api/nights/{two_nights.tickets}").json()

    night = body["night"]
    assert {k: night[k] for k in expected_night(app_db, two_nights.tickets)} == expected_night(app_db, two_nights.tickets)
    rows = app_db.execute(
        "SELECT backend_batch_id, round, seq, status, processing_status, request_count, request_counts, "
        "submitted_at, ended_at, landed_at FROM nightshift.batches WHERE run_pk = %s ORDER BY round, seq",
        (two_nights.tickets,)).fetchall()
    assert [(b["backend_batch_id"], b["round"], b["seq"], b["status"], b["processing_status"], b["request_count"],
             b["request_counts"]) for b in body["batches"]] == [tuple(r[:7]) for r in rows]
    assert [(b["submitted_at"], b["ended_at"], b["landed_at"]) for b in body["batches"]] == [
        tuple(t.isoformat() for t in r[7:]) for r in rows]
    assert [b["console_url"] for b in body["batches"]] == [
        f"https://console.example/batches/{r[0]}?ws=night" for r in rows]

    rounds = body["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    submitted = dict(app_db.execute("SELECT round, sum(request_count) FROM nightshift.batches WHERE run_pk = %s "
                                    "GROUP BY 1", (two_nights.tickets,)).fetchall())
    assert {r["round"]: r["submitted"] for r in rounds} == submitted
    # Items count in the round they ended in, so the rounds add up to the night.
    assert sum(r["succeeded"] for r in rounds) == night["succeeded"]
    assert sum(r["failed"] for r in rounds) == night["failed"]


def test_an_unknown_night_is_404(dashboard, two_nights):
    response = dashboard.get("/api/nights/999999")
    assert response.status_code == 404 and "999999" in response.json()["detail"]


def test_the_series_sums_priced_nights_per_workload_and_day(dashboard, app_db, two_nights, emulator):
    # A third real night, then date the three: tickets 3 days ago, products yesterday, tickets again 40 days ago.
    from nightshift.deployment import get_workload
    from tests.batch_night import run_night
    from tests.helpers import emulator_backend, seed

    seed(app_db, tickets=5)
    old = run_night(app_db, emulator_backend(emulator), get_workload(TICKETS), airflow_run_id="scheduled__old").run.run_pk
    move_night(app_db, two_nights.tickets, 3)
    move_night(app_db, two_nights.products, 1)
    move_night(app_db, old, 40)

    body = dashboard.get("/api/series", params={"days": 30}).json()

    today = app_db.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
    assert body["days"] == 30 and body["end"] == today.isoformat()
    assert body["start"] == (today - timedelta(days=29)).isoformat()
    assert set(body["workloads"]) == {TICKETS, PRODUCTS}
    for workload, run_pk, days_ago in ((TICKETS, two_nights.tickets, 3), (PRODUCTS, two_nights.products, 1)):
        costs = sql_one(app_db, "SELECT * FROM nightshift.run_costs WHERE run_pk = %s", run_pk)
        assert body["workloads"][workload] == [{
            "night": (today - timedelta(days=days_ago)).isoformat(), "runs": 1,
            "cost_usd": money(costs["cost_usd"]), "streaming_uncached_usd": money(costs["streaming_uncached_usd"]),
            "streaming_cached_usd": money(costs["streaming_cached_usd"]), "savings_usd": money(costs["savings_usd"]),
            "savings_pct": money(costs["savings_pct"])}]  # the 40-day-old night is outside the window
        assert body["totals"][workload]["runs"] == 1
        assert body["totals"][workload]["cost_usd"] == money(costs["cost_usd"])

    wide = dashboard.get("/api/series", params={"days": 60}).json()
    assert [p["night"] for p in wide["workloads"][TICKETS]] == [
        (today - timedelta(days=40)).isoformat(), (today - timedelta(days=3)).isoformat()]
    assert dashboard.get("/api/series", params={"days": 0}).status_code == 422


def test_two_nights_on_one_day_are_one_point(app_db, two_nights, emulator):
    from nightshift.deployment import get_workload
    from tests.batch_night import run_night
    from tests.helpers import emulator_backend, seed

    seed(app_db, tickets=6)
    again = run_night(app_db, emulator_backend(emulator), get_workload(TICKETS), airflow_run_id="manual__again").run.run_pk
    move_night(app_db, two_nights.tickets, 2)
    move_night(app_db, again, 2)

    series = queries.cost_series(app_db, days=30)

    (point,) = series["workloads"][TICKETS]
    expected = sql_one(app_db, "SELECT sum(cost_usd) AS cost, sum(savings_usd) AS saved, "
                               "round(100 * sum(savings_usd) / sum(streaming_uncached_usd), 2) AS pct "
                               "FROM nightshift.run_costs WHERE run_pk IN (%s, %s)", two_nights.tickets, again)
    assert point["runs"] == 2
    assert (point["cost_usd"], point["savings_usd"], point["savings_pct"]) == (
        expected["cost"], expected["saved"], expected["pct"])


def failed_items(conn, where: str = "", *params) -> list[tuple]:
    return conn.execute(
        "SELECT i.run_pk, i.custom_id FROM nightshift.items i JOIN nightshift.runs r USING (run_pk) "
        f"WHERE i.status = 'failed' {where} ORDER BY i.run_pk DESC, i.request_id, i.custom_id", params).fetchall()


def listed(body) -> list[tuple]:
    return [(f["run_pk"], f["custom_id"]) for f in body["failures"]]


def test_failures_filter_by_workload_reason_run_and_dates(dashboard, app_db, two_nights):
    everything = dashboard.get("/api/failures", params={"limit": 500}).json()
    assert everything["total"] == len(failed_items(app_db)) > 5
    assert listed(everything) == failed_items(app_db)
    row = next(f for f in everything["failures"] if f["error_type"] == "overloaded_error_after_retries")
    item = sql_one(app_db, "SELECT source_key, error_message, round FROM nightshift.items WHERE run_pk = %s "
                           "AND custom_id = %s", row["run_pk"], row["custom_id"])
    assert (row["source_key"], row["error_message"], row["round"]) == (
        item["source_key"], item["error_message"], item["round"])
    assert row["workload"] == TICKETS and row["round"] == 2

    def check(params, where, *args):
        body = dashboard.get("/api/failures", params={**params, "limit": 500}).json()
        expected = failed_items(app_db, where, *args)
        assert body["total"] == len(expected) and listed(body) == expected, params
        return expected

    assert check({"workload": PRODUCTS}, "AND r.workload = %s", PRODUCTS)
    assert check({"reason": "invalid_input"}, "AND i.error_type = %s", "invalid_input")
    assert check({"run_pk": two_nights.tickets, "reason": "invalid_request"},
                 "AND i.run_pk = %s AND i.error_type = %s", two_nights.tickets, "invalid_request")
    assert not check({"workload": PRODUCTS, "reason": "invalid_request"},
                     "AND r.workload = %s AND i.error_type = %s", PRODUCTS, "invalid_request")

    move_night(app_db, two_nights.tickets, 10)
    move_night(app_db, two_nights.products, 2)
    today = app_db.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
    recent = check({"since": (today - timedelta(days=5)).isoformat()}, "AND r.run_pk = %s", two_nights.products)
    older = check({"until": (today - timedelta(days=10)).isoformat()}, "AND r.run_pk = %s", two_nights.tickets)
    assert recent and older
    # Both ends are inclusive nights.
    check({"since": (today - timedelta(days=10)).isoformat(), "until": (today - timedelta(days=2)).isoformat()}, "")
    assert not check({"since": (today - timedelta(days=9)).isoformat(),
                      "until": (today - timedelta(days=3)).isoformat()}, "AND false")


def test_failures_paginate_without_gaps_or_repeats(dashboard, app_db, two_nights):
    expected = failed_items(app_db)
    pages = [dashboard.get("/api/failures", params={"limit": 3, "offset": offset}).json()
             for offset in range(0, len(expected) + 3, 3)]
    assert all(p["total"] == len(expected) for p in pages)
    assert [row for p in pages for row in listed(p)] == expected
    assert pages[-1]["failures"] == []


@pytest.mark.parametrize("params", [{"run_pk": "seven"}, {"since": "yesterday"}, {"until": "2026-13-01"},
                                    {"run_pk": "0"}, {"offset": "-1"}])
def test_bad_failure_filters_are_rejected_with_the_reason(dashboard, two_nights, params):
    response = dashboard.get("/api/failures", params=params)
    assert response.status_code == 422
    assert next(iter(params)) in str(response.json()["detail"])


def test_blank_filters_mean_any(dashboard, app_db, two_nights):
    body = dashboard.get("/api/failures?workload=&reason=&run_pk=&since=&until=&limit=500").json()
    assert body["total"] == len(failed_items(app_db))


def test_the_csv_has_a_header_and_every_matching_row(dashboard, app_db, two_nights):
    response = dashboard.get("/api/failures.csv", params={"workload": TICKETS})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'attachment; filename="nightshift-failures.csv"' == response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == queries.CSV_COLUMNS
    expected = app_db.execute(
        "SELECT i.run_pk::text, r.workload, i.round::text, i.custom_id, i.source_key, coalesce(i.request_id::text, ''), "
        "i.error_type, coalesce(i.error_message, '') FROM nightshift.items i JOIN nightshift.runs r USING (run_pk) "
        "WHERE i.status = 'failed' AND r.workload = %s ORDER BY i.run_pk DESC, i.request_id, i.custom_id",
        (TICKETS,)).fetchall()
    columns = queries.CSV_COLUMNS
    picked = [tuple(row[columns.index(c)] for c in ("run_pk", "workload", "round", "custom_id", "source_key",
                                                       "request_id", "error_type", "error_message")) for row in rows[1:]]
    assert picked == expected and len(expected) > 3
    assert all(row[columns.index("run_created_at")].endswith("Z") for row in rows[1:])


def test_the_csv_is_streamed_in_chunks_from_postgres(dashboard, app_db, two_nights):
    chunks = list(queries.failures_csv(app_db, queries.FailureFilter(), chunk_bytes=200))
    assert len(chunks) > 2 and all(chunks)
    assert sum(len(c) for c in chunks) == len(dashboard.get("/api/failures.csv").content)
    with dashboard.stream("GET", "/api/failures.csv") as response:
        assert response.headers.get("content-length") is None  # no length up front: it is streamed
        body = b"".join(response.iter_bytes())
    assert body == b"".join(chunks)


def test_the_csv_respects_filters_with_no_match(dashboard, two_nights):
    response = dashboard.get("/api/failures.csv", params={"reason": "no_such_reason"})
    assert response.text.splitlines() == [",".join(queries.CSV_COLUMNS)]


def test_series_window_dates(app_db):
    start, end = queries.series_window(30, "UTC", today=date(2026, 3, 1))
    assert (start, end) == (date(2026, 1, 31), date(2026, 3, 1))
