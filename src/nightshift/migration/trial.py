"""Model trials: would the workload say the same on another model, and what would it cost there?

A trial takes a sample of source rows whose destination row the workload's current model wrote, runs
them through the batch path on the candidate model (a run of mode ``trial``: its items are the
sampled keys, its landing writes ``nightshift.trial_<workload>``, never the destination or the
queue), and compares key by key, as parity does: enums and structured fields must be equal, free
text is compared with parity's text similarity; a key agrees when every mapped field does, and a
key the candidate failed is a disagreement. The agreement is printed with its Wilson 95% interval.

The sample is stratified on the first enum output field mapped to a destination column (the
current label), with proportional allocation and at least one key per label present, so a rare
label is in it; within a label the keys are drawn in an order a recorded seed fixes. Without an
enum field it is a simple random sample, drawn the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg

from nightshift.costs import PriceTable, Usage
from nightshift.ledger import items, trials
from nightshift.ledger.runs import Run, ensure_run
from nightshift.ledger.status import RunMode
from nightshift.ledger.trials import Trial, ensure_trial_table, trial_table  # noqa: F401 (imported from here)
from nightshift.migration.parity import is_free_text, same_answer
from nightshift.migration.trial_stats import allocate, confusion, wilson
from nightshift.routing import model_in_force
from nightshift.workloads.definition import Workload

#: At the agreements a switch is decided on (0.9 and up) 2,000 keys give a Wilson 95% interval of
#: about ±1.2 points, and at worst (an agreement of 0.5) about ±2.2: within ±2.5 whatever the result.
DEFAULT_SAMPLE = 2_000
#: The volume a monthly projection is made at: the workload's requests over this many days.
RECENT_DAYS = 30
MAX_LISTED_DIFFERENCES = 50


class TrialError(ValueError):
    """A trial that cannot start: one line naming what and where."""


@dataclass(frozen=True)
class TrialRequest:
    """What a trial was asked for: ``start`` and ``end`` are days (UTC) of the source's timestamp
    column, both included; ``seed`` None draws one (and records it)."""

    candidate: str
    sample: int = DEFAULT_SAMPLE
    start: date | None = None
    end: date | None = None
    seed: int | None = None

    def params(self) -> dict[str, Any]:
        return {"sample": self.sample, "from": self.start and self.start.isoformat(),
                "to": self.end and self.end.isoformat(), "seed": self.seed}


def current_model(conn: psycopg.Connection, workload: Workload) -> str:
    """The model in force for the workload (its file's, or the one a recorded switch moved it to): the
    model whose destination rows are sampled and compared against."""
    return model_in_force(conn, workload).model


def stratum_column(workload: Workload) -> tuple[str, str] | None:
    """``(field, destination column)`` of the first enum output field mapped to a column, if any."""
    if workload.output.is_text:
        return None
    mapped = {field: column for column, field in workload.destination.columns.items()}
    for field, spec in workload.output.json_schema.get("properties", {}).items():
        if "enum" in spec and field in mapped:
            return field, mapped[field]
    return None


def window(workload: Workload, start: date | None,
           end: date | None) -> tuple[datetime | None, datetime | None]:
    """``[start 00:00 UTC, the day after end 00:00 UTC)`` on the source's timestamp column."""
    if start is None and end is None:
        return None, None
    if not workload.source.timestamp_column:
        raise TrialError(f"--from/--to select source rows by source.timestamp_column, and workload "
                         f"{workload.name!r} has none")
    low = datetime.combine(start or date.min, time(), timezone.utc)
    high = datetime.combine(end + timedelta(days=1), time(), timezone.utc) if end else datetime.max.replace(
        tzinfo=timezone.utc)
    if low >= high:
        raise TrialError(f"--from {start} is after --to {end}")
    return low, high


def candidate_workload(workload: Workload, candidate: str, current: str) -> Workload:
    if candidate == current:
        raise TrialError(f"{workload.name} already runs on {candidate}: a trial needs another model")
    try:
        return workload.with_model(candidate)
    except ValueError as exc:
        raise TrialError(str(exc)) from None


def start(conn: psycopg.Connection, workload: Workload, request: TrialRequest, *, dag_id: str,
          airflow_run_id: str) -> tuple[Trial, Run, Workload]:
    """Check the request, then record the trial and its run (idempotent per ``airflow_run_id``).

    Nothing is created when the candidate cannot run the workload, or no row is eligible."""
    if request.sample < 1:
        raise TrialError(f"--sample must be at least 1, not {request.sample}")
    if workload.cascade is not None:
        raise TrialError(f"{workload.name} is a cascade ({' → '.join(workload.models)}): its rows were written "
                         "by more than one model, and a trial compares one model's rows with a candidate's")
    current = current_model(conn, workload)
    candidate = candidate_workload(workload, request.candidate, current)
    low, high = window(workload, request.start, request.end)
    stratum = stratum_column(workload)
    eligible = trials.eligible_strata(conn, workload, current_model=current,
                                      stratum_column=stratum and stratum[1], start=low, end=high)
    if not sum(eligible.values()):
        where = "" if low is None else (
            f" with {workload.source.table}.{workload.source.timestamp_column} from "
            f"{request.start or 'the first'} to {request.end or 'the last'} day")
        raise TrialError(f"no eligible rows for a trial of {workload.name}: no {workload.destination.table} "
                         f"row written by {current}{where}")
    seed = request.seed if request.seed is not None else random.SystemRandom().randrange(2**31)
    ensure_trial_table(conn, candidate)
    run = ensure_run(conn, candidate, dag_id=dag_id, airflow_run_id=airflow_run_id, mode=RunMode.TRIAL)
    trial = trials.create(conn, workload=workload.name, current_model=current,
                          candidate_model=candidate.model, run_pk=run.run_pk,
                          params={**request.params(), "seed": seed})
    conn.commit()
    return trial, run, candidate


def collect_sample(conn: psycopg.Connection, workload: Workload, run: Run) -> int:
    """Add the trial's sample to its run as items (``workload`` is on the candidate model); returns how
    many were new. The same trial collected again takes the same keys and adds none."""
    trial = trials.for_run(conn, run.run_pk)
    if trial is None:
        raise LookupError(f"run {run.run_pk} is a trial run with no nightshift.model_trials row")
    params = trial.params
    low, high = window(workload, _day(params.get("from")), _day(params.get("to")))
    stratum = stratum_column(workload)
    column = stratum and stratum[1]
    eligible = trials.eligible_strata(conn, workload, current_model=trial.current_model,
                                      stratum_column=column, start=low, end=high)
    asked = int(params["sample"])
    takes = allocate(eligible, max(asked, len([n for n in eligible.values() if n])))
    added = trials.add_sample_items(conn, workload, run.run_pk, current_model=trial.current_model,
                                    stratum_column=column, start=low, end=high, seed=params["seed"],
                                    takes=takes)
    # what the run holds: a collect retried after the rows changed keeps the keys it first took
    total_eligible, taken = sum(eligible.values()), items.count(conn, run.run_pk)
    sampling = {
        "method": (f"stratified on {stratum[0]} (the current label), proportional, at least one per label"
                   if stratum else "simple random"),
        "stratum_field": stratum and stratum[0], "seed": params["seed"], "asked": asked,
        "eligible": total_eligible, "taken": taken, "all_eligible_taken": total_eligible <= asked,
        "window": None if low is None else {"column": workload.source.timestamp_column,
                                            "from": params.get("from"), "to": params.get("to")},
        "strata": ({str(s): {"eligible": eligible[s], "sampled": takes.get(s, 0)} for s in eligible}
                   if stratum else {}),
    }
    trials.record_sample(conn, trial.trial_pk, taken, sampling)
    return added


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


# -- The report ------------------------------------------------------------------------------------------

def compare(conn: psycopg.Connection, workload: Workload, trial: Trial, prices: PriceTable) -> dict[str, Any]:
    """The trial's report: agreement (overall and per field, with Wilson 95% intervals), a confusion
    table per enum field, the candidate's failures, the sample's cost on each model and the projected
    monthly cost. ``workload`` is the workload on its current model."""
    candidate = workload.with_model(trial.candidate_model)
    columns = list(workload.destination.columns)
    enum_columns = [c for c in columns if not workload.output.is_text
                    and "enum" in workload.output.json_schema["properties"][workload.destination.columns[c]]]
    agreeing = dict.fromkeys(columns, 0)
    pairs: dict[str, list[tuple[Any, Any]]] = {c: [] for c in enum_columns}
    differences: list[dict[str, Any]] = []
    compared = agreeing_keys = 0
    for key, status, error_type, *values in trials.sampled_answers(conn, workload, trial.run_pk):
        compared += 1
        failed = status != "succeeded"
        row_agrees = not failed
        for i, column in enumerate(columns):
            current, answer = values[2 * i], values[2 * i + 1]
            if column in pairs:
                pairs[column].append((current, None if failed else answer))
            if failed:
                continue
            same, similarity = same_answer(workload, workload.destination.columns[column], current, answer)
            agreeing[column] += same
            if not same:
                row_agrees = False
                if len(differences) < MAX_LISTED_DIFFERENCES:
                    differences.append({"key": key, "field": column, "current": _plain(current),
                                        "candidate": _plain(answer), "similarity": similarity})
        if failed and len(differences) < MAX_LISTED_DIFFERENCES:
            differences.append({"key": key, "field": f"(the candidate failed: {error_type or status})",
                                "current": None, "candidate": None, "similarity": None})
        agreeing_keys += row_agrees
    overall = wilson(agreeing_keys, compared)
    fields = {}
    for column in columns:
        interval = wilson(agreeing[column], compared)
        fields[column] = {"agreeing": agreeing[column], "agreement": interval.share, "low": interval.low,
                          "high": interval.high,
                          "compared_by": (f"text similarity >= {workload.migration.text_similarity}"
                                          if is_free_text(workload, workload.destination.columns[column])
                                          else "exact")}
    return {
        "trial_pk": trial.trial_pk, "workload": workload.name, "current_model": trial.current_model,
        "candidate_model": trial.candidate_model, "sampling": trial.params.get("sampling", {}),
        "keys_compared": compared, "keys_agreeing": agreeing_keys, "agreement": overall.share,
        "agreement_low": overall.low, "agreement_high": overall.high, "fields": fields,
        "confusion": {c: confusion(pairs[c]) for c in enum_columns},
        "candidate_failures": trials.item_failures(conn, trial.run_pk),
        "differences": differences,
        "costs": _costs(conn, workload, candidate, trial, prices),
    }




def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool, dict, list)) else str(value)


