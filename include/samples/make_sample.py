"""Writes traffic-sample.jsonl: a week of one team's Claude traffic, for `nightshift inventory`.

Deterministic (fixed seed): run it again and the file is byte-for-byte the same.

    .venv/bin/python include/samples/make_sample.py [OUT]

Seven features over 2026-11-16 (Monday) to 2026-11-22, one row per request except the backlog
job, which logs one row per 10 minutes with a ``requests`` count and summed tokens:

| feature                 | trigger    | destination | model             | shared prefix          |
|-------------------------|------------|-------------|-------------------|------------------------|
| catalogue-enrichment    | schedule   | table       | claude-sonnet-5-5 | 4,800 tokens           |
| ticket-classification   | queue      | table       | claude-haiku-4-5  | 5,200 tokens, 5m cache |
| support-chat            | user_click | chat        | claude-sonnet-5-5 | 2,600 tokens, cached   |
| weekly-report-summaries | schedule   | email       | claude-opus-5-5   | none                   |
| explain-this            | user_click | ui          | claude-haiku-4-5  | 900 tokens             |
| backlog-relabel         | queue      | file        | claude-haiku-4-5  | 2,000 (under 4,096)    |
| changelog-drafts        | schedule   | file        | claude-sonnet-5   | (a model not priced)   |

ticket-classification and backlog-relabel rows say ``task: classification`` (the work Haiku 5.5 is
documented for), so the inventory shows the routing lever on them; and six malformed lines, to show
how they are reported.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20261116
START = datetime(2026, 11, 16, tzinfo=UTC)
DAYS = 7
OUT = Path(__file__).with_name("traffic-sample.jsonl")


def _row(time: datetime, feature: str, trigger: str, destination: str, model: str, input_tokens: int,
         output_tokens: int, *, cache_creation: int = 0, cache_read: int = 0, first_read: float | None = None,
         prefix_hash: str | None = None, prefix_tokens: int | None = None, requests: int = 1,
         task: str | None = None) -> dict:
    row = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "feature": feature, "trigger": trigger,
           "destination": destination, "model": model, "input_tokens": input_tokens, "output_tokens": output_tokens}
    if cache_creation:
        row["cache_creation_input_tokens"] = cache_creation
    if cache_read:
        row["cache_read_input_tokens"] = cache_read
    if first_read is not None:
        row["seconds_to_first_read"] = round(first_read, 1)
    if prefix_hash:
        row["prefix_hash"] = prefix_hash
        row["prefix_tokens"] = prefix_tokens
    if requests != 1:
        row["requests"] = requests
    if task:
        row["task"] = task
    return row


def catalogue_enrichment(rng: random.Random, day: datetime) -> list[dict]:
    """Nightly at 02:00, 200 products; the catalogue is rebuilt from the table at 06:00-09:00."""
    rows = []
    for _ in range(200):
        t = day + timedelta(hours=2, seconds=rng.uniform(0, 40 * 60))
        read = day + timedelta(hours=6, seconds=rng.uniform(0, 3 * 3600))
        rows.append(_row(t, "catalogue-enrichment", "schedule", "table", "claude-sonnet-5-5",
                         4800 + rng.randint(300, 900), rng.randint(250, 500),
                         first_read=None if rng.random() < 0.1 else (read - t).total_seconds(),
                         prefix_hash="enrich-7c2e91", prefix_tokens=4800))
    return rows


def ticket_classification(rng: random.Random, day: datetime) -> list[dict]:
    """Tickets queued all day; agents open the triage view hours later. A 5-minute cache today, mostly missed."""
    rows = []
    count = 120 if day.weekday() < 5 else 40
    for _ in range(count):
        t = day + timedelta(hours=7, seconds=rng.uniform(0, 12 * 3600))
        hit = rng.random() < 0.3
        early = rng.random() < 0.07
        read = rng.uniform(5 * 60, 50 * 60) if early else rng.lognormvariate(9.8, 0.7)  # median ~5 h
        rows.append(_row(t, "ticket-classification", "queue", "table", "claude-haiku-4-5",
                         rng.randint(150, 600), rng.randint(60, 120),
                         cache_creation=0 if hit else 5200, cache_read=5200 if hit else 0, first_read=read,
                         prefix_hash="triage-4b10d3", prefix_tokens=5200, task="classification"))
    return rows


def support_chat(rng: random.Random, day: datetime) -> list[dict]:
    rows = []
    for _ in range(120):
        t = day + timedelta(hours=8, seconds=rng.uniform(0, 10 * 3600))
        rows.append(_row(t, "support-chat", "user_click", "chat", "claude-sonnet-5-5",
                         rng.randint(800, 4000), rng.randint(150, 600), cache_read=2600,
                         first_read=rng.uniform(1, 6), prefix_hash="chat-sys-91aa", prefix_tokens=2600))
    return rows


def weekly_report_summaries(rng: random.Random, day: datetime) -> list[dict]:
    """Monday 06:00: one summary per account, emailed; read when the account manager gets to it."""
    if day.weekday() != 0:
        return []
    rows = []
    for _ in range(40):
        t = day + timedelta(hours=6, seconds=rng.uniform(0, 15 * 60))
        rows.append(_row(t, "weekly-report-summaries", "schedule", "email", "claude-opus-5-5",
                         rng.randint(12_000, 30_000), rng.randint(800, 1500),
                         first_read=None if rng.random() < 0.15 else rng.uniform(3600, 40 * 3600)))
    return rows


def explain_this(rng: random.Random, day: datetime) -> list[dict]:
    rows = []
    for _ in range(60):
        t = day + timedelta(hours=8, seconds=rng.uniform(0, 11 * 3600))
        rows.append(_row(t, "explain-this", "user_click", "ui", "claude-haiku-4-5",
                         rng.randint(1500, 4000), rng.randint(200, 400), first_read=rng.uniform(2, 8),
                         prefix_hash="explain-v2", prefix_tokens=900))
    return rows


def backlog_relabel(rng: random.Random, day: datetime) -> list[dict]:
    """Every Wednesday afternoon the week's re-label queue, 3,000 documents, into a file; logged per 10 minutes."""
    if day.weekday() != 2:
        return []
    rows = []
    for slot in range(30):
        n = 100
        rows.append(_row(day + timedelta(hours=13, minutes=10 * slot), "backlog-relabel", "queue", "file",
                         "claude-haiku-4-5", sum(2000 + rng.randint(300, 700) for _ in range(n)),
                         sum(rng.randint(40, 90) for _ in range(n)),
                         prefix_hash="relabel-v1", prefix_tokens=2000, requests=n, task="classification"))
    return rows


