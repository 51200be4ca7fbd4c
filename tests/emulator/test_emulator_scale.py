"""A 100,000-request batch end to end, with the emulator's peak memory bounded.

The create body is about 110 MB of JSON and the results about 90 MB of JSONL. The emulator
parses the body one request at a time, inserts in chunks and streams results from SQLite with a
cursor, so its peak RSS stays far below the size of either. Measured on the reference machine:
about 75 MB peak RSS (VmHWM) and about 35 s for the whole test; the bound below leaves headroom.
"""

from __future__ import annotations

import json
import time

import anthropic
import httpx

from emulator.testing import EmulatorServer

REQUEST_COUNT = 100_000
PEAK_RSS_LIMIT_BYTES = 160 * 1024 * 1024
FILLER = "Please classify this support ticket about a delayed parcel and a billing question. " * 11


def _body_chunks():
    """The create body, generated piece by piece so the test process stays small too."""
    yield b'{"requests":['
    for index in range(REQUEST_COUNT):
        request = {
            "custom_id": f"ticket-{index:06d}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"Ticket {index}. {FILLER}"}],
            },
        }
        yield (b"," if index else b"") + json.dumps(request).encode()
    yield b"]}"


def test_hundred_thousand_requests_with_bounded_memory(tmp_path) -> None:
    with EmulatorServer(tmp_path, rate="inf") as server:
        started = time.monotonic()
        response = httpx.post(
            f"{server.url}/v1/messages/batches",
            content=_body_chunks(),
            headers={"x-api-key": server.api_key, "content-type": "application/json"},
            timeout=300,
        )
        assert response.status_code == 200, response.text
        batch_id = response.json()["id"]
        assert response.json()["request_counts"]["processing"] == REQUEST_COUNT

        client = anthropic.Anthropic(base_url=server.url, api_key=server.api_key, timeout=300)
        batch = client.messages.batches.retrieve(batch_id)
        assert batch.processing_status == "ended"
        assert batch.request_counts.succeeded == REQUEST_COUNT

        seen: set[str] = set()
        out_of_order = 0
        previous = ""
        headers = {"x-api-key": server.api_key}
        with httpx.stream("GET", batch.results_url, headers=headers, timeout=300) as results:
            for line in results.iter_lines():
                record = json.loads(line)
                assert record["result"]["type"] == "succeeded"
                out_of_order += record["custom_id"] < previous
                previous = record["custom_id"]
                seen.add(record["custom_id"])
        assert len(seen) == REQUEST_COUNT  # every id once
        assert out_of_order > REQUEST_COUNT // 4  # in an arbitrary (shuffled) order, not request order

        first = next(iter(client.messages.batches.results(batch_id)))
        assert first.custom_id in seen and first.result.message.usage.service_tier == "batch"

        peak = server.peak_rss_bytes()
        elapsed = time.monotonic() - started
        print(f"\n100k batch: emulator peak RSS {peak / 2**20:.1f} MiB, {elapsed:.1f} s")
        assert peak < PEAK_RSS_LIMIT_BYTES, f"peak RSS {peak / 2**20:.1f} MiB"
