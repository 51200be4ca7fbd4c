"""A workload's output schema in the subset structured outputs accept.

Structured outputs (``output_config.format`` and ``strict`` tools) take a subset of JSON Schema:
``type``, primitive ``enum``/``const``, ``anyOf``/``allOf``, ``$ref``/``$defs``, ``description``/
``title``, ``properties``/``required`` with ``additionalProperties: false``, ``items``, ``minItems``
0 or 1, and ``format`` from a fixed set. This is the reduction the official SDK applies before it
sends a schema (``anthropic.lib._parse._transform.transform_schema``, SDK 2.10): every other keyword
(``minLength``, ``maxLength``, ``minimum``, ``pattern`` …) moves into the description as
``{key: value}`` so the model may still follow it. The reply is still validated locally against
the workload's whole schema, so a constraint the API cannot enforce is still enforced here.
"""

from __future__ import annotations

from typing import Any

STRING_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6",
                            "uuid"})


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` reduced to the structured-outputs subset (see the module docstring)."""
    node = dict(schema)
    out: dict[str, Any] = {}
    if "$defs" in node:
        out["$defs"] = {name: strict_schema(sub) for name, sub in node.pop("$defs").items()}
    if "$ref" in node:
        out["$ref"] = node.pop("$ref")
        return out
    kind = node.pop("type", None)
    any_of, one_of, all_of = node.pop("anyOf", None), node.pop("oneOf", None), node.pop("allOf", None)
    enum = node.get("enum")
    if isinstance(enum, list) and enum and all(_primitive(v) for v in enum):
        out["enum"] = node.pop("enum")
    if "const" in node and _primitive(node["const"]):
        out["const"] = node.pop("const")
    literal = "enum" in out or "const" in out
    if isinstance(any_of or one_of, list):
        out["anyOf"] = [strict_schema(sub) for sub in (any_of or one_of)]
    elif isinstance(all_of, list):
        out["allOf"] = [strict_schema(sub) for sub in all_of]
    elif not literal and kind is not None:
        out["type"] = kind
    for key in ("description", "title"):
        if key in node:
            out[key] = node.pop(key)
    if kind == "object" and not literal:
        out["properties"] = {name: strict_schema(sub) for name, sub in node.pop("properties", {}).items()}
        node.pop("additionalProperties", None)
        out["additionalProperties"] = False
        if "required" in node:
            out["required"] = node.pop("required")
    elif kind == "string" and node.get("format") in STRING_FORMATS:
        out["format"] = node.pop("format")
    elif kind == "array":
        if "items" in node:
            out["items"] = strict_schema(node.pop("items"))
        if node.get("minItems") in (0, 1):
            out["minItems"] = node.pop("minItems")
    if node:
        rest = "{" + ", ".join(f"{key}: {value}" for key, value in node.items()) + "}"
        out["description"] = f"{out['description']}\n\n{rest}" if "description" in out else rest
    return out


def _primitive(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
