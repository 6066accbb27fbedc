"""The FastAPI app: `create_app(settings)` wires the runtime, routers, limits and pages.

OpenAPI is at /docs (document at /openapi.json): the bearer scheme and, per endpoint, the
error statuses it answers. Errors are JSON with a `detail` that says what to fix
(`ErrorPublic`): 401/403 for tokens, 404 for rides that are not yours, 409 when the ride's
state does not allow the action, 413 for oversize bodies, 422 for bad input (FastAPI's
validation shape), 429 when booking too fast, 503 when the simulation or the database cannot
serve; 405 lists every method of the path in `Allow`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import Depends, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from robotaxi.core import RobotaxiError
from robotaxi.fleet.manager import RideActionError
from robotaxi.service.deps import known_query_only
from robotaxi.service.routers import (
    assistance,
    operations,
    pages,
    places,
    riders,
    rides,
    shares,
    tickets,
    vehicles,
)
from robotaxi.service.routers.pages import STATIC
from robotaxi.service.runtime import ServiceRuntime
from robotaxi.service.schemas import error_responses
from robotaxi.service.settings import ServiceSettings
from robotaxi.service.speech import SpeechUnavailableError
from robotaxi.sim.live import LiveServiceError
from robotaxi.store.errors import StoreError

log = logging.getLogger(__name__)
BODY_METHODS = {"POST", "PUT", "PATCH"}
# Swagger UI and ReDoc, as shipped by the fastapi-offline package
DOCS_STATIC = Path(fastapi_offline.__file__).resolve().parent / "static"
DOCS_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
DOCS_URL = "/docs/static"


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
        docs_url=None,  # served below from local files: FastAPI's own pages load a CDN
        redoc_url=None,
    )
    # No compression middleware: it would wrap every response and every live-stream message;
    # the one large body, the road map, is compressed once (see /api/map).
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            # Starlette names the methods of the first route on the path only; a path served
            # by several routes (GET and POST /api/rides) allows all of theirs
            named = (exc.headers or {}).get("Allow", "")
            allow = allowed_methods(app, request.url.path, named)
            exc.headers = {**(exc.headers or {}), "Allow": allow}
        return await http_exception_handler(request, exc)

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

    @app.exception_handler(SpeechUnavailableError)
    async def _speech(_: Request, exc: SpeechUnavailableError) -> JSONResponse:
        return _error(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc))

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        log.error("store error: %s", exc)
        return _error(status.HTTP_503_SERVICE_UNAVAILABLE, f"the database is unavailable: {exc}")

    @app.exception_handler(RobotaxiError)
    async def _bad_input(_: Request, exc: RobotaxiError) -> JSONResponse:
        return _error(status.HTTP_400_BAD_REQUEST, str(exc))

    for module in (riders, rides, shares, vehicles, places, tickets, operations, assistance):
        app.include_router(
            module.router,
            dependencies=[Depends(known_query_only)],
            responses=error_responses(422),  # an unknown query parameter, if nothing else
        )
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _offline_docs(app)
    return app


def allowed_methods(app: FastAPI, path: str, named: str) -> str:
    """The `Allow` header of a 405 for `path`: `named` (the methods of the route that
    answered) and those of every operation the OpenAPI document lists for the path (HEAD
    with GET). A literal path wins over a template, as in routing: `/api/rides/quote` is not
    `/api/rides/{ride_id}`."""
    methods = {m.strip() for m in named.split(",") if m.strip()}
    matching = [
        (template.count("{"), item)
        for template, item in app.openapi()["paths"].items()
        if compile_path(template)[0].match(path)
    ]
    fewest = min((params for params, _ in matching), default=0)
    for params, item in matching:
        if params == fewest:
            methods |= {m.upper() for m in item} | ({"HEAD"} if "get" in item else set())
    return ", ".join(sorted(methods))


def _offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with their scripts and styles served by this app.

    FastAPI's recipe for self-hosting the docs' JavaScript and CSS; the files come from the
    `fastapi-offline` package (Swagger UI 5, which reads OpenAPI 3.1, and ReDoc).
    """
    missing = [name for name in DOCS_FILES if not (DOCS_STATIC / name).is_file()]
    if missing:
        raise RobotaxiError(
            f"the API docs' files {missing} are missing from {DOCS_STATIC}: "
            "reinstall the package fastapi-offline"
        )
    app.mount(DOCS_URL, StaticFiles(directory=DOCS_STATIC), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{DOCS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_URL}/favicon.png",
            # no badge fetched from the public validator service
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            redoc_js_url=f"{DOCS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_URL}/favicon.png",
            with_google_fonts=False,
        )


def describe(runtime: ServiceRuntime) -> dict[str, Any]:
    """What the CLI prints at start-up (never the riders' tokens)."""
    return {
        "city": runtime.live.map.name,
        "fleet": len(runtime.live.fleet.vehicles),
        "speed": runtime.settings.speed,
        "database": runtime.store.engine.url.render_as_string(hide_password=True),
        "recovered_rides": len(runtime.recovered),
    }