def changelog_drafts(rng: random.Random, day: datetime) -> list[dict]:
    """A model name nobody priced: the inventory must say so, not count it as free."""
    return [_row(day + timedelta(hours=23, minutes=5 * i), "changelog-drafts", "schedule", "file", "claude-sonnet-5",
                 rng.randint(3000, 6000), rng.randint(400, 800)) for i in range(2)]


MALFORMED = [
    '{"time": "2026-11-17T09:14:02Z", "feature": "ticket-classification", "trigger": "queue", '
    '"destination": "table", "model": "claude-haiku-4-5", "input_tokens": "12k", "output_tokens": 80}',
    '{"time": "yesterday 14:05", "feature": "explain-this", "trigger": "user_click", "destination": "ui", '
    '"model": "claude-haiku-4-5", "input_tokens": 2100, "output_tokens": 250}',
    '{"time": "2026-11-18T10:40:00Z", "feature": "", "trigger": "user_click", "destination": "chat", '
    '"model": "claude-sonnet-5-5", "input_tokens": 1200, "output_tokens": 300}',
    '{"time": "2026-11-19T02:11:45Z", "feature": "catalogue-enrichment", "trigger": "schedule", '
    '"destination": "table", "model": "claude-sonnet-5-5", "input_tokens": 4100, "output_tokens": -40}',
    '{"time": "2026-11-20T11:02:13Z", "feature": "support-chat", "trigger": "user_click", "destinat',
    '{"time": "2026-11-21T15:30:00Z", "feature": "ticket-classification", "destination": "table", '
    '"model": "claude-haiku-4-5", "input_tokens": 300, "output_tokens": 70}',
]


def generate() -> list[str]:
    rng = random.Random(SEED)
    rows: list[dict] = []
    for d in range(DAYS):
        day = START + timedelta(days=d)
        for make in (catalogue_enrichment, ticket_classification, support_chat, weekly_report_summaries,
                     explain_this, backlog_relabel, changelog_drafts):
            rows.extend(make(rng, day))
    rows.sort(key=lambda r: (r["time"], r["feature"]))
    lines = [json.dumps(r) for r in rows]
    for i, bad in enumerate(MALFORMED):  # spread through the file, as a real export's bad rows would be
        lines.insert((i + 1) * len(lines) // (len(MALFORMED) + 1), bad)
    return lines


def main(out: Path = OUT) -> None:
    lines = generate()
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines):,} lines to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
