"""What ``airflow providers list`` and ``airflow info`` know of Nightshift (the provider entry point).

Airflow calls :func:`get_provider_info` through the ``apache_airflow_provider`` entry point of
this distribution; its ``config`` section is the ``[nightshift]`` table of :mod:`nightshift.config`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _version() -> str:
    try:
        return version("nightshift")
    except PackageNotFoundError:
        return "0.0.0"


def get_provider_info() -> dict:
    from nightshift.config import provider_config

    return {
        "package-name": "nightshift",
        "name": "Nightshift",
        "description": "Move Claude work nobody is waiting on onto the Message Batches API: collect, submit, "
                       "wait deferrably, land in the streaming path's tables, with a ledger of every request.",
        "versions": [_version()],
        "integrations": [{"integration-name": "Nightshift", "external-doc-url": "https://github.com/",
                          "tags": ["ai"]}],
        "operators": [{"integration-name": "Nightshift", "python-modules": ["nightshift.operators"]}],
        "sensors": [{"integration-name": "Nightshift", "python-modules": ["nightshift.sensors"]}],
        "triggers": [{"integration-name": "Nightshift", "python-modules": ["nightshift.triggers"]}],
        # No connection type of its own: the batch backend calls through the anthropic provider's
        # ``anthropic`` connection ([nightshift] anthropic_conn_id), the ledger and the tables live
        # behind the postgres provider's ``postgres`` connection ([nightshift] db_conn_id).
        "extra-links": ["nightshift.ui.links.AnthropicConsoleBatchLink", "nightshift.ui.links.NightshiftRunLink"],
        "notifications": ["nightshift.notifications.LogNotifier"],
        "cli": ["nightshift.airflow_cli.get_cli_commands"],
        "plugins": [{"name": "nightshift", "plugin-class": "nightshift.plugin.NightshiftPlugin"}],
        "config": provider_config(),
    }
