"""Where the project's data files live.

``include/`` sits beside ``plugins/`` in the work tree and in the Docker image
(/opt/airflow/include); ``NIGHTSHIFT_INCLUDE_DIR`` overrides it for other layouts.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def include_dir() -> Path:
    return Path(os.environ.get("NIGHTSHIFT_INCLUDE_DIR") or PROJECT_ROOT / "include")


def workloads_dir() -> Path:
    return Path(os.environ.get("NIGHTSHIFT_WORKLOADS_DIR") or include_dir() / "workloads")


def sql_dir() -> Path:
    return include_dir() / "sql"
