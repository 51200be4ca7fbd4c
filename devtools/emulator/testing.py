"""Run the emulator as a real subprocess from tests (no pytest dependency here).

    with EmulatorServer(tmp_path, rate="inf") as server:
        client = anthropic.Anthropic(base_url=server.url, api_key=server.api_key)
        ...
        server.advance(24 * 3600)

Options map to command-line flags: ``rate``, ``speed``, ``malformed_rate``, ``cancel_delay``,
``max_body_bytes``, ``batch_rpm_limit``, ``max_queued_requests``, ``rate_window_seconds``,
``log_level``, ``faults`` (a list of fault dicts) and ``model_profiles`` (the config key's shape,
passed as ``--model-profile`` flags); ``api_key`` makes the server accept that
key only (passed in the environment, not on the command line). The state file lives
in ``state_dir``, so :meth:`EmulatorServer.restart` (and a restart after :meth:`kill`) resumes
from it on the same port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from emulator.model_profiles import profile_flags

DEFAULT_API_KEY = "sk-emulator-test"
DEFAULT_TEST_MODEL = "claude-haiku-4-5"
STARTUP_TIMEOUT_SECONDS = 30.0
#: The stats fields about the Message Batches rate and queue limits.
BATCH_LIMIT_STATS = (
    "batch_requests_last_60s",
    "peak_batch_rpm",
    "rate_limited",
    "queued_requests",
    "peak_queued_requests",
    "rate_window_seconds",
)
_OPTION_FLAGS = {
    "rate": "--rate",
    "speed": "--speed",
    "malformed_rate": "--malformed-rate",
    "cancel_delay": "--cancel-delay",
    "max_body_bytes": "--max-body-bytes",
    "batch_rpm_limit": "--batch-rpm-limit",
    "max_queued_requests": "--max-queued-requests",
    "rate_window_seconds": "--rate-window-seconds",
    "rate_enforcement_seconds": "--rate-enforcement-seconds",
    "tier": "--tier",
    "log_level": "--log-level",
    "host": "--host",
}


def message_params(
    text: str, *, model: str = DEFAULT_TEST_MODEL, max_tokens: int = 256, **extra: Any
) -> dict[str, Any]:
    """Params of a one-turn Messages request, for tests."""
    messages = [{"role": "user", "content": text}]
    return {"model": model, "max_tokens": max_tokens, "messages": messages, **extra}


def batch_request(custom_id: str, text: str, **params: Any) -> dict[str, Any]:
    """One element of a create-batch ``requests`` list, for tests."""
    return {"custom_id": custom_id, "params": message_params(text, **params)}


class EmulatorError(RuntimeError):
    """The emulator process could not be started or did not answer a control call."""


class EmulatorControl:
    """A thin client for the ``/_emulator`` control routes."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, f"/_emulator{path}", json=body)
        if response.status_code >= 400:
            raise EmulatorError(f"{method} /_emulator{path} -> {response.status_code}: {response.text}")
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def reset(self) -> dict[str, Any]:
        return self._call("POST", "/reset")

    def clock(self) -> dict[str, Any]:
        return self._call("GET", "/clock")

    def advance(self, seconds: float) -> dict[str, Any]:
        return self._call("POST", "/clock", {"advance_seconds": seconds})

    def set_speed(self, speed: float) -> dict[str, Any]:
        return self._call("POST", "/clock", {"speed": speed})

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self._call("POST", "/config", changes)

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        return self._call("POST", "/faults", spec)

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def batch_limits(self) -> dict[str, Any]:
        """The batch rate and queue counters out of the stats (see ``BATCH_LIMIT_STATS``)."""
        stats = self.stats()
        return {name: stats[name] for name in BATCH_LIMIT_STATS}

    def plant_foreign_batches(self, **spec: Any) -> list[dict[str, Any]]:
        """Batches another client of the workspace made (``POST /_emulator/foreign_batches``)."""
        return self._call("POST", "/foreign_batches", spec)["batches"]

    def params_hash(self, params: dict[str, Any]) -> str:
        return self._call("POST", "/params_hash", params)["params_hash"]


