"""Dependency aliases: the runtime, the store (our session), the live city, who is asking.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in the
thread pool, and a thread hop per dependency per request (several per request) costs more
than everything they do.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from robotaxi.service.runtime import RateLimiter, ServiceRuntime
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


# Declares the scheme in OpenAPI (components.securitySchemes.bearer); answers None rather
# than its own 401 so that ours can say how to get a token.
BEARER = HTTPBearer(
    scheme_name="bearer",
    description="A rider's token from POST /api/riders, or the operator token the server "
    "printed at start-up",
    auto_error=False,
)


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> str:
    """The token of an 'Authorization: Bearer …' header; 401 when missing or malformed."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "sign in first: send 'Authorization: Bearer <token>' (POST /api/riders gives one)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return credentials.credentials


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


def check_rate(limiter: RateLimiter, key: str, what: str) -> None:
    """Count one of `what` for `key`: 429 with Retry-After when over the limit."""
    wait_s = limiter.check(key)
    if wait_s is not None:
        retry = max(1, math.ceil(wait_s))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many {what}: try again in {retry} s",
            headers={"Retry-After": str(retry)},
        )


async def known_query_only(request: Request) -> None:
    """422 for query parameters the endpoint does not take: a misspelt `?limt=5` is refused
    like an unknown field of a body is, not silently ignored."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)  # a few dependencies deep: microseconds
    unknown = [name for name in request.query_params if name not in known]
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ["query", name],
                    "msg": f"unknown query parameter: this endpoint takes {takes}",
                    "input": request.query_params[name],
                }
                for name in unknown
            ]
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names
