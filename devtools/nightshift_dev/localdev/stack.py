"""`make up` / `make down`: a real local Airflow beside the local Postgres and the emulator.

The api-server, scheduler, dag-processor and triggerer run as separate processes with the
LocalExecutor against the Postgres metadata DB, started in the order of :data:`COMPONENTS`: the
api-server first and healthy before anything that calls it (``airflow standalone`` starts them all
at once, so the scheduler's first task reached for an execution API that was not listening yet and
failed with ``httpx.ConnectError``). They share one ``airflow.cfg`` (written by ``airflow db
migrate``), so they sign and check the same tokens. The login is fixed (admin/admin) through the
simple auth manager's passwords file.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from nightshift_dev.localdev.demo import airflow, emulator_service
from nightshift_dev.localdev.environment import Profile, profile
from nightshift_dev.localdev.services import Service
from nightshift_dev.localdev.schema import apply_schema

console = Console()


@dataclass(frozen=True)
class Component:
    """One Airflow process of `make up`. ``ready_path``: what must answer before the next one starts."""

    name: str
    command: tuple[str, ...]
    ready_path: str | None = None


#: Start order (``make down`` stops them in reverse). Only the api-server gates: the scheduler runs
#: tasks that report to its execution API, the dag-processor and triggerer talk to it too.
COMPONENTS = (
    Component("api-server", ("api-server",), ready_path="/api/v2/monitor/health"),
    Component("scheduler", ("scheduler",)),
    Component("dag-processor", ("dag-processor",)),
    Component("triggerer", ("triggerer",)),
)
#: what the api-server's health endpoint must report healthy before `make up` says Airflow is up
HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
#: the pid file name of the single ``airflow standalone`` process earlier versions started
LEGACY_STANDALONE = "airflow"


def airflow_services(prof: Profile) -> list[Service]:
    """The Airflow processes of `make up`, in start order."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**prof.environment(), "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    base_url = f"http://127.0.0.1:{prof.api_port}"
    return [Service(name=f"airflow-{c.name}", argv=[str(Path(bin_dir) / "airflow"), *c.command],
                    run_dir=prof.root / "run", env=env,
                    health_url=base_url + c.ready_path if c.ready_path else None)
            for c in COMPONENTS]


def foreign_listener(prof: Profile, services: list[Service]) -> str | None:
    """Why `make up` cannot start: the API port already answers and not from an api-server of ours
    (its health check would pass against someone else's Airflow). None when the port is free or ours."""
    if services[0].pid() is not None:
        return None
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex(("127.0.0.1", prof.api_port)) != 0:
            return None
    return (f"port {prof.api_port} is already in use by another process (another Airflow?): stop it, or choose "
            f"another port with NIGHTSHIFT_{prof.name.upper()}_API_PORT")


def start_in_order(services: list[Service], *, timeout: float) -> None:
    """Start each service, waiting for its health URL (if it has one) before starting the next;
    on failure stop what was started."""
    started = []
    try:
        for service in services:
            started.append(service)
            service.start(timeout=timeout)
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise


def wait_until_healthy(prof: Profile, services: list[Service], *, timeout: float) -> None:
    """Until the api-server reports every component healthy; fails at once when a process died."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{prof.api_port}/api/v2/monitor/health"
    while True:
        if dead := [s.name for s in services if s.pid() is None]:
            raise RuntimeError(f"exited: {', '.join(dead)}; logs in {prof.root / 'run'}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                health = json.load(response)
            if all((health.get(c) or {}).get("status") == "healthy" for c in HEALTH_COMPONENTS):
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Airflow not healthy after {timeout:.0f}s ({url}); logs in {prof.root / 'run'}")
        time.sleep(1)


def services_to_stop(prof: Profile) -> list[Service]:
    """Everything `make up` may have started, in stopping order."""
    legacy = Service(name=LEGACY_STANDALONE, argv=[], run_dir=prof.root / "run")
    return [*reversed(airflow_services(prof)), legacy, emulator_service(prof, fresh=False)]


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
    console.print("starting Airflow: the api-server, then the scheduler, dag-processor and triggerer…")
    services = airflow_services(prof)
    if problem := foreign_listener(prof, services):
        console.print(f"[red]{problem}[/]")
        return 1
    start_in_order(services, timeout=240)
    try:
        wait_until_healthy(prof, services, timeout=240)
    except BaseException:
        for service in reversed(services):
            service.stop()
        raise
    console.print(f"[green]Airflow is up:[/] http://127.0.0.1:{prof.api_port}  (login admin / admin)")
    console.print(f"API emulator: {prof.emulator_url} · Postgres: {prof.cluster.dsn()} · stop with: make down")
    return 0


def down() -> int:
    prof = profile("demo")
    for service in services_to_stop(prof):
        if service.stop():
            console.print(f"stopped {service.name}")
    prof.cluster.stop()
    console.print("stopped postgres")
    test_profile = profile("test")
    if test_profile.cluster.is_running():
        test_profile.cluster.stop()
        console.print("stopped the test profile's postgres")
    return 0
