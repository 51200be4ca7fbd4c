"""SQLite persistence for everything the emulator knows.

All state lives in one file so the process can be SIGKILLed and started again on it. The
database runs in WAL mode so a results stream (a separate read connection with its own
cursor) can be read while other requests write. Writes go through one shared connection
serialised by :attr:`Store.lock`; multi-row changes are wrapped in :meth:`Store.transaction`
so a kill never leaves half a batch behind.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    request_count INTEGER NOT NULL,
    rate REAL NOT NULL,
    malformed_rate REAL NOT NULL,
    anthropic_version TEXT NOT NULL,
    cancel_initiated_at REAL,
    cancel_delay REAL,
    materialized INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    errored INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS items (
    batch_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    params TEXT NOT NULL,
    result TEXT,
    PRIMARY KEY (batch_id, idx)
);
CREATE TABLE IF NOT EXISTS cache_entries (
    model TEXT NOT NULL,
    prefix_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (model, prefix_hash)
);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spec TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    fired INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS request_stats (
    endpoint TEXT NOT NULL,
    status INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (endpoint, status)
);
CREATE TABLE IF NOT EXISTS created_batches (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    request_count INTEGER NOT NULL
);
"""

#: Rows fetched per round trip when streaming items out of the database.
READ_CHUNK = 500


@dataclass
class BatchRow:
    id: str
    seq: int
    created_at: float
    request_count: int
    rate: float  # requests per virtual second; 0 means instant
    malformed_rate: float
    anthropic_version: str
    cancel_initiated_at: float | None
    cancel_delay: float | None
    materialized: int
    succeeded: int
    errored: int


