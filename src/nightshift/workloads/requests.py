"""How a source row becomes Messages API params, in the shape its model accepts.

The stable part (the output tool when the answer is a forced tool call, then the instructions)
comes first and is identical for every item, with a ``cache_control`` breakpoint on its last
block; the per-item text follows. Where the model has structured outputs the answer's schema
goes in ``output_config.format`` instead, reduced to the subset the API accepts
(``structured.py``); thinking and effort are as the :class:`RequestShape` says. The streaming
path and the batch path call the same function, so the same row yields the same params on both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from nightshift.workloads.definition import Workload
from nightshift.workloads.shape import Delivery, RequestShape
from nightshift.workloads.structured import strict_schema

# C0 control characters other than tab and newline carry no meaning in a prompt and have
# been seen to confuse downstream parsers; NUL cannot even be stored in Postgres text.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Half of a UTF-16 surrogate pair on its own is not a character: it cannot be encoded as UTF-8,
# so the API could never receive it. Postgres text cannot hold one, but a json column can
# (``"\ud800"``), and psycopg hands it over as is.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
MISSING_VALUE = "(not given)"


class InvalidInput(ValueError):
    """A source row that cannot become a request; ``reason`` names the row and column."""

    error_type = "invalid_input"


def stable_prefix(workload: Workload, shape: RequestShape | None = None) -> dict[str, Any]:
    """The cached part of every request, in the API's cache order: the output tool (only when the
    answer is a forced tool call) and the system instructions."""
    shape = shape or workload.table_shape
    system = [{"type": "text", "text": workload.instructions,
               "cache_control": {"type": "ephemeral", "ttl": workload.prompt.cache_ttl}}]
    if shape.delivery is not Delivery.FORCED_TOOL:
        return {"system": system}
    tool = {"name": workload.output.tool_name, "description": workload.output.tool_description or workload.description,
            "input_schema": workload.output.json_schema}
    return {"tools": [tool], "system": system}


def render_item(workload: Workload, row: Mapping[str, Any]) -> str:
    source_key = row.get(workload.source.key)
    for column in workload.source.required_columns:
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InvalidInput(
                f"source row {workload.source.table}.{workload.source.key}={source_key}: "
                f"column {column!r} is {'NULL' if value is None else 'empty'}"
            )
    values = {name: _text(workload, source_key, name, row.get(name))
              for name in [workload.source.key, *workload.source.columns]}
    return workload.prompt.item_template.format(**values).strip()


def _text(workload: Workload, source_key: Any, column: str, value: Any) -> str:
    """One column's value as prompt text: JSON for json columns, control characters removed."""
    if value is None:
        return MISSING_VALUE
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
    if surrogate := _LONE_SURROGATE.search(text):
        raise InvalidInput(
            f"source row {workload.source.table}.{workload.source.key}={source_key}: column {column!r} is not "
            f"valid Unicode (a lone surrogate U+{ord(surrogate.group()):04X} at character {surrogate.start()})")
    return _CONTROL_CHARACTERS.sub("", text)


def build_params(workload: Workload, row: Mapping[str, Any], shape: RequestShape | None = None) -> dict[str, Any]:
    """Messages API params for one source row; raises :class:`InvalidInput` for a bad row.

    ``shape`` is the run's (confirmed against the Models API); without it, the model table's.
    The stable part is built once per workload and shape and shared by every request's params
    (a night builds 100,000 of them): treat the returned params as read-only.
    """
    stable = _stable_params(workload, shape or workload.table_shape)
    return {**stable, "messages": [{"role": "user", "content": render_item(workload, row)}]}


def params_around(workload: Workload, messages: list[dict[str, Any]], shape: RequestShape | None = None
                  ) -> dict[str, Any]:
    """``workload``'s params around ``messages`` rendered already (the same item on another cascade model)."""
    return {**_stable_params(workload, shape or workload.table_shape), "messages": messages}


_stable: dict[tuple[int, RequestShape], tuple[Workload, dict[str, Any]]] = {}


def _stable_params(workload: Workload, shape: RequestShape) -> dict[str, Any]:
    """Everything but the messages, once per workload object and shape (the workload is kept
    alive beside it, so its id is not reused)."""
    key = (id(workload), shape)
    cached = _stable.get(key)
    if cached is None or cached[0] is not workload:
        params: dict[str, Any] = {"model": workload.model, "max_tokens": workload.max_tokens,
                                  **stable_prefix(workload, shape)}
        output_config: dict[str, Any] = {}
        if shape.delivery is Delivery.FORCED_TOOL:
            params["tool_choice"] = {"type": "tool", "name": workload.output.tool_name}
        elif shape.delivery is not Delivery.TEXT:  # a text output asks for no format: the reply is prose
            output_config["format"] = {"type": "json_schema", "schema": strict_schema(workload.output.json_schema)}
        if shape.effort:
            output_config["effort"] = shape.effort
        if output_config:
            params["output_config"] = output_config
        if shape.thinking:
            params["thinking"] = shape.thinking
        params.update(workload.request_overrides)
        cached = _stable[key] = (workload, params)
    return cached[1]
