"""The JSON Schema subset that structured outputs accept (``output_config.format`` and ``strict`` tools).

The subset is the one the installed SDK (anthropic 2.10.0, ``lib/_parse/_transform.py``) reduces a
schema to before it sends it: ``type``, primitive ``enum``/``const``, ``anyOf``/``allOf``,
``$ref``/``$defs``, ``description``/``title``, ``properties``/``required`` with
``additionalProperties: false``, ``items`` and ``minItems`` 0 or 1, and ``format`` from a fixed set.
Everything else (``minLength``, ``maxLength``, ``minimum``, ``pattern``, ``oneOf``, ``default`` …)
is what the SDK moves into the description because the API refuses it; so does the emulator.
"""

from __future__ import annotations

from typing import Any

from emulator.errors import invalid_request

SUPPORTED_KEYWORDS = frozenset({
    "type", "enum", "const", "anyOf", "allOf", "$ref", "$defs", "description", "title",
    "properties", "required", "additionalProperties", "items", "minItems", "format",
})
SUPPORTED_STRING_FORMATS = frozenset({
    "date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid",
})


def check_strict_schema(schema: Any, where: str) -> None:
    """Raise a 400 naming the first keyword or value outside the subset, with its path."""
    _check(schema, where)


def _check(node: Any, path: str) -> None:
    if not isinstance(node, dict):
        raise invalid_request(f"{path}: Input should be a valid JSON Schema object")
    for key in node:
        if key not in SUPPORTED_KEYWORDS:
            raise invalid_request(f"{path}: '{key}' is not supported in structured outputs")
    types = node.get("type")
    type_set = set(types) if isinstance(types, list) else {types}
    if "object" in type_set and node.get("additionalProperties", None) is not False:
        raise invalid_request(f"{path}.additionalProperties: must be set to false for every object")
    if node.get("format") is not None and node["format"] not in SUPPORTED_STRING_FORMATS:
        raise invalid_request(f"{path}.format: '{node['format']}' is not a supported string format")
    if node.get("minItems") not in (None, 0, 1):
        raise invalid_request(f"{path}.minItems: only 0 or 1 is supported in structured outputs")
    for name, sub in (node.get("properties") or {}).items():
        _check(sub, f"{path}.properties.{name}")
    for name, sub in (node.get("$defs") or {}).items():
        _check(sub, f"{path}.$defs.{name}")
    if "items" in node:
        _check(node["items"], f"{path}.items")
    for keyword in ("anyOf", "allOf"):
        for index, sub in enumerate(node.get(keyword) or []):
            _check(sub, f"{path}.{keyword}.{index}")
