"""The virtual clock that batch lifecycles, cache TTLs and archiving are measured against.

Virtual time runs at ``speed`` times real (wall-clock) time since it was last anchored, plus
any offsets added with :meth:`VirtualClock.advance`. Wall-clock time is used rather than a
monotonic clock because the anchor is persisted: a restarted emulator must see the same
virtual "now" that the killed one would have seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone


@dataclass
class VirtualClock:
    """``now() = anchor_virtual + (real_now - anchor_real) * speed``."""

    anchor_real: float
    anchor_virtual: float
    speed: float = 1.0
    real_time: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    @classmethod
    def starting_now(cls, speed: float = 1.0, real_time: Callable[[], float] = time.time) -> VirtualClock:
        now = real_time()
        return cls(anchor_real=now, anchor_virtual=now, speed=speed, real_time=real_time)

    def now(self) -> float:
        return self.anchor_virtual + (self.real_time() - self.anchor_real) * self.speed

    def advance(self, seconds: float) -> None:
        """Jump forward (or, with a negative number, back) without changing the speed."""
        self.anchor_virtual += seconds

    def set_speed(self, speed: float) -> None:
        """Change the rate from this instant on; time already elapsed is kept."""
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.anchor_virtual = self.now()
        self.anchor_real = self.real_time()
        self.speed = speed

    def reset(self, speed: float = 1.0) -> None:
        """Back to real time: virtual now equals wall-clock now again."""
        now = self.real_time()
        self.anchor_real = now
        self.anchor_virtual = now
        self.speed = speed

    def to_dict(self) -> dict[str, float]:
        return {"anchor_real": self.anchor_real, "anchor_virtual": self.anchor_virtual, "speed": self.speed}

    @classmethod
    def from_dict(cls, data: dict[str, float], real_time: Callable[[], float] = time.time) -> VirtualClock:
        return cls(
            anchor_real=float(data["anchor_real"]),
            anchor_virtual=float(data["anchor_virtual"]),
            speed=float(data["speed"]),
            real_time=real_time,
        )

    def describe(self) -> dict[str, object]:
        now = self.now()
        real = self.real_time()
        return {
            "now": rfc3339(now),
            "now_epoch": now,
            "real_now": rfc3339(real),
            "offset_seconds": now - real,
            "speed": self.speed,
        }


def rfc3339(epoch_seconds: float) -> str:
    """Format like the API does: UTC, microseconds, ``Z`` suffix."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
