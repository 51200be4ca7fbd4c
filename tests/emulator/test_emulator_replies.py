"""Structured replies: schema-valid tool input and JSON output, malformed and perturbed replies."""

from __future__ import annotations

import json

import jsonschema
import pytest
from anthropic.lib._parse._transform import transform_schema

from emulator.replies import MALFORMED_KINDS, generate_reply, malformed_kind
from emulator.schema_instances import build_instance
from emulator.testing import EmulatorServer, message_params

SCHEMAS = {
    "classification": {
        "type": "object",
        "additionalProperties": False,
        "required": ["label", "rationale"],
        "properties": {
            "label": {"type": "string", "enum": ["billing", "bug", "feature_request", "account", "other"]},
            "rationale": {"type": "string", "minLength": 1, "maxLength": 40},
        },
    },
    "bounded_numbers": {
        "type": "object",
        "required": ["stars", "score", "ratio", "even"],
        "properties": {
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
            "score": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "ratio": {"type": "number", "minimum": -2.5, "maximum": -2.4},
            "even": {"type": "integer", "multipleOf": 2, "minimum": 7, "maximum": 11},
        },
    },
    "strings": {
        "type": "object",
        "required": ["short", "padded", "date", "email", "id"],
        "properties": {
            "short": {"type": "string", "maxLength": 5},
            "padded": {"type": "string", "minLength": 80, "maxLength": 90},
            "date": {"type": "string", "format": "date"},
            "email": {"type": "string", "format": "email"},
            "id": {"type": "string", "pattern": "^[0-9a-f]{12}$"},
        },
    },
    "nested": {
        "type": "object",
        "required": ["product", "tags"],
        "properties": {
            "product": {
                "type": "object",
                "required": ["name", "dimensions", "in_stock"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "maxLength": 30},
                    "dimensions": {
                        "type": "object",
                        "required": ["width", "height"],
                        "properties": {
                            "width": {"type": "number", "minimum": 0},
                            "height": {"type": "integer", "maximum": -3},
                        },
                    },
                    "in_stock": {"type": "boolean"},
                    "discontinued": {"type": ["boolean", "null"]},
                },
            },
            "tags": {
                "type": "array",
                "minItems": 3,
                "maxItems": 3,
                "uniqueItems": True,
                "items": {"type": "string", "enum": ["red", "green", "blue", "large"]},
            },
            "notes": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 0},
        },
    },
    "refs_and_unions": {
        "type": "object",
        "$defs": {
            "Address": {
                "type": "object",
                "required": ["city"],
                "properties": {"city": {"type": "string", "minLength": 2}},
            }
        },
        "required": ["home", "choice", "merged", "fixed"],
        "properties": {
            "home": {"$ref": "#/$defs/Address"},
            "choice": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 10, "maximum": 10}]},
            "merged": {
                "allOf": [
                    {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}},
                    {"required": ["b"], "properties": {"b": {"type": "integer"}}},
                ]
            },
            "fixed": {"const": "always"},
        },
    },
}
TEXT = "The app shows a bug when I open the cart. It crashes every time! Please fix it soon."


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@pytest.mark.parametrize("variant", [0, 1])
def test_generated_instances_validate(name: str, variant: int) -> None:
    schema = SCHEMAS[name]
    instance = build_instance(schema, text=TEXT, seed="seed", variant=variant)
    jsonschema.Draft202012Validator(schema).validate(instance)
    assert build_instance(schema, text=TEXT, seed="seed", variant=variant) == instance


def test_enum_and_strings_come_from_the_request_text() -> None:
    schema = SCHEMAS["classification"]
    instance = build_instance(schema, text="I'd love a Feature Request: dark mode. Also a bug?", seed="s")
    assert instance["label"] == "feature_request"  # earliest whole-word match, _ matches a space
    assert instance["rationale"] == "I'd love a Feature Request: dark mode."
    no_match = [build_instance(schema, text="Nothing relevant.", seed=str(i))["label"] for i in range(30)]
    assert set(no_match) <= set(schema["properties"]["label"]["enum"]) and len(set(no_match)) > 1
    perturbed = build_instance(schema, text="A bug report.", seed="s", variant=1)
    assert perturbed != build_instance(schema, text="A bug report.", seed="s")


