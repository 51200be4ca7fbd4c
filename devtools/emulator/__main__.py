"""Command line: ``python -m emulator --port 8099`` (also what ``nightshift emulator`` runs)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

import uvicorn

from emulator.config import (
    DEFAULT_CANCEL_DELAY_SECONDS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_RATE,
    DEFAULT_RATE_WINDOW_SECONDS,
    EmulatorConfig,
    parse_limit,
    parse_rate,
)
from emulator.faults import FaultSpecError, parse_fault_argument
from emulator.limits import tier_preset
from emulator.model_profiles import parse_profile_flags
from emulator.runtime import Emulator, StartupOptions

DEFAULT_PORT = 8099
API_KEY_ENV = "NIGHTSHIFT_EMULATOR_API_KEY"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description="Local, deterministic emulator of the Anthropic Messages and Message Batches APIs.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    add("--port", type=int, default=DEFAULT_PORT, help=f"port; 0 picks a free one (default: {DEFAULT_PORT})")
    add("--state", type=Path, help="SQLite state file (default: a new temporary file)")
    add("--speed", type=float, default=1.0, help="virtual seconds per real second; 0 freezes the clock")
    add(
        "--rate",
        default=str(DEFAULT_RATE),
        help=f"batch requests processed per virtual second; 'inf' or 0 = instant (default: {DEFAULT_RATE:g})",
    )
    add("--malformed-rate", type=float, default=0.0, help="fraction (0-1) of structured replies to break")
    add(
        "--cancel-delay",
        type=float,
        default=DEFAULT_CANCEL_DELAY_SECONDS,
        help=f"virtual seconds from cancel to ended (default: {DEFAULT_CANCEL_DELAY_SECONDS:g})",
    )
    add("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="create-batch body cap (256 MB)")
    add(
        "--batch-rpm-limit",
        default="0",
        metavar="N",
        help="answer 429 to batch-endpoint calls beyond N per minute of real time; 0 = unlimited (default)",
    )
    add(
        "--max-queued-requests",
        default="0",
        metavar="N",
        help="answer 429 to a create that would put more than N requests in unended batches; "
        "0 = unlimited (default)",
    )
    add(
        "--rate-window-seconds",
        type=float,
        default=DEFAULT_RATE_WINDOW_SECONDS,
        metavar="S",
        help=f"real seconds the batch rate limit is measured over (default: {DEFAULT_RATE_WINDOW_SECONDS:g})",
    )
    add(
        "--rate-enforcement-seconds",
        type=float,
        default=None,
        metavar="S",
        help="the token bucket holds S seconds' worth of the rate limit (default: the whole window)",
    )
    add("--tier", default=None, metavar="NAME",
        help="usage-tier preset for --batch-rpm-limit and --max-queued-requests: tier-1 … tier-4")
    add(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="install a fault (repeatable): JSON, or 'kind key=value ...', "
        "e.g. 'status endpoint=retrieve status=529 count=2'",
    )
    add(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        metavar="KEY",
        help=f"accept only this API key (401 for any other); default: ${API_KEY_ENV}, else any key. "
        f"Prefer the variable: a flag is visible to every user in the process list",
    )
    add(
        "--model-profile",
        action="append",
        default=[],
        metavar="SPEC",
        help="a model's agreement with the canonical answer (a test control, repeatable): "
        "MODEL=RATE for every field, MODEL:FIELD=RATE for one, MODEL:malformed=RATE for its own "
        "malformed rate, e.g. 'claude-haiku-5-5:label=0.93'",
    )
    add("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def _listening_socket(host: str, port: int) -> socket.socket:
    """Bind before printing, so the printed port is real and already accepting connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        preset = tier_preset(args.tier) if args.tier else {}
        options = StartupOptions(
            config=EmulatorConfig(
                rate_enforcement_seconds=args.rate_enforcement_seconds,
                rate=parse_rate(args.rate),
                malformed_rate=args.malformed_rate,
                cancel_delay_seconds=args.cancel_delay,
                max_body_bytes=args.max_body_bytes,
                batch_rpm_limit=preset.get("batch_rpm_limit") or parse_limit(args.batch_rpm_limit, "--batch-rpm-limit"),
                max_queued_requests=preset.get("max_queued_requests")
                or parse_limit(args.max_queued_requests, "--max-queued-requests"),
                rate_window_seconds=args.rate_window_seconds,
                api_key=args.api_key,
                model_profiles=parse_profile_flags(args.model_profile),
            ),
            speed=args.speed,
            faults=[parse_fault_argument(text) for text in args.fault],
        )
        EmulatorConfig.from_dict(options.config.to_dict())  # same checks as POST /_emulator/config
    except (ValueError, FaultSpecError) as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2
    state = args.state or Path(tempfile.mkdtemp(prefix="nightshift-emulator-")) / "state.sqlite3"
    state.parent.mkdir(parents=True, exist_ok=True)
    if state.exists():
        print(f"emulator: resuming {state}; its saved settings win over flags", file=sys.stderr)

    from emulator.app import create_app

    emulator = Emulator(state, options)
    app = create_app(emulator)
    try:
        sock = _listening_socket(args.host, args.port)
    except OSError as exc:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"emulator listening on http://{host}:{sock.getsockname()[1]}", flush=True)
    print(f"emulator state: {state}", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app, log_level=args.log_level, access_log=False, lifespan="off", timeout_graceful_shutdown=5
    )
    uvicorn.Server(config).run(sockets=[sock])
    emulator.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
