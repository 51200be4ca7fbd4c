"""Conformance with the API as it stands on 2026-12-01, through the official SDK, sync and async.

Every rule here reads its model's facts from ``emulator/data/models.json``; the messages are the
ones docs/emulator.md ("Fidelity") quotes with their pages.
"""

from __future__ import annotations

import json

import anthropic
import httpx
import jsonschema
import pytest
from anthropic.lib._parse._transform import transform_schema
from anthropic.types import ModelInfo

from emulator.models import catalogue, load_catalogue, MODELS_FILE, SOURCED_FACTS
from emulator.rules import FORCED_TOOL_REFUSED, THINKING_WITH_FORCED_TOOL
from emulator.testing import EmulatorServer, batch_request, message_params

REFUSE_FORCED_TOOLS = ("claude-sonnet-5-5", "claude-opus-5-5", "claude-fable-5-1")
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["label", "rationale"],
    "properties": {
        "label": {"type": "string", "enum": ["billing", "bug", "other"]},
        "rationale": {"type": "string"},
    },
}
TOOL = {"name": "record", "input_schema": SCHEMA}
FORCED = {"type": "tool", "name": "record"}


def _forced_tool_params(model: str, **extra) -> dict:
    return message_params("A billing question.", model=model, max_tokens=4_000, tools=[TOOL], tool_choice=FORCED,
                          **extra)


# --- the catalogue ------------------------------------------------------------------------


def test_every_fact_of_every_model_names_a_dated_page() -> None:
    loaded = load_catalogue(MODELS_FILE)
    for model in loaded.models.values():
        assert set(SOURCED_FACTS) <= set(model.sources), model.id
        for page in model.sources.values():
            assert page.url.startswith("https://") and page.read_on == "2026-12-01"
    for required in ("claude-haiku-4-5", "claude-haiku-5-5", "claude-sonnet-5", "claude-sonnet-5-5",
                     "claude-opus-5", "claude-opus-5-5", "claude-fable-5-1", "claude-sonnet-4-5"):
        assert required in loaded.models
    assert loaded.resolve("claude-sonnet-4-5-20250929").retired


def test_a_catalogue_with_an_unsourced_fact_is_refused(tmp_path) -> None:
    raw = json.loads(MODELS_FILE.read_text())
    del raw["models"]["claude-haiku-5-5"]["sources"]["min_cacheable_tokens"]
    broken = tmp_path / "models.json"
    broken.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="min_cacheable_tokens"):
        load_catalogue(broken)


# --- forced tool use --------------------------------------------------------------------


@pytest.mark.parametrize("model", REFUSE_FORCED_TOOLS)
@pytest.mark.parametrize("choice", [FORCED, {"type": "any"}])
def test_forced_tool_use_is_refused_on_messages_and_count_tokens(model, choice, emulator, anthropic_client) -> None:
    params = {**_forced_tool_params(model), "tool_choice": choice}
    with pytest.raises(anthropic.BadRequestError) as refused:
        anthropic_client.messages.create(**params)
    assert refused.value.body["error"] == {"type": "invalid_request_error", "message": FORCED_TOOL_REFUSED}
    counting = {k: v for k, v in params.items() if k != "max_tokens"}
    with pytest.raises(anthropic.BadRequestError) as refused_count:
        anthropic_client.messages.count_tokens(**counting)
    assert refused_count.value.body["error"]["message"] == FORCED_TOOL_REFUSED
    for allowed in ({"type": "auto"}, {"type": "none"}):
        assert anthropic_client.messages.create(**{**params, "tool_choice": allowed}).stop_reason == "end_turn"


async def test_forced_tool_use_is_refused_through_the_async_client(emulator, async_anthropic_client) -> None:
    with pytest.raises(anthropic.BadRequestError, match="are not supported for this model"):
        await async_anthropic_client.messages.create(**_forced_tool_params("claude-sonnet-5-5"))
    with pytest.raises(anthropic.BadRequestError, match="are not supported for this model"):
        await async_anthropic_client.messages.count_tokens(
            **{k: v for k, v in _forced_tool_params("claude-opus-5-5").items() if k != "max_tokens"})


