"""Batch backends: the protocol the core speaks (:mod:`.base`) and the registry of implementations."""

from nightshift.backends.base import (
    COUNT_NAMES,
    ApiFailure,
    AsyncBatchBackend,
    AsyncCallBudget,
    BatchBackend,
    BatchState,
    CallBudget,
    ErrorKind,
    Outcome,
    OutcomeKind,
    Poll,
    ProcessingStatus,
    RequestCounts,
)
from nightshift.backends.registry import DEFAULT_BACKEND, UnknownBackend, backend_names, implementation

__all__ = ["COUNT_NAMES", "DEFAULT_BACKEND", "ApiFailure", "AsyncBatchBackend", "AsyncCallBudget", "BatchBackend",
           "BatchState", "CallBudget", "ErrorKind", "Outcome", "OutcomeKind", "Poll", "ProcessingStatus",
           "RequestCounts", "UnknownBackend", "backend_names", "implementation"]
