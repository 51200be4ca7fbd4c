"""The switches a workload makes on evidence, refused with the numbers: shadow to batch (parity) and
one model to another (a model trial)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from nightshift.ledger import model_switches
from nightshift.ledger.status import DeliveryMode
from nightshift.migration import parity
from nightshift.migration.modes import get_mode, set_mode, shadow_table
from nightshift.routing import model_in_force
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



@dataclass(frozen=True)
class GateVerdict:
    """Whether a trial's agreement clears the threshold at its interval's low end, and the numbers."""

    clears: bool
    reason: str


def model_gate(trial: model_switches.TrialEvidence, threshold: float) -> GateVerdict:
    """The gate on one reported trial: its interval's low end must reach ``threshold``."""
    if trial.agreement is None or trial.agreement_low is None:
        return GateVerdict(False, f"trial #{trial.trial_pk} reported no agreement")
    n = trial.keys_compared or trial.sample_size or 0
    measured = (f"trial #{trial.trial_pk}: agreement {_pct(trial.agreement)} "
                f"({_pct(trial.agreement_low, sign='')}–{_pct(trial.agreement_high)}, n={n:,})")
    if trial.agreement_low >= threshold:
        return GateVerdict(True, f"{measured} clears {threshold:.2%}")
    reason = f"{measured} does not clear {threshold:.2%} (migration.min_agreement)"
    if trial.agreement >= threshold:
        reason += ("; the point estimate clears it but the interval's low end does not: a larger sample "
                   "would decide")
    return GateVerdict(False, reason)


def gate(conn: psycopg.Connection, workload: Workload, trial: model_switches.TrialEvidence, *,
         min_agreement: float | None = None) -> GateVerdict:
    """What the gate says of ``trial`` now (as ``switch --model`` would, nothing recorded): it reads the
    latest reported trial of the candidate, run against the model in force."""
    current = model_in_force(conn, workload)
    latest = model_switches.latest_trial(conn, workload.name, trial.candidate_model)
    if latest is None or latest.trial_pk != trial.trial_pk:
        later = "" if latest is None else f" (#{latest.trial_pk})"
        return GateVerdict(False, f"trial #{trial.trial_pk} is not the latest reported trial of "
                                  f"{trial.candidate_model}{later}: the gate reads that one")
    if trial.current_model != current.model:
        return GateVerdict(False, f"the latest trial of {trial.candidate_model} (#{trial.trial_pk}) compared "
                                  f"it with {trial.current_model}, but {workload.name} runs on {current.model} "
                                  "now; run a new trial")
    return model_gate(trial, workload.migration.min_agreement if min_agreement is None else min_agreement)


def switch_model(conn: psycopg.Connection, workload: Workload, model: str, *,
                 min_agreement: float | None = None) -> str:
    """Move ``workload`` (as its file declares it) to ``model``: only when the latest reported trial of
    ``model`` against the model in force clears ``min_agreement`` (default: ``migration.min_agreement``)
    at its interval's low end. ``model`` = the file's model reverts, no trial needed."""
    name = workload.name
    if workload.cascade is not None:
        raise SwitchRefused(f"refusing to switch {name} to {model}: it declares a cascade of models; edit "
                            f"the cascade in {name}.yaml instead")
    current = model_in_force(conn, workload)
    if model == workload.model:
        if current.model == model:
            return f"{name} already runs on {model}, the model its file declares"
        model_switches.record_switch(conn, workload=name, model=model, from_model=workload.model,
                                     prompt_version=workload.prompt_version, trial=None)
        return (f"{name} switched back from {current.model} to {model} (the model its file declares); "
                f"prompt version {current.prompt_version} → {workload.prompt_version}")
    if current.model == model:
        return f"{name} already runs on {model}"
    try:
        target = workload.with_model(model)
    except ValueError as exc:
        raise SwitchRefused(f"refusing to switch {name} to {model}: {exc}") from None
    refused = f"refusing to switch {name} from {current.model} to {model}"
    trial = model_switches.latest_trial(conn, name, model)
    if trial is None:
        raise SwitchRefused(f"{refused}: no reported trial of {model} for {name}; run "
                            f"nightshift trial --workload {name} --candidate {model} first")
    verdict = gate(conn, workload, trial, min_agreement=min_agreement)
    if not verdict.clears:
        raise SwitchRefused(f"{refused}: {verdict.reason}")
    model_switches.record_switch(conn, workload=name, model=model, from_model=workload.model,
                                 prompt_version=target.prompt_version, trial=trial)
    return (f"{name} switched from {current.model} to {model}: {verdict.reason}; "
            f"prompt version {current.prompt_version} → {target.prompt_version}")


def _pct(value, *, sign: str = "%") -> str:
    return "—" if value is None else f"{100 * float(value):.1f}{sign}"
