"""Riders: sign in with a name (a bearer token comes back once), and who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from robotaxi.service.deps import CurrentRider, RuntimeDep, check_rate
from robotaxi.service.schemas import RiderCreate, RiderPublic, RiderSignedIn, error_responses

router = APIRouter(prefix="/api/riders", tags=["riders"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(400, 413, 429))
def sign_in(body: RiderCreate, request: Request, runtime: RuntimeDep) -> RiderSignedIn:
    """Register a rider by name; the token is shown only in this answer. A few sign-ups
    per client address per minute at most (`signups_per_window`)."""
    check_rate(runtime.signup_limiter, request.client.host if request.client else "", "sign-ups")
    rider, token = runtime.store.create_rider(body.name)
    runtime.remember_rider(token, rider)
    return RiderSignedIn(id=rider.id, name=rider.name, token=token)


@router.get("/me", responses=error_responses(401))
def me(rider: CurrentRider) -> RiderPublic:
    return RiderPublic(id=rider.id, name=rider.name)