def _costs(conn: psycopg.Connection, workload: Workload, candidate: Workload, trial: Trial,
           prices: PriceTable) -> dict[str, Any]:
    """The sample's cost on each model, from the API's usage, and the monthly projection.

    The candidate: what the trial run's items cost, earlier attempts included (the batch rate). The
    current model: what the requests that wrote the sampled rows cost as recorded (the streaming
    path's usage, or the batch item's latest attempt), and the same tokens priced at the batch rate,
    like for like with the candidate. The projection multiplies the workload's requests over the
    last RECENT_DAYS days by each model's mean batch-rate cost per request in the sample.
    """
    candidate_usd, candidate_billed, candidate_attempts = trials.candidate_cost(conn, trial.run_pk)
    recorded = Decimal(0)
    at_batch_rate = Decimal(0)
    paths: dict[str, int] = {}
    for _key, path, model, input_, output, write_5m, write_1h, read, cost, billed_at in trials.current_usage(
            conn, workload, trial.run_pk):
        if path == "streaming":  # stream_usage keeps cache writes unsplit: counted under the workload's TTL
            write_5m, write_1h = (0, write_5m) if workload.prompt.cache_ttl == "1h" else (write_5m, 0)
        usage = Usage(input_ or 0, output or 0, write_5m or 0, write_1h or 0, read or 0)
        recorded += cost
        billed_on = billed_at.astimezone(timezone.utc).date()
        at_batch_rate += cost if path == "batch" else prices.cost(usage, model, batch=True, on=billed_on)
        paths[path] = paths.get(path, 0) + 1
    costed = sum(paths.values())
    requests, first = trials.recent_requests(conn, workload.name, RECENT_DAYS)
    current_per_request = at_batch_rate / costed if costed else None
    candidate_per_request = candidate_usd / candidate_billed if candidate_billed else None
    return {
        "current": {"model": trial.current_model, "sample_usd": float(recorded), "requests_costed": costed,
                    "by_path": paths, "sample_usd_at_batch_rate": float(at_batch_rate),
                    "per_request_usd_at_batch_rate": _float(current_per_request)},
        "candidate": {"model": candidate.model, "sample_usd": float(candidate_usd),
                      "requests_billed": candidate_billed, "attempts_billed": candidate_attempts,
                      "rate": "batch",
                      "per_request_usd": _float(candidate_per_request)},
        "projection": {
            "days": RECENT_DAYS, "requests": requests, "first_request_at": first and first.isoformat(),
            "current_monthly_usd": _float(current_per_request and current_per_request * requests),
            "candidate_monthly_usd": _float(candidate_per_request and candidate_per_request * requests),
        },
    }


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def report(conn: psycopg.Connection, workload: Workload, trial: Trial, prices: PriceTable) -> dict[str, Any]:
    """Compare, store the report on the trial (``reported``), return it as stored (as a reprint shows it)."""
    result = compare(conn, workload, trial, prices)
    trials.record_report(conn, trial.trial_pk, keys_compared=result["keys_compared"],
                         keys_agreeing=result["keys_agreeing"], agreement=Decimal(str(result["agreement"])),
                         low=Decimal(str(result["agreement_low"])),
                         high=Decimal(str(result["agreement_high"])),
                         report=result)
    conn.commit()
    return trials.get(conn, trial.trial_pk).report
