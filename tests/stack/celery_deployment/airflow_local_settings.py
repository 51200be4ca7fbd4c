"""The Celery stack's cluster policy. Only the stack's processes have this folder on PYTHONPATH.

The batch DAGs retry every task after 2 minutes; in the stack test a retry of the land task
that a killed worker left behind should start as soon as Airflow has failed the attempt.
"""

from __future__ import annotations

from datetime import timedelta

RETRY_DELAY = timedelta(seconds=1)


def task_policy(task) -> None:
    task.retry_delay = RETRY_DELAY
