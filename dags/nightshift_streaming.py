"""The streaming path, one DAG per workload (the path the batch pipeline replaces)."""

from nightshift.streaming_dags import streaming_dag
from nightshift.workloads.registry import all_workloads

for _workload in all_workloads().values():
    _dag = streaming_dag(_workload)
    globals()[_dag.dag_id] = _dag
