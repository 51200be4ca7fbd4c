"""The switch from shadow to batch: allowed only on evidence, refused with the numbers."""

from __future__ import annotations

import psycopg

from nightshift.ledger.status import DeliveryMode
from nightshift.migration import parity
from nightshift.migration.modes import get_mode, set_mode, shadow_table
from nightshift.workloads.definition import Workload


class SwitchRefused(RuntimeError):
    pass


def switch(conn: psycopg.Connection, workload: Workload, to: str, *, min_agreement: float | None = None,
           min_keys: int | None = None) -> str:
    """Change the workload's mode; to ``batch`` only when parity reaches ``min_agreement`` on at least
    ``min_keys`` keys both paths answered (defaults: the workload's ``migration`` settings)."""
    if to == DeliveryMode.SHADOW:
        set_mode(conn, workload, DeliveryMode.SHADOW)
        return f"{workload.name} is now in shadow mode: its batch runs write {shadow_table(workload)}"
    if to != DeliveryMode.BATCH:
        raise ValueError(f"unknown mode {to!r}: use shadow or batch")
    if get_mode(conn, workload) == DeliveryMode.BATCH:
        return f"{workload.name} is already in batch mode"
    threshold = workload.migration.min_agreement if min_agreement is None else min_agreement
    needed_keys = workload.migration.min_keys if min_keys is None else min_keys
    try:
        report = parity.compare(conn, workload)
    except parity.NoShadowRun as exc:
        raise SwitchRefused(f"refusing to switch {workload.name} to batch: {exc}") from None
    parity.record(conn, report)
    if report.rows_compared == 0:
        raise SwitchRefused(f"refusing to switch {workload.name} to batch: no key has both a streaming and a shadow "
                            "answer yet (run the streaming and the batch DAG in shadow mode on the same requests)")
    if report.rows_compared < needed_keys:
        raise SwitchRefused(
            f"refusing to switch {workload.name} to batch: agreement {report.agreement:.2%} rests on "
            f"{report.rows_compared} keys, fewer than the {needed_keys} required (migration.min_keys); "
            "shadow more nights first")
    if report.agreement < threshold:
        raise SwitchRefused(
            f"refusing to switch {workload.name} to batch: agreement {report.agreement:.2%} "
            f"({report.rows_agreeing} of {report.rows_compared} keys, {report.shadow_failures} shadow failures) "
            f"is below the required {threshold:.2%}; field agreement: "
            + ", ".join(f"{c} {v:.2%}" for c, v in report.field_agreement.items()))
    set_mode(conn, workload, DeliveryMode.BATCH, agreement=report.agreement, report=report.as_dict())
    return (f"{workload.name} switched to batch: agreement {report.agreement:.2%} over {report.rows_compared} keys "
            f"(required {threshold:.2%} on at least {needed_keys})")
