"""Many waits in one triggerer: the real ``BatchesEndedTrigger``, N of them in one event loop.

    python -m nightshift_dev.bench.wait ARGUMENTS.json   # {"url": ..., "api_key": ..., "batch_ids": [...], ...}

The parent prepares N in-progress batches on an emulator whose clock is frozen (nothing ends
until it is advanced) and the ledger rows the triggers read and write, then runs this module
as a child: one process, one asyncio loop, N triggers, as one triggerer holds them.

Measured in the child, over a steady window that starts once every trigger has made its
first poll: process CPU seconds, and the API calls the emulator answered (its own counters).
A poll cycle is every wait polling once: CPU per cycle is the window's CPU per API call
times N. Two baselines, in the same process, CPU measured the same way: the
same N retrieve calls made one after another with the SDK client the trigger uses, plus N
budget slots taken one after another on one ledger connection (the work Nightshift cannot do
without: every batch-endpoint call takes a slot of the account-wide budget), and the N calls
with a bare ``httpx.AsyncClient`` (the floor), each run before the triggers start and again
after they end (the mean is the baseline); and, for context, the same slots and calls in the
order a poll makes them (a slot, then its call). The
triggers log their progress lines at INFO to a file, as a triggerer writes trigger logs.
Then the clock is advanced past the batches' processing and the child reports how long the
last of the N waits took to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from typing import Any


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _calls(stats: dict[str, Any]) -> int:
    return sum(int(e.get("total", 0)) for name, e in stats["endpoints"].items() if name in ("retrieve", "list"))


async def _bare_polls(url: str, api_key: str, batch_ids: list[str]) -> float:
    """CPU seconds for one retrieve per batch with a bare async HTTP client, one after another
    on one kept-alive connection (the cheapest way to ask, so the strictest baseline)."""
    import httpx

    headers = {"x-api-key": api_key, "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        async def one(batch_id: str) -> None:
            response = await client.get(f"/v1/messages/batches/{batch_id}")
            response.raise_for_status()
            json.loads(response.content)

        await one(batch_ids[0])  # connection set up outside the measurement
        started = _cpu()
        for batch_id in batch_ids:
            await one(batch_id)
        return _cpu() - started


async def _sdk_polls(url: str, api_key: str, batch_ids: list[str]) -> float:
    """CPU seconds for one retrieve per batch with the SDK's async client, one after another."""
    import anthropic

    async with anthropic.AsyncAnthropic(base_url=url, api_key=api_key, timeout=60) as client:
        await client.messages.batches.retrieve(batch_ids[0])
        started = _cpu()
        for batch_id in batch_ids:
            await client.messages.batches.retrieve(batch_id)
        return _cpu() - started


async def _budget_slots(dsn: str, count: int) -> float:
    """CPU seconds for ``count`` budget slots taken one after another on one connection (under
    a limit so high that none waits; the rows leave the window like any call's)."""
    import psycopg

    from nightshift.ledger.budget import TAKE

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(TAKE, (10**9, 60.0))
        started = _cpu()
        for _ in range(count):
            await (await conn.execute(TAKE, (10**9, 60.0))).fetchone()
        return _cpu() - started


async def _slot_then_call(url: str, api_key: str, dsn: str, batch_ids: list[str]) -> float:
    """CPU seconds for the same slots and calls in the order a poll makes them: a slot, then its
    call, one after another (context: two separate loops keep each one's code and data hot in the
    CPU's caches, which no sequence of polls can)."""
    import anthropic
    import psycopg

    from nightshift.ledger.budget import TAKE

    async with anthropic.AsyncAnthropic(base_url=url, api_key=api_key, timeout=60) as client, \
            await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await (await conn.execute(TAKE, (10**9, 60.0))).fetchone()
        await client.messages.batches.retrieve(batch_ids[0])
        started = _cpu()
        for batch_id in batch_ids:
            await (await conn.execute(TAKE, (10**9, 60.0))).fetchone()
            await client.messages.batches.retrieve(batch_id)
        return _cpu() - started


def _profiler():
    """``NIGHTSHIFT_BENCH_WAIT_PROFILE=FILE``: the steady window's CPU profile in FILE (and the
    SDK baseline's in FILE.sdk), for pstats. It slows the child several times over: the numbers
    of a profiled run are not comparable with any other."""
    import cProfile

    return cProfile.Profile(time.process_time)


