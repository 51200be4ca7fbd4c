"""Measure one batch night step by step: wall time and peak RSS of each step's own process.

    .venv/bin/python scripts/measure_night.py --requests 10000

Uses the test profile's throwaway Postgres (started if needed, stopped again if this script
started it) and an emulator with instant processing. The ``startup`` row is a child that only
imports and connects: subtract it from the others for each step's own cost. Each step runs in a fresh child process
so its peak RSS (ru_maxrss from wait4) is that step's alone. The numbers go to stdout as a
table and to artifacts/night-<N>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP_CODE = r"""
import sys, anthropic
from nightshift import db
from nightshift.backends.anthropic import AnthropicBackend
from nightshift.batch.ledger import ensure_run, batches
from nightshift.config import settings
from nightshift.deployment import get_workload
from nightshift_dev.localdev.schema import apply_schema
dsn, url, key, step = sys.argv[1:5]
workload = get_workload("ticket_classification")
backend = AnthropicBackend(anthropic.Anthropic(base_url=url, api_key=key))
with db.connect(dsn) as conn:
    run = ensure_run(conn, workload, dag_id="measure", airflow_run_id="night")
    if step == "startup":
        pass  # imports and a connection only: the baseline every other step includes
    elif step == "collect":
        from nightshift.batch.collect import collect
        collect(conn, workload, run)
    elif step == "submit":
        from nightshift.batch.submit import Caps, submit_round
        submit_round(conn, backend, workload, run, 0, Caps.for_workload(workload, settings().max_queued_requests))
    elif step == "wait":
        import time
        ids = [b.backend_batch_id for b in batches(conn, run, 0)]
        while not all(backend.retrieve(i).ended for i in ids):
            time.sleep(0.5)
    elif step == "land":
        from nightshift.batch.land import land_round
        land_round(conn, backend, workload, run, 0)
    elif step == "finalize":
        from nightshift.batch.finalize import finalize_run
        print(finalize_run(conn, run).as_dict(), file=sys.stderr)
"""


def run_step(step: str, dsn: str, url: str, key: str) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", STEP_CODE, dsn, url, key, step])
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"step {step} failed")
    return {"step": step, "seconds": round(elapsed, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    args = parser.parse_args()

    import psycopg

    from emulator.testing import EmulatorServer
    from nightshift import db
    from nightshift_dev import demo_data
    from nightshift_dev.localdev.environment import profile

    cluster = profile("test").cluster
    started_cluster = cluster.ensure_started()
    try:
        dsn = cluster.dsn()
        with psycopg.connect(dsn) as conn:
            conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
            conn.execute("DROP SCHEMA IF EXISTS nightshift CASCADE")
            apply_schema(conn)
            demo_data.generate(conn, tickets=args.requests, products=0, bad_every=0)
        with EmulatorServer(Path(tempfile.mkdtemp()), rate="inf") as emulator:
            results = [run_step(step, dsn, emulator.url, emulator.api_key)
                       for step in ("startup", "collect", "submit", "wait", "land", "finalize")]
        with psycopg.connect(dsn) as conn:
            landed = conn.execute("SELECT count(*) FROM app.ticket_classifications").fetchone()[0]
    finally:
        if started_cluster:
            cluster.stop()
    print(f"{args.requests} requests, {landed} rows landed")
    print(f"{'step':<10}{'seconds':>10}{'peak RSS MB':>14}")
    for r in results:
        print(f"{r['step']:<10}{r['seconds']:>10}{r['peak_rss_mb']:>14}")
    out = Path("artifacts") / f"night-{args.requests}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"requests": args.requests, "landed": landed, "steps": results}, indent=2))
    return 0 if landed == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
