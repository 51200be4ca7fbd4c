"""How a source row becomes Messages API params.

The stable part (tool definition, then instructions) comes first and is identical for every
item, with a ``cache_control`` breakpoint on its last block; the per-item text follows.
The streaming path and the batch path call the same function, so the same row yields the
same params on both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nightshift.workloads.definition import Workload

# C0 control characters other than tab and newline carry no meaning in a prompt and have
# been seen to confuse downstream parsers; NUL cannot even be stored in Postgres text.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MISSING_VALUE = "(not given)"


class InvalidInput(ValueError):
    """A source row that cannot become a request; ``reason`` names the row and column."""

    error_type = "invalid_input"


def stable_prefix(workload: Workload) -> dict[str, Any]:
    """The cached part of every request: tools and system, in the API's cache order."""
    return {
        "tools": [
            {
                "name": workload.output.tool_name,
                "description": workload.output.tool_description or workload.description,
                "input_schema": workload.output.json_schema,
            }
        ],
        "system": [
            {
                "type": "text",
                "text": workload.instructions,
                "cache_control": {"type": "ephemeral", "ttl": workload.prompt.cache_ttl},
            }
        ],
    }


def render_item(workload: Workload, row: Mapping[str, Any]) -> str:
    source_key = row.get(workload.source.key)
    for column in workload.source.required_columns:
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InvalidInput(
                f"source row {workload.source.table}.{workload.source.key}={source_key}: "
                f"column {column!r} is {'NULL' if value is None else 'empty'}"
            )
    values = {
        name: MISSING_VALUE if row.get(name) is None else _CONTROL_CHARACTERS.sub("", str(row.get(name)))
        for name in [workload.source.key, *workload.source.columns]
    }
    return workload.prompt.item_template.format(**values).strip()


def build_params(workload: Workload, row: Mapping[str, Any]) -> dict[str, Any]:
    """Messages API params for one source row; raises :class:`InvalidInput` for a bad row.

    The stable part is built once per workload and shared by every request's params (a night
    builds 100,000 of them): treat the returned params as read-only.
    """
    return {**_stable_params(workload), "messages": [{"role": "user", "content": render_item(workload, row)}]}


_stable: dict[int, tuple[Workload, dict[str, Any]]] = {}


def _stable_params(workload: Workload) -> dict[str, Any]:
    """Everything but the messages, once per workload object (kept alive beside it, so its id is not reused)."""
    cached = _stable.get(id(workload))
    if cached is None or cached[0] is not workload:
        cached = _stable[id(workload)] = (workload, {
            "model": workload.model,
            "max_tokens": workload.max_tokens,
            **stable_prefix(workload),
            "tool_choice": {"type": "tool", "name": workload.output.tool_name},
        })
    return cached[1]
