"""Why a step stopped, in one line, kept on the run: the requests it leaves open end with it.

A request that ends ``not_submitted`` (or ``not_landed``) because a call or the database failed
says so in its error (``not_submitted: authentication_error: invalid x-api-key``), not only that
the run ended: the cause is on the item, the queue row, the failures view and the report.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from nightshift.backends.base import BatchBackend
from nightshift.ledger import runs
from nightshift.ledger.runs import Run, Step

log = logging.getLogger(__name__)

#: how much of a cause is kept
MAX_CAUSE = 1000


def describe(exc: BaseException, backend: BatchBackend | None = None) -> str:
    """``<error_type>: <message>``: the backend's description of a failed call (or of the call a
    failure was raised from), ``database_error: <SQLSTATE class name>: <message>`` for the database,
    else the exception's type and text."""
    for candidate in (exc, exc.__cause__):
        if candidate is None or backend is None:
            continue
        failure = backend.failure(candidate)
        if failure is not None:
            return f"{failure.error_type}: {failure.message}"[:MAX_CAUSE]
    if isinstance(exc, psycopg.Error):
        message = exc.diag.message_primary or (str(exc).splitlines() or [""])[0]
        return f"database_error: {type(exc).__name__}: {message}"[:MAX_CAUSE]
    return f"{type(exc).__name__}: {exc}"[:MAX_CAUSE]


@contextmanager
def recorded(conn: psycopg.Connection, run: Run, step: Step, backend: BatchBackend | None,
             passing: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Record on the run why ``step`` raised (``passing``: exceptions that are waits, not failures);
    a step that completes clears what an earlier attempt recorded."""
    try:
        yield
    except passing:
        raise
    except Exception as exc:
        cause = describe(exc, backend)
        try:
            conn.rollback()
            runs.record_cause(conn, run.run_pk, step, cause)
            conn.commit()
        except psycopg.Error as unrecorded:  # the database itself may be what failed
            log.warning("could not record why %s stopped (%s): %r", step, cause, unrecorded)
        raise
    runs.record_cause(conn, run.run_pk, step, None)
    conn.commit()
