"""Dependency aliases: the runtime, the store (our session), the live city, who is asking.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in the
thread pool, and a thread hop per dependency per request (several per request) costs more
than everything they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from robotaxi.service.runtime import ServiceRuntime
from robotaxi.sim.live import LiveService
from robotaxi.store.records import Rider
from robotaxi.store.store import Store


async def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


async def get_store(runtime: RuntimeDep) -> Store:
    return runtime.store


async def get_live(runtime: RuntimeDep) -> LiveService:
    return runtime.live


StoreDep = Annotated[Store, Depends(get_store)]
LiveDep = Annotated[LiveService, Depends(get_live)]


async def bearer_token(request: Request) -> str:
    """The token of an 'Authorization: Bearer …' header; 401 when missing or malformed."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "sign in first: send 'Authorization: Bearer <token>' (POST /api/riders gives one)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


TokenDep = Annotated[str, Depends(bearer_token)]


async def current_rider(token: TokenDep, runtime: RuntimeDep) -> Rider:
    rider = runtime.cached_rider(token)
    if rider is None:
        rider = await run_in_threadpool(runtime.rider_for_token, token)
    if rider is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or expired token: sign in again",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return rider


CurrentRider = Annotated[Rider, Depends(current_rider)]


async def require_operator(token: TokenDep, runtime: RuntimeDep) -> None:
    if not runtime.is_operator(token):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "operator token required: use the one printed when the server started",
        )


Operator = Annotated[None, Depends(require_operator)]


async def rider_or_operator(token: TokenDep, runtime: RuntimeDep) -> Rider | None:
    """The rider whose token this is, None for the operator; 401 otherwise."""
    if runtime.is_operator(token):
        return None
    return await current_rider(token, runtime)


RiderOrOperator = Annotated[Rider | None, Depends(rider_or_operator)]
