"""The settings that make Airflow, the app database and the emulator find each other locally.

Two profiles with separate folders and ports, so `make test` never disturbs a running
`make demo`/`make up`: ``demo`` (also used by ``make up``) and ``test``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from nightshift_dev.localdev.postgres import LocalCluster
from nightshift.paths import PROJECT_ROOT

EMULATOR_API_KEY = "sk-ant-emulator-local"
PROFILES = {"demo": {"pg_port": 54329, "emulator_port": 8099, "api_port": 8080}, "test": {"pg_port": 54339, "emulator_port": 8199, "api_port": 8180}}


@dataclass(frozen=True)
class Profile:
    name: str
    root: Path
    pg_port: int
    emulator_port: int
    api_port: int

    @property
    def cluster(self) -> LocalCluster:
        return LocalCluster(self.root / "pg", self.pg_port)

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    def environment(self, emulator_url: str | None = None) -> dict[str, str]:
        """Environment variables for every process of this profile (airflow, tasks, CLI)."""
        cluster = self.cluster
        return {
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": cluster.sqlalchemy_url("airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.airflow_home / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.airflow_home / "passwords.json"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_NIGHTSHIFT_DB": cluster.dsn("nightshift"),
            "AIRFLOW_CONN_ANTHROPIC_DEFAULT": json.dumps(
                {"conn_type": "anthropic", "host": emulator_url or self.emulator_url, "password": EMULATOR_API_KEY}
            ),
            "NIGHTSHIFT_PROFILE": self.name,
        }

    def prepare_airflow_home(self) -> None:
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        (self.airflow_home / "passwords.json").write_text(json.dumps({"admin": "admin"}))


def profile(name: str) -> Profile:
    defaults = PROFILES[name]
    prefix = f"NIGHTSHIFT_{name.upper()}_"
    return Profile(
        name=name,
        root=PROJECT_ROOT / ".local" / name,
        pg_port=int(os.environ.get(prefix + "PG_PORT", defaults["pg_port"])),
        emulator_port=int(os.environ.get(prefix + "EMULATOR_PORT", defaults["emulator_port"])),
        api_port=int(os.environ.get(prefix + "API_PORT", defaults["api_port"])),
    )
