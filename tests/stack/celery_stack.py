"""Airflow on the CeleryExecutor as separate processes, the way a team spreads it over machines.

Debian's ``redis-server`` as the broker (its own port and folder, no persistence), the api-server,
scheduler, dag-processor and triggerer, and two ``airflow celery worker`` processes, each with a
Celery hostname of its own and reporting that name as its task instances' ``hostname``. Every
process is a :class:`Service` (started in a session of its own, stopped with its descendants);
logs and pid files are in ``<profile root>/celery/run``. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from nightshift_dev.localdev.services import Service

DEPLOYMENT_DIR = Path(__file__).resolve().parent / "celery_deployment"
WORKERS = ("celery-worker-1", "celery-worker-2")
WORKER_CONCURRENCY = 2
#: seconds without a heartbeat before the scheduler fails a running task (Airflow's default: 300)
HEARTBEAT_TIMEOUT_SECONDS = 30
STARTUP_TIMEOUT_SECONDS = 240.0
POLL_SECONDS = 0.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(what: str, probe: Callable[[], Any], *, timeout: float,
               alive: Callable[[], None] = lambda: None) -> Any:
    """Poll ``probe`` until it returns something truthy (and return it); ``alive`` raises when a
    process the wait depends on has died, so a crash fails at once instead of at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        alive()
        if result := probe():
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_SECONDS)


@dataclass
class CeleryStack:
    root: Path
    metadata_url: str
    base_env: dict[str, str]
    api_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    services: dict[str, Service] = field(default_factory=dict)
    # every process must sign and check the same tokens (standalone shares one generated airflow.cfg)
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: the REST client (``tests.stack.conftest.Stack``), once the api-server is up
    api: Any = None

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def environment(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        result_backend = "db+" + self.metadata_url
        return {
            **self.base_env,
            "PATH": f"{bin_dir}:{self.base_env.get('PATH', '')}",
            # airflow_local_settings (the retry-delay policy) and the workers' hostname callable
            "PYTHONPATH": ":".join(filter(None, [str(DEPLOYMENT_DIR), self.base_env.get("PYTHONPATH")])),
            "AIRFLOW_HOME": str(self.root / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__API__SECRET_KEY": self.secret_key,
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_SECONDS),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            # only the runs the test triggers: unpausing must not add the latest scheduled night
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        }

    def start(self) -> None:
        """Start every process and wait until each is ready; on failure stop what was started."""
        if self.run_dir.exists():  # logs of an earlier session
            shutil.rmtree(self.run_dir)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        env = self.environment()
        redis_dir = self.root / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        self._service("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
                                "--dir", str(redis_dir), "--save", "", "--appendonly", "no",
                                "--daemonize", "no"], env)
        airflow = str(Path(sys.executable).parent / "airflow")
        self._service("api-server", [airflow, "api-server"], env)
        self._service("scheduler", [airflow, "scheduler", "--skip-serve-logs"], env)
        self._service("dag-processor", [airflow, "dag-processor"], env)
        self._service("triggerer", [airflow, "triggerer", "--skip-serve-logs"], env)
        for name in WORKERS:
            # the task logs are on this machine's disk, where the api-server reads them: no log server
            self._service(name, [airflow, "celery", "worker", "--celery-hostname", f"{name}@127.0.0.1",
                                 "--concurrency", str(WORKER_CONCURRENCY), "--skip-serve-logs",
                                 "--without-mingle", "--without-gossip"],
                          {**env, "AIRFLOW__CORE__HOSTNAME_CALLABLE": "stack_hostname.hostname",
                           "NIGHTSHIFT_STACK_HOSTNAME": name})
        wait_until("the api-server, scheduler, triggerer and dag-processor to report healthy",
                   self._healthy, timeout=STARTUP_TIMEOUT_SECONDS, alive=self.assert_alive)
        wait_until(f"both Celery workers to answer a ping on {self.broker_url}",
                   lambda: set(self.workers_answering()) >= {f"{name}@127.0.0.1" for name in WORKERS},
                   timeout=STARTUP_TIMEOUT_SECONDS, alive=self.assert_alive)

    def _service(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        service = Service(name=name, argv=argv, run_dir=self.run_dir, env=env)
        self.services[name] = service
        service.start()

    def assert_alive(self, *, besides: tuple[str, ...] = ()) -> None:
        dead = [name for name, service in self.services.items()
                if name not in besides and service.pid() is None]
        if dead:
            raise RuntimeError(f"stack processes exited: {dead}; logs in {self.run_dir}")

    def _healthy(self) -> bool:
        try:
            health = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((health.get(c) or {}).get("status") == "healthy" for c in components)

    def workers_answering(self) -> list[str]:
        from celery import Celery

        app = Celery(broker=self.broker_url)
        try:
            return [name for reply in app.control.ping(timeout=1.0) for name in reply]
        except OSError:  # the broker is not up yet
            return []
        finally:
            app.close()

    def worker_holding(self, pid: int) -> str:
        """The worker whose process tree holds ``pid`` (a task process runs under a pool process)."""
        import psutil

        holders = []
        for name in WORKERS:
            root_pid = self.services[name].pid()
            if root_pid is None:
                continue
            tree = psutil.Process(root_pid).children(recursive=True)
            if pid in {process.pid for process in tree}:
                holders.append(name)
        assert len(holders) == 1, f"process {pid} runs under {holders or 'no worker'}"
        return holders[0]

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and everything under it (its pool and the task processes), as when
        its machine dies: the main process first, so it cannot replace a pool process."""
        import psutil

        pid = self.services[name].pid()
        assert pid is not None, f"{name} is not running"
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
        for process in tree:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert not alive, f"still alive after SIGKILL: {alive}"

    def stop(self) -> None:
        for service in reversed(self.services.values()):
            service.stop(timeout=20)