def _tool_params(schema: dict, text: str = TEXT, **extra) -> dict:
    tool = {"name": "emit", "input_schema": schema}
    return message_params(text, tools=[tool], tool_choice={"type": "tool", "name": "emit"}, **extra)


def _format_params(schema: dict, text: str = TEXT, **extra) -> dict:
    """Structured outputs take a subset of JSON Schema: the schema goes out as the SDK's own
    ``messages.parse`` sends it (``transform_schema``), its other constraints in descriptions."""
    output_config = {"format": {"type": "json_schema", "schema": transform_schema(schema)}}
    return message_params(text, output_config=output_config, **extra)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_forced_tool_use_over_http_is_schema_valid(name: str, emulator, anthropic_client) -> None:
    message = anthropic_client.messages.create(**_tool_params(SCHEMAS[name]))
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use" and block.name == "emit" and block.id.startswith("toolu_")
    jsonschema.Draft202012Validator(SCHEMAS[name]).validate(block.input)


#: Schemas the SDK's ``transform_schema`` cannot send as structured outputs (a ``type`` list, a
#: branch without a type): the forced-tool test above covers them.
NOT_STRICT_SCHEMAS = {"nested", "refs_and_unions"}


@pytest.mark.parametrize("name", sorted(set(SCHEMAS) - NOT_STRICT_SCHEMAS))
def test_json_output_format_over_http_is_schema_valid(name: str, emulator, anthropic_client) -> None:
    params = _format_params(SCHEMAS[name])
    message = anthropic_client.messages.create(**params)
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"
    sent = params["output_config"]["format"]["schema"]
    jsonschema.Draft202012Validator(sent).validate(json.loads(message.content[0].text))


def test_tool_choice_any_picks_a_tool(emulator: EmulatorServer, anthropic_client) -> None:
    tools = [{"name": f"t{i}", "input_schema": SCHEMAS["classification"]} for i in range(3)]
    any_tool = message_params(TEXT, tools=tools, tool_choice={"type": "any"})
    message = anthropic_client.messages.create(**any_tool)
    assert message.content[0].type == "tool_use" and message.content[0].name in {"t0", "t1", "t2"}
    auto = anthropic_client.messages.create(**message_params(TEXT, tools=tools))
    assert auto.content[0].type == "text"


