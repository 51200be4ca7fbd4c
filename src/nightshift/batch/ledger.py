"""The ledger's runs, batches and items, where the batch steps have always imported them from.

They live in :mod:`nightshift.ledger` (``runs``, ``batches``, ``items``), which owns every statement
on ``nightshift.*``.
"""

from __future__ import annotations

from nightshift.ledger.batches import (  # noqa: F401
    BatchRow, batches, in_flight_batch_ids, record_batch_state, record_poll)
from nightshift.ledger.items import failure_counts, item_counts  # noqa: F401
from nightshift.ledger.runs import Run, ensure_run, get_run  # noqa: F401
