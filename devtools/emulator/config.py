"""Runtime settings that shape how batches are processed; changeable via ``POST /_emulator/config``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from emulator.model_profiles import ModelProfile, parse_model_profiles, profile_for

#: Requests processed per virtual second when nothing else is said.
DEFAULT_RATE = 10.0
#: Virtual seconds between ``cancel`` and the batch reaching ``ended``.
DEFAULT_CANCEL_DELAY_SECONDS = 10.0
#: The real API's cap on a create-batch body.
DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024
#: Hours until a batch expires, and days until its results are archived.
EXPIRY_SECONDS = 24 * 3600
ARCHIVE_SECONDS = 29 * 24 * 3600
MAX_BATCH_REQUESTS = 100_000
#: Real seconds over which ``batch_rpm_limit`` is measured (a minute, unless a test shortens it).
DEFAULT_RATE_WINDOW_SECONDS = 60.0


def parse_rate(value: Any) -> float:
    """``"inf"``, ``"instant"``, ``0`` and ``None`` all mean "process instantly" (``math.inf``)."""
    if value is None:
        return math.inf
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"inf", "infinity", "instant", "0", ""}:
            return math.inf
        value = float(text)
    rate = float(value)
    if rate < 0 or math.isnan(rate):
        raise ValueError(f"rate must be a positive number or 'inf', got {value!r}")
    return math.inf if rate == 0 else rate


def rate_to_json(rate: float) -> float | str:
    return "inf" if math.isinf(rate) else rate


def parse_limit(value: Any, name: str) -> int | None:
    """A count limit: ``0``, ``None``, ``""``, ``"none"`` and ``"unlimited"`` all mean no limit (``None``)."""
    problem = f"{name} must be a whole number >= 0 (0 or null = unlimited), got {value!r}"
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(problem)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"", "none", "null", "unlimited"}:
            return None
        value = text
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(problem) from None
    if number < 0 or not number.is_integer():
        raise ValueError(problem)
    return int(number) or None


@dataclass
class EmulatorConfig:
    rate: float = DEFAULT_RATE
    malformed_rate: float = 0.0
    cancel_delay_seconds: float = DEFAULT_CANCEL_DELAY_SECONDS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Batch-endpoint calls allowed per ``rate_window_seconds`` of real time; None = unlimited.
    batch_rpm_limit: int | None = None
    #: Requests allowed in batches that have not ended; None = unlimited.
    max_queued_requests: int | None = None
    rate_window_seconds: float = DEFAULT_RATE_WINDOW_SECONDS
    #: The bucket holds this many seconds' worth of the limit; None = the whole window.
    rate_enforcement_seconds: float | None = None
    #: The one API key accepted (401 ``authentication_error`` for any other); None accepts any key.
    api_key: str | None = None
    #: Per-model agreement with the canonical answer and malformed rate (``model_profiles.py``).
    model_profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def profile_for(self, model_id: str) -> ModelProfile | None:
        return profile_for(self.model_profiles, model_id)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"] = rate_to_json(self.rate)
        return data

    def public_dict(self) -> dict[str, Any]:
        """``to_dict`` for the control routes: whether a key is required, never the key itself."""
        return {**self.to_dict(), "api_key": None if self.api_key is None else "(set)"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmulatorConfig:
        config = cls()
        config.update(data)
        return config

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update; unknown keys are an error so typos do not pass silently."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        for key, value in changes.items():
            if key == "rate":
                self.rate = parse_rate(value)
            elif key == "malformed_rate":
                rate = float(value)
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("malformed_rate must be between 0 and 1")
                self.malformed_rate = rate
            elif key == "cancel_delay_seconds":
                delay = float(value)
                if delay < 0:
                    raise ValueError("cancel_delay_seconds must be >= 0")
                self.cancel_delay_seconds = delay
            elif key == "max_body_bytes":
                size = int(value)
                if size <= 0:
                    raise ValueError("max_body_bytes must be positive")
                self.max_body_bytes = size
            elif key in ("batch_rpm_limit", "max_queued_requests"):
                setattr(self, key, parse_limit(value, key))
            elif key == "api_key":
                if value is not None and (not isinstance(value, str) or not value.strip()):
                    raise ValueError("api_key must be a non-empty string, or null to accept any key")
                self.api_key = value
            elif key == "rate_enforcement_seconds":
                seconds = None if value is None else float(value)
                if seconds is not None and not seconds > 0:
                    raise ValueError("rate_enforcement_seconds must be a positive number of seconds, or null")
                self.rate_enforcement_seconds = seconds
            elif key == "model_profiles":
                self.model_profiles = parse_model_profiles(value)
            elif key == "rate_window_seconds":
                window = float(value)
                if not window > 0 or math.isinf(window):
                    raise ValueError("rate_window_seconds must be a positive number of seconds")
                self.rate_window_seconds = window
