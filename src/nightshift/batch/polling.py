"""The wait policy: what a poll of a run's batches means, shared by the deferrable trigger and the sync sensor.

One :class:`WaitPolicy` object holds the verdict, the progress line, the intervals and the
tolerance of failed polls, so both wait modes end, log, pace and fail the same way for the
same answers. What counts as a failure worth polling through is the backend's to say
(``is_transient``).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any

from nightshift.backends.base import COUNT_NAMES, BatchState, ProcessingStatus

#: How long a wait gives the batches it cancelled at the run's deadline to reach ``ended`` (the
#: API ends a cancelled batch once the requests in flight finish) before it gives up landing them.
CANCEL_GRACE_SECONDS = 900.0


@dataclass(frozen=True)
class BatchSnapshot:
    """A batch's state as a wait saw it, in the plain form a trigger event carries."""

    id: str
    processing_status: str
    request_counts: dict[str, int]
    ended_at: str | None = None

    @classmethod
    def of(cls, state: BatchState) -> BatchSnapshot:
        return cls(
            id=state.id,
            processing_status=str(state.processing_status),
            request_counts=state.request_counts.as_dict(),
            ended_at=state.ended_at.isoformat() if state.ended_at else None,
        )

    @property
    def ended(self) -> bool:
        return self.processing_status == ProcessingStatus.ENDED

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "processing_status": self.processing_status,
                "request_counts": dict(self.request_counts), "ended_at": self.ended_at}


class WaitVerdict(enum.StrEnum):
    ENDED = "ended"  # every batch ended: land
    DEADLINE = "deadline"  # the run's deadline passed with batches unfinished: cancel them
    WAIT = "wait"  # poll again


def progress_line(snapshots: list[BatchSnapshot]) -> str:
    """One readable line per poll: how many batches ended and each batch's counts."""
    ended = sum(s.ended for s in snapshots)
    total = {name: sum(s.request_counts[name] for s in snapshots) for name in COUNT_NAMES}
    parts = [f"{ended}/{len(snapshots)} batches ended", " ".join(f"{n}={v}" for n, v in total.items() if v)]
    parts += [
        f"{s.id}: {s.processing_status} ({', '.join(f'{n} {v}' for n, v in s.request_counts.items() if v) or 'empty'})"
        for s in snapshots
    ]
    return " | ".join(p for p in parts if p)


def all_ended(snapshots: list[BatchSnapshot]) -> bool:
    return all(s.ended for s in snapshots)


def budgeted_interval(base: float, active_waits: int, budget_rpm: float, window_seconds: float = 60.0) -> float:
    """The poll interval that keeps all waiting runs together within ``budget_rpm`` per window.

    Each wait spends one request per poll (one list call covers all its batches), so with
    ``active_waits`` of them the interval must be at least ``active_waits * window / budget``.
    The account-wide budget (:mod:`nightshift.batch.budget`) is the hard limit; this pacing
    keeps waits from queueing at it and leaves the rest of it for creates and results.
    """
    return max(base, active_waits * window_seconds / budget_rpm) if budget_rpm > 0 else base


def stagger(batch_ids: list[str], interval: float) -> float:
    """A stable offset in [0, interval) so hundreds of waits started together do not poll together."""
    digest = hashlib.sha256(",".join(sorted(batch_ids)).encode()).digest()
    return interval * int.from_bytes(digest[:4], "big") / 2**32


def next_interval(base: float, consecutive_failures: int, ceiling: float) -> float:
    """Exponential backoff on failures, back to the base interval after a good poll."""
    return min(base * (2 ** consecutive_failures), ceiling)


@dataclass(frozen=True)
class WaitPolicy:
    """How a run waits for its batches: the sensor (in a worker) and the trigger (in the triggerer) share it."""

    poll_interval: float
    max_poll_interval: float
    max_consecutive_failures: int

    def verdict(self, snapshots: list[BatchSnapshot], *, now: float, deadline: float) -> WaitVerdict:
        """``now`` and ``deadline`` are wall-clock epoch seconds (a wait may resume in another process)."""
        if all_ended(snapshots):
            return WaitVerdict.ENDED
        return WaitVerdict.DEADLINE if now >= deadline else WaitVerdict.WAIT

    @staticmethod
    def unfinished(snapshots: list[BatchSnapshot]) -> list[str]:
        return [s.id for s in snapshots if not s.ended]

    progress_line = staticmethod(progress_line)

    def retry_delay(self, consecutive_failures: int, transient: bool) -> float | None:
        """After a failed poll: how long to back off before the next, or None when the wait must fail
        (a failure waiting cannot mend, or ``max_consecutive_failures`` in a row)."""
        if not transient or consecutive_failures >= self.max_consecutive_failures:
            return None
        return next_interval(self.poll_interval, consecutive_failures, self.max_poll_interval)

    def interval(self, active_waits: int = 1, budget_rpm: float = 0.0, window_seconds: float = 60.0) -> float:
        """The base interval, stretched so every wait of the deployment fits the poll budget."""
        return budgeted_interval(self.poll_interval, active_waits, budget_rpm, window_seconds)

    @staticmethod
    def stagger(batch_ids: list[str], interval: float) -> float:
        return stagger(batch_ids, interval)