def test_forced_tool_use_comes_back_errored_inside_a_batch(emulator, anthropic_client) -> None:
    requests = [{"custom_id": "sonnet", "params": _forced_tool_params("claude-sonnet-5-5")},
                {"custom_id": "haiku", "params": _forced_tool_params("claude-haiku-4-5")}]
    batch = anthropic_client.messages.batches.create(requests=requests)
    anthropic_client.messages.batches.retrieve(batch.id)
    results = {r.custom_id: r.result for r in anthropic_client.messages.batches.results(batch.id)}
    assert results["sonnet"].type == "errored"
    assert results["sonnet"].error.error.type == "invalid_request_error"
    assert results["sonnet"].error.error.message == FORCED_TOOL_REFUSED
    assert results["haiku"].type == "succeeded"  # Haiku 4.5 still accepts a forced tool
    (block,) = results["haiku"].message.content
    assert block.type == "tool_use" and block.name == "record"
    jsonschema.validate(block.input, SCHEMA)


def test_a_forced_tool_on_a_model_that_thinks_by_default_needs_thinking_off(emulator, anthropic_client) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        anthropic_client.messages.create(**_forced_tool_params("claude-haiku-5-5"))
    assert refused.value.body["error"]["message"] == THINKING_WITH_FORCED_TOOL
    message = anthropic_client.messages.create(**_forced_tool_params("claude-haiku-5-5", thinking={"type": "disabled"}))
    assert message.stop_reason == "tool_use"


# --- thinking ----------------------------------------------------------------------------


def test_sonnet_5_5_thinks_by_default_and_bills_it_as_output(emulator, anthropic_client) -> None:
    params = message_params("Summarise: the parcel arrived late.", model="claude-sonnet-5-5", max_tokens=4_000)
    message = anthropic_client.messages.create(**params)
    thinking, answer = message.content
    assert thinking.type == "thinking" and thinking.thinking == "" and thinking.signature  # display: omitted
    assert answer.type == "text" and message.stop_reason == "end_turn"
    details = message.usage.output_tokens_details
    assert 0 < details.thinking_tokens < message.usage.output_tokens
    off = anthropic_client.messages.create(**params, thinking={"type": "between_tools"})
    assert [block.type for block in off.content] == ["text"]
    assert off.content[0].text == answer.text  # thinking changes the cost, not the answer
    assert message.usage.output_tokens - details.thinking_tokens == off.usage.output_tokens
    summarized = anthropic_client.messages.create(**params, thinking={"type": "adaptive", "display": "summarized"})
    assert summarized.content[0].thinking


def test_thinking_shares_max_tokens_with_the_answer(emulator, anthropic_client) -> None:
    tight = anthropic_client.messages.create(**message_params("Why?", model="claude-opus-5-5", max_tokens=40))
    assert tight.stop_reason == "max_tokens" and [b.type for b in tight.content] == ["thinking"]
    assert tight.usage.output_tokens == 40 == tight.usage.output_tokens_details.thinking_tokens


def test_thinking_settings_the_5_5_models_refuse(emulator, anthropic_client) -> None:
    def refused(model: str, **extra) -> str:
        with pytest.raises(anthropic.BadRequestError) as caught:
            anthropic_client.messages.create(**message_params("Hi.", model=model, max_tokens=4_000, **extra))
        return caught.value.body["error"]["message"]

    assert "between_tools" in refused("claude-sonnet-5-5", thinking={"type": "disabled"})
    assert refused("claude-opus-5-5", thinking={"type": "disabled"}).startswith(
        '"thinking.type.disabled" is not supported for this model.')
    assert refused("claude-sonnet-5-5", thinking={"type": "enabled", "budget_tokens": 2_048}).startswith(
        '"thinking.type.enabled" is not supported for this model.')
    assert "xhigh" in refused("claude-sonnet-5-5", thinking={"type": "between_tools"}, output_config={"effort": "xhigh"})
    assert "Extra inputs" in refused("claude-sonnet-5-5", thinking={"type": "between_tools", "display": "omitted"})
    assert "effort level 'max'" in refused("claude-opus-4-5", output_config={"effort": "max"})
    ok = anthropic_client.messages.create(**message_params("Hi.", model="claude-sonnet-5-5", max_tokens=4_000,
                                                          thinking={"type": "between_tools"},
                                                          output_config={"effort": "low"}))
    assert ok.stop_reason == "end_turn"
    manual = anthropic_client.messages.create(**message_params("Hi.", model="claude-haiku-4-5", max_tokens=4_000,
                                                               thinking={"type": "enabled", "budget_tokens": 1_024}))
    assert manual.content[0].type == "thinking" and manual.usage.output_tokens_details.thinking_tokens <= 1_024


