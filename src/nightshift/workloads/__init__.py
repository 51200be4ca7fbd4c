"""Declarative workload definitions, shared by the streaming path and the batch path.

The deployment's workloads (those of the configured folders) are :mod:`nightshift.deployment`'s.
"""

from nightshift.workloads.definition import Workload, WorkloadDefinitionError
from nightshift.workloads.registry import load_workloads

__all__ = ["Workload", "WorkloadDefinitionError", "load_workloads"]
