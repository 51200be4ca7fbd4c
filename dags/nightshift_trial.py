"""Airflow DAGs: a model trial per workload (manual only; params candidate, sample, from, to, seed)."""

from nightshift.deployment import all_workloads
from nightshift.trial_dags import trial_dag

for _workload in all_workloads().values():
    _dag = trial_dag(_workload, fileloc=__file__)
    globals()[_dag.dag_id] = _dag
