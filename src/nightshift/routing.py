"""The model a workload runs on: its file's, unless ``nightshift switch --model`` moved it.

A switch is recorded in the ledger (``nightshift.workload_models``) with the file's model at the
time; it applies while the file still declares that model. Once the file names another model, the
file wins (someone changed the definition on purpose) and a warning says the switch no longer applies.
Every run starts from :func:`model_in_force`: the ledger run, the requests and the rows follow it.
"""

from __future__ import annotations

import logging

import psycopg

from nightshift.ledger import model_switches
from nightshift.workloads.definition import Workload

log = logging.getLogger(__name__)


def recorded_switch(conn: psycopg.Connection, workload: Workload) -> model_switches.ModelSwitch | None:
    """The workload's latest model switch if it still applies (recorded for the model its file declares)."""
    switch = model_switches.latest_switch(conn, workload.name)
    if switch is None or switch.revert:
        return None
    if switch.from_model != workload.model:
        log.warning("%s: the switch to %s (#%s, %s) was made from %s, but the file now declares %s: the file "
                    "wins and the switch no longer applies", workload.name, switch.model, switch.switch_pk,
                    switch.changed_at.date(), switch.from_model, workload.model)
        return None
    if workload.cascade is not None:
        log.warning("%s: the file now declares a cascade; the recorded switch to %s (#%s) does not apply",
                    workload.name, switch.model, switch.switch_pk)
        return None
    return switch


class SwitchedModelUnfit(ValueError):
    """The file changed since a switch in a way the switched-to model cannot run: retrying will not help."""


def model_in_force(conn: psycopg.Connection, workload: Workload) -> Workload:
    """The workload on the model it runs on tonight (``workload`` itself when no switch applies)."""
    switch = recorded_switch(conn, workload)
    if switch is None:
        return workload
    try:
        return workload.with_model(switch.model)
    except ValueError as exc:
        raise SwitchedModelUnfit(
            f"{exc}. It runs on {switch.model} by model switch #{switch.switch_pk} "
            f"({switch.changed_at.date()}): change the file back, or switch back with `nightshift switch "
            f"--workload {workload.name} --model {workload.model}`") from None
