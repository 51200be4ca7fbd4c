"""POST /v1/messages (plain and streamed) and count_tokens through the official SDK."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from emulator.models import resolve_model
from emulator.testing import EmulatorServer, batch_request, message_params
from emulator.tokens import input_tokens

CLASSIFY_TOOL = {
    "name": "record_label",
    "description": "Record the label.",
    "input_schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["label", "rationale"],
        "properties": {
            "label": {"type": "string", "enum": ["billing", "bug", "feature_request", "other"]},
            "rationale": {"type": "string", "minLength": 1, "maxLength": 60},
        },
    },
}


def params_messages(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _tool_params(text: str) -> dict:
    return message_params(text, tools=[CLASSIFY_TOOL], tool_choice={"type": "tool", "name": "record_label"})


def _comparable(message) -> dict:
    return {"content": [block.model_dump() for block in message.content], "stop_reason": message.stop_reason}


def test_plain_message(emulator: EmulatorServer, anthropic_client: anthropic.Anthropic) -> None:
    params = message_params("Explain what a DAG is. Keep it short.")
    message = anthropic_client.messages.create(**params)
    assert message.type == "message" and message.role == "assistant" and message.model == params["model"]
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.content[0].type == "text" and "Keep it short." in message.content[0].text
    assert message.usage.service_tier == "standard"
    assert message.usage.input_tokens == input_tokens(params)
    again = anthropic_client.messages.create(**params)
    assert again.content == message.content and again.id != message.id


def test_max_tokens_and_stop_sequences(emulator: EmulatorServer, anthropic_client) -> None:
    cut = anthropic_client.messages.create(**message_params("Tell me everything.", max_tokens=3))
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3
    assert len(cut.content[0].text) <= 12
    full = anthropic_client.messages.create(**message_params("Tell me everything.")).content[0].text
    word = full.split()[3]
    stopped = anthropic_client.messages.create(**message_params("Tell me everything.", stop_sequences=[word]))
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == word
    assert stopped.content[0].text == full[: full.index(word)]
    empty = anthropic_client.messages.create(**message_params("Warm the cache.", max_tokens=0))
    assert empty.content == [] and empty.stop_reason == "max_tokens" and empty.usage.output_tokens == 0


def test_validation_errors_are_synchronous(emulator: EmulatorServer, anthropic_client) -> None:
    with pytest.raises(anthropic.BadRequestError, match="messages: at least one message"):
        anthropic_client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[])
    with pytest.raises(anthropic.NotFoundError) as raised:
        anthropic_client.messages.create(**message_params("hi", model="claude-unknown-1"))
    assert raised.value.type == "not_found_error"
    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        anthropic_client.messages.create(**message_params("word " * 900_000))
    with pytest.raises(anthropic.BadRequestError, match="tool_choice.name"):
        choice = {"type": "tool", "name": "nope"}
        anthropic_client.messages.create(**message_params("hi", tools=[CLASSIFY_TOOL], tool_choice=choice))
    missing_max_tokens = httpx.post(
        f"{emulator.url}/v1/messages",
        headers={"x-api-key": "k"},
        json={"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert missing_max_tokens.status_code == 400
    error = missing_max_tokens.json()["error"]
    assert error == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    not_json = httpx.post(f"{emulator.url}/v1/messages", headers={"x-api-key": "k"}, content=b"{nope")
    assert not_json.status_code == 400 and not_json.json()["error"]["type"] == "invalid_request_error"


def test_streaming_with_the_sdk_helper_matches_the_plain_reply(emulator, anthropic_client) -> None:
    params = message_params("Summarise the meeting. It was long.")
    plain = anthropic_client.messages.create(**params)
    with anthropic_client.messages.stream(**params) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) > 1 and "".join(texts) == plain.content[0].text
    assert _comparable(final) == _comparable(plain)
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens


def test_raw_event_sequence(emulator: EmulatorServer, anthropic_client) -> None:
    events = list(anthropic_client.messages.create(**_tool_params("A billing question."), stream=True))
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[1] == "content_block_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"} and kinds[-3] == "content_block_stop"
    assert events[0].message.content == [] and events[0].message.stop_reason is None
    assert all(event.delta.type == "input_json_delta" for event in events[2:-3])
    assert events[-2].delta.stop_reason == "tool_use" and events[-2].usage.output_tokens > 0
    raw = httpx.post(
        f"{emulator.url}/v1/messages",
        headers={"x-api-key": "k"},
        json={**message_params("Hello there."), "stream": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    names = [line.split(": ", 1)[1] for line in raw.text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert "text_delta" in raw.text


def test_streamed_tool_use_and_batch_give_identical_replies(emulator, anthropic_client) -> None:
    params = _tool_params("The app charged me twice, I need a refund for this billing mistake.")
    with anthropic_client.messages.stream(**params) as stream:
        streamed = stream.get_final_message()
    batch = anthropic_client.messages.batches.create(
        requests=[{"custom_id": "one", "params": params}, {"custom_id": "two", "params": params}]
    )
    anthropic_client.messages.batches.retrieve(batch.id)
    batched = [r.result.message for r in anthropic_client.messages.batches.results(batch.id)]
    assert streamed.content[0].type == "tool_use" and streamed.stop_reason == "tool_use"
    assert streamed.content[0].input["label"] == "billing"
    assert all(_comparable(message) == _comparable(streamed) for message in batched)
    assert batched[0].id != batched[1].id


async def test_async_messages_stream_and_count_tokens(emulator, async_anthropic_client) -> None:
    params = message_params("Async hello. How are you?")
    plain = await async_anthropic_client.messages.create(**params)
    async with async_anthropic_client.messages.stream(**params) as stream:
        final = await stream.get_final_message()
    assert _comparable(final) == _comparable(plain)
    stream = await async_anthropic_client.messages.create(**params, stream=True)
    events = [event.type async for event in stream]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    count_tokens = async_anthropic_client.messages.count_tokens
    counted = await count_tokens(model=params["model"], messages=params["messages"])
    assert counted.input_tokens == input_tokens(params)


def test_count_tokens(emulator: EmulatorServer, anthropic_client) -> None:
    counted = anthropic_client.messages.count_tokens(
        model="claude-opus-4-8",
        system="You are terse.",
        messages=[{"role": "user", "content": "Count me, please."}],
        tools=[CLASSIFY_TOOL],
    )
    expected = input_tokens(
        {
            "system": "You are terse.",
            "messages": [{"role": "user", "content": "Count me, please."}],
            "tools": [CLASSIFY_TOOL],
        },
        resolve_model("claude-opus-4-8").tokenizer,  # the newer tokenizer
    )
    assert counted.input_tokens == expected > 0
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.count_tokens(model="claude-nope", messages=params_messages("x"))
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.count_tokens(model="claude-opus-4-8", messages=[])
    assert emulator.endpoint_calls("count_tokens") == 3


def test_batch_item_with_stream_true_is_errored(emulator: EmulatorServer, anthropic_client) -> None:
    request = batch_request("s", "hi")
    request["params"]["stream"] = True
    batch = anthropic_client.messages.batches.create(requests=[request])
    anthropic_client.messages.batches.retrieve(batch.id)
    (result,) = list(anthropic_client.messages.batches.results(batch.id))
    assert result.result.type == "errored" and result.result.error.error.type == "invalid_request_error"
