"""What retrying cannot fix: one classification of the failures that stop a night at once.

A task retry (minutes apart) or the SDK's own retries mend a rate limit, an overloaded API, a
dropped connection or a database restart; they cannot mend

* the API refusing the key or its permissions (401 ``authentication_error``, 403 ``permission_error``);
* the configured API URL refusing the connection before the night has reached the API (a wrong
  gateway or emulator URL; while a wait is under way the same refusal is the API restarting, and
  is waited through);
* the application database refusing who connects: an unknown role or database, a failed password,
  no ``pg_hba.conf`` entry, or nothing listening at the configured host and port.

The spend limit is :class:`~nightshift.batch.errors.SpendLimitReached`. A DNS failure or a timeout
stays transient. Messages name the URL, or the role, database and host; never a key or a password.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from nightshift.backends.base import ApiFailure, BatchBackend, ErrorKind
from nightshift.batch.errors import RetryWontHelp

#: libpq's and the server's words for a connection that no retry will open (their English texts).
_DATABASE_REFUSALS = (
    (re.compile(r'role "[^"]*" does not exist'), "the role does not exist"),
    (re.compile(r'database "[^"]*" does not exist'), "the database does not exist"),
    (re.compile(r"password authentication failed"), "the password is refused"),
    (re.compile(r"no pg_hba\.conf entry"), "the server's pg_hba.conf admits no such connection"),
    (re.compile(r"Connection refused"), "nothing listens at that host and port (connection refused)"),
)


class PermanentFailure(RetryWontHelp):
    """A failure that retrying cannot fix; its message says what and where, never a secret."""


def database_failure(exc: BaseException, dsn: str | None = None, conn_id: str | None = None
                     ) -> PermanentFailure | None:
    """The application database refused the connection for good (None: anything else)."""
    if not isinstance(exc, psycopg.OperationalError):
        return None
    text = str(exc)
    for pattern, meaning in _DATABASE_REFUSALS:
        if pattern.search(text):
            where = _where(dsn, conn_id)
            return PermanentFailure(f"the application database refused the connection{where}: {meaning}. "
                                    f"{_first_line(text)}. Retrying cannot fix this: correct the connection "
                                    "or create what it names")
    return None


def api_failure(described: ApiFailure | None, *, reached: bool, conn_id: str | None = None
                ) -> PermanentFailure | None:
    """A failed API call that retrying cannot fix. ``reached``: the night has batches at this API already,
    so a refused connection is the API restarting, not a wrong URL."""
    if described is None:
        return None
    via = f" (connection {conn_id!r})" if conn_id else ""
    if described.kind is ErrorKind.AUTHENTICATION:
        return PermanentFailure(f"the API at {described.url or '(unknown URL)'}{via} refused the key: "
                                f"{described.error_type} ({described.status}): {described.message}. Retrying "
                                "cannot fix this: correct the key or its workspace permissions")
    if described.kind is ErrorKind.UNREACHABLE and not reached:
        return PermanentFailure(f"the API URL {described.url or '(unknown URL)'}{via} refused the connection: "
                                "nothing listens there. Retrying cannot fix this: correct the connection's host "
                                "or start the gateway it names")
    return None


def classify(exc: BaseException, *, backend: BatchBackend | None = None, reached: bool = False,
             dsn: str | None = None, db_conn_id: str | None = None, api_conn_id: str | None = None
             ) -> RetryWontHelp | None:
    """``exc`` as a failure no retry mends (the one it already is, or a :class:`PermanentFailure`),
    else None."""
    if isinstance(exc, RetryWontHelp):
        return exc
    found = database_failure(exc, dsn, db_conn_id)
    if found is None and backend is not None:
        found = api_failure(backend.failure(exc), reached=reached, conn_id=api_conn_id)
    return found


def _where(dsn: str | None, conn_id: str | None) -> str:
    parts = [f"connection {conn_id!r}"] if conn_id and "://" not in conn_id else []
    if dsn:
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            params = {}
        if params.get("user"):
            parts.append(f"role {params['user']!r}")
        if params.get("dbname"):
            parts.append(f"database {params['dbname']!r}")
        if params.get("host"):
            parts.append(f"host {params['host']}:{params.get('port') or 5432}")
    return f" ({', '.join(parts)})" if parts else ""


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].rstrip(".") if text.strip() else text


#: The error type of an item a night stopped before submitting.
NOT_SUBMITTED = "not_submitted"


def release_unsubmitted(conn: psycopg.Connection, run, failure: RetryWontHelp) -> int:
    """The night stops on ``failure`` before these requests reached a batch: their items fail
    ``not_submitted`` saying why, and their queue rows go back to pending (with the same reason) for the
    next night, instead of being consumed. Returns how many requests went back."""
    from nightshift.ledger import items, queue

    reason = str(failure)[:2000]
    request_ids = [r for r in items.fail_unsubmitted(conn, run.run_pk, NOT_SUBMITTED, reason) if r is not None]
    if request_ids and not run.shadow:
        queue.release(conn, request_ids, error=f"{NOT_SUBMITTED}: {reason}"[:2000])
    conn.commit()
    return len(request_ids)
