"""The Message Batches request-rate and queue-depth limits: counted always, enforced when set.

Through the official SDK over real HTTP, except the in-process checks of the token bucket at
the end. No test sleeps: where the window has to slide, it is shortened with
``rate_window_seconds`` and the SDK waits out ``retry-after-ms`` itself.
"""

from __future__ import annotations

import anthropic
import httpx
import pytest

from emulator.config import EmulatorConfig, parse_limit
from emulator.limits import BatchLimits
from emulator.testing import EmulatorServer, batch_request, message_params

KEY = {"x-api-key": "k"}


def _requests(count: int, prefix: str) -> list[dict]:
    return [batch_request(f"{prefix}-{i}", f"Question {i}. Is this a billing issue?") for i in range(count)]


def _no_retries(emulator: EmulatorServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=emulator.url, api_key=emulator.api_key, max_retries=0)


def test_unlimited_by_default_and_every_batch_call_is_counted(
    emulator: EmulatorServer, anthropic_client: anthropic.Anthropic
) -> None:
    config = emulator.configure()
    assert (config["batch_rpm_limit"], config["max_queued_requests"], config["rate_window_seconds"]) == (
        None,
        None,
        60.0,
    )
    batches = anthropic_client.messages.batches
    batch = batches.create(requests=_requests(3, "a"))  # 1
    for _ in range(3):
        assert batches.retrieve(batch.id).processing_status == "ended"  # 4
    with httpx.Client(base_url=emulator.url, headers=KEY) as http:
        for _ in range(60):  # beyond the lowest tier's 50 per minute: nothing is limited by default
            assert http.get("/v1/messages/batches").status_code == 200  # 64
    results_url = f"{emulator.url}/v1/messages/batches/{batch.id}/results"
    assert httpx.get(results_url, headers=KEY).status_code == 200  # 65
    cancel_url = f"{emulator.url}/v1/messages/batches/{batch.id}/cancel"
    assert httpx.post(cancel_url, headers=KEY).status_code == 400  # 66: errors count too
    batches.delete(batch.id)  # 67
    # Not batch endpoints, or not authenticated: not counted.
    anthropic_client.messages.create(**message_params("hi"))
    params = message_params("hi")
    anthropic_client.messages.count_tokens(model=params["model"], messages=params["messages"])
    assert httpx.get(f"{emulator.url}/v1/messages/batches").status_code == 401

    assert emulator.batch_limits() == {
        "batch_requests_last_60s": 67,
        "peak_batch_rpm": 67,
        "rate_limited": 0,
        "queued_requests": 0,  # instant processing: the batch ended as soon as it was created
        "peak_queued_requests": 3,  # but it was queued when created
        "rate_window_seconds": 60.0,
    }
    emulator.reset()
    assert emulator.batch_limits()["peak_batch_rpm"] == 0


