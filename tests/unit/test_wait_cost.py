"""What a wait's poll costs the triggerer beyond its API call (the wait benchmark measures the rest)."""

from __future__ import annotations

import asyncio
import dataclasses

from nightshift import config
from nightshift.backends.base import BatchState, ProcessingStatus, RequestCounts
from nightshift.batch.polling import BatchSnapshot
from nightshift.triggers import BatchesEndedTrigger


def test_a_wait_reads_the_deployment_settings_once_not_on_every_poll(monkeypatch):
    # reading every [nightshift] option through Airflow's configuration on each poll cost the
    # triggerer 0.6 s of CPU per cycle of 1,000 waits (nightshift bench --only wait)
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__POLL_BUDGET_RPM", "60")
    reads = []
    real = config.settings
    monkeypatch.setattr(config, "settings", lambda: reads.append(1) or real())
    trigger = BatchesEndedTrigger(conn_id="anthropic_default", batch_ids=["msgbatch_1"], deadline=0.0,
                                  poll_interval=0.5, max_poll_interval=4.0, max_consecutive_failures=3)

    async def five_polls() -> list[float]:
        return [await trigger._interval() for _ in range(5)]

    assert asyncio.run(five_polls()) == [1.0] * 5  # one wait at 60 calls a minute: one a second
    assert len(reads) == 1


def test_a_snapshot_as_a_dict_holds_every_field_and_a_copy_of_the_counts():
    state = BatchState(id="msgbatch_1", processing_status=ProcessingStatus.IN_PROGRESS,
                       request_counts=RequestCounts(3, 1, 0, 0, 0), created_at=None)
    snapshot = BatchSnapshot.of(state)
    as_dict = snapshot.as_dict()
    assert as_dict == dataclasses.asdict(snapshot)
    as_dict["request_counts"]["processing"] = 0
    assert snapshot.request_counts["processing"] == 3
