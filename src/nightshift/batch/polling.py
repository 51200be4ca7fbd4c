"""What a poll of a run's batches means, shared by the deferrable trigger and the sync sensor.

Keeping the verdict and the progress line here means both wait modes end, log and fail the
same way for the same API answers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

COUNT_NAMES = ("processing", "succeeded", "errored", "canceled", "expired")
#: How long a wait gives the batches it cancelled at the run's deadline to reach ``ended`` (the
#: API ends a cancelled batch once the requests in flight finish) before it gives up landing them.
CANCEL_GRACE_SECONDS = 900.0


@dataclass(frozen=True)
class BatchSnapshot:
    id: str
    processing_status: str
    request_counts: dict[str, int]
    ended_at: str | None = None

    @classmethod
    def of(cls, batch: Any) -> BatchSnapshot:
        counts = batch.request_counts
        return cls(
            id=batch.id,
            processing_status=batch.processing_status,
            request_counts={name: getattr(counts, name) for name in COUNT_NAMES},
            ended_at=batch.ended_at.isoformat() if batch.ended_at else None,
        )

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def is_transient(exc: BaseException) -> bool:
    """Errors worth polling through: rate limits, server-side trouble, dropped connections. Not the
    spend-limit 429: it is a rate_limit_error too, but no wait mends it (``errors.is_spend_limit``)."""
    import anthropic  # not at module level: DAG files import this module and must parse fast

    from nightshift.batch.errors import is_spend_limit

    if isinstance(exc, (anthropic.APIConnectionError, anthropic.APITimeoutError)):
        return True
    if isinstance(exc, anthropic.APIStatusError):
        if is_spend_limit(exc):
            return False
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


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
    import hashlib

    digest = hashlib.sha256(",".join(sorted(batch_ids)).encode()).digest()
    return interval * int.from_bytes(digest[:4], "big") / 2**32


def next_interval(base: float, consecutive_failures: int, ceiling: float) -> float:
    """Exponential backoff on failures, back to the base interval after a good poll."""
    return min(base * (2 ** consecutive_failures), ceiling)
