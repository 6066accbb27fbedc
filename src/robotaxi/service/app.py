"""The FastAPI app: `create_app(settings)` wires the runtime, routers, limits and pages.

OpenAPI is at /docs. Errors are JSON with a `detail` that says what to fix: 401/403 for
tokens, 404 for rides that are not yours, 409 when the ride's state does not allow the
action, 413 for oversize bodies, 422 for bad input, 429 when booking too fast, 503 when the
simulation or the database cannot serve.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from robotaxi.core import RobotaxiError
from robotaxi.fleet.manager import RideActionError
from robotaxi.service.routers import operations, pages, riders, rides, tickets, vehicles
from robotaxi.service.routers.pages import STATIC
from robotaxi.service.runtime import ServiceRuntime
from robotaxi.service.settings import ServiceSettings
from robotaxi.sim.live import LiveServiceError
from robotaxi.store.errors import StoreError

log = logging.getLogger(__name__)
BODY_METHODS = {"POST", "PUT", "PATCH"}


class BodyLimit:
    """Answer 413 to request bodies over `max_bytes`, by header or by counting the stream."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps(
            {"detail": f"request body too large: send at most {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status.HTTP_413_CONTENT_TOO_LARGE,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=code)


def _json_safe(value: Any) -> Any:
    """Validation errors echo the input; NaN or infinity there must not turn a 422 into a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def create_app(settings: ServiceSettings, runtime: ServiceRuntime | None = None) -> FastAPI:
    """The service app. It opens (or is given) its runtime at start-up and closes it at the end.

    With `settings.tick_in_background=False` the simulation advances only when the caller
    steps `app.state.runtime.live` (tests do this).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = ServiceRuntime.open(settings) if runtime is None else runtime
        try:
            yield
        finally:
            if owned:
                app.state.runtime.close()

    app = FastAPI(
        title="robotaxi",
        summary="Hail a simulated driverless taxi: riders, rides, vehicles, support, KPIs.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # the road map is large (≈0.6 MB for the Mission); ride bodies stay below the threshold
    # and live streams (text/event-stream) are never compressed
    app.add_middleware(GZipMiddleware, minimum_size=4096)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = _json_safe(jsonable_encoder(exc.errors()))
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(RideActionError)
    async def _ride_action(_: Request, exc: RideActionError) -> JSONResponse:
        return _error(status.HTTP_409_CONFLICT, str(exc))

    @app.exception_handler(LiveServiceError)
    async def _live(_: Request, exc: LiveServiceError) -> JSONResponse:
        return _error(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc))

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        log.error("store error: %s", exc)
        return _error(status.HTTP_503_SERVICE_UNAVAILABLE, f"the database is unavailable: {exc}")

    @app.exception_handler(RobotaxiError)
    async def _bad_input(_: Request, exc: RobotaxiError) -> JSONResponse:
        return _error(status.HTTP_400_BAD_REQUEST, str(exc))

    for module in (riders, rides, vehicles, tickets, operations, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def describe(runtime: ServiceRuntime) -> dict[str, Any]:
    """What the CLI prints at start-up (never the riders' tokens)."""
    return {
        "city": runtime.live.map.name,
        "fleet": len(runtime.live.fleet.vehicles),
        "speed": runtime.settings.speed,
        "database": runtime.store.engine.url.render_as_string(hide_password=True),
        "recovered_rides": len(runtime.recovered),
    }