@dataclass
class FaultRow:
    id: int
    spec: dict[str, Any]
    calls: int
    fired: int


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=60000")
    return connection


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        self._connection = _connect(self.path)
        self._depth = 0
        with self.lock:
            self._connection.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self._connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work; nested uses join the outer transaction."""
        with self.lock:
            if self._depth == 0:
                self._connection.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._connection
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._connection.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._connection.execute("COMMIT")

    def _fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return self._connection.execute(sql, args).fetchall()

    def _fetchone(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self.lock:
            return self._connection.execute(sql, args).fetchone()

    def _write(self, sql: str, args: Sequence[Any] = ()) -> tuple[int, int | None]:
        """Run one statement; returns ``(rowcount, lastrowid)`` read while still holding the lock."""
        with self.lock:
            cursor = self._connection.execute(sql, args)
            return cursor.rowcount, cursor.lastrowid

    # --- settings ---------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self._fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        self._write(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def next_sequence(self, name: str) -> int:
        """A counter that survives restarts and resets, so ids are never reused in one file."""
        with self.transaction():
            value = int(self.get_setting(f"seq:{name}", 0)) + 1
            self.set_setting(f"seq:{name}", value)
            return value

    # --- batches ----------------------------------------------------------------------

    def insert_batch(self, row: BatchRow) -> None:
        self._write(
            "INSERT INTO batches (id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
            "cancel_initiated_at, cancel_delay, materialized, succeeded, errored) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                row.seq,
                row.created_at,
                row.request_count,
                row.rate,
                row.malformed_rate,
                row.anthropic_version,
                row.cancel_initiated_at,
                row.cancel_delay,
                row.materialized,
                row.succeeded,
                row.errored,
            ),
        )

    def insert_items(self, batch_id: str, items: Iterable[tuple[int, str, str]]) -> None:
        """``items`` are ``(index, custom_id, params_json)``; callers pass chunks."""
        self._execute_many(
            "INSERT INTO items (batch_id, idx, custom_id, params) VALUES (?, ?, ?, ?)",
            ((batch_id, idx, custom_id, params) for idx, custom_id, params in items),
        )

    def _execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.lock:
            self._connection.executemany(sql, rows)

    def get_batch(self, batch_id: str) -> BatchRow | None:
        row = self._fetchone(
            "SELECT id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
            "cancel_initiated_at, cancel_delay, materialized, succeeded, errored FROM batches "
            "WHERE id = ?",
            (batch_id,),
        )
        return None if row is None else BatchRow(*row)

    def list_batches(self, *, limit: int, after_seq: int | None, before_seq: int | None) -> list[BatchRow]:
        """Newest first. ``after_seq`` pages towards older batches, ``before_seq`` towards newer."""
        if before_seq is not None:
            rows = self._fetchall(
                "SELECT id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
                "cancel_initiated_at, cancel_delay, materialized, succeeded, errored FROM batches "
                "WHERE seq > ? ORDER BY seq ASC LIMIT ?",
                (before_seq, limit),
            )
            rows.reverse()
        elif after_seq is not None:
            rows = self._fetchall(
                "SELECT id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
                "cancel_initiated_at, cancel_delay, materialized, succeeded, errored FROM batches "
                "WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                (after_seq, limit),
            )
        else:
            rows = self._fetchall(
                "SELECT id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
                "cancel_initiated_at, cancel_delay, materialized, succeeded, errored FROM batches "
                "ORDER BY seq DESC LIMIT ?",
                (limit,),
            )
        return [BatchRow(*row) for row in rows]

    def has_batch_beyond(self, seq: int, *, newer: bool) -> bool:
        if newer:
            return self._fetchone("SELECT 1 FROM batches WHERE seq > ? LIMIT 1", (seq,)) is not None
        return self._fetchone("SELECT 1 FROM batches WHERE seq < ? LIMIT 1", (seq,)) is not None

    def batches_possibly_unended(self, now: float, expiry_seconds: float) -> list[BatchRow]:
        """Every batch that may not have ended at ``now`` (a superset; callers check exactly).

        Without a cancel a batch ends when its last request is processed, or at expiry if
        that comes first; with one it ends ``cancel_delay`` after the cancel. A second of
        slack keeps floating-point edges on the safe side.
        """
        rows = self._fetchall(
            "SELECT id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
            "cancel_initiated_at, cancel_delay, materialized, succeeded, errored FROM batches "
            "WHERE MIN(created_at + CASE WHEN rate > 0 THEN request_count / rate ELSE 0 END, "
            "created_at + ?) > ? "
            "OR (cancel_initiated_at IS NOT NULL AND cancel_initiated_at + COALESCE(cancel_delay, 0) > ?)",
            (expiry_seconds, now - 1.0, now - 1.0),
        )
        return [BatchRow(*row) for row in rows]

    def mark_canceled(self, batch_id: str, at: float, delay: float) -> None:
        self._write(
            "UPDATE batches SET cancel_initiated_at = ?, cancel_delay = ? WHERE id = ?", (at, delay, batch_id)
        )

    def record_materialized(self, batch_id: str, materialized: int, succeeded: int, errored: int) -> None:
        self._write(
            "UPDATE batches SET materialized = ?, succeeded = ?, errored = ? WHERE id = ?",
            (materialized, succeeded, errored, batch_id),
        )

    def delete_batch(self, batch_id: str) -> None:
        with self.transaction() as connection:
            connection.execute("DELETE FROM items WHERE batch_id = ?", (batch_id,))
            connection.execute("DELETE FROM batches WHERE id = ?", (batch_id,))

    # --- items ------------------------------------------------------------------------

    def item_params(self, batch_id: str, start: int, stop: int) -> list[tuple[int, str, str]]:
        """``(index, custom_id, params_json)`` for items ``start <= index < stop``."""
        return self._fetchall(
            "SELECT idx, custom_id, params FROM items "
            "WHERE batch_id = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (batch_id, start, stop),
        )

    def store_results(self, batch_id: str, results: Iterable[tuple[int, str]]) -> None:
        self._execute_many(
            "UPDATE items SET result = ? WHERE batch_id = ? AND idx = ?",
            ((result, batch_id, idx) for idx, result in results),
        )

    def stream_results(self, batch_id: str) -> Iterator[tuple[str, str | None]]:
        """``(custom_id, result_json_or_None)`` in request order, read through a private cursor.

        A dedicated connection keeps the stream off the shared lock, so a slow reader never
        blocks other requests, and WAL gives it a stable snapshot for its whole life.
        """
        connection = _connect(self.path)
        try:
            cursor = connection.execute(
                "SELECT custom_id, result FROM items WHERE batch_id = ? ORDER BY idx", (batch_id,)
            )
            while True:
                rows = cursor.fetchmany(READ_CHUNK)
                if not rows:
                    return
                yield from rows
        finally:
            connection.close()

    # --- prompt cache -----------------------------------------------------------------

    def get_cache_entry(self, model: str, prefix_hash: str) -> tuple[float, float] | None:
        row = self._fetchone(
            "SELECT created_at, expires_at FROM cache_entries WHERE model = ? AND prefix_hash = ?",
            (model, prefix_hash),
        )
        return None if row is None else (row[0], row[1])

    def put_cache_entry(self, model: str, prefix_hash: str, created_at: float, expires_at: float) -> None:
        self._write(
            "INSERT INTO cache_entries (model, prefix_hash, created_at, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(model, prefix_hash) DO UPDATE SET created_at = excluded.created_at, "
            "expires_at = excluded.expires_at",
            (model, prefix_hash, created_at, expires_at),
        )

    def count_cache_entries(self) -> int:
        row = self._fetchone("SELECT COUNT(*) FROM cache_entries")
        return int(row[0]) if row else 0

    # --- faults -----------------------------------------------------------------------

    def add_fault(self, spec: dict[str, Any]) -> int:
        _, fault_id = self._write("INSERT INTO faults (spec) VALUES (?)", (json.dumps(spec),))
        return int(fault_id or 0)

    def list_faults(self) -> list[FaultRow]:
        rows = self._fetchall("SELECT id, spec, calls, fired FROM faults ORDER BY id")
        return [FaultRow(id=row[0], spec=json.loads(row[1]), calls=row[2], fired=row[3]) for row in rows]

    def update_fault_counters(self, fault_id: int, calls: int, fired: int) -> None:
        self._write("UPDATE faults SET calls = ?, fired = ? WHERE id = ?", (calls, fired, fault_id))

    def delete_fault(self, fault_id: int) -> bool:
        rowcount, _ = self._write("DELETE FROM faults WHERE id = ?", (fault_id,))
        return rowcount > 0

    def clear_faults(self) -> None:
        self._write("DELETE FROM faults")

    # --- statistics -------------------------------------------------------------------

    def count_request(self, endpoint: str, status: int) -> None:
        self._write(
            "INSERT INTO request_stats (endpoint, status, count) VALUES (?, ?, 1) "
            "ON CONFLICT(endpoint, status) DO UPDATE SET count = count + 1",
            (endpoint, status),
        )

    def record_created_batch(self, batch_id: str, seq: int, request_count: int) -> None:
        self._write(
            "INSERT OR REPLACE INTO created_batches (id, seq, request_count) VALUES (?, ?, ?)",
            (batch_id, seq, request_count),
        )

    def request_stats(self) -> list[tuple[str, int, int]]:
        return self._fetchall("SELECT endpoint, status, count FROM request_stats ORDER BY endpoint, status")

    def created_batches(self) -> list[tuple[str, int]]:
        return self._fetchall("SELECT id, request_count FROM created_batches ORDER BY seq")

    # --- reset ------------------------------------------------------------------------

    def wipe(self) -> None:
        """Forget batches, cache, faults and stats; keep id sequences so ids are never reused."""
        with self.transaction() as connection:
            connection.execute("DELETE FROM items")
            connection.execute("DELETE FROM batches")
            connection.execute("DELETE FROM cache_entries")
            connection.execute("DELETE FROM faults")
            connection.execute("DELETE FROM request_stats")
            connection.execute("DELETE FROM created_batches")

