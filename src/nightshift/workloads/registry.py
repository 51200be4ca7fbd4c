"""All workload definitions of a deployment, loaded once per process.

One bad definition must not stop the others: in a deployment (:func:`all_workloads`,
:func:`get_workload`) a file that does not load is set aside with its error, the other
workloads load and run, and asking for the broken one raises that error (naming the file and
the field). :func:`load_workloads` without ``errors`` stays strict, for checks and tests.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from nightshift.workloads.definition import Workload, WorkloadDefinitionError, load_workload_file


class WorkloadsFolderError(WorkloadDefinitionError):
    """The configured workloads folder does not exist or holds no workload: nothing could load."""


def workloads_folders() -> tuple[Path, ...]:
    """The folders ``[nightshift] workloads_folder`` names (default: ``workloads/`` beside the DAGs folder),
    each checked: one that does not exist or holds no ``*.yaml`` is an error naming it and the setting."""
    from nightshift.config import settings

    cfg = settings()
    for folder in cfg.workloads_folders:
        where = ("[nightshift] workloads_folder" if cfg.workloads_configured
                 else "the default (a 'workloads' folder beside the DAGs folder; set [nightshift] workloads_folder)")
        if not folder.is_dir():
            raise WorkloadsFolderError(f"workloads folder {folder} does not exist ({where})")
        if not any(folder.glob("*.yaml")):
            raise WorkloadsFolderError(f"workloads folder {folder} holds no workload definition (*.yaml) ({where})")
    return cfg.workloads_folders


def load_workloads(directory: Path | tuple[Path, ...] | None = None, *,
                   errors: dict[str, WorkloadDefinitionError] | None = None) -> dict[str, Workload]:
    """Load every ``*.yaml`` in ``directory`` (a folder or several; default: :func:`workloads_folders`).

    Without ``errors``, any invalid file fails the whole load, by name. With it, each invalid
    file's error is put there under its workload's name and the valid workloads are returned;
    two files claiming one name make that workload invalid (which one is meant is unknowable).
    """
    folders = workloads_folders() if directory is None else (
        (directory,) if isinstance(directory, Path) else tuple(directory))
    workloads: dict[str, Workload] = {}
    for path in sorted(p for folder in folders for p in folder.glob("*.yaml")):
        try:
            workload = load_workload_file(path)
            _check_priced(workload, path)
            if workload.name in workloads or (errors is not None and workload.name in errors):
                raise WorkloadDefinitionError(f"workload {workload.name!r} is defined twice (second: {path})",
                                              workload.name)
        except WorkloadDefinitionError as exc:
            if errors is None:
                raise
            name = exc.workload or path.stem
            errors[name] = exc
            workloads.pop(name, None)
            continue
        workloads[workload.name] = workload
    return workloads


def _check_priced(workload: Workload, path: Path) -> None:
    """An unpriced model would make every cost figure silently zero: refuse it at load time."""
    from nightshift.costs import UnknownModel, price_table

    try:
        price_table().price(workload.model)
    except UnknownModel as exc:
        raise WorkloadDefinitionError(f"workload {workload.name!r} ({path}): field model: {exc}",
                                      workload.name) from None


@lru_cache(maxsize=1)
def _deployment() -> tuple[dict[str, Workload], dict[str, WorkloadDefinitionError]]:
    errors: dict[str, WorkloadDefinitionError] = {}
    workloads = load_workloads(errors=errors)
    if errors:
        import logging

        for error in errors.values():
            logging.getLogger(__name__).error("workload definition set aside (the others run): %s", error)
    return workloads, errors


def get_workload(name: str) -> Workload:
    workloads, errors = _deployment()
    if name in errors:
        raise errors[name]
    try:
        return workloads[name]
    except KeyError:
        raise WorkloadDefinitionError(f"no workload named {name!r}; known: {sorted(workloads)}") from None


def all_workloads() -> dict[str, Workload]:
    """Every workload whose definition loads."""
    return _deployment()[0]


def definition_errors() -> dict[str, WorkloadDefinitionError]:
    """The workloads whose definition does not load, by name, with the error saying why."""
    return _deployment()[1]
