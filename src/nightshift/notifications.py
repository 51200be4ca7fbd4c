"""Alerting for the nightly runs, through Airflow's notifier mechanism.

A night that fails, or whose failed fraction passes the workload's ``failure_threshold``,
calls the configured notifier. ``[nightshift] notifier`` names any ``BaseNotifier`` subclass
(``module.Class``, e.g. a Slack or SMTP provider's notifier); the default writes a warning to
the task log, so an unconfigured deployment still leaves a trace.
"""

from __future__ import annotations

from importlib import import_module

from airflow.sdk import BaseNotifier

DEFAULT_NOTIFIER = "nightshift.notifications.LogNotifier"


class LogNotifier(BaseNotifier):
    template_fields = ("message",)

    def __init__(self, message: str = "Nightshift night needs attention: {{ dag.dag_id }} {{ run_id }}") -> None:
        super().__init__()
        self.message = message

    def notify(self, context) -> None:
        self.log.warning("NIGHTSHIFT ALERT: %s", self.message)


def night_notifier(message: str) -> BaseNotifier:
    """The configured notifier, built with ``message``."""
    from nightshift.config import option

    module, _, name = option("notifier").rpartition(".")
    return getattr(import_module(module), name)(message=message)
