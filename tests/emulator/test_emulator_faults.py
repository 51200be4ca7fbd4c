"""Injected faults as the SDK sees them: retries, exhausted retries, item errors, cut streams."""

from __future__ import annotations

import time

import anthropic
import httpx
import httpx2
import pytest

from emulator.testing import EmulatorServer, batch_request, message_params

FAST_RETRY = 0.01  # seconds, sent as retry-after-ms so the SDK's retries do not slow the suite


def _one_batch(client) -> str:
    return client.messages.batches.create(requests=[batch_request("only", "Hello.")]).id


@pytest.mark.parametrize(
    ("status", "error_class"), [(529, anthropic.OverloadedError), (429, anthropic.RateLimitError)]
)
def test_sdk_retries_through_a_limited_fault(
    emulator: EmulatorServer, anthropic_client, status: int, error_class: type[Exception]
) -> None:
    batch_id = _one_batch(anthropic_client)
    emulator.add_fault(kind="status", endpoint="retrieve", status=status, count=2, retry_after=FAST_RETRY)
    assert anthropic_client.messages.batches.retrieve(batch_id).processing_status == "ended"
    retrieve = emulator.stats()["endpoints"]["retrieve"]
    assert retrieve == {"total": 3, "by_status": {str(status): 2, "200": 1}}

    emulator.clear_faults()
    emulator.add_fault(kind="status", endpoint="retrieve", status=status, count=5, retry_after=FAST_RETRY)
    with pytest.raises(error_class) as raised:
        anthropic_client.messages.batches.retrieve(batch_id)
    assert raised.value.status_code == status
    assert emulator.endpoint_calls("retrieve") == 3 + 3  # max_retries + 1 attempts
    (fault,) = emulator.faults()
    assert (fault["calls"], fault["fired"]) == (3, 3)


async def test_async_sdk_retries_and_gives_up(emulator: EmulatorServer, async_anthropic_client) -> None:
    batches = async_anthropic_client.messages.batches
    batch = await batches.create(requests=[batch_request("only", "Hello.")])
    emulator.add_fault(kind="status", endpoint="retrieve", status=529, count=2, retry_after=FAST_RETRY)
    assert (await batches.retrieve(batch.id)).processing_status == "ended"
    assert emulator.endpoint_calls("retrieve") == 3
    emulator.add_fault(kind="status", endpoint="create", status=429, retry_after=FAST_RETRY)
    with pytest.raises(anthropic.RateLimitError):
        await batches.create(requests=[batch_request("x", "Hi.")])
    assert emulator.stats()["endpoints"]["create"]["by_status"] == {"200": 1, "429": 3}