def test_a_streamed_reply_with_thinking_adds_up_to_the_plain_one(emulator, anthropic_client) -> None:
    params = message_params("Tell me about the refund.", model="claude-sonnet-5-5", max_tokens=4_000)
    plain = anthropic_client.messages.create(**params)
    with anthropic_client.messages.stream(**params) as stream:
        final = stream.get_final_message()
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in plain.content]
    assert final.usage.output_tokens == plain.usage.output_tokens


# --- sampling, structured outputs, output limits -------------------------------------------


def test_sampling_parameters(emulator: EmulatorServer, anthropic_client) -> None:
    with pytest.raises(anthropic.BadRequestError, match="temperature: Extra inputs are not permitted"):
        anthropic_client.messages.create(**message_params("Hi.", model="claude-haiku-4-5"),
                                         extra_body={"temperature": 0.2})  # SDK 2.x sends 2026-10-21
    old = anthropic.Anthropic(base_url=emulator.url, api_key=emulator.api_key,
                              default_headers={"anthropic-version": "2023-06-01"})
    with pytest.raises(anthropic.BadRequestError, match="`temperature` is deprecated for this model."):
        old.messages.create(**message_params("Hi.", model="claude-sonnet-5-5", max_tokens=4_000),
                            extra_body={"temperature": 0.2})
    assert old.messages.create(**message_params("Hi.", model="claude-haiku-4-5"),
                               extra_body={"temperature": 0.2}).stop_reason == "end_turn"
    with pytest.raises(anthropic.BadRequestError, match="cannot both be specified"):
        old.messages.create(**message_params("Hi.", model="claude-haiku-4-5"), extra_body={"temperature": 0.2, "top_p": 0.5})
    old.close()


def test_structured_outputs_give_json_that_validates_and_refuse_unsupported_keywords(emulator, anthropic_client) -> None:
    params = message_params("A billing question about my invoice.", model="claude-sonnet-5-5", max_tokens=4_000,
                            output_config={"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"})
    message = anthropic_client.messages.create(**params)
    jsonschema.validate(json.loads(message.content[-1].text), SCHEMA)
    with_limits = {**SCHEMA, "properties": {**SCHEMA["properties"], "rationale": {"type": "string", "maxLength": 40}}}
    with pytest.raises(anthropic.BadRequestError, match="'maxLength' is not supported"):
        anthropic_client.messages.create(**{**params, "output_config": {
            "format": {"type": "json_schema", "schema": with_limits}}})
    sent = transform_schema(with_limits)  # what messages.parse sends: accepted
    anthropic_client.messages.create(**{**params, "output_config": {"format": {"type": "json_schema", "schema": sent}}})


def test_the_batch_api_allows_a_larger_max_tokens_with_its_beta_header(emulator, anthropic_client) -> None:
    request = [batch_request("big", "Hi.", model="claude-sonnet-5-5", max_tokens=200_000)]
    plain = anthropic_client.messages.batches.create(requests=request)
    beta = anthropic_client.messages.batches.create(requests=request,
                                                    extra_headers={"anthropic-beta": "output-300k-2026-03-24"})
    for batch in (plain, beta):
        anthropic_client.messages.batches.retrieve(batch.id)
    (refused,) = anthropic_client.messages.batches.results(plain.id)
    (accepted,) = anthropic_client.messages.batches.results(beta.id)
    assert refused.result.type == "errored" and "128000" in refused.result.error.error.message
    assert accepted.result.type == "succeeded"


def test_a_retired_model_is_not_found(emulator, anthropic_client) -> None:
    with pytest.raises(anthropic.NotFoundError), pytest.warns(DeprecationWarning, match="end-of-life"):
        anthropic_client.messages.create(**message_params("Hi.", model="claude-sonnet-4-5-20250929"))


# --- Models API ---------------------------------------------------------------------------


