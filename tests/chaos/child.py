"""One pipeline step in a process of its own, so a test can kill it as a node loss would.

    python -m tests.chaos.child submit|land|wait '<json spec>'
"""

from __future__ import annotations

import asyncio
import json
import sys

import psycopg

from nightshift.batch import land
from nightshift.batch.ledger import get_run
from nightshift.batch.submit import Caps, submit_round
from nightshift.workloads.definition import Workload
from tests.chaos.driver import TICKETS, first_event, provider_backend, wait_trigger


def main(step: str, spec: dict) -> None:
    with psycopg.connect(spec["dsn"]) as conn:
        run = get_run(conn, dag_id=spec["dag_id"], airflow_run_id=spec["airflow_run_id"])
        workload = Workload.model_validate(spec["workload"]) if "workload" in spec else TICKETS
        if step == "submit":
            submit_round(conn, provider_backend(), workload, run, spec.get("round", 0),
                         Caps(**spec.get("caps", {})))
        elif step == "land":
            land.SLICE = spec.get("slice", land.SLICE)
            land.land_round(conn, provider_backend(), workload, run, spec.get("round", 0))
        elif step == "wait":
            print(asyncio.run(first_event(wait_trigger(spec["batch_ids"], **spec.get("trigger", {})))), flush=True)
        else:
            raise SystemExit(f"unknown step {step!r}")


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
