"""Message Batches conformance through the official SDK (sync and async) over real HTTP."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from emulator.testing import EmulatorServer, batch_request, message_params


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _requests(count: int, prefix: str = "req") -> list[dict]:
    return [batch_request(f"{prefix}-{i}", f"Question {i}. Is this a billing issue?") for i in range(count)]


def test_create_retrieve_and_results(emulator: EmulatorServer, anthropic_client: anthropic.Anthropic) -> None:
    created = anthropic_client.messages.batches.create(requests=_requests(3))
    assert created.id.startswith("msgbatch_")
    assert created.type == "message_batch"
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 3
    assert created.results_url is None
    assert (created.expires_at - created.created_at).total_seconds() == pytest.approx(24 * 3600)

    batch = anthropic_client.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended"
    assert batch.request_counts.model_dump() == {
        "processing": 0,
        "succeeded": 3,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert batch.results_url == f"{emulator.url}/v1/messages/batches/{created.id}/results"
    assert batch.ended_at is not None and batch.archived_at is None and batch.cancel_initiated_at is None

    lines = anthropic_client.messages.batches.results(created.id)
    results = {line.custom_id: line.result for line in lines}
    assert set(results) == {"req-0", "req-1", "req-2"}
    for result in results.values():
        assert result.type == "succeeded"
        message = result.message
        assert message.role == "assistant" and message.content[0].type == "text"
        assert message.usage.service_tier == "batch"
        assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_results_are_jsonl_with_one_object_per_line(emulator: EmulatorServer, anthropic_client) -> None:
    batch = anthropic_client.messages.batches.create(requests=_requests(5))
    url = anthropic_client.messages.batches.retrieve(batch.id).results_url
    response = httpx.get(url, headers={"x-api-key": emulator.api_key})
    assert response.status_code == 200
    assert response.headers["request-id"]
    assert response.text.endswith("\n")
    lines = response.text.split("\n")[:-1]
    assert len(lines) == 5 and all(line.startswith('{"custom_id":') for line in lines)


def test_results_before_end_and_unknown_batch(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.configure(rate=0.001)
    batch = anthropic_client.messages.batches.create(requests=_requests(2))
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        anthropic_client.messages.batches.results(batch.id)
    direct = httpx.get(f"{emulator.url}/v1/messages/batches/{batch.id}/results", headers={"x-api-key": "k"})
    assert direct.status_code == 400 and direct.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError) as raised:
        anthropic_client.messages.batches.retrieve("msgbatch_doesnotexist")
    assert raised.value.type == "not_found_error"
    assert raised.value.request_id and raised.value.body["request_id"] == raised.value.request_id


def test_list_pages_newest_first(emulator: EmulatorServer, anthropic_client) -> None:
    ids = [anthropic_client.messages.batches.create(requests=_requests(1, f"b{i}")).id for i in range(5)]
    newest_first = list(reversed(ids))

    listed = [batch.id for batch in anthropic_client.messages.batches.list(limit=2)]
    assert listed == newest_first
    assert emulator.endpoint_calls("list") == 3  # pages of 2, 2 and 1

    first_page = anthropic_client.messages.batches.list(limit=2)
    assert [b.id for b in first_page.data] == newest_first[:2]
    assert first_page.has_more
    assert (first_page.first_id, first_page.last_id) == (newest_first[0], newest_first[1])
    after = anthropic_client.messages.batches.list(limit=2, after_id=newest_first[1])
    assert [b.id for b in after.data] == newest_first[2:4] and after.has_more
    last = anthropic_client.messages.batches.list(limit=2, after_id=newest_first[3])
    assert [b.id for b in last.data] == newest_first[4:] and not last.has_more

    before = anthropic_client.messages.batches.list(limit=2, before_id=newest_first[4])
    assert [b.id for b in before.data] == newest_first[2:4] and before.has_more
    # Paging backwards the SDK follows first_id, so pages arrive newest-last, each newest-first inside.
    backwards = [b.id for b in anthropic_client.messages.batches.list(limit=2, before_id=newest_first[4])]
    assert backwards == newest_first[2:4] + newest_first[0:2]

    default = anthropic_client.messages.batches.list()
    assert len(default.data) == 5 and not default.has_more
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.batches.list(limit=1001)
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.batches.list(limit=0)


def test_cancel_and_delete(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.configure(rate=0.001)
    batch = anthropic_client.messages.batches.create(requests=_requests(3))
    with pytest.raises(anthropic.BadRequestError, match="cancel it first"):
        anthropic_client.messages.batches.delete(batch.id)
    canceling = anthropic_client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert canceling.request_counts.processing == 3
    emulator.advance(60)
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.canceled == 3
    assert [r.result.type for r in anthropic_client.messages.batches.results(batch.id)] == ["canceled"] * 3
    with pytest.raises(anthropic.BadRequestError, match="already ended"):
        anthropic_client.messages.batches.cancel(batch.id)

    deleted = anthropic_client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.batches.retrieve(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.batches.delete(batch.id)


def test_create_time_validation(emulator: EmulatorServer, anthropic_client) -> None:
    requests = _requests(20)
    requests[17]["custom_id"] = "has a space"
    with pytest.raises(anthropic.BadRequestError) as raised:
        anthropic_client.messages.batches.create(requests=requests)
    assert raised.value.type == "invalid_request_error"
    assert raised.value.api_message.startswith("requests.17.custom_id:")

    duplicate = _requests(4)
    duplicate[3]["custom_id"] = duplicate[1]["custom_id"]
    with pytest.raises(anthropic.BadRequestError, match=r"requests\.3\.custom_id: Duplicate"):
        anthropic_client.messages.batches.create(requests=duplicate)
    too_long = _requests(1)
    too_long[0]["custom_id"] = "x" * 65
    with pytest.raises(anthropic.BadRequestError, match=r"requests\.0\.custom_id"):
        anthropic_client.messages.batches.create(requests=too_long)
    with pytest.raises(anthropic.BadRequestError, match="at least 1 item"):
        anthropic_client.messages.batches.create(requests=[])
    with pytest.raises(anthropic.BadRequestError, match=r"requests\.1\.params: Field required"):
        anthropic_client.messages.batches.create(requests=[_requests(1)[0], {"custom_id": "a"}])
    assert emulator.stats()["batches_created"] == 0


def test_body_over_the_cap_is_413(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.configure(max_body_bytes=20_000)
    big = [batch_request(f"r{i}", "x" * 1_000) for i in range(40)]
    with pytest.raises(anthropic.ContentTooLargeError) as raised:
        anthropic_client.messages.batches.create(requests=big)
    assert raised.value.status_code == 413 and raised.value.type == "request_too_large"
    chunked = httpx.post(
        f"{emulator.url}/v1/messages/batches",
        headers={"x-api-key": "k", "content-type": "application/json"},
        content=(part for part in [b'{"requests": [', b"1" * 30_000, b"]}"]),
    )
    assert chunked.status_code == 413
    assert anthropic_client.messages.batches.create(requests=big[:5]).request_counts.processing == 5


def test_params_problems_come_back_as_errored_results(emulator: EmulatorServer, anthropic_client) -> None:
    requests = [
        batch_request("ok", "Fine request."),
        {"custom_id": "no-max-tokens", "params": {"model": "claude-haiku-4-5", "messages": _user("hi")}},
        {"custom_id": "no-messages", "params": {**message_params("x"), "messages": []}},
        batch_request("unknown-model", "hi", model="claude-imaginary-9"),
        batch_request("too-long", "word " * 900_000),
        batch_request("both-sampling", "hi", temperature=0.5, top_p=0.9),
        batch_request("over-max-output", "hi", max_tokens=500_000),
        batch_request("typo-param", "hi", max_token=5),
    ]
    batch = anthropic_client.messages.batches.create(requests=requests)
    counts = anthropic_client.messages.batches.retrieve(batch.id).request_counts
    assert (counts.succeeded, counts.errored) == (1, 7)
    results = {r.custom_id: r.result for r in anthropic_client.messages.batches.results(batch.id)}
    assert results["ok"].type == "succeeded"
    errors = {
        cid: (result.error.error.type, result.error.error.message)
        for cid, result in results.items()
        if result.type == "errored"
    }
    assert errors["no-max-tokens"] == ("invalid_request_error", "max_tokens: Field required")
    assert errors["no-messages"][0] == "invalid_request_error"
    assert errors["unknown-model"] == ("not_found_error", "model: claude-imaginary-9")
    assert errors["too-long"][0] == "invalid_request_error" and "prompt is too long" in errors["too-long"][1]
    # The SDK sends anthropic-version 2026-10-21, which rejects sampling parameters outright.
    assert errors["both-sampling"][1] == "temperature: Extra inputs are not permitted"
    assert "maximum allowed number of output tokens" in errors["over-max-output"][1]
    assert errors["typo-param"][1] == "max_token: Extra inputs are not permitted"


def test_sampling_parameters_follow_the_api_version_rule(emulator: EmulatorServer) -> None:
    requests = [
        batch_request("temperature", "hi", temperature=0.2),
        batch_request("both", "hi", temperature=0.2, top_p=0.5),
    ]
    outcomes = {}
    for version in ("2023-06-01", "2026-10-21"):
        headers = {"x-api-key": "k", "anthropic-version": version}
        endpoint = f"{emulator.url}/v1/messages/batches"
        batch = httpx.post(endpoint, json={"requests": requests}, headers=headers).json()
        url = httpx.get(f"{endpoint}/{batch['id']}", headers=headers).json()["results_url"]
        for line in map(json.loads, httpx.get(url, headers=headers).text.splitlines()):
            outcomes[(version, line["custom_id"])] = line["result"]["type"]
    assert outcomes == {
        ("2023-06-01", "temperature"): "succeeded",
        ("2023-06-01", "both"): "errored",
        ("2026-10-21", "temperature"): "errored",
        ("2026-10-21", "both"): "errored",
    }


def test_authentication_and_headers(emulator: EmulatorServer, anthropic_client) -> None:
    missing = httpx.get(f"{emulator.url}/v1/messages/batches")
    assert missing.status_code == 401
    body = missing.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert body["request_id"] == missing.headers["request-id"]
    with_x_api_key = httpx.get(f"{emulator.url}/v1/messages/batches?beta=true", headers={"x-api-key": "any"})
    assert with_x_api_key.status_code == 200 and with_x_api_key.headers["request-id"]
    not_bearer = httpx.get(f"{emulator.url}/v1/messages/batches", headers={"authorization": "Basic abc"})
    assert not_bearer.status_code == 401
    keyless = anthropic.Anthropic(
        base_url=emulator.url, api_key="x", default_headers={"Authorization": anthropic.Omit()}
    )
    with pytest.raises(anthropic.AuthenticationError):
        keyless.messages.batches.list()
    beta = anthropic_client.beta.messages.batches.create(requests=_requests(1))
    assert anthropic_client.messages.batches.retrieve(beta.id).processing_status == "ended"


async def test_async_client_covers_every_batch_endpoint(
    emulator: EmulatorServer, async_anthropic_client: anthropic.AsyncAnthropic
) -> None:
    batches = async_anthropic_client.messages.batches
    created = [await batches.create(requests=_requests(2, f"a{i}")) for i in range(3)]
    listed = [batch.id async for batch in batches.list(limit=2)]
    assert listed == [batch.id for batch in reversed(created)]
    retrieved = await batches.retrieve(created[0].id)
    assert retrieved.processing_status == "ended" and retrieved.request_counts.succeeded == 2
    results = [result async for result in await batches.results(created[0].id)]
    assert sorted(r.custom_id for r in results) == ["a0-0", "a0-1"]
    assert all(r.result.type == "succeeded" for r in results)
    deleted = await batches.delete(created[0].id)
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        await batches.retrieve(created[0].id)

    emulator.configure(rate=0.001)
    slow = await batches.create(requests=_requests(2, "slow"))
    canceled = await batches.cancel(slow.id)
    assert canceled.processing_status == "canceling"
    with pytest.raises(anthropic.BadRequestError):
        await batches.create(requests=[{"custom_id": "bad id", "params": message_params("x")}])


def test_a_configured_api_key_is_the_only_one_accepted(tmp_path) -> None:
    key = "sk-emulator-only-this-one"
    with EmulatorServer(tmp_path, rate="inf", api_key=key) as server:
        assert key not in " ".join(server.command())  # passed in the environment, not visible in `ps`
        right = anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)
        assert right.messages.batches.list().data == []
        wrong = anthropic.Anthropic(base_url=server.url, api_key="sk-emulator-test", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
            wrong.messages.batches.list()
        as_header = httpx.get(f"{server.url}/v1/messages/batches", headers={"x-api-key": key})
        assert as_header.status_code == 200
        config = server.control.configure()
        assert config["api_key"] == "(set)"  # the control routes say a key is required, never which
        assert key not in json.dumps([config, server.control.health(), server.stats()])
