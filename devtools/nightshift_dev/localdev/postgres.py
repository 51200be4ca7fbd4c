"""A throwaway PostgreSQL cluster of the project's own, in a git-ignored folder.

PostgreSQL refuses to run as root, and CI runs as root: the cluster is then owned by and
started as the unprivileged ``postgres`` user (created by Debian's package). As a normal
user it simply runs as that user. It listens on 127.0.0.1 only, with trust auth, which is
acceptable for a cluster that lives in the work tree and dies with the test run.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "postgres"
SUPERUSER = "postgres"
DATABASES = ("nightshift", "airflow")


class PostgresNotFound(RuntimeError):
    pass


def find_bindir() -> Path:
    """Locate the server binaries (initdb, pg_ctl), newest major version first."""
    candidates = []
    if explicit := os.environ.get("NIGHTSHIFT_PG_BINDIR"):
        candidates.append(explicit)
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True)
    if which := shutil.which("pg_ctl"):
        candidates.append(str(Path(which).resolve().parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresNotFound(
        "PostgreSQL server binaries (initdb, pg_ctl) not found. On Debian: apt-get install -y postgresql "
        "(make does this for you when run as root), or set NIGHTSHIFT_PG_BINDIR."
    )


def _major_version(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


@dataclass(frozen=True)
class LocalCluster:
    """One cluster: ``root`` holds ``data/``, ``run/`` (socket) and ``server.log``."""

    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def dsn(self, database: str = "nightshift") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def sqlalchemy_url(self, database: str = "airflow") -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    # --- lifecycle -------------------------------------------------------------------

    def is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        return self._pg_ctl("status", check=False).returncode == 0

    def ensure_started(self) -> bool:
        """Create and start the cluster if needed; return True when this call started it."""
        if self.is_running():
            return False
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._prepare_dirs()
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_file), "-o", options)
        self._create_databases()
        return True

    def stop(self) -> None:
        if self.is_running():
            self._pg_ctl("stop", "-m", "fast", "-w")

    def restart(self) -> None:
        """Fast-stop and start again on the same data (used by crash tests)."""
        self.stop()
        self.ensure_started()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- internals -------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        for directory in (self.root, self.socket_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        if _is_root():
            for path in (self.root, self.socket_dir, self.log_file):
                shutil.chown(path, SERVICE_USER, SERVICE_USER)
            # The service user must be able to reach the folder through its parents.
            parent = self.root.parent
            while parent != parent.parent:
                parent.chmod(parent.stat().st_mode | 0o001)
                parent = parent.parent

    def _initdb(self) -> None:
        self._prepare_dirs()
        self.data_dir.mkdir(exist_ok=True)
        if _is_root():
            shutil.chown(self.data_dir, SERVICE_USER, SERVICE_USER)
        self._run(
            [str(find_bindir() / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
             "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]
        )

    def _create_databases(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in DATABASES:
                if name not in existing:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._run([str(find_bindir() / "pg_ctl"), "-D", str(self.data_dir), *args], check=check)

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        if _is_root():
            argv = ["runuser", "-u", SERVICE_USER, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            log_tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}{log_tail}"
            )
        return result


def _is_root() -> bool:
    return os.geteuid() == 0


def wait_until_accepting(dsn: str, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
