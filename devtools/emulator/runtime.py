"""The emulator's mutable state in one place: store, clock, config and faults.

The clock and the config live in memory for speed and are written through to the store on
every change, so a restarted process picks them up again. A state file that already exists
wins over command-line options: the options only seed a new file (and are what
``POST /_emulator/reset`` returns to).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.clock import VirtualClock
from emulator.config import EXPIRY_SECONDS, EmulatorConfig
from emulator.faults import FaultBook, normalize_fault
from emulator.lifecycle import timeline
from emulator.limits import BatchLimits
from emulator.store import Store


@dataclass
class StartupOptions:
    """What the process was started with; ``reset`` returns to this."""

    config: EmulatorConfig = field(default_factory=EmulatorConfig)
    speed: float = 1.0
    faults: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "speed": self.speed, "faults": self.faults}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StartupOptions:
        return cls(
            config=EmulatorConfig.from_dict(data.get("config", {})),
            speed=float(data.get("speed", 1.0)),
            faults=list(data.get("faults", [])),
        )


class Emulator:
    def __init__(self, state_path: Path, options: StartupOptions) -> None:
        self.store = Store(state_path)
        self.faults = FaultBook(self.store)
        self.limits = BatchLimits()  # in memory: a restart starts the rate window afresh
        saved_options = self.store.get_setting("startup_options")
        if saved_options is None:
            self.startup = options
            with self.store.transaction():  # a kill here must not leave a half-initialised file
                self.store.set_setting("startup_options", options.to_dict())
                self._apply_startup()
        else:
            self.startup = StartupOptions.from_dict(saved_options)
            self.config = EmulatorConfig.from_dict(self.store.get_setting("config", {}))
            self.clock = VirtualClock.from_dict(self.store.get_setting("clock"))
        self._boot = self.store.next_sequence("boot")  # keeps request ids unique across restarts
        #: bumped by :meth:`reset`: a call that began before a reset (a delayed or held one) belongs to
        #: the wiped state, so it is neither counted in the new stats nor allowed to act on the new state
        self.epoch = 0
        #: API calls the server is answering now (a delayed or held one included): a test waits for 0
        self.in_flight = 0
        self._request_ids = itertools.count(1)

    def _apply_startup(self) -> None:
        self.config = EmulatorConfig.from_dict(self.startup.config.to_dict())
        self.clock = VirtualClock.starting_now(speed=self.startup.speed)
        self._save_config()
        self._save_clock()
        for spec in self.startup.faults:
            self.faults.add(normalize_fault(spec))

    # --- clock (guarded by the store's lock: one lock for both, so no lock-order deadlocks) ---

    def now(self) -> float:
        with self.store.lock:
            return self.clock.now()

    def advance(self, seconds: float) -> None:
        with self.store.lock:
            self.clock.advance(seconds)
            self._save_clock()

    def set_speed(self, speed: float) -> None:
        with self.store.lock:
            self.clock.set_speed(speed)
            self._save_clock()

    def _save_clock(self) -> None:
        self.store.set_setting("clock", self.clock.to_dict())

    # --- config -----------------------------------------------------------------------

    def configure(self, changes: dict[str, Any]) -> EmulatorConfig:
        updated = EmulatorConfig.from_dict(self.config.to_dict())
        updated.update(changes)
        self.config = updated
        self._save_config()
        return updated

    def _save_config(self) -> None:
        self.store.set_setting("config", self.config.to_dict())

    # --- whole-state operations -------------------------------------------------------

    def reset(self) -> None:
        """Wipe batches, cache, faults and stats; clock, config and faults back to startup."""
        self.epoch += 1
        with self.store.transaction():
            self.store.wipe()
            self._apply_startup()
        self.limits.reset()

    # --- batch limits ------------------------------------------------------------------

    def queued_requests(self) -> int:
        """Requests in batches that have not ended by virtual now (reported as ``processing``).

        Also raises the ``peak_queued_requests`` watermark. The SQL prefilter only skips
        batches that must have ended; the exact state comes from :func:`lifecycle.timeline`,
        the same arithmetic every read uses. The queue only grows when a batch is created
        (or the virtual clock is moved back), so checking on every create and every stats
        read sees every peak but one made and undone by clock jumps between two of them.
        """
        with self.store.lock:
            now = self.clock.now()
            candidates = self.store.batches_possibly_unended(now, EXPIRY_SECONDS)
        queued = sum(batch.request_count for batch in candidates if not timeline(batch, now).ended)
        self.limits.observe_queued(queued)
        return queued

    def batch_limit_stats(self) -> dict[str, Any]:
        queued = self.queued_requests()
        window = self.config.rate_window_seconds
        return {**self.limits.snapshot(window), "queued_requests": queued, "rate_window_seconds": window}

    def next_request_id(self) -> str:
        return f"req_emu{self.store.id_seed()[:8]}{self._boot:04d}{next(self._request_ids):010d}"

    def stats(self) -> dict[str, Any]:
        endpoints: dict[str, dict[str, Any]] = {}
        total = 0
        for endpoint, status, count in self.store.request_stats():
            entry = endpoints.setdefault(endpoint, {"total": 0, "by_status": {}})
            entry["total"] += count
            entry["by_status"][str(status)] = count
            total += count
        batches = [
            {"id": batch_id, "request_count": count} for batch_id, count in self.store.created_batches()
        ]
        return {
            "requests_total": total,
            "endpoints": endpoints,
            "batches_created": len(batches),
            "batch_requests_total": sum(batch["request_count"] for batch in batches),
            "batches": batches,
            "cache_entries": self.store.count_cache_entries(),
            "foreign_batches": [
                {"id": batch_id, "request_count": count, "owner": owner, "canceled": canceled}
                for batch_id, count, owner, canceled in self.store.planted_batches()
            ],
            "canceled_batches": self.store.canceled_batch_ids(),
            "in_flight": self.in_flight,
            **self.batch_limit_stats(),
        }
