"""Where a batch is in its life at a given virtual instant — pure arithmetic, no I/O.

Nothing runs in the background: every read recomputes the state from the batch row and the
clock. Item ``i`` (0-based, in request order) is processed at
``created_at + (i + 1) / rate`` (at ``created_at`` when the rate is instant). Then:

* no cancel, all items processed before ``expires_at`` (created + 24 h) → ``ended`` when the
  last one is processed;
* otherwise processing stops at ``expires_at``; the rest are ``expired`` and the batch ends;
* ``cancel`` at ``t`` → ``canceling`` from ``t``; processing stops at ``t``; the batch ends
  at ``t + cancel_delay`` and the unprocessed items are ``canceled``.

Until the batch ends every request is counted under ``processing``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from emulator.config import ARCHIVE_SECONDS, EXPIRY_SECONDS
from emulator.store import BatchRow

_EPSILON = 1e-6


@dataclass(frozen=True)
class Timeline:
    status: str
    processed: int
    ended_at: float | None
    unprocessed_outcome: str
    archived: bool

    @property
    def ended(self) -> bool:
        return self.status == "ended"


def expires_at(batch: BatchRow) -> float:
    return batch.created_at + EXPIRY_SECONDS


def archives_at(batch: BatchRow) -> float:
    return batch.created_at + ARCHIVE_SECONDS


def processing_time(batch: BatchRow, index: int) -> float:
    if batch.rate <= 0:
        return batch.created_at
    return batch.created_at + (index + 1) / batch.rate


def _processed_by(batch: BatchRow, moment: float) -> int:
    if moment < batch.created_at:
        return 0
    if batch.rate <= 0:
        return batch.request_count
    return min(batch.request_count, math.floor((moment - batch.created_at) * batch.rate + _EPSILON))


def timeline(batch: BatchRow, now: float) -> Timeline:
    expiry = expires_at(batch)
    natural_end = batch.created_at if batch.rate <= 0 else batch.created_at + batch.request_count / batch.rate
    canceled = batch.cancel_initiated_at is not None and batch.cancel_initiated_at < expiry
    if canceled:
        stop_at = batch.cancel_initiated_at
        end = batch.cancel_initiated_at + (batch.cancel_delay or 0.0)
    elif natural_end <= expiry:
        stop_at = end = natural_end
    else:
        stop_at = end = expiry
    if not canceled and stop_at == natural_end and now >= natural_end:
        processed = batch.request_count
    else:
        processed = _processed_by(batch, min(now, stop_at))
    if now >= end:
        status = "ended"
    elif canceled:
        status = "canceling"
    else:
        status = "in_progress"
    return Timeline(
        status=status,
        processed=processed,
        ended_at=end if status == "ended" else None,
        unprocessed_outcome="canceled" if canceled else "expired",
        archived=now >= archives_at(batch),
    )