class EmulatorServer:
    """``python -m emulator`` in a subprocess, with its controls as methods."""

    def __init__(self, state_dir: Path, port: int = 0, **options: Any) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.state_dir / "emulator.sqlite3"
        self.log_path = self.state_dir / "emulator.log"
        self.port = port
        self.host = str(options.get("host", "127.0.0.1"))
        self.options = options
        self.api_key = str(options.get("api_key") or DEFAULT_API_KEY)
        self._process: subprocess.Popen[bytes] | None = None
        self._control: EmulatorControl | None = None

    # --- process ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise EmulatorError("the emulator is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "emulator"]
        command += ["--port", str(self.port), "--state", str(self.state_path)]
        for name, flag in _OPTION_FLAGS.items():
            if self.options.get(name) is not None:
                command += [flag, str(self.options[name])]
        for fault in self.options.get("faults") or []:
            command += ["--fault", json.dumps(fault)]
        for flag in profile_flags(self.options.get("model_profiles") or {}):
            command += ["--model-profile", flag]
        return command

    def start(self) -> EmulatorServer:
        if self.running:
            return self
        stdout_path = self.state_dir / "emulator.stdout"
        stdout_path.write_bytes(b"")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("NIGHTSHIFT_EMULATOR_API_KEY", None)
        if self.options.get("api_key"):
            env["NIGHTSHIFT_EMULATOR_API_KEY"] = str(self.options["api_key"])
        project_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [project_root, env.get("PYTHONPATH")]))
        with open(stdout_path, "wb") as stdout, open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(self.command(), stdout=stdout, stderr=log, env=env)
        self.port = self._wait_for_port(stdout_path)
        self._control = EmulatorControl(self.url)
        self._wait_for_health()
        return self

    def _wait_for_port(self, stdout_path: Path) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for line in stdout_path.read_text().splitlines():
                if line.startswith("emulator listening on "):
                    return int(line.rsplit(":", 1)[1])
            if self._process is not None and self._process.poll() is not None:
                raise EmulatorError(f"emulator exited with {self._process.returncode}; see {self.log_path}")
            time.sleep(0.05)
        raise EmulatorError(f"emulator did not report its port within {STARTUP_TIMEOUT_SECONDS}s")

    def _wait_for_health(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                self.control.health()
                return
            except (httpx.HTTPError, EmulatorError):
                time.sleep(0.05)
        raise EmulatorError(f"emulator at {self.url} did not become healthy; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM and wait: the graceful path."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: nothing is flushed or closed, as in a crash."""
        self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def restart(self) -> EmulatorServer:
        """Stop if running, then start again on the same port and state file."""
        self.stop()
        return self.start()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- controls ---------------------------------------------------------------------

    @property
    def control(self) -> EmulatorControl:
        if self._control is None:
            raise EmulatorError("the emulator is not running")
        return self._control

    def reset(self) -> dict[str, Any]:
        return self.control.reset()

    def advance(self, seconds: float) -> dict[str, Any]:
        return self.control.advance(seconds)

    def set_speed(self, speed: float) -> dict[str, Any]:
        return self.control.set_speed(speed)

    def clock(self) -> dict[str, Any]:
        return self.control.clock()

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.control.configure(**changes)

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        return self.control.add_fault(**spec)

    def faults(self) -> list[dict[str, Any]]:
        return self.control.faults()

    def clear_faults(self) -> None:
        self.control.clear_faults()

    def stats(self) -> dict[str, Any]:
        return self.control.stats()

    def batch_limits(self) -> dict[str, Any]:
        """``batch_requests_last_60s``, ``peak_batch_rpm``, ``rate_limited``, ``queued_requests``,
        ``peak_queued_requests`` and ``rate_window_seconds``, from one stats call."""
        return self.control.batch_limits()

    def plant_foreign_batches(self, **spec: Any) -> list[dict[str, Any]]:
        """Batches another client of the workspace made (``POST /_emulator/foreign_batches``)."""
        return self.control.plant_foreign_batches(**spec)

    def params_hash(self, params: dict[str, Any]) -> str:
        return self.control.params_hash(params)

    def endpoint_calls(self, endpoint: str) -> int:
        """How many API calls the emulator has seen for ``endpoint`` (``retrieve``, ``create``…)."""
        return int(self.stats()["endpoints"].get(endpoint, {}).get("total", 0))

    def peak_rss_bytes(self) -> int:
        """The process's peak resident set size (``VmHWM``), read from ``/proc`` (Linux only)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise EmulatorError("VmHWM not found in /proc status")
