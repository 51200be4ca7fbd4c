"""Loading workload definitions from folders, each checked; one bad definition never stops the others.

In a deployment (:func:`load_deployment`) a file that does not load is set aside with its error,
the other workloads load and run, and asking for the broken one raises that error (naming the
file and the field). :func:`load_workloads` without ``errors`` stays strict, for checks and
tests. Which folders a deployment reads is the settings' business (:mod:`nightshift.deployment`).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from nightshift.workloads.definition import Workload, WorkloadDefinitionError, load_workload_file

log = logging.getLogger(__name__)


class WorkloadsFolderError(WorkloadDefinitionError):
    """The configured workloads folder does not exist or holds no workload: nothing could load."""


def check_folders(folders: tuple[Path, ...], where: str) -> tuple[Path, ...]:
    """Each folder checked: one that does not exist or holds no ``*.yaml`` is an error naming it and
    ``where`` it was named (the setting, or the default)."""
    for folder in folders:
        if not folder.is_dir():
            raise WorkloadsFolderError(f"workloads folder {folder} does not exist ({where})")
        if not any(folder.glob("*.yaml")):
            raise WorkloadsFolderError(f"workloads folder {folder} holds no workload definition (*.yaml) ({where})")
    return folders


def load_workloads(directory: Path | tuple[Path, ...], *,
                   errors: dict[str, WorkloadDefinitionError] | None = None) -> dict[str, Workload]:
    """Load every ``*.yaml`` in ``directory`` (a folder or several, in the order given).

    A workload's file is named for it (``<name>.yaml``), so a name is claimed by its file name.
    Without ``errors``, any invalid file fails the whole load, by name. With it, each invalid
    file's error is put there under its file name and the valid workloads are returned. A copy
    declaring another file's name is an error of its own, keyed by the copy's file name, so the
    workload it copies loads untouched. A name claimed again by a later folder keeps the file of the
    earlier folder (the one the deployment already runs); the later file is set aside with an error,
    keyed ``<name>__folder<n>``, naming both files.
    """
    folders = (directory,) if isinstance(directory, Path) else tuple(directory)
    workloads: dict[str, Workload] = {}
    claimed: dict[str, Path] = {}
    for number, folder in enumerate(folders, start=1):
        for path in sorted(folder.glob("*.yaml")):
            key = path.stem
            try:
                if (earlier := claimed.get(key)) is not None:
                    key = f"{path.stem}__folder{number}"
                    raise WorkloadDefinitionError(
                        f"workload file {path} claims the name {path.stem!r}, which {earlier} (an earlier "
                        f"workloads folder) already defines: one name, one file. {earlier} keeps the name "
                        "and this file is set aside; rename or remove one of them", key)
                claimed[key] = path
                workload = load_workload_file(path)
                _check_priced(workload, path)
            except WorkloadDefinitionError as exc:
                if errors is None:
                    raise
                errors[key] = exc
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


@lru_cache(maxsize=4)
def load_deployment(folders: tuple[Path, ...]) -> tuple[dict[str, Workload], dict[str, WorkloadDefinitionError]]:
    """Every workload of the folders that loads, and the error of each that does not (once per process)."""
    errors: dict[str, WorkloadDefinitionError] = {}
    workloads = load_workloads(folders, errors=errors)
    for error in errors.values():
        log.error("workload definition set aside (the others run): %s", error)
    return workloads, errors


def find_workload(deployment: tuple[dict[str, Workload], dict[str, WorkloadDefinitionError]], name: str) -> Workload:
    """A workload of a loaded deployment; a broken one raises its error, an unknown one says what is known."""
    workloads, errors = deployment
    if name in errors:
        raise errors[name]
    try:
        return workloads[name]
    except KeyError:
        raise WorkloadDefinitionError(f"no workload named {name!r}; known: {sorted(workloads)}") from None
