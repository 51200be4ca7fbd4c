"""Prompt caching: which part of a request's input is written to, or read from, the cache.

A ``cache_control`` breakpoint (on a tool, a system block or a message content block, or the
top-level ``cache_control`` that marks the last block) makes the prompt prefix up to and
including that block cacheable, provided the prefix is at least the model's
``min_cacheable_tokens`` long. The longest breakpoint prefix found in the cache (per model,
unexpired in virtual time) is read; every eligible breakpoint beyond it is written. Written
tokens are attributed to the TTL of the breakpoint that closes them. A hit refreshes the
entry's TTL, as the real cache does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from emulator.hashing import canonical_json
from emulator.models import Tokenizer
from emulator.store import Store
from emulator.tokens import request_segments

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
DEFAULT_TTL = "5m"


@dataclass(frozen=True)
class Breakpoint:
    prefix_tokens: int
    prefix_hash: str
    ttl: str


@dataclass(frozen=True)
class CacheUsage:
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int


def breakpoints(params: dict[str, Any], tokenizer: Tokenizer | None = None) -> list[Breakpoint]:
    segments = list(request_segments(params, tokenizer))
    markers: list[dict[str, Any] | None] = [segment.cache_control for segment in segments]
    automatic = params.get("cache_control")
    if isinstance(automatic, dict):
        for index in range(len(segments) - 1, -1, -1):
            if segments[index].is_block:
                markers[index] = markers[index] or automatic
                break
    found: list[Breakpoint] = []
    hasher = hashlib.sha256()
    prefix_tokens = 0
    for segment, marker in zip(segments, markers, strict=True):
        hasher.update(canonical_json(segment.payload).encode("utf-8"))
        hasher.update(b"\x1e")
        prefix_tokens += segment.tokens
        if marker is not None:
            ttl = marker.get("ttl") or DEFAULT_TTL
            found.append(Breakpoint(prefix_tokens, hasher.copy().hexdigest(), ttl))
    return found


def cache_markers(params: dict[str, Any]) -> list[Any]:
    """Every ``cache_control`` value in the request (top-level included), valid or not."""
    markers = [params["cache_control"]] if params.get("cache_control") is not None else []
    blocks: list[Any] = list(params.get("tools") or [])
    if isinstance(params.get("system"), list):
        blocks += params["system"]
    for message in params.get("messages") or []:
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            blocks += message["content"]
    markers += [
        block["cache_control"]
        for block in blocks
        if isinstance(block, dict) and block.get("cache_control") is not None
    ]
    return markers


def apply_prompt_cache(
    store: Store,
    *,
    model: str,
    params: dict[str, Any],
    at: float,
    min_cacheable_tokens: int,
    total_tokens: int,
    tokenizer: Tokenizer | None = None,
) -> CacheUsage:
    """Look the request's prefixes up at virtual time ``at`` and record what it writes."""
    total = total_tokens
    if not cache_markers(params):
        return CacheUsage(total, 0, 0, 0, 0)
    eligible = [bp for bp in breakpoints(params, tokenizer) if bp.prefix_tokens >= min_cacheable_tokens]
    read_tokens = 0
    hit = -1
    for index in range(len(eligible) - 1, -1, -1):
        breakpoint = eligible[index]
        entry = store.get_cache_entry(model, breakpoint.prefix_hash)
        if entry is not None and entry[0] <= at < entry[1]:
            read_tokens = breakpoint.prefix_tokens
            hit = index
            store.put_cache_entry(
                model, breakpoint.prefix_hash, entry[0], max(entry[1], at + TTL_SECONDS[breakpoint.ttl])
            )
            break
    written = {"5m": 0, "1h": 0}
    covered = read_tokens
    for breakpoint in eligible[hit + 1 :]:
        written[breakpoint.ttl] += max(0, breakpoint.prefix_tokens - covered)
        covered = max(covered, breakpoint.prefix_tokens)
        store.put_cache_entry(model, breakpoint.prefix_hash, at, at + TTL_SECONDS[breakpoint.ttl])
    creation = written["5m"] + written["1h"]
    return CacheUsage(
        input_tokens=total - read_tokens - creation,
        cache_creation_input_tokens=creation,
        cache_read_input_tokens=read_tokens,
        ephemeral_5m_input_tokens=written["5m"],
        ephemeral_1h_input_tokens=written["1h"],
    )
