"""`airflow dags test` with task logs the Airflow UI can show.

``airflow dags test`` (Airflow 3.3) runs each task in its own process (``dag.test()`` →
``_run_task`` → ``run_task_in_process``) and its task logger prints to that process's console only:
no file is written where the API server reads a task's log (``[logging] base_log_folder`` /
``log_filename_template``, what ``FileTaskHandler`` renders for the attempt), so the UI showed demo
runs' task logs empty, the failed ``land`` whose cause mattered included. Run as
``python -m nightshift_dev.localdev.task_logs <airflow dags test arguments>``, this is that command
with each task attempt's output also written to that file; the console output is unchanged.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def task_log_path(ti: Any) -> Path:
    """Where the API server looks for this attempt's log on this machine."""
    from airflow.configuration import conf
    from airflow.utils.log.file_task_handler import FileTaskHandler

    handler = FileTaskHandler(base_log_folder=conf.get("logging", "base_log_folder"))
    return Path(handler.local_base, handler._render_filename(ti, ti.try_number))


@contextlib.contextmanager
def tee_output(path: Path) -> Iterator[None]:
    """Everything this process writes to stdout and stderr (file descriptors 1 and 2, so the task
    logger's stream too, whatever Python object holds it) also goes to ``path``, appended."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with open(path, "ab") as log, os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                log.write(chunk)
                log.flush()
                os.write(saved_out, chunk)

    thread = threading.Thread(target=pump, name="task-log-tee", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)  # the pipe's last write ends close here: the pump sees its end
        os.dup2(saved_err, 2)
        thread.join()
        os.close(saved_out)
        os.close(saved_err)


def with_task_logs(run_task):
    """``dag.test()``'s ``_run_task``, writing each attempt's output to its task log file too."""

    def run(*, ti, task, run_triggerer: bool = False):
        with tee_output(task_log_path(ti)):
            return run_task(ti=ti, task=task, run_triggerer=run_triggerer)

    return run


def main(argv: list[str]) -> int:
    import airflow.sdk.definitions.dag as sdk_dag
    from airflow.__main__ import main as airflow_main

    sdk_dag._run_task = with_task_logs(sdk_dag._run_task)  # looked up by dag.test() at each call
    sys.argv = ["airflow", "dags", "test", *argv]
    return airflow_main() or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
