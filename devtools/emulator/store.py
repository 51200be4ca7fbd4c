"""SQLite persistence for everything the emulator knows.

All state lives in one file so the process can be SIGKILLed and started again on it. The
database runs in WAL mode so a results stream (a separate read connection with its own
cursor) can be read while other requests write. Writes go through one shared connection
serialised by :attr:`Store.lock`; multi-row changes are wrapped in :meth:`Store.transaction`
so a kill never leaves half a batch behind.
"""

from __future__ import annotations

import hashlib
import json
import secrets
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
    errored INTEGER NOT NULL DEFAULT 0,
    betas TEXT NOT NULL DEFAULT '',
    owner TEXT
);
CREATE INDEX IF NOT EXISTS batches_by_creation ON batches (created_at, seq);
CREATE TABLE IF NOT EXISTS items (
    batch_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    params TEXT NOT NULL,
    result TEXT,
    result_order INTEGER NOT NULL,
    PRIMARY KEY (batch_id, idx)
);
CREATE INDEX IF NOT EXISTS items_in_result_order ON items (batch_id, result_order);
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
CREATE TABLE IF NOT EXISTS batch_model_profiles (
    batch_id TEXT PRIMARY KEY,
    profiles TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS created_batches (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    request_count INTEGER NOT NULL
);
"""

#: Rows fetched per round trip when streaming items out of the database.
READ_CHUNK = 500


def _result_order(seed: str, batch_id: str, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{batch_id}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # fits SQLite's signed 64-bit integer


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
    betas: str = ""  # the create call's anthropic-beta header, comma-separated
    owner: str | None = None  # another client of the workspace (a planted batch); None = ours

    @property
    def beta_set(self) -> frozenset[str]:
        return frozenset(beta.strip() for beta in self.betas.split(",") if beta.strip())


# Whole statements as literals (the SQL lint of tests/chaos refuses SQL built by formatting).
INSERT_BATCH = ("INSERT INTO batches (id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
                "cancel_initiated_at, cancel_delay, materialized, succeeded, errored, betas, owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
BATCH_BY_ID = ("SELECT id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
               "cancel_initiated_at, cancel_delay, materialized, succeeded, errored, betas, owner FROM batches "
               "WHERE id = ?")
BATCHES_NEWEST = ("SELECT id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
                  "cancel_initiated_at, cancel_delay, materialized, succeeded, errored, betas, owner FROM batches "
                  "ORDER BY created_at DESC, seq DESC LIMIT ?")
BATCHES_OLDER = ("SELECT id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
                 "cancel_initiated_at, cancel_delay, materialized, succeeded, errored, betas, owner FROM batches "
                 "WHERE (created_at, seq) < (?, ?) ORDER BY created_at DESC, seq DESC LIMIT ?")
BATCHES_NEWER = ("SELECT id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
                 "cancel_initiated_at, cancel_delay, materialized, succeeded, errored, betas, owner FROM batches "
                 "WHERE (created_at, seq) > (?, ?) ORDER BY created_at ASC, seq ASC LIMIT ?")
BATCHES_POSSIBLY_UNENDED = (
    "SELECT id, seq, created_at, request_count, rate, malformed_rate, anthropic_version, "
    "cancel_initiated_at, cancel_delay, materialized, succeeded, errored, betas, owner FROM batches "
    "WHERE MIN(created_at + CASE WHEN rate > 0 THEN request_count / rate ELSE 0 END, created_at + ?) > ? "
    "OR (cancel_initiated_at IS NOT NULL AND cancel_initiated_at + COALESCE(cancel_delay, 0) > ?)")


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
        self._id_seed: str | None = None
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

    def id_seed(self) -> str:
        """A random seed made once per state file: ids derived from it never repeat those of another
        file (as real ids never repeat), yet stay stable within one file across restarts."""
        seed = self._id_seed
        if seed is None:
            with self.transaction():
                seed = self.get_setting("id_seed")
                if seed is None:
                    seed = secrets.token_hex(16)
                    self.set_setting("id_seed", seed)
            self._id_seed = seed
        return seed

    def next_sequence(self, name: str) -> int:
        """A counter that survives restarts and resets, so ids are never reused in one file."""
        with self.transaction():
            value = int(self.get_setting(f"seq:{name}", 0)) + 1
            self.set_setting(f"seq:{name}", value)
            return value

    # --- batches ----------------------------------------------------------------------

    def insert_batch(self, row: BatchRow) -> None:
        self._write(
            INSERT_BATCH,
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
                row.betas,
                row.owner,
            ),
        )

    def save_batch_model_profiles(self, batch_id: str, profiles: dict[str, Any]) -> None:
        """The model profiles in force when the batch was created: its items are answered under them."""
        self._write("INSERT INTO batch_model_profiles (batch_id, profiles) VALUES (?, ?)",
                    (batch_id, json.dumps(profiles)))

    def batch_model_profiles(self, batch_id: str) -> dict[str, Any]:
        row = self._fetchone("SELECT profiles FROM batch_model_profiles WHERE batch_id = ?", (batch_id,))
        return {} if row is None else json.loads(row[0])

    def insert_items(self, batch_id: str, items: Iterable[tuple[int, str, str]]) -> None:
        """``items`` are ``(index, custom_id, params_json)``; callers pass chunks.

        Each gets its place in the results stream: results come back in an arbitrary order
        (the SDK's ``results()`` says so), here a shuffle seeded by the state file and the batch.
        """
        seed = self.id_seed()
        self._execute_many(
            "INSERT INTO items (batch_id, idx, custom_id, params, result_order) VALUES (?, ?, ?, ?, ?)",
            ((batch_id, idx, custom_id, params, _result_order(seed, batch_id, idx))
             for idx, custom_id, params in items),
        )

    def _execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.lock:
            self._connection.executemany(sql, rows)

    def get_batch(self, batch_id: str) -> BatchRow | None:
        row = self._fetchone(BATCH_BY_ID, (batch_id,))
        return None if row is None else BatchRow(*row)

    def list_batches(self, *, limit: int, after: BatchRow | None, before: BatchRow | None) -> list[BatchRow]:
        """Newest created first (``created_at``, then creation order). ``after`` pages towards
        older batches, ``before`` towards newer; a planted batch sits at its own creation time."""
        if before is not None:
            rows = self._fetchall(BATCHES_NEWER, (before.created_at, before.seq, limit))
            rows.reverse()
        elif after is not None:
            rows = self._fetchall(BATCHES_OLDER, (after.created_at, after.seq, limit))
        else:
            rows = self._fetchall(BATCHES_NEWEST, (limit,))
        return [BatchRow(*row) for row in rows]

    def has_batch_beyond(self, row: BatchRow, *, newer: bool) -> bool:
        query = ("SELECT 1 FROM batches WHERE (created_at, seq) > (?, ?) LIMIT 1" if newer
                 else "SELECT 1 FROM batches WHERE (created_at, seq) < (?, ?) LIMIT 1")
        return self._fetchone(query, (row.created_at, row.seq)) is not None

    def batches_possibly_unended(self, now: float, expiry_seconds: float) -> list[BatchRow]:
        """Every batch that may not have ended at ``now`` (a superset; callers check exactly).

        Without a cancel a batch ends when its last request is processed, or at expiry if
        that comes first; with one it ends ``cancel_delay`` after the cancel. A second of
        slack keeps floating-point edges on the safe side.
        """
        rows = self._fetchall(BATCHES_POSSIBLY_UNENDED, (expiry_seconds, now - 1.0, now - 1.0))
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
            connection.execute("DELETE FROM batch_model_profiles WHERE batch_id = ?", (batch_id,))

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
        """``(custom_id, result_json_or_None)`` in result order (see :meth:`insert_items`), read
        through a private cursor.

        A dedicated connection keeps the stream off the shared lock, so a slow reader never
        blocks other requests, and WAL gives it a stable snapshot for its whole life.
        """
        connection = _connect(self.path)
        try:
            cursor = connection.execute(
                "SELECT custom_id, result FROM items WHERE batch_id = ? ORDER BY result_order", (batch_id,)
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

    def planted_batches(self) -> list[tuple[str, int, str, bool]]:
        """``(id, request_count, owner, canceled)`` of every batch another client made."""
        rows = self._fetchall("SELECT id, request_count, owner, cancel_initiated_at IS NOT NULL FROM batches "
                              "WHERE owner IS NOT NULL ORDER BY seq")
        return [(row[0], row[1], row[2], bool(row[3])) for row in rows]

    def canceled_batch_ids(self) -> list[str]:
        return [row[0] for row in self._fetchall(
            "SELECT id FROM batches WHERE cancel_initiated_at IS NOT NULL ORDER BY seq")]

    # --- reset ------------------------------------------------------------------------

    def wipe(self) -> None:
        """Forget batches, cache, faults and stats; keep id sequences so ids are never reused."""
        with self.transaction() as connection:
            connection.execute("DELETE FROM items")
            connection.execute("DELETE FROM batches")
            connection.execute("DELETE FROM batch_model_profiles")
            connection.execute("DELETE FROM cache_entries")
            connection.execute("DELETE FROM faults")
            connection.execute("DELETE FROM request_stats")
            connection.execute("DELETE FROM created_batches")

