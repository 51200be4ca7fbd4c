"""Model profiles: a model agrees with the canonical (strongest model's) answer at a set rate, per field."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import httpx
import jsonschema
import pytest
from anthropic.lib._parse._transform import transform_schema

from emulator.model_profiles import ModelProfile, parse_profile_flags
from emulator.replies import generate_reply, malformed_kind
from emulator.testing import EmulatorError, EmulatorServer, message_params

CANDIDATE = "claude-haiku-5-5"
STRONGEST = "claude-opus-5-5"
LABELS = ["billing", "bug", "feature_request", "account", "shipping", "other"]
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["label", "summary", "priority"],
    "properties": {
        "label": {"type": "string", "enum": LABELS},
        "summary": {"type": "string"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
    },
}
TOPICS = ("my invoice", "the cart page", "a dark mode", "my password", "a late parcel", "the weather")


def _prompt(i: int) -> str:
    return f"Ticket {i}: a question about {TOPICS[i % len(TOPICS)]}. Reference {i * 7919 % 10007}."


def _params(i: int, model: str, **extra) -> dict:
    output_config = {"format": {"type": "json_schema", "schema": transform_schema(SCHEMA)}}
    return message_params(_prompt(i), model=model, max_tokens=4096, output_config=output_config, **extra)


def _answer(message) -> dict:
    (text,) = [block.text for block in message.content if block.type == "text"]
    return json.loads(text)


def _batch_answers(client, model: str, count: int) -> dict[int, dict]:
    requests = [{"custom_id": f"t{i}", "params": _params(i, model)} for i in range(count)]
    batch = client.messages.batches.create(requests=requests)
    client.messages.batches.retrieve(batch.id)
    answers = {}
    for line in client.messages.batches.results(batch.id):
        assert line.result.type == "succeeded", line
        answers[int(line.custom_id[1:])] = _answer(line.result.message)
    return answers


def test_label_agreement_is_the_configured_rate_within_binomial_noise(emulator, anthropic_client) -> None:
    rate, count = 0.93, 2000
    emulator.configure(model_profiles={CANDIDATE: {"agreement": {"label": rate}}})
    canonical = _batch_answers(anthropic_client, STRONGEST, count)
    candidate = _batch_answers(anthropic_client, CANDIDATE, count)

    agreeing = sum(candidate[i]["label"] == canonical[i]["label"] for i in range(count))
    # Each prompt is an independent draw: the share is Binomial(count, rate) / count; 4 standard
    # deviations either side leaves a chance of about 6e-5 of a correct emulator failing.
    bound = 4 * math.sqrt(rate * (1 - rate) / count)
    assert abs(agreeing / count - rate) <= bound, (agreeing, count, bound)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for i in range(count):
        validator.validate(candidate[i])
        # a field without a rate of its own (and no "*") is always the canonical one
        assert {k: v for k, v in candidate[i].items() if k != "label"} == {
            k: v for k, v in canonical[i].items() if k != "label"
        }
    assert len({canonical[i]["label"] for i in range(count)}) > 1  # the canonical labels vary


def test_same_prompt_and_model_same_answer_through_messages_stream_and_batch(
    emulator, anthropic_client
) -> None:
    emulator.configure(model_profiles={CANDIDATE: {"agreement": {"*": 0.5}}})
    count = 30
    batch = _batch_answers(anthropic_client, CANDIDATE, count)
    canonical = _batch_answers(anthropic_client, STRONGEST, count)
    for i in range(count):
        direct = _answer(anthropic_client.messages.create(**_params(i, CANDIDATE)))
        with anthropic_client.messages.stream(**_params(i, CANDIDATE)) as stream:
            streamed = _answer(stream.get_final_message())
        assert direct == streamed == batch[i]
    disagreeing = {name for i in range(count) for name in SCHEMA["properties"]
                   if batch[i][name] != canonical[i][name]}
    assert disagreeing == set(SCHEMA["properties"])  # at 0.5 each field departs somewhere in 30 prompts
    for i in range(count):
        if batch[i]["summary"] != canonical[i]["summary"]:
            assert _prompt(i).split(".")[0] not in batch[i]["summary"]  # other text, not the same reworded

    plain = [message_params(_prompt(i), model=CANDIDATE, max_tokens=4096) for i in range(count)]
    texts = [anthropic_client.messages.create(**p).content[-1].text for p in plain]
    strongest = [anthropic_client.messages.create(**{**p, "model": STRONGEST}).content[-1].text
                 for p in plain]
    assert 0 < sum(a != b for a, b in zip(texts, strongest, strict=True)) < count  # field "text" at "*" 0.5


def test_a_model_without_a_profile_answers_as_before(emulator, anthropic_client) -> None:
    params = [_params(i, "claude-haiku-4-5") for i in range(20)]
    plain = [message_params(_prompt(i)) for i in range(20)]
    before = [anthropic_client.messages.create(**p).model_dump() for p in params + plain]
    emulator.configure(model_profiles={CANDIDATE: {"agreement": {"*": 0.0}, "malformed_rate": 1.0}})
    after = [anthropic_client.messages.create(**p).model_dump() for p in params + plain]
    assert [m["content"] for m in after] == [m["content"] for m in before]
    assert [m["usage"] for m in after] == [m["usage"] for m in before]


def test_a_profile_malformed_rate_is_that_models_own_draw(emulator, anthropic_client) -> None:
    profile = ModelProfile(CANDIDATE, {}, malformed_rate=0.3)
    params = [_params(i, CANDIDATE) for i in range(200)]
    broken = {i for i, p in enumerate(params) if malformed_kind(p, 0.0, profile) is not None}
    global_draw = {i for i, p in enumerate(params) if malformed_kind(p, 0.3) is not None}
    assert 30 <= len(broken) <= 90 and broken != global_draw  # the model is in the hash

    emulator.configure(model_profiles={CANDIDATE: {"malformed_rate": 0.3}})
    requests = [{"custom_id": f"t{i}", "params": p} for i, p in enumerate(params)]
    batch = anthropic_client.messages.batches.create(requests=requests)
    anthropic_client.messages.batches.retrieve(batch.id)
    invalid = set()
    for line in anthropic_client.messages.batches.results(batch.id):
        message = line.result.message
        try:
            jsonschema.Draft202012Validator(SCHEMA).validate(_answer(message))
            assert message.stop_reason == "end_turn"
        except (json.JSONDecodeError, jsonschema.ValidationError, AssertionError, ValueError):
            invalid.add(int(line.custom_id[1:]))
    assert invalid == broken
    others = [anthropic_client.messages.create(**_params(i, STRONGEST)) for i in sorted(broken)[:10]]
    for message in others:
        jsonschema.Draft202012Validator(SCHEMA).validate(_answer(message))


@pytest.mark.parametrize(
    "schema_name", ["classification", "bounded_numbers", "strings", "nested", "refs_and_unions"]
)
def test_every_disagreeing_field_is_valid_and_different_where_the_schema_allows(schema_name: str) -> None:
    from tests.emulator.test_emulator_replies import SCHEMAS

    schema = SCHEMAS[schema_name]
    tool = {"name": "emit", "input_schema": schema}
    for i in range(20):
        params = message_params(_prompt(i), tools=[tool], tool_choice={"type": "tool", "name": "emit"})
        canonical = generate_reply(params, malformed_rate=0.0).content[0]["input"]
        profile = ModelProfile("m", {"*": 0.0})
        answer = generate_reply(params, malformed_rate=0.0, profile=profile).content[0]["input"]
        jsonschema.Draft202012Validator(schema).validate(answer)
        # a const, a union whose only non-null branch has one value, an array that must be empty
        fixed = {"fixed", "choice", "notes"}
        changed = [answer[name] != canonical[name] for name in canonical if name not in fixed]
        assert all(changed), (canonical, answer)


def test_profiles_are_shown_resolved_and_reset_clears_them(emulator) -> None:
    shown = emulator.configure(model_profiles={
        "claude-haiku-4-5-20251001": {"agreement": {"*": 0.95, "label": 0.93}, "malformed_rate": 0.02},
    })
    expected = {"claude-haiku-4-5": {"agreement": {"*": 0.95, "label": 0.93}, "malformed_rate": 0.02}}
    assert shown["model_profiles"] == expected
    assert httpx.get(f"{emulator.url}/_emulator/config").json()["model_profiles"] == expected
    assert emulator.reset()["config"]["model_profiles"] == {}
    assert httpx.get(f"{emulator.url}/_emulator/config").json()["model_profiles"] == {}


@pytest.mark.parametrize(
    ("profiles", "message"),
    [
        ({"claude-haiku-9": {}}, "unknown model 'claude-haiku-9' (known: claude-haiku-4-5, claude-haiku-5-5"),
        ({CANDIDATE: {"agreement": {"label": 1.5}}}, "agreement['label'] must be between 0 and 1"),
        ({CANDIDATE: {"agreement": {"*": -0.1}}}, "agreement['*'] must be between 0 and 1"),
        ({CANDIDATE: {"agreement": {"label": "high"}}}, "must be a number between 0 and 1"),
        ({CANDIDATE: {"malformed_rate": 2}}, "malformed_rate must be between 0 and 1"),
        ({CANDIDATE: {"agreemnt": {"*": 0.9}}}, "unknown keys agreemnt (known: agreement, malformed_rate)"),
        ({CANDIDATE: {"agreement": 0.9}}, "agreement must be an object"),
        ({CANDIDATE: {}, "claude-haiku-5-5-20260101": {}}, "which already has a profile"),
        ([CANDIDATE], "model_profiles must be an object"),
    ],
)
def test_bad_profiles_are_refused_with_a_400_naming_the_problem(emulator, profiles, message) -> None:
    response = httpx.post(f"{emulator.url}/_emulator/config", json={"model_profiles": profiles})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert message in response.json()["error"]["message"]
    assert emulator.configure()["model_profiles"] == {}
    with pytest.raises(EmulatorError):
        emulator.configure(model_profiles=profiles)


def test_the_cli_flag_sets_profiles_that_reset_returns_to(tmp_path: Path) -> None:
    profiles = {CANDIDATE: {"agreement": {"*": 0.95, "label": 0.93}, "malformed_rate": 0.02}}
    with EmulatorServer(tmp_path / "flags", rate="inf", model_profiles=profiles) as server:
        assert server.command().count("--model-profile") == 3
        assert server.configure()["model_profiles"] == profiles
        server.configure(model_profiles={})
        assert server.reset()["config"]["model_profiles"] == profiles

    assert parse_profile_flags(["claude-haiku-5-5=0.9", "claude-haiku-5-5-20260101:malformed_rate=0.1"]) == {
        CANDIDATE: {"agreement": {"*": 0.9}, "malformed_rate": 0.1}
    }
    unknown = _run_cli(tmp_path, "--model-profile", "claude-haiku-5-5=0.9", "--model-profile", "nope:label=0.5")
    assert unknown.returncode == 2 and "unknown model 'nope'" in unknown.stderr
    bad_rate = _run_cli(tmp_path, "--model-profile", "claude-haiku-5-5:label=high")
    assert bad_rate.returncode == 2 and "'high' is not a number between 0 and 1" in bad_rate.stderr
    no_rate = _run_cli(tmp_path, "--model-profile", "claude-haiku-5-5")
    assert no_rate.returncode == 2 and "expected MODEL=RATE" in no_rate.stderr


def _run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Flags refused before the server binds: the process exits 2 with the problem on stderr."""
    devtools = str(Path(__file__).resolve().parents[2] / "devtools")
    path = os.pathsep.join(filter(None, [devtools, os.environ.get("PYTHONPATH")]))
    state = str(tmp_path / "cli.sqlite3")
    command = [sys.executable, "-m", "emulator", "--port", "0", "--state", state, *args]
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
