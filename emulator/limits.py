"""The two Message Batches limits that matter for a backfill: request rate and queue depth.

* **Request rate** — every authenticated call of a batch endpoint (create, retrieve, list,
  cancel, delete, results) is counted over a sliding window of *real* time
  (``rate_window_seconds``, 60 by default). Rate limits are wall-clock on the real API, so
  the window ignores the virtual clock even when it is sped up or frozen. When
  ``batch_rpm_limit`` is set, a call that finds that many *admitted* calls already in the
  window is answered ``429 rate_limit_error`` without reaching its route; a rejected call is
  counted in the traffic figures but takes no slot, so waiting ``retry-after`` is enough.
* **Queue depth** — the requests of every batch that has not ended (what the API reports
  under ``request_counts.processing``). Computed from the store by
  :meth:`emulator.runtime.Emulator.queued_requests`; this module only keeps the peak and
  counts the rejections :mod:`emulator.batches` issues when ``max_queued_requests`` is set.

Everything here is in memory, behind its own small lock (never the store's): a restart
starts the window, the peaks and ``rate_limited`` from zero, as ``POST /_emulator/reset``
does.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from emulator.errors import ApiError

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
            self._admitted: deque[float] = deque()  # the calls the limiter let through
            self._peak_window = 0
            self._peak_queued = 0
            self._rate_limited = 0

    # --- request rate -----------------------------------------------------------------

    def admit(self, limit: int | None, window: float) -> ApiError | None:
        """Count one batch-endpoint call now; the 429 to answer with, or None to let it through."""
        with self._lock:
            now = self._real_time()
            self._evict(now, window)
            self._arrivals.append(now)
            self._peak_window = max(self._peak_window, len(self._arrivals))
            if limit and len(self._admitted) >= limit:
                self._rate_limited += 1
                # The window admits one more once all but limit - 1 admitted calls have left it.
                oldest_to_leave = self._admitted[len(self._admitted) - limit]
                return rate_limit_error(limit, window, oldest_to_leave + window - now)
            self._admitted.append(now)
            return None

    def _evict(self, now: float, window: float) -> None:
        """A call at ``t`` is in the window until ``t + window`` (half-open ``(now - window, now]``)."""
        horizon = now - window
        for calls in (self._arrivals, self._admitted):
            while calls and calls[0] <= horizon:
                calls.popleft()

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