def test_rpm_limit_answers_429_and_rejected_calls_are_not_processed(emulator: EmulatorServer) -> None:
    emulator.configure(rate=1, batch_rpm_limit=5)
    emulator.set_speed(0)  # keep the batch in progress, so a cancel would show
    client = _no_retries(emulator)
    batch = client.messages.batches.create(requests=_requests(2, "b"))  # 1
    for _ in range(4):
        client.messages.batches.retrieve(batch.id)  # 2-5
    fault = emulator.add_fault(kind="status", endpoint="cancel", status=500)

    with pytest.raises(anthropic.RateLimitError) as raised:
        client.messages.batches.retrieve(batch.id)  # 6
    error = raised.value
    assert error.status_code == 429 and error.type == "rate_limit_error"
    assert "5 requests per minute" in error.message and "Message Batches API" in error.message
    headers = error.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert 0 < int(headers["retry-after-ms"]) <= 60_000
    assert int(headers["retry-after"]) == -(-int(headers["retry-after-ms"]) // 1000)  # ms rounded up
    assert error.body is not None and headers["request-id"] == error.request_id

    with pytest.raises(anthropic.RateLimitError):
        client.messages.batches.cancel(batch.id)  # 7: rejected before faults and the route
    with pytest.raises(anthropic.RateLimitError):
        client.messages.batches.create(requests=_requests(1, "c"))  # 8
    assert client.messages.create(**message_params("hi")).type == "message"  # not a batch endpoint

    stats = emulator.stats()
    assert (stats["batch_requests_last_60s"], stats["peak_batch_rpm"], stats["rate_limited"]) == (8, 8, 3)
    assert stats["endpoints"]["retrieve"]["by_status"] == {"200": 4, "429": 1}
    assert stats["endpoints"]["cancel"]["by_status"] == {"429": 1}
    assert stats["endpoints"]["create"]["by_status"] == {"200": 1, "429": 1}
    assert stats["batches_created"] == 1 and stats["queued_requests"] == 2
    (fault_state,) = emulator.faults()
    assert fault_state["id"] == fault["id"] and fault_state["calls"] == 0

    emulator.configure(batch_rpm_limit=0)  # 0 = unlimited again
    after = client.messages.batches.retrieve(batch.id)  # 9
    assert after.processing_status == "in_progress" and after.cancel_initiated_at is None
    assert emulator.batch_limits()["batch_requests_last_60s"] == 9
    client.close()


def test_sdk_waits_out_retry_after_while_the_window_slides(
    emulator: EmulatorServer, anthropic_client: anthropic.Anthropic
) -> None:
    emulator.configure(batch_rpm_limit=2, rate_window_seconds=1)
    with httpx.Client(base_url=emulator.url, headers=KEY) as http:
        # Calls a few ms apart; should the machine stall for a whole second the window slides
        # and lets more through, so call until the first 429 rather than exactly three times.
        statuses = []
        while 429 not in statuses and len(statuses) < 10:
            limited = http.get("/v1/messages/batches")
            statuses.append(limited.status_code)
    assert statuses[-1] == 429 and statuses.count(200) >= 2
    assert "2 requests per 1 seconds" in limited.json()["error"]["message"]
    assert limited.headers["retry-after"] == "1"  # rounded up, at least 1
    assert 0 < int(limited.headers["retry-after-ms"]) <= 1000

    # max_retries=2: the SDK sleeps retry-after-ms, by which time the window has room again.
    assert anthropic_client.messages.batches.list().data == []
    by_status = emulator.stats()["endpoints"]["list"]["by_status"]
    limits = emulator.batch_limits()
    assert by_status["200"] == statuses.count(200) + 1
    assert limits["rate_limited"] == by_status["429"] >= 1
    assert limits["peak_batch_rpm"] >= 3


def test_queue_cap_rejects_a_create_until_earlier_batches_end(emulator: EmulatorServer) -> None:
    emulator.configure(rate=1, max_queued_requests=5)  # 1 request per virtual second
    emulator.set_speed(0)
    client = _no_retries(emulator)
    batches = client.messages.batches
    first = batches.create(requests=_requests(3, "first"))
    assert emulator.batch_limits()["queued_requests"] == 3

    with pytest.raises(anthropic.RateLimitError) as raised:
        batches.create(requests=_requests(3, "too-many"))
    message = raised.value.message
    assert raised.value.status_code == 429 and raised.value.type == "rate_limit_error"
    assert "limit of 5 batch requests in the processing queue" in message
    assert "3 requests are currently queued" in message and "this batch has 3" in message

    second = batches.create(requests=_requests(2, "second"))  # exactly at the cap is fine
    assert emulator.batch_limits()["queued_requests"] == 5
    with pytest.raises(anthropic.RateLimitError):
        batches.create(requests=_requests(1, "one-more"))
    assert batches.retrieve(first.id).processing_status == "in_progress"

    emulator.advance(3)  # 3 requests at 1 per second: both batches have ended
    assert batches.retrieve(first.id).processing_status == "ended"
    assert batches.retrieve(second.id).request_counts.succeeded == 2
    assert emulator.batch_limits()["queued_requests"] == 0
    third = batches.create(requests=_requests(5, "third"))

    batches.cancel(third.id)  # a canceling batch's requests stay queued until it has ended
    assert emulator.batch_limits()["queued_requests"] == 5
    emulator.advance(10)  # the default cancel delay
    stats = emulator.stats()
    assert (stats["queued_requests"], stats["peak_queued_requests"], stats["rate_limited"]) == (0, 5, 2)
    assert stats["batches_created"] == 3 and stats["batch_requests_total"] == 10  # rejected: no batch
    assert [b.id for b in batches.list().data] == [third.id, second.id, first.id]
    client.close()


def test_limits_from_flags_are_persisted_and_the_window_restarts_with_the_process(tmp_path) -> None:
    with EmulatorServer(tmp_path, batch_rpm_limit=2, max_queued_requests=7, rate_window_seconds=30) as server:
        config = server.configure()
        assert (config["batch_rpm_limit"], config["max_queued_requests"]) == (2, 7)
        assert config["rate_window_seconds"] == 30.0
        url = f"{server.url}/v1/messages/batches"
        assert [httpx.get(url, headers=KEY).status_code for _ in range(3)] == [200, 200, 429]
        limited = httpx.get(url, headers=KEY)
        assert "2 requests per 30 seconds" in limited.json()["error"]["message"]
        assert 1 <= int(limited.headers["retry-after"]) <= 30

        server.restart()  # config survives; the in-memory window and counters do not
        assert server.configure()["batch_rpm_limit"] == 2
        assert server.batch_limits()["batch_requests_last_60s"] == 0
        assert server.batch_limits()["rate_limited"] == 0
        assert httpx.get(url, headers=KEY).status_code == 200

        server.configure(batch_rpm_limit=None, max_queued_requests="unlimited")
        assert server.configure()["batch_rpm_limit"] is None
        server.reset()  # back to the options the state file was created with
        assert (server.configure()["batch_rpm_limit"], server.configure()["max_queued_requests"]) == (2, 7)

        for bad in ({"batch_rpm_limit": -1}, {"max_queued_requests": 2.5}, {"rate_window_seconds": 0}):
            response = httpx.post(f"{server.url}/_emulator/config", json=bad)
            assert response.status_code == 400, bad


# --- in process: the window arithmetic -------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_refills_continuously_and_rejected_calls_take_no_token() -> None:
    clock = FakeTime()
    limits = BatchLimits(real_time=clock)
    clock.now = 1_000.0
    for _ in range(3):
        assert limits.admit(3, 60) is None  # a full bucket: 3 tokens, one back every 20 s
    error = limits.admit(3, 60)
    assert error is not None and error.status == 429
    assert error.headers == {"retry-after": "20", "retry-after-ms": "20000"}
    clock.now = 1_019.5
    error = limits.admit(3, 60)
    assert error is not None and error.headers == {"retry-after": "1", "retry-after-ms": "500"}
    clock.now = 1_020.0  # one token back; the two rejected calls took none
    assert limits.admit(3, 60) is None
    assert limits.admit(3, 60) is not None
    snapshot = limits.snapshot(60)
    assert snapshot["batch_requests_last_60s"] == 7  # every call is counted, admitted or not
    assert snapshot["peak_batch_rpm"] == 7 and snapshot["rate_limited"] == 3
    clock.now = 2_000.0
    assert limits.snapshot(60)["batch_requests_last_60s"] == 0
    assert limits.snapshot(60)["peak_batch_rpm"] == 7  # the peak stays until a reset
    limits.reset()
    assert limits.snapshot(60) == {
        "batch_requests_last_60s": 0,
        "peak_batch_rpm": 0,
        "rate_limited": 0,
        "peak_queued_requests": 0,
    }


def test_a_limit_may_be_enforced_over_a_shorter_interval() -> None:
    """rate-limits page: "60 RPM might be enforced as 1 request per second"."""
    clock = FakeTime()
    limits = BatchLimits(real_time=clock)
    clock.now = 1_000.0
    assert limits.admit(60, 60, enforcement=1) is None  # the bucket holds one second's worth: 1
    assert limits.admit(60, 60, enforcement=1) is not None  # no burst of 60
    clock.now = 1_001.0
    assert limits.admit(60, 60, enforcement=1) is None
    whole_minute = BatchLimits(real_time=clock)
    assert all(whole_minute.admit(60, 60) is None for _ in range(60))  # the default: a minute's burst


def test_limit_values_parse_zero_and_none_as_unlimited() -> None:
    assert [parse_limit(value, "x") for value in (None, 0, "0", "", "none", "unlimited", 0.0)] == [None] * 7
    assert parse_limit("50", "x") == 50 and parse_limit(100_000.0, "x") == 100_000
    for bad in (-1, 2.5, "many", True, float("inf")):
        with pytest.raises(ValueError):
            parse_limit(bad, "x")
    config = EmulatorConfig()
    config.update({"batch_rpm_limit": 50, "max_queued_requests": 100_000, "rate_window_seconds": "2"})
    assert EmulatorConfig.from_dict(config.to_dict()) == config
    assert EmulatorConfig.from_dict({}).batch_rpm_limit is None  # state files from before these options
    with pytest.raises(ValueError):
        config.update({"rate_window_seconds": -1})
