"""The HTTP surface: the API routes under ``/v1`` plus the control routes under ``/_emulator``.

Route handlers only translate HTTP to calls on :class:`BatchService` and ``messages_api``;
blocking work (SQLite, reply generation) runs in worker threads so the event loop stays free
for health checks and streams.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse

from emulator.version import __version__
from emulator.batches import BatchService
from emulator.body_stream import body_too_large
from emulator.controls import control_router
from emulator.errors import ApiError, invalid_request, not_found
from emulator.messages_api import count_tokens, create_message
from emulator.models_api import list_models, retrieve_model
from emulator.middleware import ApiMiddleware, error_response
from emulator.replies import json_text
from emulator.runtime import Emulator
from emulator.sse import message_events
from emulator.validation import DEFAULT_API_VERSION


def create_app(emulator: Emulator) -> FastAPI:
    app = FastAPI(
        title="Nightshift Anthropic API emulator", version=__version__, docs_url=None, redoc_url=None
    )
    app.state.emulator = emulator
    service = BatchService(emulator)
    _install_error_handlers(app)
    app.include_router(control_router(emulator, service))
    app.add_middleware(ApiMiddleware, emulator=emulator)

    @app.post("/v1/messages/batches")
    async def create_batch(request: Request) -> Response:
        limit = emulator.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            async for _ in request.stream():
                pass
            raise body_too_large(limit)
        chunks = request.stream().__aiter__()

        async def next_chunk() -> bytes:
            try:
                return await chunks.__anext__()
            except StopAsyncIteration:
                return b""

        def pull() -> bytes:
            return anyio.from_thread.run(next_chunk)

        create = partial(
            service.create, pull, anthropic_version=_api_version(request), base_url=str(request.base_url),
            betas=request.headers.get("anthropic-beta", ""),
        )
        return JSONResponse(await anyio.to_thread.run_sync(create))

    @app.get("/v1/messages/batches")
    def list_batches(
        request: Request, limit: int = 20, after_id: str | None = None, before_id: str | None = None
    ) -> dict[str, Any]:
        base_url = str(request.base_url)
        return service.list(limit=limit, after_id=after_id, before_id=before_id, base_url=base_url)

    @app.get("/v1/messages/batches/{batch_id}")
    def retrieve_batch(request: Request, batch_id: str) -> dict[str, Any]:
        return service.retrieve(batch_id, base_url=str(request.base_url))

    @app.post("/v1/messages/batches/{batch_id}/cancel")
    def cancel_batch(request: Request, batch_id: str) -> dict[str, Any]:
        return service.cancel(batch_id, base_url=str(request.base_url))

    @app.delete("/v1/messages/batches/{batch_id}")
    def delete_batch(batch_id: str) -> dict[str, Any]:
        return service.delete(batch_id)

    @app.get("/v1/messages/batches/{batch_id}/results")
    def batch_results(request: Request, batch_id: str) -> StreamingResponse:
        lines = service.open_results(batch_id, cut_after_lines=request.state.cut_after_lines,
                                     stall_seconds=getattr(request.state, "stall_seconds", 0.0))
        return StreamingResponse(lines, media_type="application/binary")

    @app.get("/v1/models")
    def models_list(request: Request, limit: int = 20, after_id: str | None = None,
                    before_id: str | None = None) -> dict[str, Any]:
        lifecycle = request.query_params.getlist("lifecycle") or request.query_params.getlist("lifecycle[]")
        return list_models(limit=limit, after_id=after_id, before_id=before_id, lifecycle=lifecycle or None)

    @app.get("/v1/models/{model_id}")
    def models_retrieve(model_id: str) -> dict[str, Any]:
        return retrieve_model(model_id)

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        params = await _json_body(request)
        version = _api_version(request)
        create = partial(create_message, emulator, params, anthropic_version=version)
        message = await anyio.to_thread.run_sync(create)
        if isinstance(params, dict) and params.get("stream") is True:
            return StreamingResponse(message_events(message), media_type="text/event-stream")
        return Response(json_text(message).encode("utf-8"), media_type="application/json")

    @app.post("/v1/messages/count_tokens")
    async def messages_count_tokens(request: Request) -> dict[str, int]:
        params = await _json_body(request)
        count = partial(count_tokens, params, anthropic_version=_api_version(request))
        return await anyio.to_thread.run_sync(count)

    return app


def _api_version(request: Request) -> str:
    """Any version is accepted; a missing header is read as the oldest one (friendlier to curl)."""
    return request.headers.get("anthropic-version") or DEFAULT_API_VERSION


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise invalid_request(f"There was an error parsing the body: {exc}") from exc


def _install_error_handlers(app: FastAPI) -> None:
    def request_id(request: Request) -> str | None:
        return getattr(request.state, "request_id", None)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc, request_id(request))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:])}: {error['msg']}" for error in exc.errors()
        )
        return error_response(invalid_request(problems or "Invalid request"), request_id(request))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error = not_found(f"Not found: {request.method} {request.url.path}")
        else:
            error = ApiError("invalid_request_error", str(exc.detail), status=exc.status_code)
        return error_response(error, request_id(request))
