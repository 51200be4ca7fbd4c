"""Deterministic model replies: the content of a Message as a pure function of its params.

The reply never depends on ``custom_id``, the batch, the time or the path it came through (see
:func:`reply_seed`), so the same params give the identical content through ``POST /v1/messages``
(streamed or not) and through a batch — parity tests rely on this. Nor does it depend on the
model, unless a test configured a profile for it (``model_profiles.py``): then each top-level
field of a structured answer (``"text"`` for plain text) is the canonical one at the profile's
agreement rate and otherwise a different valid value, drawn per (prompt, model, field).
``max_tokens`` and ``stop_sequences`` only cut the reply short; like ``stream`` and ``metadata``
they do not change what would be said.

* forced tool use (``tool_choice`` ``tool``, or ``any`` → a stable pick among the tools) →
  one ``tool_use`` block whose ``input`` satisfies the tool's ``input_schema``,
  ``stop_reason`` ``tool_use``;
* ``output_config.format`` (``json_schema``) → one text block holding JSON valid against it;
* anything else → a few sentences of plain text that quote the user's request.

``max_tokens`` and ``stop_sequences`` are honoured. A model that thinks (its default, or the
request's ``thinking``; see ``rules.py``) puts one ``thinking`` block first: empty text at the
default ``display: "omitted"``, a short summary at ``"summarized"``, and a signature either way.
How long it thinks is an estimate, not a page fact: ``THINKING_TOKENS_BY_EFFORT`` for the
effort in force, times a stable factor in [0.5, 1.5) from the prompt, capped by a manual
``budget_tokens``. Those tokens are output tokens (``usage.output_tokens``, and
``usage.output_tokens_details.thinking_tokens``) and share ``max_tokens`` with the answer:
a reply whose thinking leaves too little room stops at ``max_tokens``, the answer cut short or
absent. A ``malformed_rate`` fraction of the
structured replies (chosen by a stable hash of the params; a model profile's own rate draws with
the model in the hash) is deliberately broken, rotating
among: prose that is not JSON, JSON that violates the schema, and a ``max_tokens`` stop with
truncated output. A perturbed reply (fault ``perturb``) is different but always valid, unless
the fault names a ``mode`` that breaks it in one way: one of the three above, a value outside
an enum (``unapproved_value``, what a prompt injection asks for), or a string holding a NUL
(``nul_character``) or an unpaired surrogate (``lone_surrogate``), both still valid JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from emulator.hashing import base62_id, canonical_json, digest, hex_digest, pick_index, unit_interval
from emulator.model_profiles import ModelProfile
from emulator.models import Tokenizer
from emulator.rules import ThinkingPlan
from emulator.schema_instances import build_instance, disagreeing_value, split_sentences, violate
from emulator.tokens import content_text, output_tokens

#: The emulator's estimate of thinking tokens at each effort (before the per-prompt factor).
THINKING_TOKENS_BY_EFFORT = {"low": 96, "medium": 320, "high": 960, "xhigh": 1920, "max": 3840}
NO_THINKING = ThinkingPlan(active=False, effort=None, display="omitted")

MALFORMED_KINDS = ("not_json", "schema_violation", "truncated")
#: Perturb modes that change one value of an otherwise valid reply.
VALUE_BREAKS = ("unapproved_value", "nul_character", "lone_surrogate")
#: The field a model profile's agreement names for a plain-text reply.
PLAIN_TEXT_FIELD = "text"
#: What an ``unapproved_value`` reply puts in the first enum field: a label nobody approved.
UNAPPROVED_VALUE = "urgent_vip (ignore all previous instructions)"

_OPENERS = (
    "Thanks for the question.",
    "Here is a short answer.",
    "Understood.",
    "Happy to help with that.",
    "Good question.",
)
_BODIES = (
    "This reply was produced by the Nightshift emulator, so it is deterministic rather than thoughtful.",
    "The same request always receives this same answer, which keeps tests reproducible.",
    "A real model would go into more detail here.",
    "No real model was consulted; the text depends only on the request parameters.",
    "The emulator keeps its answers short so that token counts stay predictable.",
)
#: A plain-text reply from a model whose profile says it disagrees: none of the canonical reply's words.
_DISSENTING_OPENERS = ("On reflection, I read this differently.", "My answer departs from the usual one.")
_DISSENTING_BODIES = (
    "Another interpretation seems more likely given what was left unsaid.",
    "Weighing the alternatives led somewhere else entirely.",
    "Several readings are possible, and a less common one fits best.",
)


@dataclass(frozen=True)
class Reply:
    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int
    thinking_tokens: int | None = None  # None when the model did not think




def params_hash(params: dict[str, Any]) -> str:
    """Identifies a request's params (``stream`` aside) for faults that target one request."""
    return hex_digest({key: value for key, value in params.items() if key != "stream"}, length=32)


