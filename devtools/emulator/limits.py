"""The two Message Batches limits that matter for a backfill: request rate and queue depth.

* **Request rate** — every authenticated call of a batch endpoint (create, retrieve, list,
  cancel, delete, results) takes a token from a bucket, as the rate-limits page describes
  ("token bucket"; capacity "continuously replenished up to your maximum limit"). The bucket
  refills at ``batch_rpm_limit`` per ``rate_window_seconds`` of *real* time and holds at most the
  tokens of ``rate_enforcement_seconds`` (the whole window by default; shorter is how "60 RPM
  might be enforced as 1 request per second"). A call that finds no token is answered
  ``429 rate_limit_error`` with the wait until the next token, without reaching its route.
  Rate limits are wall-clock on the real API, so the bucket ignores the virtual clock.
  Every call, admitted or not, is also counted over a sliding window for the traffic figures.
* **Queue depth** — the requests of every batch that has not ended (what the API reports
  under ``request_counts.processing``). Computed from the store by
  :meth:`emulator.runtime.Emulator.queued_requests`; this module only keeps the peak and
  counts the rejections :mod:`emulator.batches` issues when ``max_queued_requests`` is set.

Everything here is in memory, behind its own small lock (never the store's): a restart
starts the bucket full and the peaks and ``rate_limited`` from zero, as ``POST /_emulator/reset``
does. Tier presets (``--tier``) come from ``data/rate_limits.json``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulator.errors import ApiError

RATE_LIMITS_FILE = Path(__file__).resolve().parent / "data" / "rate_limits.json"

#: The endpoints the real API's Message Batches rate limit covers.
BATCH_ENDPOINTS = frozenset({"create", "retrieve", "list", "cancel", "delete", "results"})


def rate_limit_error(limit: int, window: float, wait_seconds: float) -> ApiError:
    """The 429 an over-limit batch call gets, with ``retry-after`` / ``retry-after-ms``."""
    per = "minute" if window == 60 else f"{window:g} seconds"
    message = (
        "Number of requests has exceeded your per-minute rate limit for the Message Batches API "
        f"({limit:,} requests per {per}). Please wait before retrying; "
        "see the retry-after header for how long."
    )
    headers = {
        "retry-after": str(max(1, math.ceil(wait_seconds))),
        "retry-after-ms": str(max(1, math.ceil(wait_seconds * 1000))),
    }
    return ApiError("rate_limit_error", message, headers=headers)


def queue_limit_error(limit: int, queued: int, requested: int) -> ApiError:
    """The 429 a create gets when its requests would push the processing queue over ``limit``."""
    message = (
        f"This request would exceed your organization's limit of {limit:,} batch requests in the "
        f"processing queue: {queued:,} requests are currently queued and this batch has "
        f"{requested:,}. Wait for batches in progress to end, or submit fewer requests."
    )
    return ApiError("rate_limit_error", message)


class BatchLimits:
    """Sliding-window request counter and limiter, plus the queue-depth peak and 429 count."""

    def __init__(self, real_time: Callable[[], float] = time.monotonic) -> None:
        self._real_time = real_time
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._arrivals: deque[float] = deque()  # every counted call in the window
            self._bucket: tuple[float, float] | None = None  # (capacity, refill per second)
            self._tokens = 0.0
            self._refilled_at = 0.0
            self._peak_window = 0
            self._peak_queued = 0
            self._rate_limited = 0

    # --- request rate -----------------------------------------------------------------

    def admit(self, limit: int | None, window: float, enforcement: float | None = None) -> ApiError | None:
        """Count one batch-endpoint call now; the 429 to answer with, or None to let it through."""
        with self._lock:
            now = self._real_time()
            self._evict(now, window)
            self._arrivals.append(now)
            self._peak_window = max(self._peak_window, len(self._arrivals))
            if not limit:
                return None
            per_second = limit / window
            capacity = max(1.0, limit * min(enforcement or window, window) / window)
            if self._bucket != (capacity, per_second):  # a new limit starts with a full bucket
                self._bucket, self._tokens, self._refilled_at = (capacity, per_second), capacity, now
            self._tokens = min(capacity, self._tokens + (now - self._refilled_at) * per_second)
            self._refilled_at = now
            if self._tokens < 1.0:
                self._rate_limited += 1
                return rate_limit_error(limit, window, (1.0 - self._tokens) / per_second)
            self._tokens -= 1.0
            return None

    def _evict(self, now: float, window: float) -> None:
        """A call at ``t`` is in the window until ``t + window`` (half-open ``(now - window, now]``)."""
        horizon = now - window
        while self._arrivals and self._arrivals[0] <= horizon:
            self._arrivals.popleft()

    # --- queue depth ------------------------------------------------------------------

    def observe_queued(self, queued: int) -> None:
        with self._lock:
            self._peak_queued = max(self._peak_queued, queued)

    def count_queue_rejection(self) -> None:
        with self._lock:
            self._rate_limited += 1

    # --- reporting --------------------------------------------------------------------

    def snapshot(self, window: float) -> dict[str, Any]:
        with self._lock:
            self._evict(self._real_time(), window)
            return {
                "batch_requests_last_60s": len(self._arrivals),
                "peak_batch_rpm": self._peak_window,
                "rate_limited": self._rate_limited,
                "peak_queued_requests": self._peak_queued,
            }


def tier_preset(name: str) -> dict[str, int]:
    """``batch_rpm_limit`` and ``max_queued_requests`` of a usage tier (``tier-1`` … ``tier-4``)."""
    tiers = json.loads(RATE_LIMITS_FILE.read_text(encoding="utf-8"))["tiers"]
    if name not in tiers:
        raise ValueError(f"unknown tier {name!r}; known: {', '.join(sorted(tiers))}")
    return {key: value for key, value in tiers[name].items() if key != "source"}
