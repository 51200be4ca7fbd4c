"""Backends by name: what a workload's ``backend`` field may say, and the classes each name means.

Implementations are named, not imported: a vendor's module (and its SDK) is imported only when
a backend of that name is built, so naming the known backends costs nothing at DAG-parse time
and the core never loads an SDK.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

DEFAULT_BACKEND = "anthropic"


@dataclass(frozen=True)
class BackendEntry:
    name: str
    #: ``module:Class`` of the sync implementation (the worker's tasks)
    sync: str
    #: ``module:Class`` of the async implementation (the triggerer's waits)
    asynchronous: str


BACKENDS: dict[str, BackendEntry] = {
    entry.name: entry for entry in (
        BackendEntry("anthropic", "nightshift.backends.anthropic:AnthropicBackend",
                     "nightshift.backends.anthropic:AsyncAnthropicBackend"),
    )
}


class UnknownBackend(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no batch backend named {name!r}; known: {', '.join(sorted(BACKENDS))}")
        self.name = name


def backend_names() -> tuple[str, ...]:
    return tuple(sorted(BACKENDS))


def entry(name: str) -> BackendEntry:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UnknownBackend(name) from None


def implementation(name: str, *, asynchronous: bool = False) -> type:
    """The class a backend name stands for, its module imported now."""
    target = entry(name).asynchronous if asynchronous else entry(name).sync
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
