"""The Message Batches endpoints: create, retrieve, list, cancel, delete and results.

Items are "materialised" lazily: whenever a batch is read, every item whose processing time
(see ``lifecycle.py``) has passed is run through :func:`processing.process_request` in
request order and its result line is stored. Work is committed in chunks, so a process killed
half-way resumes exactly where it stopped, and the results of an ended batch are always whole.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from emulator.body_stream import CappedReader, iter_batch_requests
from emulator.clock import rfc3339
from emulator.config import MAX_BATCH_REQUESTS
from emulator.errors import invalid_request, not_found
from emulator.hashing import base62_id
from emulator.lifecycle import Timeline, archives_at, expires_at, processing_time, timeline
from emulator.limits import queue_limit_error
from emulator.processing import process_request
from emulator.replies import json_text
from emulator.runtime import Emulator
from emulator.store import BatchRow

CUSTOM_ID_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,64}")
INSERT_CHUNK = 2_000
MATERIALIZE_CHUNK = 1_000
#: Result lines gathered into one write while streaming (keeps syscalls few, memory small).
STREAM_CHUNK_LINES = 256


class StreamCut(Exception):
    """Raised inside a results stream to drop the connection mid-response (a ``cut`` fault)."""


class BatchService:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.store = emulator.store

    # --- create -----------------------------------------------------------------------

    def create(self, pull: Callable[[], bytes], *, anthropic_version: str, base_url: str,
               betas: str = "") -> dict[str, Any]:
        """Read the body chunk by chunk, validate each request and insert it, all in one transaction."""
        emulator = self.emulator
        reader = CappedReader(pull, emulator.config.max_body_bytes)
        seq = self.store.next_sequence("batch")
        batch_id = base62_id("msgbatch_", self.store.id_seed(), "batch", seq)
        seen: dict[str, int] = {}
        pending: list[tuple[int, str, str]] = []
        with self.store.transaction():
            created_at = emulator.now()
            count = 0
            for index, request in enumerate(iter_batch_requests(reader.read)):
                if index >= MAX_BATCH_REQUESTS:
                    reader.drain()
                    raise invalid_request(f"requests: List should have at most {MAX_BATCH_REQUESTS} items")
                custom_id, params = _check_request(index, request, seen)
                pending.append((index, custom_id, _compact_json(params)))
                count = index + 1
                if len(pending) >= INSERT_CHUNK:
                    self.store.insert_items(batch_id, pending)
                    pending.clear()
            if count == 0:
                raise invalid_request("requests: List should have at least 1 item")
            # Checked under the store lock the whole create holds, so concurrent creates
            # cannot both slip under the cap; raising rolls back the items already inserted.
            queued = emulator.queued_requests()
            limit = emulator.config.max_queued_requests
            if limit and queued + count > limit:
                emulator.limits.count_queue_rejection()
                raise queue_limit_error(limit, queued, count)
            self.store.insert_items(batch_id, pending)
            rate = emulator.config.rate
            row = BatchRow(
                id=batch_id,
                seq=seq,
                created_at=created_at,
                request_count=count,
                rate=0.0 if math.isinf(rate) else rate,
                malformed_rate=emulator.config.malformed_rate,
                anthropic_version=anthropic_version,
                cancel_initiated_at=None,
                cancel_delay=None,
                materialized=0,
                succeeded=0,
                errored=0,
                betas=betas,
            )
            self.store.insert_batch(row)
            if emulator.config.model_profiles:  # kept with the batch, like its malformed_rate
                self.store.save_batch_model_profiles(batch_id, emulator.config.model_profiles)
            self.store.record_created_batch(batch_id, seq, count)
        emulator.limits.observe_queued(queued + count)  # a new batch always starts queued
        # A new batch is always reported in_progress, as the real API does, even when
        # instant processing means the next read will already find it ended.
        just_created = Timeline(
            status="in_progress", processed=0, ended_at=None, unprocessed_outcome="expired", archived=False
        )
        return self._batch_dict(row, just_created, base_url)

    def plant(self, *, request_count: int, created_at_offset_seconds: float = 0.0, owner: str = "another-team",
              custom_id_prefix: str = "other", processing_seconds: float = 3600.0,
              model: str = "claude-haiku-4-5") -> dict[str, Any]:
        """A batch made by another client of the same workspace: batches are scoped to the
        workspace, so ``list`` shows everyone's. Its requests have their own custom_ids; it is not
        counted among the batches this client created (stats ``batches_created``)."""
        if not 1 <= request_count <= MAX_BATCH_REQUESTS:
            raise invalid_request(f"request_count must be between 1 and {MAX_BATCH_REQUESTS}")
        if processing_seconds < 0:
            raise invalid_request("processing_seconds must be >= 0")
        seq = self.store.next_sequence("batch")
        batch_id = base62_id("msgbatch_", self.store.id_seed(), "batch", seq)
        with self.store.transaction():
            created_at = self.emulator.now() + float(created_at_offset_seconds)
            items = [(index, f"{custom_id_prefix}-{index}", _compact_json(
                {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": f"Request {index}."}]}))
                for index in range(request_count)]
            for start in range(0, len(items), INSERT_CHUNK):
                self.store.insert_items(batch_id, items[start:start + INSERT_CHUNK])
            rate = request_count / processing_seconds if processing_seconds > 0 else 0.0
            self.store.insert_batch(BatchRow(
                id=batch_id, seq=seq, created_at=created_at, request_count=request_count, rate=rate,
                malformed_rate=0.0, anthropic_version="2023-06-01", cancel_initiated_at=None, cancel_delay=None,
                materialized=0, succeeded=0, errored=0, owner=owner))
        with self.store.lock:
            batch, state = self._current(batch_id)
            return self._batch_dict(batch, state, base_url="http://emulator")

    # --- reads ------------------------------------------------------------------------

    def retrieve(self, batch_id: str, *, base_url: str) -> dict[str, Any]:
        with self.store.lock:
            batch, state = self._current(batch_id)
            return self._batch_dict(batch, state, base_url)

    def list(
        self, *, limit: int, after_id: str | None, before_id: str | None, base_url: str
    ) -> dict[str, Any]:
        if not 1 <= limit <= 1000:
            raise invalid_request("limit: Input should be between 1 and 1000")
        if after_id and before_id:
            raise invalid_request("Only one of after_id and before_id may be given")
        with self.store.lock:
            after = self._cursor(after_id, "after_id")
            before = self._cursor(before_id, "before_id")
            rows = self.store.list_batches(limit=limit, after=after, before=before)
            data = []
            for row in rows:
                batch, state = self._current(row.id)
                data.append(self._batch_dict(batch, state, base_url))
            if not rows:
                has_more = False
            elif before is not None:
                has_more = self.store.has_batch_beyond(rows[0], newer=True)
            else:
                has_more = self.store.has_batch_beyond(rows[-1], newer=False)
        return {
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    def _cursor(self, batch_id: str | None, name: str) -> BatchRow | None:
        if not batch_id:
            return None
        batch = self.store.get_batch(batch_id)
        if batch is None:
            raise not_found(f"{name}: No message batch with id {batch_id!r}")
        return batch

    # --- changes ----------------------------------------------------------------------

    def cancel(self, batch_id: str, *, base_url: str) -> dict[str, Any]:
        with self.store.lock:
            batch, state = self._current(batch_id)
            if state.ended:
                raise invalid_request(f"Batch {batch_id} has already ended and can no longer be canceled.")
            if batch.cancel_initiated_at is None:
                delay = self.emulator.config.cancel_delay_seconds
                self.store.mark_canceled(batch_id, self.emulator.now(), delay)
            batch, state = self._current(batch_id)
            return self._batch_dict(batch, state, base_url)

    def delete(self, batch_id: str) -> dict[str, Any]:
        with self.store.lock:
            _, state = self._current(batch_id)
            if not state.ended:
                raise invalid_request(
                    f"Batch {batch_id} cannot be deleted while it is still processing; cancel it first."
                )
            self.store.delete_batch(batch_id)
        return {"id": batch_id, "type": "message_batch_deleted"}

    # --- results ----------------------------------------------------------------------

    def open_results(self, batch_id: str, *, cut_after_lines: int | None,
                     stall_seconds: float = 0.0) -> Iterator[bytes]:
        """Check the batch can serve results now, then return the (lazy) JSONL byte stream."""
        with self.store.lock:
            _, state = self._current(batch_id)
        if state.archived:
            raise not_found(
                f"Results for batch {batch_id} are no longer available: "
                "they were archived 29 days after creation."
            )
        if not state.ended:
            raise invalid_request(
                f"Batch {batch_id} has not finished processing; results are not available yet."
            )
        return self._result_lines(batch_id, state.unprocessed_outcome, cut_after_lines, stall_seconds)

    def _result_lines(self, batch_id: str, unprocessed: str, cut_after_lines: int | None,
                      stall_seconds: float = 0.0) -> Iterator[bytes]:
        placeholder = json.dumps({"type": unprocessed})  # canceled / expired items have no stored result
        sent = 0
        chunk: list[str] = []
        for custom_id, result in self.store.stream_results(batch_id):
            if cut_after_lines is not None and sent >= cut_after_lines:
                if chunk:
                    yield "".join(chunk).encode("utf-8")
                    chunk = []
                if stall_seconds:
                    time.sleep(stall_seconds)
                    cut_after_lines = None
                else:
                    raise StreamCut(f"results stream for {batch_id} cut after {sent} lines (emulated fault)")
            if result is None:
                result = f'{{"custom_id":{json.dumps(custom_id)},"result":{placeholder}}}'
            chunk.append(result + "\n")
            sent += 1
            if len(chunk) >= STREAM_CHUNK_LINES:
                yield "".join(chunk).encode("utf-8")
                chunk = []
        if chunk:
            yield "".join(chunk).encode("utf-8")

    # --- lifecycle --------------------------------------------------------------------

    def _current(self, batch_id: str) -> tuple[BatchRow, Timeline]:
        """The batch with every item due by now materialised, and its timeline."""
        batch = self.store.get_batch(batch_id)
        if batch is None:
            raise not_found(f"No message batch with id {batch_id!r}")
        state = timeline(batch, self.emulator.now())
        if batch.materialized < state.processed:
            self._materialize(batch, state.processed)
            batch = self.store.get_batch(batch_id)
            assert batch is not None
        return batch, state

    def _materialize(self, batch: BatchRow, target: int) -> None:
        materialized, succeeded, errored = batch.materialized, batch.succeeded, batch.errored
        model_profiles = self.store.batch_model_profiles(batch.id)
        while materialized < target:
            stop = min(target, materialized + MATERIALIZE_CHUNK)
            with self.store.transaction():
                planner = self.emulator.faults.item_planner()
                results = []
                for index, custom_id, params_json in self.store.item_params(batch.id, materialized, stop):
                    outcome = process_request(
                        self.store,
                        planner,
                        json.loads(params_json),
                        at=processing_time(batch, index),
                        custom_id=custom_id,
                        message_id=base62_id("msg_", batch.id, custom_id),
                        anthropic_version=batch.anthropic_version,
                        service_tier="batch",
                        malformed_rate=batch.malformed_rate,
                        betas=batch.beta_set,
                        model_profiles=model_profiles,
                    )
                    if outcome.error is None:
                        result = {"type": "succeeded", "message": outcome.message}
                        succeeded += 1
                    else:
                        error = {"type": "error", "error": outcome.error.error_object()}
                        result = {"type": "errored", "error": error}
                        errored += 1
                    results.append((index, _compact_json({"custom_id": custom_id, "result": result})))
                self.store.store_results(batch.id, results)
                planner.save()
                materialized = stop
                self.store.record_materialized(batch.id, materialized, succeeded, errored)

    def _batch_dict(self, batch: BatchRow, state: Timeline, base_url: str) -> dict[str, Any]:
        counts = dict.fromkeys(("succeeded", "errored", "canceled", "expired"), 0)
        counts["processing"] = batch.request_count
        if state.ended:  # counts only split once the batch has ended, as with the real API
            counts.update(processing=0, succeeded=batch.succeeded, errored=batch.errored)
            counts[state.unprocessed_outcome] = batch.request_count - batch.materialized
        results_url = f"{base_url.rstrip('/')}/v1/messages/batches/{batch.id}/results"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": state.status,
            "request_counts": counts,
            "ended_at": _optional_time(state.ended_at),
            "created_at": rfc3339(batch.created_at),
            "expires_at": rfc3339(expires_at(batch)),
            "archived_at": rfc3339(archives_at(batch)) if state.archived else None,
            "cancel_initiated_at": _optional_time(batch.cancel_initiated_at),
            "results_url": results_url if state.ended else None,
        }


def _check_request(index: int, request: Any, seen: dict[str, int]) -> tuple[str, Any]:
    where = f"requests.{index}"
    if not isinstance(request, dict):
        raise invalid_request(f"{where}: Input should be a valid dictionary")
    custom_id = request.get("custom_id")
    if custom_id is None:
        raise invalid_request(f"{where}.custom_id: Field required")
    if not isinstance(custom_id, str) or not CUSTOM_ID_PATTERN.fullmatch(custom_id):
        raise invalid_request(f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    if custom_id in seen:
        first = seen[custom_id]
        raise invalid_request(
            f"{where}.custom_id: Duplicate custom_id {custom_id!r}; already used by requests.{first}"
        )
    seen[custom_id] = index
    if "params" not in request:
        raise invalid_request(f"{where}.params: Field required")
    if not isinstance(request["params"], dict):
        raise invalid_request(f"{where}.params: Input should be a valid dictionary")
    return custom_id, request["params"]


def _compact_json(value: Any) -> str:
    return json_text(value)


def _optional_time(epoch_seconds: float | None) -> str | None:
    return None if epoch_seconds is None else rfc3339(epoch_seconds)
