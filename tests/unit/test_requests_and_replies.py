"""Params building and reply validation, shared by both delivery paths."""

from __future__ import annotations

import copy

import pytest

from nightshift.workloads import get_workload
from nightshift.workloads.replies import InvalidOutput, extract_output
from nightshift.workloads.requests import InvalidInput, build_params

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


def test_params_put_the_stable_prefix_first_and_cache_it(workload):
    params = build_params(workload, TICKET)
    assert list(params)[:4] == ["model", "max_tokens", "tools", "system"]
    assert params["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert params["tool_choice"] == {"type": "tool", "name": "record_ticket_classification"}
    text = params["messages"][0]["content"]
    assert "Ticket #42 from a free customer." in text
    assert "\x00" not in text and "\x07" not in text


def test_prefix_is_identical_across_items(workload):
    first = build_params(workload, TICKET)
    second = build_params(workload, {**TICKET, "ticket_id": 7, "subject": "Other", "body": "Different"})
    assert first["tools"] == second["tools"] and first["system"] == second["system"]
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