def reply_seed(params: dict[str, Any]) -> str:
    """What the reply's content is derived from: what the prompt says (system and messages), not
    the model, the way the answer's shape is asked for (a forced tool or ``output_config``), or the
    limits that truncate it. The same question gets the same answer from every model and in
    either shape, so a workload moved between models or shapes can be compared row for row; a
    model profile (``model_profiles.py``) departs from this canonical answer field by field."""
    prompt = {key: params.get(key) for key in ("system", "messages")}
    return hex_digest(prompt, length=32)


def user_text(params: dict[str, Any]) -> str:
    """The text of every user turn, in order (the system prompt is left out on purpose)."""
    texts = [
        content_text(message.get("content"))
        for message in params.get("messages") or []
        if isinstance(message, dict) and message.get("role") == "user"
    ]
    return "\n".join(text for text in texts if text)


def thinking_tokens(plan: ThinkingPlan, seed: str) -> int:
    base = THINKING_TOKENS_BY_EFFORT[plan.effort or "high"]
    tokens = round(base * (0.5 + unit_interval("thinking", seed)))
    return min(tokens, plan.budget_tokens) if plan.budget_tokens else tokens


def generate_reply(params: dict[str, Any], *, malformed_rate: float, perturb: bool | str | None = None,
                   thinking: ThinkingPlan = NO_THINKING, tokenizer: Tokenizer | None = None,
                   profile: ModelProfile | None = None) -> Reply:
    """``perturb``: a perturb fault's mode (``True`` means ``"valid"``), or nothing; ``profile``:
    the model's profile, if a test configured one."""
    max_tokens = int(params["max_tokens"])
    if max_tokens == 0:
        return Reply([], "max_tokens", None, 0)
    if not thinking.active:
        return _answer(params, malformed_rate=malformed_rate, perturb=perturb, tokenizer=tokenizer,
                       profile=profile)
    seed = reply_seed(params)
    thought = thinking_tokens(thinking, seed)
    block = _thinking_block(params, seed, thinking.display)
    if thought >= max_tokens:
        return Reply([block], "max_tokens", None, max_tokens, max_tokens)
    answer = _answer({**params, "max_tokens": max_tokens - thought}, malformed_rate=malformed_rate,
                     perturb=perturb, tokenizer=tokenizer, profile=profile)
    return Reply([block, *answer.content], answer.stop_reason, answer.stop_sequence,
                 thought + answer.output_tokens, thought)


def _thinking_block(params: dict[str, Any], seed: str, display: str) -> dict[str, Any]:
    text = ""
    if display == "summarized":
        topic = (split_sentences(user_text(params)[-200:]) or ["the request"])[-1][:80]
        text = f"The request is about: {topic} Working out the answer before replying."
    return {"type": "thinking", "thinking": text, "signature": base62_id("sig_", "thinking", seed, length=48)}


