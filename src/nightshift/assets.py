"""The Assets a workload's destination table is published as (the same for both paths)."""

from __future__ import annotations

from airflow.sdk import Asset

from nightshift.workloads.definition import Workload


def destination_asset(workload: Workload) -> Asset:
    return Asset(name=workload.asset_name, uri=workload.asset_uri)
