"""Parity: does the batch path (shadow table) say what the streaming path (destination) says?

Key by key, on the keys both paths answered: the streaming path's destination row against the
shadow run's row, or against the shadow run's failure for the key (a failure counts as a
disagreement: it is what the switch would ship). Labels and structured fields must be equal; free
text is compared after normalisation (case, whitespace, punctuation) with a similarity ratio, since
two good summaries rarely match to the letter. Keys only one path answered are counted, never
compared. Each path's cost is taken from what it actually spent on the same requests.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import psycopg

from nightshift.ledger import migration
from nightshift.workloads.definition import Workload

_PUNCTUATION = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")
MAX_LISTED_DIFFERENCES = 50


@dataclass
class Difference:
    key: str
    field: str
    streaming: Any
    batch: Any
    similarity: float | None = None


class NoShadowRun(LookupError):
    """Parity asked for before the workload ever ran in shadow mode: nothing to compare, said in one line."""

    def __init__(self, workload: str) -> None:
        super().__init__(f"{workload} has no shadow run yet, so there is nothing to compare: run "
                         f"`nightshift switch --workload {workload} --to shadow`, then its batch DAG")


@dataclass
class ParityReport:
    workload: str
    #: keys with both a streaming answer and a shadow answer (a row or a failure): what agreement rests on
    rows_compared: int = 0
    rows_agreeing: int = 0
    #: compared keys whose shadow answer is a failure (each a disagreement)
    shadow_failures: int = 0
    only_streaming: int = 0
    only_batch: int = 0
    field_agreement: dict[str, float] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    streaming_cost_usd: float = 0.0
    batch_cost_usd: float = 0.0
    requests_costed: int = 0

    @property
    def agreement(self) -> float:
        return self.rows_agreeing / self.rows_compared if self.rows_compared else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agreement": self.agreement}


def normalise(text: str) -> str:
    return _SPACE.sub(" ", _PUNCTUATION.sub(" ", text.lower())).strip()


def text_similarity(a: str, b: str) -> float:
    a, b = normalise(a or ""), normalise(b or "")
    return 1.0 if a == b else difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def is_free_text(workload: Workload, field_name: str) -> bool:
    if workload.output.is_text:
        return True
    spec = workload.output.json_schema["properties"][field_name]
    return spec.get("type") == "string" and "enum" not in spec


def compare(conn: psycopg.Connection, workload: Workload) -> ParityReport:
    """Compare, key by key, the streaming path's answers with the shadow runs' answers."""
    if not migration.shadow_table_exists(conn, workload):
        raise NoShadowRun(workload.name)
    report = ParityReport(workload.name)
    columns = list(workload.destination.columns)
    agreeing_fields = dict.fromkeys(columns, 0)
    for row_key, streamed, in_shadow, shadow_failed, *values in migration.paired_rows(conn, workload):
        answered_by_shadow = in_shadow or shadow_failed
        if not (streamed and answered_by_shadow):
            report.only_streaming += streamed
            report.only_batch += answered_by_shadow
            continue
        report.rows_compared += 1
        if shadow_failed:
            report.shadow_failures += 1
            if len(report.differences) < MAX_LISTED_DIFFERENCES:
                report.differences.append(Difference(row_key, "(the shadow run failed this key)", None, None))
            continue
        row_agrees = True
        for i, column in enumerate(columns):
            streamed, batched = values[2 * i], values[2 * i + 1]
            same, similarity = same_answer(workload, workload.destination.columns[column], streamed, batched)
            if same:
                agreeing_fields[column] += 1
                continue
            row_agrees = False
            if len(report.differences) < MAX_LISTED_DIFFERENCES:
                report.differences.append(Difference(row_key, column, streamed, batched, similarity))
        report.rows_agreeing += row_agrees
    report.field_agreement = {c: (n / report.rows_compared if report.rows_compared else 0.0)
                              for c, n in agreeing_fields.items()}
    _costs(conn, workload, report)
    return report


def same_answer(workload: Workload, field_name: str, a: Any, b: Any) -> tuple[bool, float | None]:
    """Whether two answers to one output field agree, and their text similarity when it is free text:
    free text by similarity (at least ``migration.text_similarity``), anything else exactly."""
    if is_free_text(workload, field_name):
        similarity = text_similarity(a, b)
        return similarity >= workload.migration.text_similarity, similarity
    return _canonical(a) == _canonical(b), None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _costs(conn: psycopg.Connection, workload: Workload, report: ParityReport) -> None:
    """Both paths' spend on exactly the requests both answered."""
    streaming, batch, requests = migration.shadow_costs(conn, workload.name)
    report.streaming_cost_usd, report.batch_cost_usd, report.requests_costed = float(streaming), float(batch), requests


def record(conn: psycopg.Connection, report: ParityReport) -> int:
    pk = migration.record_parity_report(conn, report.workload, rows_compared=report.rows_compared,
                                        rows_agreeing=report.rows_agreeing, agreement=Decimal(str(report.agreement)),
                                        report=report.as_dict())
    conn.commit()
    return pk
