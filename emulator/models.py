"""Per-model limits, read from the single data file ``emulator/data/models.json``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MODELS_FILE = Path(__file__).resolve().parent / "data" / "models.json"
_SNAPSHOT_SUFFIX = re.compile(r"-\d{8}$")


@dataclass(frozen=True)
class ModelInfo:
    id: str
    context_window: int
    max_output_tokens: int
    min_cacheable_tokens: int


@cache
def known_models() -> dict[str, ModelInfo]:
    text = MODELS_FILE.read_text(encoding="utf-8")
    data = json.loads(text)["models"]
    return {model_id: ModelInfo(id=model_id, **limits) for model_id, limits in data.items()}


def resolve_model(model_id: str) -> ModelInfo | None:
    """An exact id, or a known id followed by a ``-YYYYMMDD`` snapshot date."""
    models = known_models()
    if model_id in models:
        return models[model_id]
    return models.get(_SNAPSHOT_SUFFIX.sub("", model_id))
