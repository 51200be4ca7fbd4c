"""Cascades: whether a model's reply goes to the next model instead of the destination, and why.

Land asks this for every result of a cascade workload: a reply that meets one of the workload's
``cascade.escalate_on`` rules, on a model that is not the cascade's last, is marked for the next
round with the reason (``label other from claude-haiku-5-5``); the last model's answer lands
whatever it says. The streaming path asks the same within one request's handling.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from nightshift.workloads.definition import Workload


class Escalation(StrEnum):
    """The ``error_type`` of an item (and attempt) that went on to the next cascade model."""

    ESCALATED = "escalated"


def escalates(workload: Workload, model: str) -> bool:
    """Whether a reply from ``model`` may go on to another model (a cascade model but the last)."""
    return workload.cascade is not None and workload.cascade.next_model(model) is not None


def invalid_escalates(workload: Workload, model: str) -> bool:
    """Whether an invalid reply from ``model`` goes on to the next model."""
    return escalates(workload, model) and workload.cascade.escalate_on.invalid_output


def escalation_reason(workload: Workload, model: str, output: dict[str, Any]) -> str | None:
    """Why ``model``'s valid answer ``output`` goes on to the next model, or None when it lands."""
    if not escalates(workload, model):
        return None
    rules = workload.cascade.escalate_on
    for field, values in rules.values.items():
        value = output.get(field)
        if value is not None and any(value == v and isinstance(value, bool) == isinstance(v, bool)
                                     for v in values):
            return f"{field} {value} from {model}"
    for field, threshold in rules.below.items():
        value = output.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < threshold:
            return f"{field} {value} below {threshold} from {model}"
    return None


def invalid_reason(model: str, message: str) -> str:
    return f"invalid_output from {model}: {message}"
