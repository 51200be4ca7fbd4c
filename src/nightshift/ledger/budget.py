"""The account-wide batch-endpoint budget's slot (``nightshift.take_batch_api_call``), sync and async."""

from __future__ import annotations

import psycopg

TAKE = "SELECT nightshift.take_batch_api_call(%s, %s)"


def take_batch_api_call(conn: psycopg.Connection, limit: int, window_seconds: float) -> float:
    """Take one call from the sliding window: 0 when it may go now (recorded), else the seconds to wait."""
    return conn.execute(TAKE, (limit, window_seconds)).fetchone()[0]


async def take_batch_api_call_async(conn: psycopg.AsyncConnection, limit: int,
                                    window_seconds: float) -> float:
    """:func:`take_batch_api_call` on an async connection (the triggers' event loop)."""
    cur = await conn.execute(TAKE, (limit, window_seconds))
    return (await cur.fetchone())[0]
