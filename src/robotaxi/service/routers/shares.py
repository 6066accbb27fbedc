"""Trip sharing: a rider gives someone a read-only link that follows the car until the ride
ends; the rider can stop sharing at any time. The link holder needs no account."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from starlette.concurrency import run_in_threadpool

from robotaxi.service.deps import CurrentRider, RuntimeDep
from robotaxi.service.runtime import ServiceRuntime
from robotaxi.service.schemas import (
    SharedRidePublic,
    SharePublic,
    SharesRevokedPublic,
    error_responses,
)
from robotaxi.service.views import own_ride, ride_public
from robotaxi.store.records import Ride

router = APIRouter(tags=["sharing"])

# what the person following sees, in the third person (the rider app says "your car")
SHARED_STATE_TEXT = {
    "requested": "{name} is looking for a car",
    "assigned": "A car is on its way to {name}",
    "en_route": "A car is on its way to {name}",
    "arrived": "The car is waiting for {name}",
    "boarded": "{name} is in the car",
    "started": "{name} is in the car",
    "driving": "{name} is on the way",
    "pulled_over": "The car is pulling over",
    "arrived_at_destination": "{name} has arrived",
    "completed": "{name} has arrived: the ride is over",
    "cancelled": "The ride was cancelled",
    "interrupted": "The ride ended early",
}


@router.post(
    "/api/rides/{ride_id}/share",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        401, 404, 409, 413, e409="the ride has ended, or it already has as many links as allowed"
    ),
)
def share(ride_id: str, rider: CurrentRider, runtime: RuntimeDep) -> SharePublic:
    """A new link that shows your car and its ETA to whoever you send it to, until the ride
    ends or you stop sharing."""
    ride = own_ride(runtime, rider, ride_id)
    if _over(runtime, ride):
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"ride {ride_id} has ended: there is nothing to follow"
        )
    token = runtime.store.share_ride(ride.id)
    if token is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"ride {ride_id} already has as many share links as allowed: stop sharing, "
            "then make a new link",
        )
    return SharePublic(url=f"/share/{token}", token=token)


@router.delete("/api/rides/{ride_id}/share", responses=error_responses(401, 404))
def stop_sharing(ride_id: str, rider: CurrentRider, runtime: RuntimeDep) -> SharesRevokedPublic:
    """Every link to this ride stops working at once."""
    ride = own_ride(runtime, rider, ride_id)
    return SharesRevokedPublic(revoked=runtime.store.stop_sharing(ride.id))


@router.get("/api/shared/{token}", responses=error_responses(404))
async def shared_ride(token: str, runtime: RuntimeDep) -> SharedRidePublic:
    """The ride a share link shows (no account needed; 404 once the rider stopped sharing)."""
    return await run_in_threadpool(_shared, runtime, token)


def _shared(runtime: ServiceRuntime, token: str) -> SharedRidePublic:
    ride_id = runtime.store.shared_ride(token) if len(token) <= 128 else None
    ride = None if ride_id is None else runtime.store.ride(ride_id)
    if ride is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "this link does not work (any more): ask the rider for a new one",
        )
    body = ride_public(runtime, ride, runtime.live.trip(ride.id))
    name = (ride.request.rider_name.split() or ["A rider"])[0]
    over = _over(runtime, ride)
    return SharedRidePublic(
        rider_first_name=name,
        state=body.state,
        status_text=SHARED_STATE_TEXT.get(body.state, body.state).format(name=name),
        over=over,
        vehicle_id=body.vehicle_id,
        vehicle=None if over else body.vehicle,
        eta_s=None if over else body.eta_s,
        pickup_name=body.pickup_name,
        dropoff_name=body.dropoff_name,
        pickup_curb=body.pickup_curb,
        dropoff_curb=body.dropoff_curb,
    )


def _over(runtime: ServiceRuntime, ride: Ride) -> bool:
    view = runtime.live.trip(ride.id)
    if view is not None:
        return view.state.terminal
    # not in the live city: ended, or from an earlier run of the service
    return True
