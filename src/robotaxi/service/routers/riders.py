"""Riders: sign in with a name (a bearer token comes back once), and who am I."""

from __future__ import annotations

from fastapi import APIRouter, status

from robotaxi.service.deps import CurrentRider, RuntimeDep
from robotaxi.service.schemas import RiderCreate, RiderPublic, RiderSignedIn

router = APIRouter(prefix="/api/riders", tags=["riders"])


@router.post("", status_code=status.HTTP_201_CREATED)
def sign_in(body: RiderCreate, runtime: RuntimeDep) -> RiderSignedIn:
    """Register a rider by name; the token is shown only in this answer."""
    rider, token = runtime.store.create_rider(body.name)
    runtime.remember_rider(token, rider)
    return RiderSignedIn(id=rider.id, name=rider.name, token=token)


@router.get("/me")
def me(rider: CurrentRider) -> RiderPublic:
    return RiderPublic(id=rider.id, name=rider.name)
