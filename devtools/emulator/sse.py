"""Render a finished Message as the server-sent events of a streamed ``POST /v1/messages``.

The sequence is the real API's: ``message_start`` (empty content, ``stop_reason`` null),
then per content block ``content_block_start`` → ``content_block_delta`` (``text_delta``, ``input_json_delta``, or
``thinking_delta`` then one ``signature_delta`` for a thinking block) … → ``content_block_stop`` (with one ``ping`` after the first start),
then ``message_delta`` (``stop_reason``, ``stop_sequence`` and cumulative ``usage``) and
``message_stop``. Accumulating the events gives back exactly the non-streamed Message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from emulator.replies import json_text

WORDS_PER_DELTA = 3
JSON_CHARS_PER_DELTA = 24


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json_text(data)}\n\n"


def _delta(index: int, delta: dict[str, Any]) -> str:
    return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _text_pieces(text: str) -> Iterator[str]:
    words = re.findall(r"\S+\s*|\s+", text)
    for start in range(0, len(words), WORDS_PER_DELTA):
        yield "".join(words[start : start + WORDS_PER_DELTA])


def message_events(message: dict[str, Any]) -> Iterator[str]:
    usage = message["usage"]
    opening = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": min(1, usage["output_tokens"])},
    }
    yield _event("message_start", {"type": "message_start", "message": opening})
    pinged = False
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            start = {**block, "thinking": "", "signature": ""}
            yield _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
            if not pinged:
                yield _event("ping", {"type": "ping"})
                pinged = True
            for piece in _text_pieces(block.get("thinking", "")):
                yield _delta(index, {"type": "thinking_delta", "thinking": piece})
            yield _delta(index, {"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "tool_use":
            yield _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}},
            )
            if not pinged:
                yield _event("ping", {"type": "ping"})
                pinged = True
            encoded = json.dumps(block["input"], ensure_ascii=False)
            for start in range(0, len(encoded), JSON_CHARS_PER_DELTA):
                piece = encoded[start : start + JSON_CHARS_PER_DELTA]
                yield _delta(index, {"type": "input_json_delta", "partial_json": piece})
        else:
            yield _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": {**block, "text": ""}},
            )
            if not pinged:
                yield _event("ping", {"type": "ping"})
                pinged = True
            for piece in _text_pieces(block.get("text", "")):
                yield _delta(index, {"type": "text_delta", "text": piece})
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
    if not pinged:
        yield _event("ping", {"type": "ping"})
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
            "usage": {
                "input_tokens": usage["input_tokens"],
                "output_tokens": usage["output_tokens"],
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
            },
        },
    )
    yield _event("message_stop", {"type": "message_stop"})
