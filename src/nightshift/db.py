"""Connections to the application database (where the destination tables and the ledger live)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

DEFAULT_CONN_ID = "nightshift_db"


def connect(conn_id: str = DEFAULT_CONN_ID) -> psycopg.Connection:
    """Open a psycopg 3 connection.

    ``conn_id`` is an Airflow connection id (``AIRFLOW_CONN_NIGHTSHIFT_DB`` or the metadata
    DB), or directly a ``postgresql://`` URL, which is what the CLI and tests pass.
    """
    import psycopg

    if "://" in conn_id:
        return psycopg.connect(_libpq_url(conn_id))
    env_url = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}", "")
    if env_url.startswith(("postgres://", "postgresql://")):
        return psycopg.connect(_libpq_url(env_url))
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    conn.row_factory = psycopg.rows.tuple_row
    return conn


def dsn(conn_id: str = DEFAULT_CONN_ID) -> str:
    """The libpq DSN behind ``conn_id`` (an Airflow connection id or a ``postgresql://`` URL)."""
    if "://" in conn_id:
        return _libpq_url(conn_id)
    env_url = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}", "")
    if env_url.startswith(("postgres://", "postgresql://")):
        return _libpq_url(env_url)
    from airflow.sdk import BaseHook

    return _libpq_url(BaseHook.get_connection(conn_id).get_uri())


def dsn_from_uri(url: str) -> str:
    """A libpq DSN from an Airflow connection URI."""
    return _libpq_url(url)


def _libpq_url(url: str) -> str:
    """Airflow URLs may carry a driver (``postgresql+psycopg://``) that libpq does not know."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith(("postgres", "postgresql")) else url
