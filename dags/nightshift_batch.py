"""Airflow DAGs: the nightly batch path, one per workload (collect → submit → wait → land → finalize)."""

from nightshift.batch_dags import batch_dag
from nightshift.workloads.registry import all_workloads

for _workload in all_workloads().values():
    _dag = batch_dag(_workload, fileloc=__file__)
    globals()[_dag.dag_id] = _dag
