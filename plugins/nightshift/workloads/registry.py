"""All workload definitions of a deployment, loaded once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from nightshift import paths
from nightshift.workloads.definition import Workload, WorkloadDefinitionError, load_workload_file


def load_workloads(directory: Path | None = None, include_dir: Path | None = None) -> dict[str, Workload]:
    """Load every ``*.yaml`` in ``directory``; any invalid one fails the whole load, by name."""
    directory = directory or paths.workloads_dir()
    include_dir = include_dir or paths.include_dir()
    workloads: dict[str, Workload] = {}
    for path in sorted(directory.glob("*.yaml")):
        workload = load_workload_file(path, include_dir)
        _check_priced(workload, path)
        if workload.name in workloads:
            raise WorkloadDefinitionError(f"workload {workload.name!r} is defined twice (second: {path})")
        workloads[workload.name] = workload
    return workloads


def _check_priced(workload: Workload, path: Path) -> None:
    """An unpriced model would make every cost figure silently zero: refuse it at load time."""
    from nightshift.costs import UnknownModel, price_table

    try:
        price_table().price(workload.model)
    except UnknownModel as exc:
        raise WorkloadDefinitionError(f"workload {workload.name!r} ({path}): field model: {exc}") from None


@lru_cache(maxsize=1)
def _default_workloads() -> dict[str, Workload]:
    return load_workloads()


def get_workload(name: str) -> Workload:
    workloads = _default_workloads()
    try:
        return workloads[name]
    except KeyError:
        raise WorkloadDefinitionError(f"no workload named {name!r}; known: {sorted(workloads)}") from None


def all_workloads() -> dict[str, Workload]:
    return _default_workloads()
