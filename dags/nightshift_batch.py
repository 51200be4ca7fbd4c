"""Airflow DAGs: the nightly batch path, one per workload (collect → submit → wait → land → finalize).

A workload whose definition does not load gets a DAG of one failing task that says why; the
other workloads are not held up by it.
"""

from nightshift.batch_dags import batch_dag, broken_workload_dag
from nightshift.deployment import all_workloads, definition_errors

for _workload in all_workloads().values():
    _dag = batch_dag(_workload, fileloc=__file__)
    globals()[_dag.dag_id] = _dag

for _name, _error in definition_errors().items():
    _dag = broken_workload_dag(_name, _error, fileloc=__file__)
    globals()[_dag.dag_id] = _dag
