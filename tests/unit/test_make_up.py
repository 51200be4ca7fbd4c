"""`make up` starts the api-server, healthy, before anything that calls it; `make down` stops all it started.

The order and the health gate are data (``stack.COMPONENTS``) checked here without starting Airflow;
``start_in_order`` is exercised with two small real processes: a gate that answers its health URL
with 503 until it has been asked a few times, and a caller that records what the gate answered it.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import psutil

from nightshift_dev.localdev import stack
from nightshift_dev.localdev.environment import profile
from nightshift_dev.localdev.services import Service

PROFILE = profile("test")
SCHEDULING = ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")

# Answers 503 to its first UNHEALTHY requests, 200 afterwards.
GATE = """
import http.server, sys
UNHEALTHY, seen = 3, [0]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        seen[0] += 1
        self.send_response(503 if seen[0] <= UNHEALTHY else 200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""
# Asks the gate once, as the scheduler's first task asks the execution API, and writes down the answer.
CALLER = """
import sys, urllib.request, urllib.error
try:
    status = urllib.request.urlopen(sys.argv[1], timeout=5).status
except urllib.error.HTTPError as error:
    status = error.code
except OSError as error:
    status = type(error).__name__
open(sys.argv[2], "w").write(str(status))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_api_server_starts_first_and_gates_the_rest():
    services = stack.airflow_services(PROFILE)
    names = [s.name for s in services]
    assert names == ["airflow-api-server", *SCHEDULING]
    api_server, *rest = services
    assert api_server.argv[-1] == "api-server"
    assert api_server.health_url == f"http://127.0.0.1:{PROFILE.api_port}/api/v2/monitor/health"
    assert [s.argv[-1] for s in rest] == ["scheduler", "dag-processor", "triggerer"]
    assert "standalone" not in {arg for s in services for arg in s.argv}


def test_make_down_stops_everything_make_up_starts_in_reverse_order():
    stopped = [s.name for s in stack.services_to_stop(PROFILE)]
    started = [s.name for s in stack.airflow_services(PROFILE)]
    assert stopped[:len(started)] == started[::-1]
    # the emulator, and the single `airflow standalone` an earlier `make up` may have left running
    assert {"emulator", stack.LEGACY_STANDALONE} <= set(stopped)


def test_start_in_order_starts_nothing_until_the_gate_is_healthy(tmp_path: Path):
    url = f"http://127.0.0.1:{_free_port()}/health"
    answer = tmp_path / "answer"
    gate = Service(name="gate", argv=[sys.executable, "-c", GATE, url.split(":")[2].split("/")[0]],
                   run_dir=tmp_path, health_url=url)
    caller = Service(name="caller", argv=[sys.executable, "-c", CALLER, url, str(answer)], run_dir=tmp_path)
    try:
        stack.start_in_order([gate, caller], timeout=60)
        pid = caller.pid()
        if pid is not None:
            psutil.Process(pid).wait(timeout=60)
        assert answer.read_text() == "200", "the caller started before the gate was healthy"
    finally:
        caller.stop()
        gate.stop()


def test_make_up_refuses_an_api_port_another_process_answers_on(tmp_path: Path):
    """Else the api-server's health gate passes against whatever answers there (another Airflow)."""
    from dataclasses import replace

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        prof = replace(PROFILE, root=tmp_path, api_port=other.getsockname()[1])
        services = stack.airflow_services(prof)
        problem = stack.foreign_listener(prof, services)
        assert problem and f"port {prof.api_port} is already in use" in problem
        assert "NIGHTSHIFT_TEST_API_PORT" in problem
    assert stack.foreign_listener(prof, services) is None  # the port is free again
