"""`make up` / `make down`: a real local Airflow beside the local Postgres and the emulator.

``airflow standalone`` runs the api-server, scheduler, dag-processor and triggerer with the
LocalExecutor against the Postgres metadata DB; it calls ``airflow`` from PATH, so the
virtualenv's bin goes first on it. The login is fixed (admin/admin) through the simple
auth manager's passwords file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console

from nightshift_dev.localdev.demo import airflow, emulator_service
from nightshift_dev.localdev.environment import Profile, profile
from nightshift_dev.localdev.services import Service
from nightshift_dev.localdev.schema import apply_schema

console = Console()


def airflow_service(prof: Profile) -> Service:
    bin_dir = str(Path(sys.executable).parent)
    return Service(
        name="airflow",
        argv=[str(Path(bin_dir) / "airflow"), "standalone"],
        run_dir=prof.root / "run",
        env={**prof.environment(), "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"},
        health_url=f"http://127.0.0.1:{prof.api_port}/api/v2/monitor/health",
    )


def _has_finished_night(prof: Profile) -> bool:
    import psycopg

    try:
        with psycopg.connect(prof.cluster.dsn()) as conn:
            return bool(conn.execute("SELECT count(*) FROM nightshift.runs WHERE finished_at IS NOT NULL").fetchone()[0])
    except psycopg.Error:
        return False


def up() -> int:
    from nightshift import db
    from nightshift_dev.localdev import demo

    prof = profile("demo")
    prof.cluster.ensure_started()
    if not _has_finished_night(prof):
        console.print("no finished night yet: running the demo night first, so the UI has something to show")
        if code := demo.run(tickets=2000, products=1000):
            return code
    os.environ.update(prof.environment())
    prof.cluster.ensure_started()
    prof.prepare_airflow_home()
    result = airflow(prof, "db", "migrate", log_name="db-migrate")
    if result.returncode:
        console.print(result.stderr[-3000:])
        return result.returncode
    with db.connect(prof.cluster.dsn()) as conn:
        apply_schema(conn)
    emulator_service(prof, fresh=False).start()
    console.print("starting Airflow (api-server, scheduler, dag-processor, triggerer)…")
    airflow_service(prof).start(timeout=240)
    console.print(f"[green]Airflow is up:[/] http://127.0.0.1:{prof.api_port}  (login admin / admin)")
    console.print(f"API emulator: {prof.emulator_url} · Postgres: {prof.cluster.dsn()} · stop with: make down")
    return 0


def down() -> int:
    prof = profile("demo")
    for service in (airflow_service(prof), emulator_service(prof, fresh=False)):
        if service.stop():
            console.print(f"stopped {service.name}")
    prof.cluster.stop()
    console.print("stopped postgres")
    test_profile = profile("test")
    if test_profile.cluster.is_running():
        test_profile.cluster.stop()
        console.print("stopped the test profile's postgres")
    return 0
