"""``nightshift.workload_models``: the model switches a workload went through, with their evidence.

Also reads the latest reported trial of a candidate in ``nightshift.model_trials`` (the trial
runner writes it), the evidence a switch rests on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class ModelSwitch:
    switch_pk: int
    workload: str
    model: str
    from_model: str
    trial_pk: int | None
    agreement: Decimal | None
    agreement_low: Decimal | None
    agreement_high: Decimal | None
    sample_size: int | None
    prompt_version: str
    changed_at: datetime
    changed_by: str

    @property
    def revert(self) -> bool:
        return self.model == self.from_model


@dataclass(frozen=True)
class TrialEvidence:
    """What the gate reads of a trial."""

    trial_pk: int
    workload: str
    current_model: str
    candidate_model: str
    status: str
    sample_size: int | None
    keys_compared: int | None
    keys_agreeing: int | None
    agreement: Decimal | None
    agreement_low: Decimal | None
    agreement_high: Decimal | None
    report: dict[str, Any] | None
    reported_at: datetime | None


def latest_switch(conn: psycopg.Connection, workload: str) -> ModelSwitch | None:
    """The workload's latest model switch (the one in force while its from_model is the file's model)."""
    with conn.cursor(row_factory=class_row(ModelSwitch)) as cur:
        return cur.execute(
            "SELECT switch_pk, workload, model, from_model, trial_pk, agreement, agreement_low, agreement_high, "
            "sample_size, prompt_version, changed_at, changed_by FROM nightshift.workload_models "
            "WHERE workload = %s ORDER BY switch_pk DESC LIMIT 1", (workload,)).fetchone()


def switches(conn: psycopg.Connection, workload: str) -> list[ModelSwitch]:
    """Every model switch of the workload, newest first."""
    with conn.cursor(row_factory=class_row(ModelSwitch)) as cur:
        return cur.execute(
            "SELECT switch_pk, workload, model, from_model, trial_pk, agreement, agreement_low, agreement_high, "
            "sample_size, prompt_version, changed_at, changed_by FROM nightshift.workload_models "
            "WHERE workload = %s ORDER BY switch_pk DESC", (workload,)).fetchall()


def record_switch(conn: psycopg.Connection, *, workload: str, model: str, from_model: str,
                  prompt_version: str, trial: TrialEvidence | None) -> ModelSwitch:
    """Record a switch to ``model`` (with the trial it rests on; none for a revert to ``from_model``)."""
    evidence = (None,) * 6 if trial is None else (
        trial.trial_pk, trial.agreement, trial.agreement_low, trial.agreement_high, trial.sample_size,
        trial.keys_compared)
    report = None if trial is None else {"trial_pk": trial.trial_pk, "current_model": trial.current_model,
                                         "candidate_model": trial.candidate_model,
                                         "keys_agreeing": trial.keys_agreeing, "trial_report": trial.report}
    with conn.cursor(row_factory=class_row(ModelSwitch)) as cur:
        switch = cur.execute(
            "INSERT INTO nightshift.workload_models (workload, model, from_model, trial_pk, agreement, "
            "agreement_low, agreement_high, sample_size, keys_compared, prompt_version, report) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING switch_pk, workload, model, from_model, "
            "trial_pk, agreement, agreement_low, agreement_high, sample_size, prompt_version, changed_at, changed_by",
            (workload, model, from_model, *evidence, prompt_version,
             Jsonb(report) if report is not None else None)).fetchone()
    conn.commit()
    return switch


def trials_present(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('nightshift.model_trials') IS NOT NULL").fetchone()[0]


def latest_trial(conn: psycopg.Connection, workload: str, candidate: str) -> TrialEvidence | None:
    """The latest reported trial of ``candidate`` for the workload (None without one, or without trials)."""
    return _trial(conn, sql.SQL("workload = %s AND candidate_model = %s AND status = 'reported' "
                                "ORDER BY reported_at DESC NULLS LAST, trial_pk DESC LIMIT 1"), (workload, candidate))


def trial(conn: psycopg.Connection, trial_pk: int) -> TrialEvidence | None:
    """One trial as the gate reads it (any status), or None."""
    return _trial(conn, sql.SQL("trial_pk = %s"), (trial_pk,))


def _trial(conn: psycopg.Connection, where: sql.Composable, params: tuple) -> TrialEvidence | None:
    if not trials_present(conn):
        return None
    with conn.cursor(row_factory=class_row(TrialEvidence)) as cur:
        return cur.execute(sql.SQL(
            "SELECT trial_pk, workload, current_model, candidate_model, status, sample_size, keys_compared, "
            "keys_agreeing, agreement, agreement_low, agreement_high, report, reported_at "
            "FROM nightshift.model_trials WHERE {}").format(where), params).fetchone()