def test_models_list_and_retrieve_parse_into_the_sdks_types(emulator, anthropic_client) -> None:
    listed = list(anthropic_client.models.list(limit=3))  # auto-pages through every page
    active = [m for m in catalogue().models.values() if m.lifecycle != "retired"]
    assert len(listed) == len(active) and all(isinstance(m, ModelInfo) for m in listed)
    assert [m.created_at for m in listed] == sorted((m.created_at for m in listed), reverse=True)
    sonnet = anthropic_client.models.retrieve("claude-sonnet-5-5")
    assert sonnet.max_input_tokens == 1_000_000 and sonnet.lifecycle == "active" and sonnet.line == "sonnet"
    assert sonnet.capabilities.structured_outputs.supported and sonnet.capabilities.batch.supported
    assert sonnet.capabilities.thinking.types.between_tools.supported
    assert not sonnet.capabilities.thinking.types.disabled.supported
    assert not sonnet.capabilities.thinking.types.enabled.supported
    assert sonnet.capabilities.effort.xhigh.supported
    haiku = anthropic_client.models.retrieve("claude-haiku-4-5-20251001")  # a snapshot id resolves
    assert haiku.id == "claude-haiku-4-5" and not haiku.capabilities.effort.supported
    retired = anthropic_client.models.retrieve("claude-sonnet-4-5")
    assert retired.lifecycle == "retired" and retired.retires_at is not None
    assert "claude-sonnet-4-5" not in {m.id for m in listed}
    with_retired = anthropic_client.models.list(lifecycle=["retired"])
    assert [m.id for m in with_retired] == ["claude-sonnet-4-5"]
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.models.retrieve("claude-imaginary-1")


async def test_models_through_the_async_client(emulator, async_anthropic_client) -> None:
    page = await async_anthropic_client.models.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    model = await async_anthropic_client.models.retrieve("claude-opus-5-5")
    assert model.capabilities.thinking.supported and not model.capabilities.thinking.types.disabled.supported


# --- a shared workspace, ids, results order, spend limit --------------------------------------


def test_results_come_back_in_a_stable_arbitrary_order(emulator, anthropic_client) -> None:
    requests = [batch_request(f"r{i:03d}", f"Question {i}.") for i in range(200)]
    batch = anthropic_client.messages.batches.create(requests=requests)
    anthropic_client.messages.batches.retrieve(batch.id)
    first = [r.custom_id for r in anthropic_client.messages.batches.results(batch.id)]
    again = [r.custom_id for r in anthropic_client.messages.batches.results(batch.id)]
    assert first == again and sorted(first) == [r["custom_id"] for r in requests]
    assert first != sorted(first)


def test_foreign_batches_of_the_workspace_show_in_list(emulator, anthropic_client) -> None:
    ours = anthropic_client.messages.batches.create(requests=[batch_request("mine-0", "Hi.")])
    (foreign,) = emulator.plant_foreign_batches(request_count=1, created_at_offset_seconds=-60, owner="team-b")
    listed = [b.id for b in anthropic_client.messages.batches.list(limit=10)]
    assert listed == [ours.id, foreign["id"]]  # newest created first: the foreign one is a minute older
    assert anthropic_client.messages.batches.retrieve(foreign["id"]).processing_status == "in_progress"
    stats = emulator.stats()
    assert stats["batches_created"] == 1
    assert stats["foreign_batches"] == [{"id": foreign["id"], "request_count": 1, "owner": "team-b", "canceled": False}]
    anthropic_client.messages.batches.cancel(foreign["id"])
    assert emulator.stats()["canceled_batches"] == [foreign["id"]]
    assert emulator.stats()["foreign_batches"][0]["canceled"]


def test_ids_are_unique_across_state_files(tmp_path) -> None:
    ids = []
    for name in ("one", "two"):
        with EmulatorServer(tmp_path / name, rate="inf") as server:
            client = anthropic.Anthropic(base_url=server.url, api_key=server.api_key)
            ids.append(client.messages.batches.create(requests=[batch_request("a", "Hi.")]).id)
            client.close()
    assert ids[0] != ids[1]


def test_the_spend_limit_429_has_its_own_code_and_no_retry_after(emulator: EmulatorServer) -> None:
    emulator.add_fault(kind="spend_limit", endpoint="create")
    response = httpx.post(f"{emulator.url}/v1/messages/batches", headers={"x-api-key": "k"},
                          json={"requests": [batch_request("a", "Hi.")]})
    assert response.status_code == 429 and "retry-after" not in response.headers
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error" and error["details"] == {"error_code": "enforced_spend_limit_reached"}
    assert error["message"].startswith("You have reached your API usage limits")
    client = anthropic.Anthropic(base_url=emulator.url, api_key=emulator.api_key, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.batches.create(requests=[batch_request("a", "Hi.")])
    assert caught.value.body["error"]["details"]["error_code"] == "enforced_spend_limit_reached"
    client.close()
    assert emulator.stats()["batches_created"] == 0
