"""``[core] hostname_callable`` of the Celery stack's workers: each worker's name, as if each ran
on a machine of its own, so a task instance's ``hostname`` says which worker runs it."""

from __future__ import annotations

import os

HOSTNAME_VARIABLE = "NIGHTSHIFT_STACK_HOSTNAME"


def hostname() -> str:
    return os.environ[HOSTNAME_VARIABLE]