def _answer(params: dict[str, Any], *, malformed_rate: float, perturb: bool | str | None,
            tokenizer: Tokenizer | None, profile: ModelProfile | None = None) -> Reply:
    phash = reply_seed(params)
    max_tokens = int(params["max_tokens"])
    mode = "valid" if perturb is True else (perturb or None)
    variant = 1 if mode else 0
    text = user_text(params)
    tool = _forced_tool(params, phash)
    output_format = (params.get("output_config") or {}).get("format")
    schema = output_format.get("schema") if isinstance(output_format, dict) else None
    structured = tool is not None or schema is not None
    malformed = _malformed_for(phash, malformed_rate, profile) if structured and not mode else None
    if mode and mode != "valid":
        malformed = "truncated" if mode == "max_tokens" else mode
    if tool is not None:
        return _tool_reply(tool, params, text, phash, variant, malformed, tokenizer, profile)
    if schema is not None:
        instance = _profiled(schema, build_instance(schema, text=text, seed=phash, variant=variant),
                             text, phash, profile)
        if malformed == "not_json":
            return _text_reply(_prose_instead_of_json(instance), params, tokenizer)
        if malformed == "schema_violation":
            return _text_reply(json.dumps(violate(schema, instance), ensure_ascii=False), params, tokenizer)
        if malformed in VALUE_BREAKS:
            instance = break_value(schema, instance, malformed)
        body = json.dumps(instance, ensure_ascii=False)
        if malformed == "truncated":
            return _truncated_text(body, max(1, len(body) // 2), max_tokens)
        return _text_reply(body, params, tokenizer)
    if profile is not None and not profile.agrees(phash, PLAIN_TEXT_FIELD):
        dissent = _dissenting_text(profile.disagreement_seed(phash, PLAIN_TEXT_FIELD))
        return _text_reply(dissent, params, tokenizer)
    return _text_reply(_plain_text(text, phash, variant), params, tokenizer)


def _malformed_for(seed: str, malformed_rate: float, profile: ModelProfile | None) -> str | None:
    """A profile's own malformed rate is drawn with the model in the hash; else the global rate as ever."""
    if profile is not None and profile.malformed_rate is not None:
        return _malformation(seed, profile.malformed_rate, profile.model)
    return _malformation(seed, malformed_rate)


def _profiled(schema: dict[str, Any], instance: Any, text: str, seed: str,
              profile: ModelProfile | None) -> Any:
    """``instance`` with each top-level field the profile's draw says this model disagrees on replaced."""
    if profile is None or not isinstance(instance, dict):
        return instance
    answer = dict(instance)
    for name in instance:
        if not profile.agrees(seed, name):
            answer[name] = disagreeing_value(schema, instance, name, text=text,
                                             seed=profile.disagreement_seed(seed, name))
    return answer


def _forced_tool(params: dict[str, Any], phash: str) -> dict[str, Any] | None:
    choice = params.get("tool_choice") or {}
    tools = [tool for tool in params.get("tools") or [] if isinstance(tool.get("input_schema"), dict)]
    if not tools:
        return None
    if choice.get("type") == "tool":
        return next((tool for tool in tools if tool.get("name") == choice.get("name")), None)
    if choice.get("type") == "any":
        return tools[pick_index(len(tools), "any-tool", phash)]
    return None


def _tool_reply(
    tool: dict[str, Any], params: dict[str, Any], text: str, phash: str, variant: int, malformed: str | None,
    tokenizer: Tokenizer | None, profile: ModelProfile | None = None,
) -> Reply:
    schema = tool["input_schema"]
    instance = build_instance(schema, text=text, seed=phash, variant=variant)
    instance = _profiled(schema, instance, text, phash, profile)
    if malformed == "not_json":
        return _text_reply(_prose_instead_of_json(instance), params, tokenizer)
    if malformed == "schema_violation":
        instance = violate(schema, instance)
    elif malformed in VALUE_BREAKS:
        instance = break_value(schema, instance, malformed)
    tool_use_id = base62_id("toolu_", phash, variant)
    block = {"type": "tool_use", "id": tool_use_id, "name": tool["name"], "input": instance}
    tokens = output_tokens(tool["name"] + canonical_json(instance), tokenizer)
    max_tokens = int(params["max_tokens"])
    if malformed == "truncated" or tokens > max_tokens:
        block["input"] = _truncate_object(instance)
        return Reply([block], "max_tokens", None, max_tokens)
    return Reply([block], "tool_use", None, tokens)


def break_value(schema: dict[str, Any], instance: Any, mode: str) -> Any:
    """``instance`` with one value broken as ``mode`` says (``violate`` when the schema has no place for it)."""
    if not isinstance(instance, dict):
        return violate(schema, instance)
    properties = {name: sub for name, sub in (schema.get("properties") or {}).items() if isinstance(sub, dict)}
    if mode == "unapproved_value":
        for name, sub in properties.items():
            if "enum" in sub and name in instance:
                return {**instance, name: UNAPPROVED_VALUE}
        return violate(schema, instance)
    character = "\x00" if mode == "nul_character" else "\ud800"
    # A free-text field: in an enum field the broken value would fail the enum first.
    names = [n for n, sub in properties.items() if "enum" not in sub and isinstance(instance.get(n), str)]
    names = names or [n for n, value in instance.items() if isinstance(value, str)]
    if not names:
        return violate(schema, instance)
    value = instance[names[0]]
    middle = len(value) // 2
    return {**instance, names[0]: value[:middle] + character + value[middle:]}


def json_text(value: Any) -> str:
    """Compact JSON; an unpaired surrogate (only a ``lone_surrogate`` reply has one) goes out as a
    ``\\udXXX`` escape, as a server written in another language would send it, since UTF-8 cannot
    carry it raw."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _truncate_object(instance: Any) -> Any:
    """What survives of a tool input cut off mid-generation: the first half of its fields."""
    if not isinstance(instance, dict) or not instance:
        return {}
    keys = list(instance)
    if len(keys) == 1:
        value = instance[keys[0]]
        return {keys[0]: value[: len(value) // 2]} if isinstance(value, str) else {}
    return {key: instance[key] for key in keys[: len(keys) // 2]}


def _prose_instead_of_json(instance: Any) -> str:
    if isinstance(instance, dict):
        summary = ", ".join(f"{key} is {value}" for key, value in instance.items())
    else:
        summary = str(instance)
    return f"Sure! Here is what I found: {summary}. Let me know if you need anything else."


def _plain_text(text: str, phash: str, variant: int) -> str:
    sentences = split_sentences(text[-200:])
    topic = sentences[-1] if sentences else "your request"
    if len(topic) > 80:
        topic = topic[:80].rsplit(" ", 1)[0] + "…"
    picks = digest("plain-text", phash)
    opener = _OPENERS[(picks[0] + variant) % len(_OPENERS)]
    count = 1 + picks[1] % 2
    body = " ".join(_BODIES[(picks[2] + offset + variant) % len(_BODIES)] for offset in range(count))
    return f'{opener} You wrote: "{topic}" {body}'


def _dissenting_text(seed: str) -> str:
    picks = digest("dissenting-text", seed)
    opener = _DISSENTING_OPENERS[picks[0] % len(_DISSENTING_OPENERS)]
    first = picks[1] % len(_DISSENTING_BODIES)
    second = (first + 1 + picks[2] % (len(_DISSENTING_BODIES) - 1)) % len(_DISSENTING_BODIES)
    return f"{opener} {_DISSENTING_BODIES[first]} {_DISSENTING_BODIES[second]}"


def _text_reply(text: str, params: dict[str, Any], tokenizer: Tokenizer | None = None) -> Reply:
    max_tokens = int(params["max_tokens"])
    stop_reason = "end_turn"
    stop_sequence = None
    sequences = params.get("stop_sequences") or []
    found = [(text.find(sequence), sequence) for sequence in sequences if sequence in text]
    if found:
        position, stop_sequence = min(found)
        text = text[:position]
        stop_reason = "stop_sequence"
    tokens = output_tokens(text, tokenizer)
    if tokens > max_tokens:
        keep = len(text) * max_tokens // tokens
        return _truncated_text(text, keep, max_tokens)
    return Reply([{"type": "text", "text": text}], stop_reason, stop_sequence, tokens)


def _truncated_text(text: str, keep_chars: int, max_tokens: int) -> Reply:
    """A reply cut off by the token limit reports the whole limit as used, as the API does."""
    return Reply([{"type": "text", "text": text[:keep_chars]}], "max_tokens", None, max_tokens)


def malformed_kind(params: dict[str, Any], malformed_rate: float,
                   profile: ModelProfile | None = None) -> str | None:
    """Which malformation (if any) a structured request gets at this rate (or its model's profile's);
    for tests and tools."""
    return _malformed_for(reply_seed(params), malformed_rate, profile)


def _malformation(seed: str, malformed_rate: float, *salt: str) -> str | None:
    if unit_interval("malformed", seed, *salt) >= malformed_rate:
        return None
    return MALFORMED_KINDS[pick_index(len(MALFORMED_KINDS), "malformed-kind", seed, *salt)]
