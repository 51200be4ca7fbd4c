"""Control routes under ``/_emulator``: clock, config, faults, stats, reset and health.

They need no credentials and are not counted in the request stats, so reading the stats
never changes them.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request

from emulator.version import __version__
from emulator.batches import BatchService
from emulator.errors import invalid_request, not_found
from emulator.faults import FaultSpecError
from emulator.replies import params_hash
from emulator.runtime import Emulator


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise invalid_request(f"There was an error parsing the body: {exc}") from exc
    if not isinstance(data, dict | list):
        raise invalid_request("Expected a JSON object")
    return data  # type: ignore[return-value]


def control_router(emulator: Emulator, service: BatchService) -> APIRouter:
    router = APIRouter(prefix="/_emulator")

    @router.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "state": str(emulator.store.path)}

    @router.get("/clock")
    def get_clock() -> dict[str, Any]:
        return emulator.clock.describe()

    @router.post("/clock")
    async def set_clock(request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        unknown = set(body) - {"advance_seconds", "speed"}
        if unknown:
            raise invalid_request(f"unknown clock fields: {', '.join(sorted(unknown))}")
        try:
            if body.get("speed") is not None:
                await anyio.to_thread.run_sync(emulator.set_speed, float(body["speed"]))
            if body.get("advance_seconds") is not None:
                await anyio.to_thread.run_sync(emulator.advance, float(body["advance_seconds"]))
        except ValueError as exc:
            raise invalid_request(str(exc)) from exc
        return emulator.clock.describe()

    @router.get("/config")
    def get_config() -> dict[str, Any]:
        return emulator.config.public_dict()

    @router.post("/config")
    async def set_config(request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        try:
            config = await anyio.to_thread.run_sync(emulator.configure, body)
        except (ValueError, TypeError) as exc:
            raise invalid_request(str(exc)) from exc
        return config.public_dict()

    @router.get("/faults")
    def list_faults() -> dict[str, Any]:
        return {"faults": emulator.faults.describe()}

    @router.post("/faults")
    async def add_faults(request: Request) -> Any:
        """One fault object, a list of them, or ``{"faults": [...]}``."""
        body: Any = await _json_object(request)
        specs = body.get("faults", body) if isinstance(body, dict) else body
        single = isinstance(specs, dict)
        try:
            added = []
            for spec in [specs] if single else specs:
                added.append(await anyio.to_thread.run_sync(emulator.faults.add, spec))
        except (FaultSpecError, ValueError, TypeError) as exc:
            raise invalid_request(str(exc)) from exc
        return added[0] if single else {"faults": added}

    @router.delete("/faults")
    def clear_faults() -> dict[str, Any]:
        emulator.faults.clear()
        return {"faults": []}

    @router.delete("/faults/{fault_id}")
    def delete_fault(fault_id: int) -> dict[str, Any]:
        if not emulator.faults.delete(fault_id):
            raise not_found(f"No fault with id {fault_id}")
        return {"deleted": fault_id}

    @router.get("/stats")
    def stats() -> dict[str, Any]:
        return emulator.stats()

    @router.post("/reset")
    def reset() -> dict[str, Any]:
        emulator.reset()
        return {"status": "reset", "clock": emulator.clock.describe(), "config": emulator.config.public_dict()}

    @router.post("/foreign_batches")
    async def plant_foreign_batches(request: Request) -> dict[str, Any]:
        """Batches another client of the workspace made: ``count`` (default 1) of them, each with
        ``request_count`` requests, created ``created_at_offset_seconds`` from virtual now, ending
        ``processing_seconds`` after creation (0 = at once), custom_ids ``<custom_id_prefix>-<i>``."""
        body = await _json_object(request)
        known = {"count", "request_count", "created_at_offset_seconds", "owner", "custom_id_prefix",
                 "processing_seconds", "model"}
        if unknown := set(body) - known:
            raise invalid_request(f"unknown foreign batch fields: {', '.join(sorted(unknown))}")
        options = {key: body[key] for key in known - {"count"} if key in body}
        if "request_count" not in options:
            raise invalid_request("request_count: Field required")
        planted = []
        for _ in range(int(body.get("count", 1))):
            planted.append(await anyio.to_thread.run_sync(lambda: service.plant(**options)))
        return {"batches": planted}

    @router.post("/params_hash")
    async def hash_params(request: Request) -> dict[str, str]:
        """The ``params_hash`` a request's params get, for faults that target one request."""
        return {"params_hash": params_hash(await _json_object(request))}

    return router