async def _main(args: dict[str, Any]) -> dict[str, Any]:
    import logging

    from emulator.testing import EmulatorControl
    from nightshift.batch.polling import budgeted_interval
    from nightshift_dev.bench.steps import peak_rss_bytes
    from nightshift.config import settings
    from nightshift.triggers import BatchesEndedTrigger

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("airflow").setLevel(logging.WARNING)
    trigger_log = logging.getLogger("nightshift")
    trigger_log.setLevel(logging.INFO)
    trigger_log.propagate = False
    trigger_log.addHandler(logging.FileHandler(args["log_file"]))
    control = EmulatorControl(args["url"])
    batch_ids: list[str] = args["batch_ids"]
    interval = budgeted_interval(args["poll_interval"], len(batch_ids), settings().poll_budget_rpm)
    triggers = [BatchesEndedTrigger(conn_id="anthropic_default", batch_ids=[b], deadline=time.time() + 3600,
                                    poll_interval=args["poll_interval"], max_poll_interval=interval * 4,
                                    max_consecutive_failures=10, db_conn_id="nightshift_db") for b in batch_ids]
    ended: list[float] = []
    events: list[str] = []

    async def wait(trigger: BatchesEndedTrigger) -> None:
        async for event in trigger.run():
            events.append(event.payload["status"])
            ended.append(time.monotonic())
            return

    # The baselines, while the process is quiet: the same number of retrieve calls, measured
    # before the triggers and again after them, so a change in the machine's load during the
    # run moves both sides (the mean of the two is the baseline).
    bare_cpu = [await _bare_polls(args["url"], args["api_key"], batch_ids)]
    sdk_cpu = [await _sdk_polls(args["url"], args["api_key"], batch_ids)]
    slot_cpu = [await _budget_slots(args["dsn"], len(batch_ids))]
    paired_cpu = [await _slot_then_call(args["url"], args["api_key"], args["dsn"], batch_ids)]
    cpu_start, wall_start = _cpu(), time.monotonic()
    tasks = [asyncio.create_task(wait(t)) for t in triggers]
    # Warm-up: the staggered first polls spread over one interval, and each first sight of a
    # batch is copied into the ledger. Steady state starts after that.
    await asyncio.sleep(interval * 1.2)
    warmup_cpu = _cpu() - cpu_start
    profile_path = os.environ.get("NIGHTSHIFT_BENCH_WAIT_PROFILE")
    profiler = _profiler() if profile_path else None
    calls0, cpu0, t0 = _calls(control.stats()), _cpu(), time.monotonic()
    if profiler:
        profiler.enable()
    await asyncio.sleep(interval * args["cycles"])
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile_path)
    calls1, cpu1, t1 = _calls(control.stats()), _cpu(), time.monotonic()
    window = t1 - t0
    steady_cpu = cpu1 - cpu0
    requests = calls1 - calls0
    # The batches end: every wait must notice within about one interval.
    control.advance(3600)
    advanced = time.monotonic()
    done, pending = await asyncio.wait(tasks, timeout=interval * 3 + 60)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    bare_cpu.append(await _bare_polls(args["url"], args["api_key"], batch_ids))
    if profile_path:
        profiler = _profiler()
        profiler.enable()
    sdk_cpu.append(await _sdk_polls(args["url"], args["api_key"], batch_ids))
    if profile_path:
        profiler.disable()
        profiler.dump_stats(f"{profile_path}.sdk")
    slot_cpu.append(await _budget_slots(args["dsn"], len(batch_ids)))
    paired_cpu.append(await _slot_then_call(args["url"], args["api_key"], args["dsn"], batch_ids))
    return {
        "waits": len(batch_ids), "interval_seconds": interval, "budget_rpm": settings().poll_budget_rpm,
        "window_seconds": window, "cycles": window / interval, "requests": requests,
        "requests_per_minute": requests * 60 / window, "steady_cpu_seconds": steady_cpu,
        "cpu_per_poll_ms": 1000 * steady_cpu / requests if requests else None,
        "cpu_per_cycle_seconds": steady_cpu / requests * len(batch_ids) if requests else None,
        "warmup_cpu_seconds": warmup_cpu,
        "sdk_cpu_per_cycle_seconds": sum(sdk_cpu) / 2, "budget_slot_cpu_per_cycle_seconds": sum(slot_cpu) / 2,
        "bare_cpu_per_cycle_seconds": sum(bare_cpu) / 2,
        "slot_then_call_cpu_per_cycle_seconds": sum(paired_cpu) / 2,
        "sdk_cpu_runs": sdk_cpu, "budget_slot_cpu_runs": slot_cpu, "bare_cpu_runs": bare_cpu,
        "slot_then_call_cpu_runs": paired_cpu,
        "ended": events.count("ended"), "events": len(events),
        "last_ended_after_seconds": (max(ended) - advanced) if ended else None,
        "total_seconds": time.monotonic() - wall_start, "peak_rss_bytes": peak_rss_bytes(),
    }


def run_child(arguments: dict[str, Any], environment: dict[str, str]) -> tuple[dict[str, Any], int]:
    """Run the triggers in a child process; return its report and its peak RSS in bytes (its own
    ``VmHWM``: see :mod:`nightshift_dev.bench.steps` for why not ``ru_maxrss``)."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(arguments, file)
        file.flush()
        process = subprocess.Popen([sys.executable, "-m", "nightshift_dev.bench.wait", file.name],
                                   stdout=subprocess.PIPE, env={**os.environ, **environment})
        output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the wait benchmark's child failed with exit code {os.waitstatus_to_exitcode(status)}")
    reported = json.loads(output.decode().strip().splitlines()[-1])
    return reported, reported.get("peak_rss_bytes") or usage.ru_maxrss * 1024


if __name__ == "__main__":
    with open(sys.argv[1]) as arguments_file:
        print(json.dumps(asyncio.run(_main(json.load(arguments_file)))))
