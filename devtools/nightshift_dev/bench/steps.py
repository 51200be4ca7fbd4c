"""One pipeline step in a fresh interpreter, so its peak RSS is that step's alone.

    python -m nightshift_dev.bench.steps '{"step": "land", "dsn": ..., "url": ..., "api_key": ...,
                                       "workload_dir": ..., "run_id": ...}'

Every step imports the same modules first, so the ``startup`` step (imports and a connection,
nothing else) is the floor that every other step's peak RSS includes. The child prints one
JSON line: the step's own wall time (imports excluded), what it returned, and its peak RSS.

The peak RSS is the child's own ``VmHWM``, read by the child as it ends. Not ``ru_maxrss``
from ``wait4``: Linux carries the high-water mark of the address space a process had before
``exec`` into it, and a child forked (or vforked) from a parent that grew to 300 MB would report
at least 300 MB whatever it did itself.
"""

from __future__ import annotations

from pathlib import Path

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

STEPS = ("startup", "collect", "submit", "land", "finalize")


@dataclass
class StepRun:
    step: str
    seconds: float  # the step's own time, measured inside the child
    process_seconds: float  # the child from fork to exit (interpreter, imports, step)
    peak_rss_bytes: int
    result: Any

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_bytes / 2**20


def run_step(step: str, **arguments: Any) -> StepRun:
    """Run ``step`` in a child interpreter and return its timing, peak RSS and result."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "nightshift_dev.bench.steps", json.dumps({"step": step, **arguments})],
                               stdout=subprocess.PIPE)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"bench step {step} failed with exit code {process.returncode}")
    reported = json.loads(output.decode().strip().splitlines()[-1])
    # ru_maxrss (KiB on Linux) only where /proc is missing: it may include the parent's peak.
    peak = reported.get("peak_rss_bytes") or usage.ru_maxrss * 1024
    return StepRun(step, reported["seconds"], elapsed, peak, reported["result"])


def peak_rss_bytes() -> int | None:
    """This process's peak resident set size since its ``exec`` (``VmHWM``), or None without /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _main(arguments: dict[str, Any]) -> Any:
    import logging

    import anthropic

    from nightshift import db
    from nightshift.backends.anthropic import AnthropicBackend
    from nightshift.batch.collect import collect
    from nightshift.batch.finalize import finalize_run
    from nightshift.batch.land import land_round
    from nightshift.batch.ledger import ensure_run
    from nightshift.batch.submit import Caps, submit_round
    from nightshift.config import settings
    from nightshift_dev.bench.data import WORKLOAD_NAME
    from nightshift.workloads.definition import load_workload_file

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    workload = load_workload_file(Path(arguments["workload_dir"]) / f"{WORKLOAD_NAME}.yaml")
    backend = AnthropicBackend(anthropic.Anthropic(base_url=arguments["url"], api_key=arguments["api_key"], timeout=600,
                                                   max_retries=0))
    step = arguments["step"]
    with db.connect(arguments["dsn"]) as conn:
        run = ensure_run(conn, workload, dag_id="bench", airflow_run_id=arguments["run_id"])
        started = time.perf_counter()
        if step == "startup":
            result: Any = None
        elif step == "collect":
            result = collect(conn, workload, run)
        elif step == "submit":
            caps = Caps.for_workload(workload, settings().max_queued_requests)
            result = submit_round(conn, backend, workload, run, 0, caps).as_dict()
        elif step == "land":
            result = land_round(conn, backend, workload, run, 0).as_dict()
        elif step == "finalize":
            result = finalize_run(conn, run).as_dict()
        else:
            raise SystemExit(f"unknown step {step!r}; known: {', '.join(STEPS)}")
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "result": result, "run_pk": run.run_pk, "peak_rss_bytes": peak_rss_bytes()}


if __name__ == "__main__":
    print(json.dumps(_main(json.loads(sys.argv[1])), default=str))
