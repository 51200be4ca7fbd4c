"""`make demo`: one night end to end on the embedded defaults, then the report.

Local Postgres (app DB and Airflow metadata DB), the local API emulator, the night's DAGs
run with ``airflow dags test`` (tasks, deferral and triggers run in-process; their task logs
written where the Airflow UI reads them, :mod:`.task_logs`), and the downstream DAG those DAGs'
Assets feed. The cluster stays up afterwards so the rows can be
inspected; ``make down`` stops it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from nightshift_dev.localdev.environment import Profile, profile
from nightshift_dev.localdev.services import Service
from nightshift_dev.localdev.schema import apply_schema

console = Console()

# A realistic night in seconds: the emulator's clock runs 60x (10 requests per virtual second),
# a few replies are malformed and a few items come back overloaded, so the report shows
# validation failures and a retry round, as a real night would. Haiku 5.5 differs from the
# canonical (strongest model's) answer on 5% of product categories and 3% of summaries, so the
# routing trial has something to measure.
DEMO_EMULATOR = ["--speed", "60", "--rate", "10", "--malformed-rate", "0.01",
                 "--fault", "item_error error_type=overloaded_error rate=0.02 count=40",
                 "--model-profile", "claude-haiku-5-5:category=0.95",
                 "--model-profile", "claude-haiku-5-5:summary=0.97"]
#: The routing trial the demo runs after the night: product_enrichment (Sonnet 5.5) on Haiku 5.5.
DEMO_TRIAL = ["--workload", "product_enrichment", "--candidate", "claude-haiku-5-5", "--sample", "500",
              "--seed", "1", "--poll-interval", "2"]
DEMO_RUN_CONF = '{"poll_interval_seconds": 2}'
#: ``airflow dags test``, writing task logs where the UI reads them (:mod:`.task_logs`)
DAGS_TEST = [sys.executable, "-m", "nightshift_dev.localdev.task_logs"]


def emulator_service(prof: Profile, *, fresh: bool) -> Service:
    state = prof.root / "emulator.sqlite"
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{state}{suffix}").unlink(missing_ok=True)
    return Service(
        name="emulator",
        argv=[sys.executable, "-m", "emulator", "--port", str(prof.emulator_port), "--state", str(state), *DEMO_EMULATOR],
        run_dir=prof.root / "run",
        health_url=f"{prof.emulator_url}/_emulator/health",
    )


def airflow(prof: Profile, *args: str, log_name: str | None = None) -> subprocess.CompletedProcess:
    return _run(prof, [str(Path(sys.executable).parent / "airflow"), *args], log_name)


def dags_test(prof: Profile, dag_id: str, *args: str, log_name: str | None = None) -> subprocess.CompletedProcess:
    """``airflow dags test`` whose task logs the Airflow UI can show (:mod:`.task_logs`)."""
    return _run(prof, [*DAGS_TEST, dag_id, *args], log_name)


def _run(prof: Profile, argv: list[str], log_name: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, **prof.environment()}
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if log_name:
        log_dir = prof.root / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"{log_name}.log").write_text(result.stdout + result.stderr)
    return result


def step(message: str) -> float:
    console.print(f"[bold cyan]▸[/] {message}")
    return time.monotonic()


def run(*, tickets: int, products: int) -> int:
    from nightshift import db
    from nightshift_dev import demo_data
    from nightshift.dag_ids import night_dag_ids
    from nightshift.report import print_report

    prof = profile("demo")
    os.environ.update(prof.environment())
    started = time.monotonic()

    step(f"PostgreSQL on 127.0.0.1:{prof.pg_port} ({prof.cluster.root})")
    prof.cluster.ensure_started()
    prof.prepare_airflow_home()

    step("Airflow metadata DB (airflow db migrate)")
    result = airflow(prof, "db", "migrate", log_name="db-migrate")
    if result.returncode:
        console.print(result.stderr[-3000:])
        return result.returncode

    step("register the DAGs; unpause the downstream DAG so Asset events queue it")
    for command in (("dags", "reserialize"), ("dags", "unpause", "nightly_insights")):
        result = airflow(prof, *command, log_name="-".join(command))
        if result.returncode:
            console.print(result.stderr[-3000:])
            return result.returncode

    step("application schema and a night of demo data")
    with db.connect(prof.cluster.dsn()) as conn:
        conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS nightshift CASCADE")
        apply_schema(conn)
        counts = demo_data.generate(conn, tickets=tickets, products=products)
    console.print(f"  {counts.tickets} tickets, {counts.products} products "
                  f"({counts.bad_rows} deliberately bad rows), {counts.requests} requests queued")

    emulator = emulator_service(prof, fresh=True)
    step(f"API emulator on {prof.emulator_url}")
    emulator.start()
    try:
        for dag_id in night_dag_ids():
            t0 = step(f"airflow dags test {dag_id}")
            conf = ["-c", DEMO_RUN_CONF] if dag_id != "nightly_insights" else []
            result = dags_test(prof, dag_id, *conf, log_name=dag_id)
            state = "[green]success[/]" if result.returncode == 0 else f"[red]failed ({result.returncode})[/]"
            console.print(f"  {state} in {time.monotonic() - t0:.1f}s — log: {prof.root / 'logs' / (dag_id + '.log')}")
            if result.returncode:
                console.print(result.stdout[-2000:] + result.stderr[-2000:])
                return result.returncode
        queued = _asset_queue(prof, "nightly_insights")
        console.print(f"  Asset events queued nightly_insights: {queued or 'nothing'}")
        t0 = step("airflow dags test nightly_insights (downstream, unchanged)")
        result = dags_test(prof, "nightly_insights", log_name="nightly_insights")
        console.print(f"  {'[green]success[/]' if result.returncode == 0 else '[red]failed[/]'} in "
                      f"{time.monotonic() - t0:.1f}s")
        if result.returncode:
            return result.returncode
        returncode = routing_trial(prof)
        if returncode:
            return returncode
    finally:
        emulator.stop()

    console.print()
    with db.connect(prof.cluster.dsn()) as conn:
        print_report(conn)
        insights = conn.execute("SELECT count(*) FROM app.nightly_insights").fetchone()[0]
    console.print(f"Downstream: nightly_insights wrote {insights} rows to app.nightly_insights.")
    console.print(f"Done in {time.monotonic() - started:.0f}s. Inspect: psql {prof.cluster.dsn()}  ·  stop: make down")
    return 0


def routing_trial(prof: Profile) -> int:
    """The third lever on the night's rows: a trial of a cheaper model, then the switch gate's verdict."""
    nightshift = str(Path(sys.executable).parent / "nightshift")
    t0 = step(f"nightshift trial {' '.join(DEMO_TRIAL)}")
    result = _run(prof, [nightshift, "trial", *DEMO_TRIAL], "trial")
    sys.stdout.write(result.stdout)  # the report, as the command printed it
    if result.returncode:
        console.print(result.stderr[-3000:], highlight=False, markup=False)
        return result.returncode
    console.print(f"  [green]success[/] in {time.monotonic() - t0:.1f}s")
    step("nightshift switch --workload product_enrichment --model claude-haiku-5-5 (the gate reads the trial)")
    result = _run(prof, [nightshift, "switch", "--workload", "product_enrichment", "--model", "claude-haiku-5-5"],
                  "switch-model")
    sys.stdout.write(result.stdout + result.stderr)
    return 0


def _asset_queue(prof: Profile, dag_id: str) -> str:
    """Which Assets have queued ``dag_id`` in the metadata DB (what the scheduler would run)."""
    import psycopg

    with psycopg.connect(prof.cluster.dsn("airflow")) as conn:
        rows = conn.execute(
            "SELECT a.name FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id "
            "WHERE q.target_dag_id = %s ORDER BY a.name", (dag_id,)).fetchall()
    return ", ".join(name for (name,) in rows)
