"""Where Nightshift's files live.

The package's own data (the ledger's migrations, the price table, the model table) ships inside
the package and is found through ``importlib.resources``; workload definitions live where the
``[nightshift] workloads_folder`` setting says (see :mod:`nightshift.config`). Only this
repository's tooling (demo, tests, bench) knows about the work tree, through :func:`project_root`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_data(name: str) -> Path:
    """A file of the installed package's ``data/`` folder (prices.yaml, models.yaml)."""
    return Path(str(resources.files("nightshift") / "data" / name))


def ledger_migrations_dir() -> Path:
    return Path(str(resources.files("nightshift.ledger") / "migrations"))


#: This repository's work tree when running from a clone (demo, tests and bench only).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def project_root() -> Path:
    """:data:`PROJECT_ROOT`, checked: an installed package has no work tree."""
    root = PROJECT_ROOT
    if not (root / "include" / "sql").is_dir():
        raise FileNotFoundError(f"{root} is not a Nightshift work tree: the demo and test tooling run from a clone")
    return root


def include_dir() -> Path:
    """The work tree's ``include/``: the demo's app schema and sample traffic."""
    return project_root() / "include"
