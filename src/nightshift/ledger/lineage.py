"""The ledger reads behind a night's lineage event (:mod:`nightshift.lineage`): one indexed read per run."""

from __future__ import annotations

import psycopg

#: Every batch the run created (or adopted, or proved a late duplicate of its own), in the order
#: it made them; an intent whose create call never answered has no id and is left out.
RUN_BATCH_IDS = """
SELECT backend_batch_id FROM nightshift.batches
 WHERE run_pk = %s AND backend_batch_id IS NOT NULL
 ORDER BY round, seq, batch_pk
"""


def run_batch_ids(conn: psycopg.Connection, run_pk: int) -> list[str]:
    return [batch_id for (batch_id,) in conn.execute(RUN_BATCH_IDS, (run_pk,)).fetchall()]
