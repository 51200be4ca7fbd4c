"""Batch backends built from Airflow connections: where the Airflow layer meets a vendor's hook.

A workload names its backend; the operators, sensors and triggers name the connection. The
vendor's own Airflow hook builds the SDK client from the connection (for Anthropic, the
provider's ``AnthropicHook``, as before), and the backend implementation wraps it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nightshift.backends.base import AsyncBatchBackend, AsyncCallBudget, BatchBackend, CallBudget
from nightshift.backends.registry import entry, implementation


def _anthropic_client(conn_id: str) -> Any:
    from airflow.providers.anthropic.hooks.anthropic import AnthropicHook

    return AnthropicHook(conn_id=conn_id).get_conn()


async def _anthropic_async_client(conn_id: str) -> Any:
    from airflow.providers.anthropic.hooks.anthropic import AnthropicHook

    return await AnthropicHook(conn_id=conn_id).get_async_conn()


#: For each backend name: how its sync and async SDK clients are built from an Airflow connection.
CLIENTS: dict[str, tuple[Callable[[str], Any], Callable[[str], Awaitable[Any]]]] = {
    "anthropic": (_anthropic_client, _anthropic_async_client),
}


def batch_backend(name: str, conn_id: str, *, call_budget: CallBudget | None = None,
                  console_batch_url: str | None = None) -> BatchBackend:
    """The backend ``name`` over the client its hook builds from connection ``conn_id``."""
    entry(name)  # an unknown name fails here, naming the known ones
    return implementation(name)(CLIENTS[name][0](conn_id), call_budget=call_budget,
                                console_batch_url=console_batch_url)


async def async_batch_backend(name: str, conn_id: str, *, call_budget: AsyncCallBudget | None = None,
                              pool_connections: int | None = None) -> AsyncBatchBackend:
    """The same for a wait in the triggerer; ``pool_connections`` bounds the client's HTTP connection pool."""
    entry(name)
    cls = implementation(name, asynchronous=True)
    client = await CLIENTS[name][1](conn_id)
    if pool_connections is not None:
        return await cls.pooled(client, pool_connections, call_budget=call_budget)
    return cls(client, call_budget=call_budget)
