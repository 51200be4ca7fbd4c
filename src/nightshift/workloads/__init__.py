"""Declarative workload definitions, shared by the streaming path and the batch path."""

from nightshift.workloads.definition import Workload, WorkloadDefinitionError
from nightshift.workloads.registry import get_workload, load_workloads

__all__ = ["Workload", "WorkloadDefinitionError", "get_workload", "load_workloads"]
