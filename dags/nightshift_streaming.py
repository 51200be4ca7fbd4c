"""Airflow DAGs: the streaming path, one per workload (the path the batch pipeline replaces)."""

from nightshift.streaming_dags import streaming_dag
from nightshift.deployment import all_workloads

for _workload in all_workloads().values():
    _dag = streaming_dag(_workload, fileloc=__file__)
    globals()[_dag.dag_id] = _dag
