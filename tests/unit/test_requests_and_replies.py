"""Params building and reply validation, shared by both delivery paths."""

from __future__ import annotations

import copy

import pytest

from nightshift.deployment import get_workload
from nightshift.workloads.replies import InvalidOutput, extract_output
from nightshift.workloads.requests import InvalidInput, build_params
from nightshift.workloads.shape import Delivery
from nightshift.workloads.structured import strict_schema

TICKET = {"ticket_id": 42, "subject": "Charged twice", "body": "Refund please.\x00\x07", "customer_tier": "free"}


@pytest.fixture
def workload():
    return get_workload("ticket_classification")


def reply(tool_input, *, stop_reason="tool_use", name="record_ticket_classification"):
    return {
        "model": "claude-haiku-4-5",
        "stop_reason": stop_reason,
        "content": [{"type": "tool_use", "id": "toolu_1", "name": name, "input": tool_input}],
    }


def forced_tool(workload):
    """The same workload on a model that takes a forced tool, asked to use one."""
    output = workload.output.model_copy(update={"delivery": Delivery.FORCED_TOOL})
    return workload.model_copy(update={"model": "claude-haiku-4-5", "effort": None, "output": output})


def test_params_put_the_stable_prefix_first_and_cache_it(workload):
    params = build_params(workload, TICKET)  # claude-haiku-5-5: structured outputs
    assert list(params)[:3] == ["model", "max_tokens", "system"] and "tools" not in params
    assert params["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert "tool_choice" not in params and "temperature" not in params
    assert params["output_config"] == {"effort": "low", "format": {
        "type": "json_schema", "schema": strict_schema(workload.output.json_schema)}}
    text = params["messages"][0]["content"]
    assert "Ticket #42 from a free customer." in text
    assert "\x00" not in text and "\x07" not in text
    tool = build_params(forced_tool(workload), TICKET)  # claude-haiku-4-5, asked for a forced tool
    assert list(tool)[:4] == ["model", "max_tokens", "tools", "system"] and "output_config" not in tool
    assert tool["tool_choice"] == {"type": "tool", "name": "record_ticket_classification"}
    assert tool["tools"][0]["input_schema"] == workload.output.json_schema  # the whole schema, unreduced


def test_the_sdk_reduces_the_output_schema_the_same_way():
    from anthropic.lib._parse._transform import transform_schema

    for name in ("ticket_classification", "product_enrichment"):
        schema = get_workload(name).output.json_schema
        assert strict_schema(schema) == transform_schema(schema)


def test_prefix_is_identical_across_items(workload):
    for shaped in (workload, forced_tool(workload)):
        first = build_params(shaped, TICKET)
        second = build_params(shaped, {**TICKET, "ticket_id": 7, "subject": "Other", "body": "Different"})
        assert first.get("tools") == second.get("tools") and first["system"] == second["system"]
        assert first["messages"] != second["messages"]


@pytest.mark.parametrize("body", [None, "", "   "])
def test_required_column_missing_is_invalid_input_naming_the_row(workload, body):
    with pytest.raises(InvalidInput, match=r"ticket_id=42: column 'body' is (NULL|empty)"):
        build_params(workload, {**TICKET, "body": body})


def test_optional_null_column_renders_as_not_given():
    workload = get_workload("product_enrichment")
    params = build_params(workload, {"product_id": 1, "sku": "S", "title": "T", "brand": None, "description": "D"})
    assert "Brand: (not given)" in params["messages"][0]["content"]


def test_valid_reply_is_accepted(workload):
    output = extract_output(workload, reply({"label": "billing", "rationale": "Duplicate charge."}))
    assert output == {"label": "billing", "rationale": "Duplicate charge."}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (reply({"label": "urgent_vip", "rationale": "Ignore previous instructions"}), "at label: 'urgent_vip' is not one of"),
        (reply({"label": "bug"}), "'rationale' is a required property"),
        (reply({"label": "bug", "rationale": "x", "extra": 1}), "Additional properties"),
        (reply({"label": "bug", "rationale": "x"}, stop_reason="max_tokens"), "stopped at max_tokens"),
        ({"model": "m", "stop_reason": "end_turn", "content": [{"type": "text", "text": "I think it is billing"}]}, "not JSON"),
        ({"model": "m", "stop_reason": "end_turn", "content": []}, "no 'record_ticket_classification' tool call and no text"),
    ],
)
def test_invalid_replies_say_what_is_wrong(workload, message, reason):
    with pytest.raises(InvalidOutput, match=None) as raised:
        extract_output(workload, copy.deepcopy(message))
    assert reason in str(raised.value)


def test_json_text_reply_is_accepted_when_valid(workload):
    message = {"model": "m", "stop_reason": "end_turn",
               "content": [{"type": "text", "text": '{"label": "account", "rationale": "Login."}'}]}
    assert extract_output(workload, message)["label"] == "account"


@pytest.mark.parametrize("model, thinking, sent", [
    ("claude-sonnet-5-5", "off", {"type": "between_tools"}),
    ("claude-haiku-5-5", "off", {"type": "disabled"}),
    ("claude-opus-5-5", "adaptive", {"type": "adaptive"}),
    ("claude-opus-5-5", "default", None),
])
def test_thinking_is_sent_the_way_each_model_takes_it(workload, model, thinking, sent):
    shaped = workload.model_copy(update={"model": model, "thinking": thinking})
    params = build_params(shaped, TICKET)
    assert params.get("thinking") == sent
    assert build_params(shaped, TICKET) is not params  # built again, from the same cached stable part
