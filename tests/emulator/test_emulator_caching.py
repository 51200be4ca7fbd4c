"""Prompt caching: minimum cacheable length, TTLs on the virtual clock, breakpoints and batches."""

from __future__ import annotations

import anthropic
import pytest

from emulator.models import resolve_model
from emulator.testing import EmulatorServer, message_params
from emulator import tokens

MODEL = "claude-opus-5-5"  # 512-token minimum in emulator/data/models.json
TOKENIZER = resolve_model(MODEL).tokenizer  # the newer tokenizer: 13 tokens per 40 characters
LONG_SYSTEM = "Stable instructions that all requests will share. " * 96  # 4,800 chars = 1,560 tokens
SHORT_SYSTEM = "Too short to cache. " * 20  # 400 chars = 130 tokens


def text_tokens(text: str) -> int:
    return tokens.text_tokens(text, TOKENIZER)


def input_tokens(params: dict) -> int:
    return tokens.input_tokens(params, resolve_model(params["model"]).tokenizer)


def _params(question: str, system: str = LONG_SYSTEM, ttl: str | None = None, model: str = MODEL, **extra):
    """A request whose system block carries a cache_control breakpoint."""
    cache_control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    blocks = [{"type": "text", "text": system, "cache_control": cache_control}]
    return message_params(question, model=model, system=blocks, **extra)


def _usage(client, params: dict):
    return client.messages.create(**params).usage


def test_prefix_above_minimum_is_written_then_read(emulator: EmulatorServer, anthropic_client) -> None:
    prefix = text_tokens(LONG_SYSTEM)
    first_params = _params("First question?")
    first = _usage(anthropic_client, first_params)
    assert first.cache_creation_input_tokens == prefix == 1_560
    assert first.cache_creation.ephemeral_5m_input_tokens == prefix
    assert first.cache_creation.ephemeral_1h_input_tokens == 0
    assert first.cache_read_input_tokens == 0
    assert first.input_tokens == input_tokens(first_params) - prefix

    second_params = _params("A different second question?")
    second = _usage(anthropic_client, second_params)
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens) == (prefix, 0)
    assert second.input_tokens + second.cache_read_input_tokens == input_tokens(second_params)

    other_model = _usage(anthropic_client, _params("First question?", model="claude-sonnet-5-5"))
    assert other_model.cache_creation_input_tokens == prefix and other_model.cache_read_input_tokens == 0


def test_prefix_below_minimum_is_not_cached(emulator: EmulatorServer, anthropic_client) -> None:
    for _ in range(2):
        usage = _usage(anthropic_client, _params("Hi?", system=SHORT_SYSTEM))
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
        assert usage.cache_creation.ephemeral_5m_input_tokens == 0
        assert usage.cache_creation.ephemeral_1h_input_tokens == 0
    haiku = "x" * (4 * 4_000)  # 4,000 tokens to haiku-4-5 (below its 4,096); 5,200 to opus-5-5 (over 512)
    haiku_usage = _usage(anthropic_client, _params("Hi?", system=haiku, model="claude-haiku-4-5"))
    assert haiku_usage.cache_creation_input_tokens == 0
    assert _usage(anthropic_client, _params("Hi?", system=haiku)).cache_creation_input_tokens == 5_200


def test_ttl_runs_on_the_virtual_clock(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.set_speed(0)
    assert _usage(anthropic_client, _params("q1")).cache_creation_input_tokens > 0
    emulator.advance(200)
    assert _usage(anthropic_client, _params("q2")).cache_read_input_tokens > 0  # hit refreshes the TTL
    emulator.advance(200)
    assert _usage(anthropic_client, _params("q3")).cache_read_input_tokens > 0
    emulator.advance(301)
    expired = _usage(anthropic_client, _params("q4"))
    assert expired.cache_read_input_tokens == 0 and expired.cache_creation_input_tokens > 0

    hour_system = LONG_SYSTEM + "one hour"
    hour = _usage(anthropic_client, _params("q5", ttl="1h", system=hour_system))
    assert hour.cache_creation.ephemeral_1h_input_tokens == hour.cache_creation_input_tokens > 0
    emulator.advance(3_000)
    assert _usage(anthropic_client, _params("q6", ttl="1h", system=hour_system)).cache_read_input_tokens > 0
    emulator.advance(3_601)
    assert _usage(anthropic_client, _params("q7", ttl="1h", system=hour_system)).cache_read_input_tokens == 0


def test_several_breakpoints_read_the_longest_hit_and_write_the_rest(emulator, anthropic_client) -> None:
    tool = {
        "name": "lookup",
        "description": "Look things up. " * 200,
        "input_schema": {"type": "object", "properties": {}},
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    }
    first = _usage(anthropic_client, _params("q", tools=[tool]))
    tool_tokens = first.cache_creation.ephemeral_1h_input_tokens
    assert tool_tokens > 512
    assert first.cache_creation.ephemeral_5m_input_tokens == text_tokens(LONG_SYSTEM)
    changed_system = _usage(anthropic_client, _params("q", tools=[tool], system=LONG_SYSTEM + "changed"))
    assert changed_system.cache_read_input_tokens == tool_tokens
    assert changed_system.cache_creation_input_tokens == text_tokens(LONG_SYSTEM + "changed")


def test_top_level_cache_control_marks_the_last_block(emulator: EmulatorServer, anthropic_client) -> None:
    params = message_params("y" * 4_000, model=MODEL, cache_control={"type": "ephemeral"})
    first = _usage(anthropic_client, params)
    assert first.cache_creation_input_tokens == input_tokens(params) - 3  # all but the reply priming
    assert _usage(anthropic_client, params).cache_read_input_tokens == first.cache_creation_input_tokens


def test_batch_items_share_the_cache(emulator: EmulatorServer, anthropic_client) -> None:
    requests = [{"custom_id": f"c{i}", "params": _params(f"Item {i}?", ttl="1h")} for i in range(4)]
    batch = anthropic_client.messages.batches.create(requests=requests)
    anthropic_client.messages.batches.retrieve(batch.id)
    results = sorted(anthropic_client.messages.batches.results(batch.id), key=lambda r: r.custom_id)
    usages = [r.result.message.usage for r in results]  # in processing (request) order
    assert [u.cache_creation.ephemeral_1h_input_tokens for u in usages] == [1_560, 0, 0, 0]
    assert [u.cache_read_input_tokens for u in usages] == [0, 1_560, 1_560, 1_560]
    assert all(u.service_tier == "batch" for u in usages)
    assert emulator.stats()["cache_entries"] == 1


def test_too_many_breakpoints_is_rejected(emulator: EmulatorServer, anthropic_client) -> None:
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks with cache_control"):
        anthropic_client.messages.create(**message_params("hi", model=MODEL, system=blocks))