def _is_valid(schema: dict, message) -> bool:
    block = message.content[0]
    if message.stop_reason != "end_turn" and message.stop_reason != "tool_use":
        return False
    try:
        value = block.input if block.type == "tool_use" else json.loads(block.text)
    except json.JSONDecodeError:
        return False
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def test_malformed_replies_rotate_among_three_kinds(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.configure(malformed_rate=1.0)
    schema = SCHEMAS["classification"]
    seen: dict[str, int] = {}
    for i in range(24):
        text = f"Ticket {i}: a billing bug."
        for params in (_tool_params(schema, text), _format_params(schema, text)):
            kind = malformed_kind(params, 1.0)
            message = anthropic_client.messages.create(**params)
            sent = params.get("output_config", {}).get("format", {}).get("schema", schema)
            assert not _is_valid(sent, message), (kind, message)
            if kind == "truncated":
                assert message.stop_reason == "max_tokens"
            if kind == "not_json":
                assert message.content[0].type == "text"
                with pytest.raises(json.JSONDecodeError):
                    json.loads(message.content[0].text)
            seen[kind] = seen.get(kind, 0) + 1
    assert set(seen) == set(MALFORMED_KINDS)


def test_malformed_rate_is_a_stable_fraction(emulator: EmulatorServer, anthropic_client) -> None:
    schema = SCHEMAS["classification"]
    params = [_tool_params(schema, f"Ticket number {i} about shipping.") for i in range(200)]
    picked = [p for p in params if malformed_kind(p, 0.25) is not None]
    assert 30 <= len(picked) <= 70
    emulator.configure(malformed_rate=0.25)
    requests = [{"custom_id": f"c{i}", "params": p} for i, p in enumerate(params)]
    batch = anthropic_client.messages.batches.create(requests=requests)
    anthropic_client.messages.batches.retrieve(batch.id)
    lines = anthropic_client.messages.batches.results(batch.id)
    invalid = {line.custom_id for line in lines if not _is_valid(schema, line.result.message)}
    assert invalid == {f"c{i}" for i, p in enumerate(params) if malformed_kind(p, 0.25) is not None}
    plain = anthropic_client.messages.create(**message_params("Plain prompts are never malformed."))
    assert plain.stop_reason == "end_turn"


def test_generate_reply_is_pure() -> None:
    params = _tool_params(SCHEMAS["nested"])
    first = generate_reply(params, malformed_rate=0.0, perturb=False)
    assert generate_reply(params, malformed_rate=0.0, perturb=False) == first


def test_perturb_fault_changes_replies_but_keeps_them_valid(emulator, anthropic_client) -> None:
    schema = SCHEMAS["classification"]
    params = _tool_params(schema, "A billing question about my invoice.")
    baseline = anthropic_client.messages.create(**params).content[0].input

    emulator.add_fault(kind="perturb", params_hash=emulator.params_hash(params))
    perturbed = anthropic_client.messages.create(**params).content[0].input
    assert perturbed != baseline
    jsonschema.Draft202012Validator(schema).validate(perturbed)
    other = _tool_params(schema, "Another question.")
    first, second = (anthropic_client.messages.create(**other).content[0].input for _ in range(2))
    assert first == second  # the fault targets one params hash only

    emulator.clear_faults()
    emulator.add_fault(kind="perturb", custom_id="perturb-.*")
    batch = anthropic_client.messages.batches.create(
        requests=[{"custom_id": "perturb-1", "params": params}, {"custom_id": "keep-1", "params": params}]
    )
    anthropic_client.messages.batches.retrieve(batch.id)
    lines = anthropic_client.messages.batches.results(batch.id)
    inputs = {line.custom_id: line.result.message.content[0].input for line in lines}
    assert inputs["keep-1"] == baseline and inputs["perturb-1"] == perturbed


def test_sdk_parse_with_output_format(emulator: EmulatorServer, anthropic_client) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Ticket(pydantic.BaseModel):
        label: str
        priority: int

    parsed = anthropic_client.messages.parse(**message_params("Label this ticket."), output_format=Ticket)
    assert isinstance(parsed.parsed_output, Ticket)


BROKEN_MODES = {
    "not_json": lambda msg: msg.content[0].type == "text" and "Sure!" in msg.content[0].text,
    "schema_violation": lambda msg: msg.content[0].type == "tool_use" and "label" not in msg.content[0].input,
    "max_tokens": lambda msg: msg.stop_reason == "max_tokens",
    "unapproved_value": lambda msg: msg.content[0].input["label"].startswith("urgent_vip"),
    "nul_character": lambda msg: "\x00" in msg.content[0].input["rationale"],
    "lone_surrogate": lambda msg: "\ud800" in msg.content[0].input["rationale"],
}


@pytest.mark.parametrize("mode", BROKEN_MODES)
def test_perturb_modes_break_a_reply_in_one_named_way(emulator, anthropic_client, mode) -> None:
    schema = {**SCHEMAS["classification"],
              "properties": {**SCHEMAS["classification"]["properties"], "rationale": {"type": "string"}}}
    params = _tool_params(schema, "A billing question about my invoice, charged twice.")
    emulator.add_fault(kind="perturb", mode=mode, custom_id="broken-.*")
    batch = anthropic_client.messages.batches.create(
        requests=[{"custom_id": "broken-1", "params": params}, {"custom_id": "fine-1", "params": params}])
    anthropic_client.messages.batches.retrieve(batch.id)
    messages = {line.custom_id: line.result.message for line in anthropic_client.messages.batches.results(batch.id)}
    assert BROKEN_MODES[mode](messages["broken-1"])
    assert _is_valid(schema, messages["fine-1"]) and not BROKEN_MODES[mode](messages["fine-1"])
    # The synchronous path carries the same broken reply (a lone surrogate as a JSON escape).
    emulator.add_fault(kind="perturb", mode=mode, params_hash=emulator.params_hash(params))
    assert BROKEN_MODES[mode](anthropic_client.messages.create(**params))


def test_an_unknown_perturb_mode_is_refused(emulator) -> None:
    from emulator.testing import EmulatorError

    with pytest.raises(EmulatorError, match="mode must be one of"):
        emulator.add_fault(kind="perturb", mode="sideways")
