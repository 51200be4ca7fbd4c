"""Pytest fixtures for tests that talk to the emulator. Load with
``pytest_plugins = ["emulator.pytest_plugin"]`` in the root ``conftest.py``.

* ``emulator_server`` (session): one emulator process for the whole session, started with
  options suited to tests — instant batch processing, clock at real speed;
* ``emulator`` (function): that server after ``reset()``, so each test starts clean;
* ``anthropic_client`` / ``async_anthropic_client``: official SDK clients pointed at it,
  with ``max_retries=2`` (the SDK default, stated so retry tests do not depend on it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import pytest
import pytest_asyncio

from emulator.testing import EmulatorServer

__all__ = ["anthropic_client", "async_anthropic_client", "emulator", "emulator_server"]

#: Options of the session server. Tests that need others start their own ``EmulatorServer``.
SESSION_SERVER_OPTIONS = {"rate": "inf", "speed": 1.0}
CLIENT_MAX_RETRIES = 2


@pytest.fixture(scope="session")
def emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(tmp_path_factory.mktemp("emulator"), **SESSION_SERVER_OPTIONS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> EmulatorServer:
    if not emulator_server.running:  # a test killed it: bring it back on the same state file
        emulator_server.start()
    emulator_server.reset()
    return emulator_server


@pytest.fixture
def anthropic_client(emulator: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        base_url=emulator.url, api_key=emulator.api_key, max_retries=CLIENT_MAX_RETRIES
    )
    try:
        yield client
    finally:
        client.close()


@pytest_asyncio.fixture
async def async_anthropic_client(emulator: EmulatorServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(
        base_url=emulator.url, api_key=emulator.api_key, max_retries=CLIENT_MAX_RETRIES
    )
    try:
        yield client
    finally:
        await client.close()