def test_rate_limit_headers_and_error_body(emulator: EmulatorServer) -> None:
    emulator.add_fault(kind="status", endpoint="list", status=429, retry_after=2.5, count=1)
    response = httpx.get(f"{emulator.url}/v1/messages/batches", headers={"x-api-key": "k"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3" and response.headers["retry-after-ms"] == "2500"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response.json()["request_id"] == response.headers["request-id"]
    assert httpx.get(f"{emulator.url}/v1/messages/batches", headers={"x-api-key": "k"}).status_code == 200


def test_server_error_on_messages_and_should_retry_header(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.add_fault(kind="status", endpoint="messages", status=500, should_retry=False)
    with pytest.raises(anthropic.InternalServerError) as raised:
        anthropic_client.messages.create(**message_params("hi"))
    assert raised.value.status_code == 500 and raised.value.type == "api_error"
    assert emulator.endpoint_calls("messages") == 1  # x-should-retry: false stops the SDK


def test_rate_based_faults_are_evenly_spaced_and_reproducible(emulator: EmulatorServer) -> None:
    emulator.add_fault(kind="status", endpoint="list", status=500, rate=0.5)
    url = f"{emulator.url}/v1/messages/batches"
    statuses = [httpx.get(url, headers={"x-api-key": "k"}).status_code for _ in range(6)]
    assert statuses == [200, 500, 200, 500, 200, 500]


def test_delay_fault_makes_the_sdk_time_out(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.add_fault(kind="delay", endpoint="list", seconds=0.6, count=1)
    with pytest.raises(anthropic.APITimeoutError):
        anthropic_client.with_options(timeout=0.2, max_retries=0).messages.batches.list()
    anthropic_client.with_options(timeout=0.2, max_retries=0).messages.batches.list()  # the count is used up
    (fault,) = emulator.faults()
    assert (fault["calls"], fault["fired"]) == (2, 1)


def _batches_listed(client, at_least: int, within: float = 10.0) -> int:
    """How many batches the API lists, polled until ``at_least`` appear or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while (listed := len(client.messages.batches.list(limit=100).data)) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return listed


@pytest.mark.parametrize("prompt_chars", [10, 300_000], ids=["small-body", "body-over-uvicorns-buffer"])
def test_a_create_delayed_past_the_clients_timeout_still_happens_late(
    emulator: EmulatorServer, anthropic_client, prompt_chars: int
) -> None:
    """A delay before the work is a server that has the request and is slow to act on it: the
    client gives up, yet the batch is created afterwards. Whether the client's hang-up is
    noticed before the body is read must not decide that (uvicorn drops an unread body)."""
    emulator.add_fault(kind="delay", endpoint="create", seconds=0.6, count=1)
    impatient = anthropic_client.with_options(timeout=0.1, max_retries=0)
    with pytest.raises(anthropic.APITimeoutError):
        impatient.messages.batches.create(requests=[batch_request("late", "x" * prompt_chars)])
    assert _batches_listed(anthropic_client, at_least=1) == 1


def _settled(emulator: EmulatorServer, within: float = 10.0) -> dict:
    """The emulator's stats once no API call is in flight (a delayed or held call finished)."""
    deadline = time.monotonic() + within
    while (stats := emulator.stats())["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats["in_flight"] == 0, "calls still in flight"
    return stats


def test_a_call_still_waiting_when_the_emulator_is_reset_leaves_the_new_state_alone(
    emulator: EmulatorServer, anthropic_client
) -> None:
    """A test's reset starts the next test clean: a delayed create from before it creates nothing after it,
    and a held answer is not counted in the new stats (it was counted in nobody's)."""
    emulator.add_fault(kind="delay", endpoint="create", seconds=0.6, count=1)
    emulator.add_fault(kind="delay", endpoint="list", seconds=0.6, after=True, count=1)
    impatient = anthropic_client.with_options(timeout=0.1, max_retries=0)
    with pytest.raises(anthropic.APITimeoutError):
        impatient.messages.batches.create(requests=[batch_request("before-reset", "x")])
    with pytest.raises(anthropic.APITimeoutError):
        impatient.messages.batches.list()
    emulator.reset()

    stats = _settled(emulator)
    assert (stats["requests_total"], stats["batches_created"]) == (0, 0)
    assert anthropic_client.messages.batches.list(limit=100).data == []


def test_item_level_faults_by_custom_id_and_rate(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.add_fault(kind="item_error", custom_id="overload-.*", error_type="overloaded_error")
    emulator.add_fault(kind="item_error", custom_id="broken-.*", error_type="api_error")
    emulator.add_fault(kind="item_error", custom_id="invalid-.*", error_type="invalid_request_error")
    prefixes = ("overload", "broken", "invalid", "fine")
    requests = [batch_request(f"{prefix}-{i}", "Hello.") for prefix in prefixes for i in range(2)]
    batch = anthropic_client.messages.batches.create(requests=requests)
    counts = anthropic_client.messages.batches.retrieve(batch.id).request_counts
    assert (counts.succeeded, counts.errored) == (2, 6)
    lines = anthropic_client.messages.batches.results(batch.id)
    outcomes = {line.custom_id: (line.result.type, getattr(line.result, "error", None)) for line in lines}
    assert outcomes["overload-0"][1].error.type == "overloaded_error"
    assert outcomes["broken-1"][1].error.type == "api_error"
    assert outcomes["invalid-0"][1].error.type == "invalid_request_error"
    assert outcomes["fine-0"][0] == "succeeded"

    emulator.clear_faults()
    emulator.add_fault(kind="item_error", rate=0.3, error_type="overloaded_error")
    many = [batch_request(f"m{i}", "Hello.") for i in range(100)]
    first = anthropic_client.messages.batches.create(requests=many)
    second = anthropic_client.messages.batches.create(requests=many)
    errored = []
    for batch_id in (first.id, second.id):
        anthropic_client.messages.batches.retrieve(batch_id)
        lines = anthropic_client.messages.batches.results(batch_id)
        errored.append({line.custom_id for line in lines if line.result.type == "errored"})
    assert errored[0] == errored[1]  # chosen by a stable hash, not by chance
    assert 15 <= len(errored[0]) <= 45


def test_item_fault_count_limits_firings(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.add_fault(kind="item_error", custom_id=".*", count=3)
    requests = [batch_request(f"r{i}", "Hi.") for i in range(10)]
    batch = anthropic_client.messages.batches.create(requests=requests)
    counts = anthropic_client.messages.batches.retrieve(batch.id).request_counts
    assert (counts.errored, counts.succeeded) == (3, 7)


def test_item_fault_on_messages_needs_a_params_hash(emulator: EmulatorServer, anthropic_client) -> None:
    params = {"model": "claude-haiku-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": "hi"}]}
    emulator.add_fault(kind="item_error", error_type="overloaded_error")  # batch items only
    assert anthropic_client.messages.create(**params).stop_reason == "end_turn"
    params_hash = emulator.params_hash(params)
    emulator.add_fault(kind="item_error", error_type="overloaded_error", params_hash=params_hash)
    with pytest.raises(anthropic.OverloadedError):
        anthropic_client.with_options(max_retries=0).messages.create(**params)


@pytest.mark.parametrize("after_lines", [0, 300])
def test_results_stream_cut_mid_way_raises_in_the_sdk(emulator, anthropic_client, after_lines: int) -> None:
    requests = [batch_request(f"r{i}", "Hi.") for i in range(600)]
    batch = anthropic_client.messages.batches.create(requests=requests)
    anthropic_client.messages.batches.retrieve(batch.id)
    emulator.add_fault(kind="cut", after_lines=after_lines, count=1)
    received = []
    with pytest.raises(httpx2.RemoteProtocolError):
        for result in anthropic_client.messages.batches.results(batch.id):
            received.append(result.custom_id)
    # The server sent exactly `after_lines` lines; the SDK reads in 64-byte pieces and drops the
    # last partial piece when the connection fails, so it may hand over one line fewer.
    whole = [result.custom_id for result in anthropic_client.messages.batches.results(batch.id)]
    assert len(whole) == 600  # the fault was used up
    assert received == whole[: len(received)]  # the same (shuffled) order, cut short
    assert after_lines - 1 <= len(received) <= after_lines


def test_fault_controls_round_trip(emulator: EmulatorServer) -> None:
    added = emulator.add_fault(kind="status", endpoint="cancel", status=503)
    assert added["id"] > 0 and added["error_type"] == "api_error"
    listed = emulator.faults()
    assert [fault["id"] for fault in listed] == [added["id"]]
    deleted = httpx.delete(f"{emulator.url}/_emulator/faults/{added['id']}")
    assert deleted.status_code == 200 and emulator.faults() == []
    bad = httpx.post(f"{emulator.url}/_emulator/faults", json={"kind": "status", "status": 200})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    body = {"faults": [{"kind": "delay"}, {"kind": "perturb"}]}
    several = httpx.post(f"{emulator.url}/_emulator/faults", json=body)
    assert [fault["kind"] for fault in several.json()["faults"]] == ["delay", "perturb"]
    emulator.clear_faults()
    assert emulator.faults() == []


def test_faults_from_the_command_line(tmp_path) -> None:
    faults = [{"kind": "status", "endpoint": "list", "status": 529, "count": 1, "retry_after": FAST_RETRY}]
    with EmulatorServer(tmp_path, rate="inf", faults=faults) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key=server.api_key, max_retries=2)
        assert client.messages.batches.list().data == []
        assert server.stats()["endpoints"]["list"]["by_status"] == {"200": 1, "529": 1}
        server.reset()  # reset restores the startup faults
        assert server.faults()[0]["fired"] == 0
