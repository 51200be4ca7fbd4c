"""In-process unit tests of the emulator's pure parts: clock, lifecycle, tokens, body parser, faults."""

from __future__ import annotations

import json
import math

import pytest

from emulator.body_stream import CappedReader, iter_batch_requests
from emulator.clock import VirtualClock, rfc3339
from emulator.config import EmulatorConfig, parse_rate
from emulator.errors import ApiError
from emulator.faults import FaultSpecError, normalize_fault, parse_fault_argument
from emulator.lifecycle import processing_time, timeline
from emulator.store import BatchRow
from emulator.tokens import MESSAGE_TURN_TOKENS, REPLY_PRIMING_TOKENS, input_tokens, text_tokens


class FakeTime:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_clock_runs_at_speed_and_keeps_offsets() -> None:
    real = FakeTime(1_000.0)
    clock = VirtualClock.starting_now(speed=1.0, real_time=real)
    real.now += 10
    assert clock.now() == pytest.approx(1_010.0)
    clock.advance(3_600)
    assert clock.now() == pytest.approx(4_610.0)
    clock.set_speed(60)
    real.now += 2
    assert clock.now() == pytest.approx(4_730.0)
    clock.set_speed(0)
    real.now += 1_000
    assert clock.now() == pytest.approx(4_730.0)
    restored = VirtualClock.from_dict(clock.to_dict(), real_time=real)
    assert restored.now() == clock.now()
    clock.reset()
    assert clock.now() == real.now


def test_rfc3339_is_utc_with_z() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"


def test_parse_rate_accepts_instant_spellings() -> None:
    assert all(math.isinf(parse_rate(value)) for value in ("inf", "instant", "0", 0, None))
    assert parse_rate("2.5") == 2.5
    with pytest.raises(ValueError):
        parse_rate(-1)


def test_config_update_rejects_unknown_keys_and_bad_values() -> None:
    config = EmulatorConfig()
    config.update({"rate": "inf", "malformed_rate": 0.25})
    assert math.isinf(config.rate) and config.malformed_rate == 0.25
    with pytest.raises(ValueError, match="unknown config keys"):
        config.update({"rat": 3})
    with pytest.raises(ValueError):
        config.update({"malformed_rate": 2})


def _batch(count: int, rate: float, *, cancel_at: float | None = None, cancel_delay: float = 10.0):
    return BatchRow(
        id="msgbatch_x",
        seq=1,
        created_at=1_000_000.0,
        request_count=count,
        rate=rate,
        malformed_rate=0.0,
        anthropic_version="2023-06-01",
        cancel_initiated_at=cancel_at,
        cancel_delay=cancel_delay if cancel_at is not None else None,
        materialized=0,
        succeeded=0,
        errored=0,
    )


def test_lifecycle_processes_at_rate_then_ends() -> None:
    batch = _batch(10, rate=2.0)
    created = batch.created_at
    assert timeline(batch, created + 2.0).processed == 4
    assert timeline(batch, created + 2.0).status == "in_progress"
    assert timeline(batch, created + 4.99).status == "in_progress"
    ended = timeline(batch, created + 5.0)
    assert (ended.status, ended.processed, ended.ended_at) == ("ended", 10, created + 5.0)
    assert processing_time(batch, 0) == created + 0.5


def test_lifecycle_expires_unprocessed_items_after_24_hours() -> None:
    batch = _batch(30, rate=1 / 3600)
    state = timeline(batch, batch.created_at + 24 * 3600)
    assert (state.status, state.processed, state.unprocessed_outcome) == ("ended", 24, "expired")
    assert not state.archived
    assert timeline(batch, batch.created_at + 29 * 24 * 3600).archived


def test_lifecycle_cancel_stops_processing_and_ends_after_delay() -> None:
    batch = _batch(10, rate=1.0, cancel_at=1_000_000.0 + 3.5, cancel_delay=10.0)
    canceling = timeline(batch, batch.created_at + 5)
    assert (canceling.status, canceling.processed) == ("canceling", 3)
    ended = timeline(batch, batch.created_at + 13.5)
    assert (ended.status, ended.processed, ended.unprocessed_outcome) == ("ended", 3, "canceled")


def test_lifecycle_instant_rate_ends_at_creation() -> None:
    batch = _batch(5, rate=0.0)
    state = timeline(batch, batch.created_at)
    assert (state.status, state.processed) == ("ended", 5)


def test_token_estimate_formula() -> None:
    assert text_tokens("") == 0
    assert text_tokens("abcd") == 1
    assert text_tokens("abcde") == 2
    params = {"system": "x" * 40, "messages": [{"role": "user", "content": "y" * 8}]}
    assert input_tokens(params) == 10 + MESSAGE_TURN_TOKENS + 2 + REPLY_PRIMING_TOKENS


def _chunks(data: bytes, size: int):
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    iterator = iter(pieces)
    return lambda: next(iterator, b"")


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1 << 16])
def test_body_parser_yields_requests_across_any_chunking(chunk_size: int) -> None:
    requests = [{"custom_id": f"id-{i}", "params": {"text": "é" * i, "n": i * 1.5}} for i in range(20)]
    body = json.dumps({"extra": [1, {"a": "]"}], "requests": requests, "tail": 12345}).encode()
    assert list(iter_batch_requests(_chunks(body, chunk_size))) == requests


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"requests": 5}',
        b'{"requests": [{"a": 1},]}',
        b'{"requests": [1, 2]} trailing',
        b'{"other": 1}',
    ],
)
def test_body_parser_rejects_malformed_bodies(body: bytes) -> None:
    with pytest.raises(ApiError) as raised:
        list(iter_batch_requests(_chunks(body, 4)))
    assert raised.value.status == 400


def test_capped_reader_raises_413_and_drains() -> None:
    pieces = iter([b"x" * 10] * 5)
    reader = CappedReader(lambda: next(pieces, b""), limit=25)
    reader.read()
    reader.read()
    with pytest.raises(ApiError) as raised:
        reader.read()
    assert (raised.value.status, raised.value.error_type) == (413, "request_too_large")
    assert next(pieces, None) is None  # the rest of the body was consumed


def test_fault_arguments_parse_from_json_or_key_values() -> None:
    short = parse_fault_argument("status endpoint=retrieve status=529 count=2")
    assert short == {**short, "kind": "status", "endpoint": "retrieve", "status": 529, "count": 2}
    assert short["error_type"] == "overloaded_error"
    long = parse_fault_argument('{"kind": "item_error", "custom_id": "a-.*", "error_type": "api_error"}')
    assert long["custom_id"] == "a-.*" and long["rate"] == 1.0
    rate_limit = normalize_fault({"kind": "status", "status": 429})
    assert rate_limit["retry_after"] == 1.0 and rate_limit["error_type"] == "rate_limit_error"


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "nope"},
        {"kind": "status", "status": 200},
        {"kind": "status", "status": 500, "endpoint": "everything"},
        {"kind": "cut", "endpoint": "retrieve"},
        {"kind": "item_error", "custom_id": "("},
        {"kind": "delay", "rate": 2},
    ],
)
def test_bad_fault_specs_are_rejected(spec: dict) -> None:
    with pytest.raises(FaultSpecError):
        normalize_fault(spec)
