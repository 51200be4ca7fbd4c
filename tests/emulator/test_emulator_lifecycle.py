"""Batch lifecycles on the virtual clock: processing rate, expiry, cancellation, archiving, restarts."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import anthropic
import httpx
import pytest

from emulator.testing import EmulatorServer, batch_request

HOUR = 3600.0
DAY = 24 * HOUR


def _requests(count: int) -> list[dict]:
    return [batch_request(f"item-{i}", f"Request {i}.") for i in range(count)]


def _result_types(client, batch_id: str) -> Counter:
    return Counter(result.result.type for result in client.messages.batches.results(batch_id))


def test_requests_are_processed_at_the_configured_rate(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.set_speed(0)
    emulator.configure(rate=2)
    batch = anthropic_client.messages.batches.create(requests=_requests(10))
    emulator.advance(4.9)
    midway = anthropic_client.messages.batches.retrieve(batch.id)
    assert midway.processing_status == "in_progress"
    assert midway.request_counts.processing == 10 and midway.results_url is None
    emulator.advance(0.2)
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.succeeded == 10
    assert ended.ended_at - ended.created_at == timedelta(seconds=5)


def test_unprocessed_items_expire_after_24_hours(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.set_speed(0)
    emulator.configure(rate=1 / HOUR)
    batch = anthropic_client.messages.batches.create(requests=_requests(30))
    emulator.advance(DAY - 1)
    assert anthropic_client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    emulator.advance(1)
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.ended_at == ended.expires_at
    expected = {"processing": 0, "succeeded": 24, "errored": 0, "canceled": 0, "expired": 6}
    assert ended.request_counts.model_dump() == expected
    results = {r.custom_id: r.result.type for r in anthropic_client.messages.batches.results(batch.id)}
    assert results == {f"item-{i}": "succeeded" if i < 24 else "expired" for i in range(30)}


def test_cancel_mid_way_keeps_processed_items(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.set_speed(0)
    emulator.configure(rate=1, cancel_delay_seconds=10)
    batch = anthropic_client.messages.batches.create(requests=_requests(10))
    emulator.advance(3.5)
    canceling = anthropic_client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at - canceling.created_at == timedelta(seconds=3.5)
    again = anthropic_client.messages.batches.cancel(batch.id)  # idempotent while canceling
    assert again.cancel_initiated_at == canceling.cancel_initiated_at
    emulator.advance(9.9)
    assert anthropic_client.messages.batches.retrieve(batch.id).processing_status == "canceling"
    emulator.advance(0.1)
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (3, 7)
    assert _result_types(anthropic_client, batch.id) == Counter({"succeeded": 3, "canceled": 7})


def test_results_are_archived_29_days_after_creation(emulator: EmulatorServer, anthropic_client) -> None:
    emulator.set_speed(0)
    batch = anthropic_client.messages.batches.create(requests=_requests(2))
    emulator.advance(29 * DAY - 1)
    assert _result_types(anthropic_client, batch.id) == Counter({"succeeded": 2})
    assert anthropic_client.messages.batches.retrieve(batch.id).archived_at is None
    emulator.advance(1)
    archived = anthropic_client.messages.batches.retrieve(batch.id)
    assert archived.archived_at == archived.created_at + timedelta(days=29)
    assert archived.processing_status == "ended" and archived.results_url
    with pytest.raises(anthropic.NotFoundError) as raised:
        list(anthropic_client.messages.batches.results(batch.id))
    assert raised.value.type == "not_found_error"


def test_clock_controls(emulator: EmulatorServer) -> None:
    frozen = emulator.set_speed(0)
    assert frozen["speed"] == 0
    assert emulator.clock()["now_epoch"] == frozen["now_epoch"]
    moved = emulator.advance(90)
    assert moved["now_epoch"] == pytest.approx(frozen["now_epoch"] + 90)
    both = httpx.post(f"{emulator.url}/_emulator/clock", json={"speed": 3600, "advance_seconds": 10}).json()
    assert both["speed"] == 3600
    assert httpx.post(f"{emulator.url}/_emulator/clock", json={"speed": -1}).status_code == 400
    after_reset = emulator.reset()["clock"]
    assert after_reset["speed"] == 1.0 and abs(after_reset["offset_seconds"]) < 1


def test_config_and_stats_controls(emulator: EmulatorServer, anthropic_client) -> None:
    config = emulator.configure(rate=5, malformed_rate=0.1, cancel_delay_seconds=3)
    assert config == {**config, "rate": 5.0, "malformed_rate": 0.1, "cancel_delay_seconds": 3.0}
    assert httpx.post(f"{emulator.url}/_emulator/config", json={"nope": 1}).status_code == 400
    anthropic_client.messages.batches.create(requests=_requests(3))
    anthropic_client.messages.batches.create(requests=_requests(2))
    stats = emulator.stats()
    assert stats["batches_created"] == 2 and stats["batch_requests_total"] == 5
    assert [batch["request_count"] for batch in stats["batches"]] == [3, 2]
    assert stats["endpoints"]["create"] == {"total": 2, "by_status": {"200": 2}}
    assert stats["requests_total"] == 2
    assert emulator.reset()["config"]["rate"] == "inf"
    assert emulator.stats()["requests_total"] == 0


def test_killed_emulator_resumes_the_batch_from_its_state_file(tmp_path) -> None:
    with EmulatorServer(tmp_path, rate=2, speed=0) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key=server.api_key, max_retries=0)
        batch = client.messages.batches.create(requests=_requests(20))
        server.advance(4)
        before = client.messages.batches.retrieve(batch.id)
        assert before.processing_status == "in_progress"
        port, pid = server.port, server.pid

        server.kill()
        with pytest.raises(anthropic.APIConnectionError):
            client.messages.batches.retrieve(batch.id)
        server.start()
        assert server.port == port and server.pid != pid

        again = client.messages.batches.retrieve(batch.id)
        assert again.processing_status == "in_progress" and again.created_at == before.created_at
        assert server.stats()["batches_created"] == 1
        server.advance(6)
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended" and ended.request_counts.succeeded == 20
        results = list(client.messages.batches.results(batch.id))
        assert sorted(r.custom_id for r in results) == sorted(f"item-{i}" for i in range(20))
        assert all(r.result.type == "succeeded" for r in results)

        server.restart()  # graceful this time
        after_restart = [line.custom_id for line in client.messages.batches.results(batch.id)]
        assert after_restart == [line.custom_id for line in results]
