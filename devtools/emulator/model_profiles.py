"""Per-model profiles: how often a model gives the strongest model's answer, field by field.

A test control, not an API fact: with no profile every model answers the same (the canonical
answer, see :func:`emulator.replies.reply_seed`). A profile makes a model differ the way real
ones do, deterministically, so a model trial has something to measure::

    {"claude-haiku-5-5": {"agreement": {"*": 0.95, "label": 0.93}, "malformed_rate": 0.02}}

* ``agreement``: per top-level field of a structured answer (``"text"`` for a plain-text reply),
  the share of prompts on which the model answers the canonical value; ``"*"`` covers the fields
  not named; a field with neither answers canonically (rate 1.0). Whether a prompt agrees is a
  stable draw over (reply seed, model, field), so the same prompt and model get the same answer
  through ``POST /v1/messages``, streamed or not, and through a batch.
* ``malformed_rate``: replaces the global ``malformed_rate`` for that model, drawn with the model
  in the hash (a stronger model does not break on the same prompts); unset → the global one.

Model ids, aliases and ``-YYYYMMDD`` snapshot ids are stored under the catalogue id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from emulator.hashing import hex_digest, unit_interval
from emulator.models import catalogue

WILDCARD = "*"
AGREEMENT = "agreement"
MALFORMED_RATE = "malformed_rate"
PROFILE_KEYS = (AGREEMENT, MALFORMED_RATE)
#: What a ``--model-profile`` flag names instead of a field to set the malformed rate.
CLI_MALFORMED_NAMES = ("malformed", MALFORMED_RATE)


@dataclass(frozen=True)
class ModelProfile:
    model: str
    agreement: dict[str, float]
    malformed_rate: float | None = None

    def agreement_rate(self, field: str) -> float:
        return self.agreement.get(field, self.agreement.get(WILDCARD, 1.0))

    def agrees(self, seed: str, field: str) -> bool:
        """Whether this model gives the canonical answer for ``field`` of the reply seeded ``seed``."""
        return unit_interval("agreement", seed, self.model, field) < self.agreement_rate(field)

    def disagreement_seed(self, seed: str, field: str) -> str:
        """What this model's different answer for ``field`` is derived from."""
        return hex_digest("disagreement", seed, self.model, field, length=32)


def profile_for(profiles: dict[str, Any] | None, model_id: str) -> ModelProfile | None:
    """The profile of catalogue id ``model_id`` in a normalised ``model_profiles`` mapping."""
    spec = (profiles or {}).get(model_id)
    if spec is None:
        return None
    return ModelProfile(model_id, dict(spec.get(AGREEMENT) or {}), spec.get(MALFORMED_RATE))


def parse_model_profiles(value: Any) -> dict[str, dict[str, Any]]:
    """Validate ``model_profiles`` and normalise it: catalogue ids as keys, both profile keys present."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"model_profiles must be an object of model id -> profile, got {value!r}")
    known = catalogue()
    profiles: dict[str, dict[str, Any]] = {}
    for name, spec in value.items():
        model = known.resolve(name) if isinstance(name, str) else None
        if model is None:
            raise ValueError(
                f"model_profiles: unknown model {name!r} (known: {', '.join(known.models)}; "
                "their aliases and -YYYYMMDD snapshot ids are accepted too)"
            )
        if model.id in profiles:
            raise ValueError(f"model_profiles: {name!r} names {model.id!r}, which already has a profile")
        profiles[model.id] = _profile(name, spec)
    return profiles


def _profile(name: str, spec: Any) -> dict[str, Any]:
    where = f"model_profiles[{name!r}]"
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be an object with {' and/or '.join(PROFILE_KEYS)}, got {spec!r}")
    unknown = sorted(set(spec) - set(PROFILE_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(PROFILE_KEYS)})")
    agreement = spec.get(AGREEMENT) or {}
    if not isinstance(agreement, dict):
        raise ValueError(f"{where}.agreement must be an object of field name (or '*') -> rate, "
                         f"got {agreement!r}")
    rates: dict[str, float] = {}
    for field, rate in agreement.items():
        if not isinstance(field, str) or not field:
            raise ValueError(f"{where}.agreement: a field name must be a non-empty string, got {field!r}")
        rates[field] = _rate(f"{where}.agreement[{field!r}]", rate)
    malformed = spec.get(MALFORMED_RATE)
    return {
        AGREEMENT: rates,
        MALFORMED_RATE: None if malformed is None else _rate(f"{where}.malformed_rate", malformed),
    }


def _rate(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{where} must be a number between 0 and 1, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{where} must be between 0 and 1, got {value!r}")
    return float(value)


def parse_profile_flags(flags: list[str]) -> dict[str, dict[str, Any]]:
    """``--model-profile`` values, merged: ``MODEL=RATE`` (every field), ``MODEL:FIELD=RATE`` (one
    field) and ``MODEL:malformed=RATE`` (its malformed rate), e.g. ``claude-haiku-5-5:label=0.93``."""
    raw: dict[str, dict[str, Any]] = {}
    for flag in flags:
        target, sep, number = flag.partition("=")
        model, _, field = target.partition(":")
        model, field = model.strip(), field.strip()
        if not sep or not model:
            raise ValueError(f"--model-profile {flag!r}: expected MODEL=RATE, MODEL:FIELD=RATE "
                             "or MODEL:malformed=RATE")
        try:
            rate = float(number)
        except ValueError:
            raise ValueError(f"--model-profile {flag!r}: {number!r} is not a number "
                             "between 0 and 1") from None
        resolved = catalogue().resolve(model)  # an alias and an id of one model share one profile
        spec = raw.setdefault(resolved.id if resolved else model, {AGREEMENT: {}})
        if field in CLI_MALFORMED_NAMES:
            spec[MALFORMED_RATE] = rate
        else:
            spec[AGREEMENT][field or WILDCARD] = rate
    return parse_model_profiles(raw)


def profile_flags(profiles: dict[str, Any]) -> list[str]:
    """The ``--model-profile`` values that give ``profiles`` (the inverse of :func:`parse_profile_flags`)."""
    flags = []
    for model, spec in parse_model_profiles(profiles).items():
        flags += [f"{model}:{field}={rate!r}" for field, rate in spec[AGREEMENT].items()]
        if spec[MALFORMED_RATE] is not None:
            flags.append(f"{model}:malformed={spec[MALFORMED_RATE]!r}")
    return flags
