"""How a reply becomes destination values: find the answer (a forced tool call, or the JSON text of
structured outputs; ``thinking`` blocks are never the answer) and validate it.

Anything that is not exactly a schema-valid tool call is an :class:`InvalidOutput` with a
reason a person can act on. A value outside the schema's enum (a prompt-injected label,
say) never reaches the destination table.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from nightshift.workloads.definition import TEXT_FIELD, Workload


class InvalidOutput(ValueError):
    error_type = "invalid_output"


# Text Postgres cannot store (NUL in text or jsonb) or UTF-8 cannot encode (half a surrogate pair):
# a reply carrying either would fail the whole slice it lands in, so it fails alone, here.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


_validators: dict[int, tuple[dict, jsonschema.Draft202012Validator, Any]] = {}


def _compiled(workload: Workload) -> tuple[dict, jsonschema.Draft202012Validator, Any]:
    """The schema's validators, built once per schema object (kept alive beside them, so its id
    is not reused): ``jsonschema``'s, which explains errors, and a compiled one when available."""
    schema = workload.output.json_schema
    if id(schema) not in _validators:
        _validators[id(schema)] = (schema, jsonschema.Draft202012Validator(schema), _fast_validator(schema))
    return _validators[id(schema)]


def _validator(workload: Workload) -> jsonschema.Draft202012Validator:
    return _compiled(workload)[1]


def _fast_validator(schema: dict) -> Any:
    """``jsonschema_rs`` (Rust) checks a reply ~60× faster than ``jsonschema``: on the land step's
    hot path that is 2.3 s of 100,000 results down to 0.04 s. It only says yes or no; a no is
    explained (and decided) by ``jsonschema``, so messages and verdicts on bad replies are unchanged."""
    try:
        import jsonschema_rs
    except ImportError:  # optional speed-up: without it every reply goes through jsonschema
        return None
    return jsonschema_rs.Draft202012Validator(schema)


def as_dict(message: Any) -> dict[str, Any]:
    """Accept an SDK ``Message`` or its JSON form."""
    if isinstance(message, dict):
        return message
    return message.model_dump(mode="json")


def extract_output(workload: Workload, message: dict[str, Any]) -> dict[str, Any]:
    """The validated tool input of a reply, or :class:`InvalidOutput` saying what is wrong."""
    stop_reason = message.get("stop_reason")
    if stop_reason == "max_tokens":
        thinking = ((message.get("usage") or {}).get("output_tokens_details") or {}).get("thinking_tokens")
        spent = f"; thinking used {thinking} of them" if thinking else ""
        raise InvalidOutput(f"reply stopped at max_tokens ({workload.max_tokens}) before it was complete{spent}")
    if stop_reason == "refusal":
        raise InvalidOutput("the model refused to answer")
    if workload.output.is_text:
        return _text_output(workload, message)
    output = None
    for block in _blocks(message):
        if block.get("type") == "tool_use" and block.get("name") == workload.output.tool_name:
            output = block.get("input")
            break
    if output is None:
        output = _json_from_text(workload, message)
    _, validator, fast = _compiled(workload)
    if fast is None or not fast.is_valid(output):
        errors = sorted(validator.iter_errors(output), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "(reply)"
            raise InvalidOutput(f"reply violates the output schema at {where}: {first.message}"[:500])
    _check_storable(output, "")
    return output


def _text_output(workload: Workload, message: dict[str, Any]) -> dict[str, Any]:
    """A plain-text output: the reply's text blocks (never its thinking), as the one field ``text``."""
    text = "".join(str(b.get("text", "")) for b in _blocks(message) if b.get("type") == "text")
    if not text.strip():
        raise InvalidOutput("reply has no text")
    limit = workload.output.max_chars
    if limit is not None and len(text) > limit:
        raise InvalidOutput(f"reply is {len(text)} characters long, over output.max_chars ({limit})")
    output = {TEXT_FIELD: text}
    _check_storable(output, "")
    return output


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _check_storable(value: Any, where: str) -> None:
    """Every string of the output, keys included, must be text the destination can hold."""
    if isinstance(value, str):
        if bad := _UNSTORABLE.search(value):
            what = "a NUL character" if bad.group() == "\x00" else f"a lone surrogate U+{ord(bad.group()):04X}"
            raise InvalidOutput(f"reply has {what} at {where or '(reply)'} (character {bad.start()}), "
                                "which the destination cannot store")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, f"{where}/{key!r} (a key)".lstrip("/"))
            _check_storable(item, f"{where}/{key}".lstrip("/"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_storable(item, f"{where}/{index}".lstrip("/"))


def _json_from_text(workload: Workload, message: dict[str, Any]) -> Any:
    text = "".join(str(b.get("text", "")) for b in _blocks(message) if b.get("type") == "text")  # not thinking
    if not text.strip():
        raise InvalidOutput(f"reply has no {workload.output.tool_name!r} tool call and no text")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidOutput(
            f"reply has no {workload.output.tool_name!r} tool call and its text is not JSON "
            f"({exc.msg} at character {exc.pos}): {text[:80]!r}"
        ) from None
