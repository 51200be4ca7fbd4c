"""The emulator's deterministic token estimate.

Real tokenisers are not available offline, so every count is this documented formula:

* text: ``ceil(characters × tokens_per_char)`` (Python ``len``, i.e. Unicode code points), 0 for "";
  ``tokens_per_char`` is the model's tokenizer from the catalogue: 1/4 for the older tokenizer,
  1.3 × that for the tokenizer of Claude 4.7 and later ("the same text counts as approximately
  30% more tokens", haiku-5-5-overview)
* each tool definition: the text estimate of its canonical JSON (``cache_control`` removed)
* system: the text estimate of each system block (or of the system string)
* each message: 3 tokens for the role turn, plus its content blocks:
  text → text estimate; image or non-text document → 1,600; tool_use → name + canonical JSON
  of the input; tool_result → its text content; thinking → its text; anything else → the
  canonical JSON of the block
* ``output_config.format`` schema: the text estimate of its canonical JSON
* 3 tokens at the end to open the assistant turn

The request is laid out as tools → system → messages, which is also the order in which a
``cache_control`` breakpoint's prefix is measured (see ``caching.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from emulator.hashing import canonical_json
from emulator.models import Tokenizer

MESSAGE_TURN_TOKENS = 3
REPLY_PRIMING_TOKENS = 3
NON_TEXT_MEDIA_TOKENS = 1_600
#: The estimate's rate when no model is named (the older tokenizer).
BASE_TOKENS_PER_CHAR = Fraction(1, 4)


def _rate(tokenizer: Tokenizer | None) -> Fraction:
    return BASE_TOKENS_PER_CHAR if tokenizer is None else tokenizer.tokens_per_char


def text_tokens(text: str, tokenizer: Tokenizer | None = None) -> int:
    rate = _rate(tokenizer)
    return -(-len(text) * rate.numerator // rate.denominator)  # exact ceil, no float


@dataclass(frozen=True)
class Segment:
    """One piece of the prompt in cache order; ``payload`` is what the cache key hashes."""

    tokens: int
    payload: Any
    cache_control: dict[str, Any] | None
    is_block: bool


def _without_cache_control(block: Any) -> Any:
    if isinstance(block, dict) and "cache_control" in block:
        return {key: value for key, value in block.items() if key != "cache_control"}
    return block


def _cache_control(block: Any) -> dict[str, Any] | None:
    if isinstance(block, dict) and isinstance(block.get("cache_control"), dict):
        return block["cache_control"]
    return None


def content_text(content: Any) -> str:
    """All plain text inside a message ``content`` (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif block.get("type") == "tool_result":
                parts.append(content_text(block.get("content", "")))
    return "\n".join(part for part in parts if part)


def block_tokens(block: Any, tokenizer: Tokenizer | None = None) -> int:
    def count(text: str) -> int:
        return text_tokens(text, tokenizer)

    if not isinstance(block, dict):
        return count(canonical_json(block))
    kind = block.get("type")
    if kind == "text":
        return count(str(block.get("text", "")))
    if kind == "image":
        return NON_TEXT_MEDIA_TOKENS
    if kind == "document":
        source = block.get("source") or {}
        if isinstance(source, dict) and source.get("type") == "text":
            return count(str(source.get("data", "")))
        return NON_TEXT_MEDIA_TOKENS
    if kind == "tool_use":
        return count(str(block.get("name", ""))) + count(canonical_json(block.get("input", {})))
    if kind == "tool_result":
        return count(content_text(block.get("content", "")))
    if kind == "thinking":
        return count(str(block.get("thinking", "")))
    return count(canonical_json(_without_cache_control(block)))


def request_segments(params: dict[str, Any], tokenizer: Tokenizer | None = None) -> Iterator[Segment]:
    """The prompt in cache order: tools, then system, then messages."""
    for tool in params.get("tools") or []:
        payload = _without_cache_control(tool)
        yield Segment(text_tokens(canonical_json(payload), tokenizer), {"tool": payload}, _cache_control(tool), True)
    system = params.get("system")
    if isinstance(system, str):
        if system:
            yield Segment(text_tokens(system, tokenizer), {"system": system}, None, True)
    elif isinstance(system, list):
        for block in system:
            payload = _without_cache_control(block)
            yield Segment(block_tokens(block, tokenizer), {"system": payload}, _cache_control(block), True)
    for message in params.get("messages") or []:
        if not isinstance(message, dict):
            continue
        yield Segment(MESSAGE_TURN_TOKENS, {"role": message.get("role")}, None, False)
        content = message.get("content")
        if isinstance(content, str):
            yield Segment(text_tokens(content, tokenizer), {"content": content}, None, True)
        elif isinstance(content, list):
            for block in content:
                payload = _without_cache_control(block)
                yield Segment(block_tokens(block, tokenizer), {"content": payload}, _cache_control(block), True)


def tail_tokens(params: dict[str, Any], tokenizer: Tokenizer | None = None) -> int:
    """Tokens after the cacheable prompt: the output schema and the reply priming."""
    tokens = REPLY_PRIMING_TOKENS
    output_format = (params.get("output_config") or {}).get("format")
    if isinstance(output_format, dict) and isinstance(output_format.get("schema"), dict):
        tokens += text_tokens(canonical_json(output_format["schema"]), tokenizer)
    return tokens


def input_tokens(params: dict[str, Any], tokenizer: Tokenizer | None = None) -> int:
    """Total prompt tokens (what ``count_tokens`` reports)."""
    segments = sum(segment.tokens for segment in request_segments(params, tokenizer))
    return segments + tail_tokens(params, tokenizer)


def output_tokens(text: str, tokenizer: Tokenizer | None = None) -> int:
    """Output is never 0 tokens for a non-empty reply, as with the real API."""
    return max(1, text_tokens(text, tokenizer))
