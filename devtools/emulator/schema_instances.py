"""Build a JSON value that satisfies a JSON Schema, steered by the request's own text.

Used for forced tool use (the tool's ``input_schema``) and for structured output
(``output_config.format.schema``). The value is a pure function of the schema, the request
text and a seed, so the same request always gets the same answer:

* ``enum``: the value that occurs earliest in the user's text as a whole word (case-insensitive,
  ``_``/``-``/space interchangeable, so ``feature_request`` matches "feature request"); when
  none occurs, a stable hash pick.
* strings: the request's sentences in order (first string → first sentence …), trimmed at a
  word boundary to ``maxLength`` and padded to ``minLength``; ``format`` date, date-time,
  email, uri and uuid get well-formed values; ``pattern`` is best effort.
* integers and numbers: a stable pick inside ``minimum``/``maximum`` (exclusive bounds and
  ``multipleOf`` honoured).
* arrays: ``minItems`` items (at least one when allowed), distinct when ``uniqueItems``.
* objects: every declared property, in schema order; ``$ref`` into ``$defs``/``definitions``,
  ``allOf`` (merged), ``anyOf``/``oneOf`` (first non-null branch) and ``const`` are followed.

``variant`` > 0 gives a different but still valid value (used to perturb replies).
:func:`disagreeing_value` gives another valid value for one top-level field (a model whose
profile says it disagrees there, see ``model_profiles.py``).
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from emulator.hashing import hex_digest, pick_index, unit_interval

MAX_DEPTH = 12
_NON_STRING_TYPES = ("integer", "number", "boolean", "object", "array", "null")
_FILLER_WORDS = ("details", "follow", "noted", "context", "summary", "review", "item", "record")


@dataclass
class TextHints:
    """What the generator may borrow from the request."""

    text: str
    seed: str
    variant: int = 0
    sentences: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.sentences = split_sentences(self.text)


def split_sentences(text: str) -> list[str]:
    pieces = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    return [piece.strip() for piece in pieces if piece and piece.strip()]


@lru_cache(maxsize=4096)
def _word_pattern(value: str) -> re.Pattern[str] | None:
    parts = [part for part in re.split(r"[\s_-]+", value) if part]
    if not parts:
        return None
    body = r"[\s_-]+".join(re.escape(part) for part in parts)
    return re.compile(rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])", re.IGNORECASE)


def earliest_enum_match(values: list[Any], text: str) -> int | None:
    """Index of the enum value whose first whole-word occurrence in ``text`` comes first."""
    best: tuple[int, int] | None = None
    for index, value in enumerate(values):
        if value is None or isinstance(value, dict | list):
            continue
        pattern = _word_pattern(str(value))
        if pattern is None:
            continue
        match = pattern.search(text)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), index)
    return None if best is None else best[1]


#: The ``{key: value, …}`` that the SDK's ``transform_schema`` (and Nightshift's copy of it) appends
#: to a description for a constraint structured outputs cannot enforce: a model reads and
#: follows it, so the emulator's replies do too.
_DESCRIBED = re.compile(r"\{((?:\s*[A-Za-z]+: -?[0-9.]+,?)+)\s*\}\s*$")


def described_constraints(schema: dict[str, Any]) -> dict[str, Any]:
    description = schema.get("description")
    match = _DESCRIBED.search(description) if isinstance(description, str) else None
    if match is None:
        return {}
    found: dict[str, Any] = {}
    for pair in match.group(1).split(","):
        if ":" in pair:
            key, value = (part.strip() for part in pair.split(":", 1))
            found[key] = float(value) if "." in value else int(value)
    return found


class InstanceBuilder:
    def __init__(self, root_schema: dict[str, Any], hints: TextHints) -> None:
        self.root = root_schema
        self.hints = hints
        self._strings_used = 0

    def build(self) -> Any:
        return self._value(self.root, "$", 0)

    # --- schema plumbing --------------------------------------------------------------

    def _resolve(self, schema: Any, depth: int) -> dict[str, Any]:
        if not isinstance(schema, dict):
            return {}
        seen = 0
        while "$ref" in schema and seen < MAX_DEPTH:
            target = self._follow_ref(schema["$ref"])
            rest = {key: value for key, value in schema.items() if key != "$ref"}
            schema = {**target, **rest}
            seen += 1
        if "allOf" in schema:
            merged: dict[str, Any] = {key: value for key, value in schema.items() if key != "allOf"}
            for part in schema["allOf"]:
                part = self._resolve(part, depth)
                for key, value in part.items():
                    if key == "properties":
                        merged["properties"] = {**merged.get("properties", {}), **value}
                    elif key == "required":
                        merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
                    else:
                        merged.setdefault(key, value)
            schema = merged
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self._resolve(option, depth) for option in schema[key]]
                fallback = options[0] if options else {}
                chosen = next((option for option in options if option.get("type") != "null"), fallback)
                rest = {k: v for k, v in schema.items() if k != key}
                schema = {**rest, **chosen}
        return {**described_constraints(schema), **schema}

    def _follow_ref(self, ref: str) -> dict[str, Any]:
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                return {}
        return node if isinstance(node, dict) else {}

    @staticmethod
    def _type_of(schema: dict[str, Any]) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            non_null = [k for k in kind if k != "null"]
            kind = non_null[0] if non_null else "null"
        if isinstance(kind, str):
            return kind
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if any(key in schema for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            return "number"
        return "string"

    def _value(self, schema: Any, path: str, depth: int) -> Any:
        schema = self._resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self._enum(schema["enum"], path)
        kind = self._type_of(schema)
        if kind == "object":
            return self._object(schema, path, depth)
        if kind == "array":
            return self._array(schema, path, depth)
        if kind == "integer":
            return self._integer(schema, path)
        if kind == "number":
            return self._number(schema, path)
        if kind == "boolean":
            return (unit_interval(self.hints.seed, path) < 0.5) != bool(self.hints.variant % 2)
        if kind == "null":
            return None
        return self._string(schema, path)

    # --- leaves -----------------------------------------------------------------------

    def _enum(self, values: list[Any], path: str) -> Any:
        index = earliest_enum_match(values, self.hints.text)
        if index is None:
            index = pick_index(len(values), self.hints.seed, path)
        return values[(index + self.hints.variant) % len(values)]

    def _string(self, schema: dict[str, Any], path: str) -> str:
        min_length = int(schema.get("minLength", 0))
        max_length = schema.get("maxLength")
        token = hex_digest(self.hints.seed, path, self.hints.variant, length=12)
        formatted = _formatted_string(schema.get("format"), token)
        if formatted is not None:
            return formatted
        if self.hints.sentences:
            candidate = self.hints.sentences[self._strings_used % len(self.hints.sentences)]
            self._strings_used += 1
        else:
            candidate = f"value {token}"
        if self.hints.variant:
            candidate = f"Alternatively {self.hints.variant}: {candidate}"
        candidate = _fit_length(candidate, min_length, max_length, token)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            candidate = _satisfy_pattern(pattern, candidate, min_length, max_length, token)
        return candidate

    def _integer(self, schema: dict[str, Any], path: str) -> int:
        low, high = _bounds(schema, integer=True)
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0 and float(step).is_integer():
            step = int(step)
            first = math.ceil(low / step)
            last = math.floor(high / step)
            if last >= first:
                return step * (first + self._offset(last - first + 1, path))
        return int(low + self._offset(int(high - low) + 1, path))

    def _number(self, schema: dict[str, Any], path: str) -> float | int:
        low, high = _bounds(schema, integer=False)
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0:
            first = math.ceil(low / step)
            last = math.floor(high / step)
            if last >= first:
                return round(step * (first + self._offset(last - first + 1, path)), 10)
        fraction = unit_interval(self.hints.seed, path, self.hints.variant)
        value = round(low + (high - low) * fraction, 2)
        return min(max(value, low), high)

    def _offset(self, span: int, path: str) -> int:
        return (pick_index(max(span, 1), self.hints.seed, path) + self.hints.variant) % max(span, 1)

    # --- containers -------------------------------------------------------------------

    def _array(self, schema: dict[str, Any], path: str, depth: int) -> list[Any]:
        min_items = int(schema.get("minItems", 0))
        max_items = schema.get("maxItems")
        count = max(min_items, 1)
        if self.hints.variant:
            count += 1
        if isinstance(max_items, int):
            count = min(count, max_items)
        if depth >= MAX_DEPTH:
            count = min_items
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
        item_schema = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        unique = bool(schema.get("uniqueItems"))
        items: list[Any] = []
        attempt = 0
        while len(items) < count and attempt < count * 8:
            position = len(items)
            sub = prefix[position] if position < len(prefix) else item_schema
            item_path = f"{path}[{position}]#{attempt}" if attempt else f"{path}[{position}]"
            value = self._value(sub, item_path, depth + 1)
            attempt += 1
            if unique and value in items:
                resolved = self._resolve(sub, depth)
                alternatives = [v for v in resolved.get("enum", []) if v not in items]
                if alternatives:
                    value = alternatives[0]
                else:
                    continue
            items.append(value)
        return items

    def _object(self, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = [name for name in schema.get("required", []) if isinstance(name, str)]
        names = list(properties)
        names += [name for name in required if name not in properties]
        if depth >= MAX_DEPTH:
            names = required
        result: dict[str, Any] = {}
        for name in names:
            result[name] = self._value(properties.get(name, {}), f"{path}.{name}", depth + 1)
        min_properties = int(schema.get("minProperties", 0))
        extra = 0
        while len(result) < min_properties and schema.get("additionalProperties", True) is not False:
            result[f"extra_{extra}"] = f"value {extra}"
            extra += 1
        return result


def _bounds(schema: dict[str, Any], *, integer: bool) -> tuple[float, float]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    exclusive_low = schema.get("exclusiveMinimum")
    exclusive_high = schema.get("exclusiveMaximum")
    nudge = 1 if integer else 0.01
    if isinstance(exclusive_low, bool):  # draft 4 style
        if exclusive_low and low is not None:
            low = low + nudge
    elif isinstance(exclusive_low, int | float):
        low = max(low, exclusive_low + nudge) if low is not None else exclusive_low + nudge
    if isinstance(exclusive_high, bool):
        if exclusive_high and high is not None:
            high = high - nudge
    elif isinstance(exclusive_high, int | float):
        high = min(high, exclusive_high - nudge) if high is not None else exclusive_high - nudge
    if low is None and high is None:
        low, high = 0, 100
    elif low is None:
        low = high - 100
    elif high is None:
        high = low + 100
    if integer:
        low, high = math.ceil(low), math.floor(high)
    if high < low:
        high = low
    return low, high


def _formatted_string(fmt: Any, token: str) -> str | None:
    number = int(token, 16)
    date = f"20{20 + number % 10}-{1 + number % 12:02d}-{1 + number % 28:02d}"
    time = f"{number % 24:02d}:{number % 60:02d}:00Z"
    if fmt == "date":
        return date
    if fmt == "date-time":
        return f"{date}T{time}"
    if fmt == "time":
        return time
    if fmt == "email":
        return f"user-{token[:8]}@example.com"
    if fmt in ("uri", "url"):
        return f"https://example.com/{token[:8]}"
    if fmt == "uuid":
        return str(uuid.UUID(hex=(token * 3)[:32]))
    return None


def _fit_length(text: str, min_length: int, max_length: Any, token: str) -> str:
    """Trim at a word boundary to ``max_length``; pad with stable filler words to ``min_length``."""
    if isinstance(max_length, int) and len(text) > max_length:
        cut = text[:max_length]
        if not text[max_length].isspace() and " " in cut:
            cut = cut[: cut.rfind(" ")]
        text = cut.rstrip() or text[:max_length]
    filler = 0
    while len(text) < min_length:
        word = _FILLER_WORDS[int(token[filler % len(token)], 16) % len(_FILLER_WORDS)]
        text = f"{text} {word}".strip()
        filler += 1
    if isinstance(max_length, int) and len(text) > max_length:
        text = text[:max_length]
    return text


def _satisfy_pattern(pattern: str, candidate: str, min_length: int, max_length: Any, token: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error:
        return candidate
    options = [candidate, token, token.upper(), token[:8], "a", "A", "0", "value"]
    for option in options:
        if compiled.search(option) and len(option) >= min_length and (
            not isinstance(max_length, int) or len(option) <= max_length
        ):
            return option
    return candidate


def build_instance(schema: dict[str, Any], *, text: str, seed: str, variant: int = 0) -> Any:
    return InstanceBuilder(schema, TextHints(text=text, seed=seed, variant=variant)).build()


#: What a model that disagrees puts in a free-text field: prose unlike the request's own sentences.
_DISSENTS = (
    "A closer reading points to another answer than the obvious one.",
    "The request is ambiguous; this reply takes the other reading of it.",
    "Not enough detail was given to support the first interpretation.",
    "On balance a different conclusion fits the facts described better.",
)


def disagreeing_value(schema: dict[str, Any], instance: dict[str, Any], name: str, *, text: str,
                      seed: str) -> Any:
    """A valid value of top-level property ``name`` unlike ``instance[name]``, derived from ``seed``:
    another member of an enum, other prose for free text, another value of any other type. The
    current value comes back only when the schema allows no other (a ``const``, a one-value enum)."""
    builder = InstanceBuilder(schema, TextHints(text=text, seed=seed, variant=1))
    root = builder._resolve(schema, 0)
    properties = root.get("properties") if isinstance(root.get("properties"), dict) else {}
    sub = builder._resolve(properties.get(name, {}), 1)
    current = instance[name]
    if "const" in sub:
        return current
    if isinstance(sub.get("enum"), list) and sub["enum"]:
        others = [value for value in sub["enum"] if value != current]
        return others[pick_index(len(others), seed, "enum")] if others else current
    if builder._type_of(sub) == "string" and sub.get("format") is None and sub.get("pattern") is None:
        token = hex_digest(seed, "dissent", length=12)
        prose = _DISSENTS[pick_index(len(_DISSENTS), seed, "dissent")]
        for candidate in (prose, f"value {token}", token):
            fitted = _fit_length(candidate, int(sub.get("minLength", 0)), sub.get("maxLength"), token)
            if fitted != current:
                return fitted
        return current
    for variant in (1, 2, 3):
        builder.hints.variant = variant
        value = builder._value(sub, f"$.{name}", 1)
        if value != current:
            return value
    return current


def violate(schema: dict[str, Any], instance: Any) -> Any:
    """A value that is still JSON but breaks ``schema`` (for deliberately malformed replies)."""
    if isinstance(instance, dict):
        required = [name for name in schema.get("required", []) if name in instance]
        if required:
            broken = dict(instance)
            del broken[required[0]]
            return broken
        properties = schema.get("properties") or {}
        for name, sub in properties.items():
            if isinstance(sub, dict) and sub.get("type") == "string":
                return {**instance, name: 12345}
            if isinstance(sub, dict) and sub.get("type") in _NON_STRING_TYPES:
                return {**instance, name: "not the expected type"}
        return [instance]
    return {"unexpected": instance}
