"""``GET /v1/models`` and ``GET /v1/models/{id}``: the catalogue as ``anthropic.types.ModelInfo``.

Shapes follow the installed SDK's types (model_info.py, model_capabilities.py, thinking_types.py):
newest release first, paged by ``after_id`` / ``before_id`` / ``limit`` (1–1000, default 20); the
list holds ``active`` and ``deprecated`` models unless ``lifecycle`` asks for others, and a
retired model can still be retrieved by id, as the historical record the SDK describes.
Capabilities the catalogue does not track (citations, PDFs, server tools) are reported as the
models overview gives them for every current model: supported.
"""

from __future__ import annotations

from typing import Any

from emulator.errors import invalid_request, not_found
from emulator.models import EFFORT_LEVELS, THINKING_TYPES, ModelSpec, catalogue

DEFAULT_LIFECYCLES = ("active", "deprecated")


def retrieve_model(model_id: str) -> dict[str, Any]:
    model = catalogue().resolve(model_id)
    if model is None:
        raise not_found(f"model: {model_id}")
    return model_info(model)


def list_models(*, limit: int, after_id: str | None, before_id: str | None,
                lifecycle: list[str] | None) -> dict[str, Any]:
    if not 1 <= limit <= 1000:
        raise invalid_request("limit: Input should be between 1 and 1000")
    if after_id and before_id:
        raise invalid_request("Only one of after_id and before_id may be given")
    wanted = tuple(lifecycle or DEFAULT_LIFECYCLES)
    if len(wanted) > 3 or not set(wanted) <= {"active", "deprecated", "retired"}:
        raise invalid_request("lifecycle: up to 3 of 'active', 'deprecated', 'retired'")
    models = sorted((m for m in catalogue().models.values() if m.lifecycle in wanted),
                    key=lambda m: (m.released, m.id), reverse=True)
    ids = [m.id for m in models]
    start, stop = 0, len(models)
    if after_id:
        start = _position(ids, after_id, "after_id") + 1
        stop = min(len(models), start + limit)
    elif before_id:
        stop = _position(ids, before_id, "before_id")
        start = max(0, stop - limit)
    else:
        stop = min(len(models), limit)
    page = models[start:stop]
    has_more = start > 0 if before_id else stop < len(models)
    data = [model_info(m) for m in page]
    return {"data": data, "has_more": has_more, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def _position(ids: list[str], model_id: str, name: str) -> int:
    model = catalogue().resolve(model_id)
    if model is None or model.id not in ids:
        raise invalid_request(f"{name}: no model {model_id!r} in this list")
    return ids.index(model.id)


def model_info(model: ModelSpec) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.display_name,
        "created_at": f"{model.released}T00:00:00Z",
        "lifecycle": model.lifecycle,
        "deprecated_at": _moment(model.deprecated_at),
        "retires_at": _moment(model.retires_at),
        "line": model.line,
        "max_input_tokens": model.context_window,
        "max_tokens": model.max_output_tokens,
        "capabilities": _capabilities(model),
    }


def _moment(day: str | None) -> str | None:
    return None if day is None else f"{day}T00:00:00Z"


def _supported(flag: bool) -> dict[str, bool]:
    return {"supported": bool(flag)}


def _capabilities(model: ModelSpec) -> dict[str, Any]:
    thinks = bool(model.thinking.types - {"disabled"})
    thinking_types = {kind: _supported(kind in model.thinking.types) for kind in THINKING_TYPES}
    # thinking_types.py: `disabled` is "True on a model that does not support thinking".
    thinking_types["disabled"] = _supported("disabled" in model.thinking.types or not thinks)
    effort = {level: _supported(level in model.effort.levels) for level in EFFORT_LEVELS}
    return {
        "batch": _supported(model.batch),
        "citations": _supported(True),
        "code_execution": _supported(True),
        "context_management": {"supported": True, "clear_thinking_20251015": _supported(thinks),
                               "clear_tool_uses_20250919": _supported(True), "compact_20260112": _supported(True)},
        "effort": {"supported": bool(model.effort.levels), **effort},
        "image_input": _supported(True),
        "pdf_input": _supported(True),
        "server_tools": {"supported": True, "code_execution": _supported(True), "web_search": _supported(True)},
        "structured_outputs": _supported(model.structured_outputs),
        "thinking": {"supported": thinks, "types": thinking_types},
    }
