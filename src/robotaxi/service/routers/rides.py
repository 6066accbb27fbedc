"""Rides: quote, book, follow live, and act on one (board, buckle, start, pull over, cancel)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Callable

import numpy as np
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from robotaxi.core import RideRequest, TripState
from robotaxi.fleet.fares import quote_range, range_text
from robotaxi.service.deps import CurrentRider, RiderOrOperator, RuntimeDep, check_rate
from robotaxi.service.runtime import ServiceRuntime
from robotaxi.service.schemas import (
    BuckleCreate,
    QuotePublic,
    ReceiptPublic,
    RideCreate,
    RidePublic,
    error_responses,
)
from robotaxi.service.views import latlon, live_ride_body, own_ride, receipt, ride_public
from robotaxi.sim.live import TripView
from robotaxi.store.records import LatLon as StoredLatLon
from robotaxi.store.records import NewRide, Ride, Rider

router = APIRouter(prefix="/api/rides", tags=["rides"])
log = logging.getLogger(__name__)
STREAM_MIN_INTERVAL_S = 1.0  # at most one update a second per stream
KEEPALIVE_S = 15.0
# what acting on a ride can answer besides 200 and 422
ACTION_ERRORS = error_responses(
    401, 404, 409, 413, e409="the ride's state does not allow this now, or it has ended"
)


def _unprocessable(field: str, message: str, kind: str) -> HTTPException:
    # the same shape as FastAPI's own validation errors, so clients read one format
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": ["body", field], "msg": message, "type": kind}],
    )


def _validated_points(
    runtime: ServiceRuntime, body: RideCreate
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Map-frame points of a pick-up and drop-off, or 422 saying what to change."""
    points = []
    for field, label, where in (
        ("pickup", "pick-up", body.pickup),
        ("dropoff", "drop-off", body.dropoff),
    ):
        xy = runtime.to_xy(where.lat, where.lon)
        if not (math.isfinite(xy[0]) and math.isfinite(xy[1])) or not runtime.inside(xy):
            raise _unprocessable(
                field,
                f"the {label} ({where.lat:.5f}, {where.lon:.5f}) is outside the service area: "
                f"choose a point {runtime.area_text()}",
                "outside_service_area",
            )
        points.append(xy)
    apart = math.hypot(points[1][0] - points[0][0], points[1][1] - points[0][1])
    minimum = runtime.settings.min_trip_m
    if apart < minimum:
        raise _unprocessable(
            "dropoff",
            f"the destination is {apart:.0f} m from the pick-up: choose a destination at least "
            f"{minimum:.0f} m away",
            "destination_equals_pickup",
        )
    curbs, _ = runtime.live.map.curbs.nearest(np.array(points))
    if int(curbs[0]) == int(curbs[1]):
        raise _unprocessable(
            "dropoff",
            "the destination is served from the same curb as the pick-up: choose one further away",
            "destination_equals_pickup",
        )
    return points[0], points[1]


@router.post("/quote", responses=error_responses(400, 401, 413))
def quote(body: RideCreate, rider: CurrentRider, runtime: RuntimeDep) -> QuotePublic:
    """Pick-up ETA from the nearest free car, the ride's time and its fare; nothing is booked.

    The fare is a range: the planned route's distance at the planned time, and at the
    planned time × the service's `fare_slow_factor` (traffic can only slow a ride down)."""
    pickup_xy, dropoff_xy = _validated_points(runtime, body)
    q = runtime.live.quote(pickup_xy, dropoff_xy)
    route = runtime.live.route_between(pickup_xy, dropoff_xy)
    tariff = runtime.settings.tariff
    low, high = quote_range(tariff, q.trip_m, q.trip_s, runtime.settings.fare_slow_factor)
    return QuotePublic(
        pickup_eta_s=q.pickup_eta_s,
        fare_low_cents=low,
        fare_high_cents=high,
        currency=tariff.currency,
        fare_text=range_text(low, high, tariff.currency),
        free_cars=q.free_cars,
        trip_s=q.trip_s,
        trip_m=q.trip_m,
        pickup_curb=latlon(runtime, q.pickup_curb_xy),
        dropoff_curb=latlon(runtime, q.dropoff_curb_xy),
        pickup_name=runtime.place_label(q.pickup_curb_xy),
        dropoff_name=runtime.place_label(q.dropoff_curb_xy),
        pickup_walk_m=q.pickup_walk_m,
        dropoff_walk_m=q.dropoff_walk_m,
        route=runtime.to_latlon(route),
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        400,
        401,
        409,
        413,
        429,
        503,
        e409="you already have an active ride: cancel or finish it first",
        e503="the service window has ended: no new rides until the server restarts",
    ),
)
def book(body: RideCreate, rider: CurrentRider, runtime: RuntimeDep) -> RidePublic:
    """Book a ride: one active ride per rider; a few bookings per minute at most."""
    check_rate(runtime.rate_limiter, rider.id, "ride requests")
    pickup_xy, dropoff_xy = _validated_points(runtime, body)
    store, live = runtime.store, runtime.live
    with runtime.booking_lock(rider.id):
        active = runtime.active_ride(rider.id)
        if active is not None:
            view = live.trip(active)
            state = "active" if view is None else view.state.value
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"you already have an active ride ({active}, {state}): "
                "cancel or finish it before booking another",
            )
        ride_id = runtime.new_ride_id()

        def store_first(request: RideRequest) -> None:
            # committed (in a group with other bookings) before the trip opens
            _, walk = live.map.curbs.nearest(np.array([pickup_xy, dropoff_xy]))
            runtime.writer.add_ride(
                NewRide(
                    request,
                    pickup_walk_m=round(float(walk[0]), 1),
                    dropoff_walk_m=round(float(walk[1]), 1),
                    pickup_latlon=StoredLatLon(body.pickup.lat, body.pickup.lon),
                    dropoff_latlon=StoredLatLon(body.dropoff.lat, body.dropoff.lon),
                )
            )

        live.request_ride(
            ride_id, rider.id, rider.name, pickup_xy, dropoff_xy,
            patience_s=runtime.settings.rider_patience_s, on_open=store_first,
        )  # fmt: skip
        stored = store.ride(ride_id)
        if stored is None:  # pragma: no cover - committed by store_first
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the ride was not stored")
        runtime.booked(stored)
    runtime.writer.sync()  # the trip's first events are durable before we answer
    log.info("ride %s booked", ride_id)
    return _public(runtime, stored)


@router.get("", responses=error_responses(401))
def history(
    rider: CurrentRider, runtime: RuntimeDep, limit: int = Query(20, ge=1, le=100)
) -> list[RidePublic]:
    """Your rides, newest first."""
    rides = runtime.store.rides_of_rider(rider.id, limit=limit)
    return [ride_public(runtime, r, runtime.live.trip(r.id)) for r in rides]


@router.get(
    "/{ride_id}",
    response_model=RidePublic,
    responses={200: {"model": RidePublic}, **error_responses(401, 404)},
)
async def get_ride(ride_id: str, rider: CurrentRider, runtime: RuntimeDep) -> Response:
    """The ride's state, car, ETA and events (answered from memory while the ride is live)."""
    data, _ = await _current_body(runtime, rider, ride_id)
    return Response(data, media_type="application/json")


async def _current_body(
    runtime: ServiceRuntime, rider: Rider, ride_id: str
) -> tuple[bytes, TripState]:
    """The ride's JSON body and state: from the published snapshot while the ride is live
    (no lock, no database), else from the store."""
    fast = _live_body(runtime, rider.id, ride_id)
    if fast is not None:
        return fast
    return await run_in_threadpool(_stored_body, runtime, rider, ride_id)


def _live_body(
    runtime: ServiceRuntime, rider_id: str, ride_id: str
) -> tuple[bytes, TripState] | None:
    """The body of a ride booked in this run and still in the live city, or None."""
    ride = runtime.cached_ride(ride_id)
    if ride is None:
        return None
    if ride.rider_id != rider_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no ride {ride_id}")
    return live_ride_body(runtime, ride)


def _stored_body(runtime: ServiceRuntime, rider: Rider, ride_id: str) -> tuple[bytes, TripState]:
    ride = own_ride(runtime, rider, ride_id)
    body = ride_public(runtime, ride, runtime.live.trip(ride_id))
    return body.model_dump_json().encode(), TripState(body.state)


@router.get("/{ride_id}/receipt", responses=error_responses(401, 404))
def get_receipt(ride_id: str, rider: CurrentRider, runtime: RuntimeDep) -> ReceiptPublic:
    """Times, distance and the route of a ride (complete once the ride has ended)."""
    ride = own_ride(runtime, rider, ride_id)
    return receipt(runtime, ride, runtime.live.trip(ride_id))


def _act(
    runtime: ServiceRuntime, rider_id: str, ride_id: str, action: Callable[[str], TripView]
) -> RidePublic:
    ride = runtime.cached_ride(ride_id)
    if ride is None and len(ride_id) <= 64:
        ride = runtime.store.ride(ride_id)
    if ride is None or ride.rider_id != rider_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no ride {ride_id}")
    if not runtime.live.has_trip(ride_id):
        why = (
            "it has ended" if ride.state.terminal else "it belongs to an earlier run of the service"
        )
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"ride {ride_id} is {ride.state.value} and can no longer change: {why}",
        )
    view = action(ride_id)
    runtime.writer.sync()  # what the action changed is durable before we answer
    log.info("ride %s is now %s", ride_id, view.state.value)
    return _public(runtime, ride)


def _public(runtime: ServiceRuntime, ride: Ride) -> RidePublic:
    return ride_public(runtime, ride, runtime.live.trip(ride.id))


@router.post("/{ride_id}/cancel", responses=ACTION_ERRORS)
def cancel(ride_id: str, rider: CurrentRider, runtime: RuntimeDep) -> RidePublic:
    """Cancel; after the car arrived this is recorded as a cancel after arrival."""
    return _act(runtime, rider.id, ride_id, runtime.live.cancel)


@router.post("/{ride_id}/unlock", responses=ACTION_ERRORS)
def unlock(ride_id: str, rider: CurrentRider, runtime: RuntimeDep) -> RidePublic:
    """Unlock the car's doors: once it waits for you at the pick-up (409 before)."""
    return _act(runtime, rider.id, ride_id, runtime.live.unlock)


@router.post("/{ride_id}/find-car", responses={**ACTION_ERRORS, **error_responses(429)})
def find_car(ride_id: str, rider: CurrentRider, runtime: RuntimeDep) -> RidePublic:
    """Find my car: it honks briefly and flashes its lights, once it waits at the pick-up
    (at most a few times a minute: the street hears it too)."""
    check_rate(runtime.find_car_limiter, f"{rider.id}:{ride_id}", "honks for this ride")
    return _act(runtime, rider.id, ride_id, runtime.live.find_my_car)


@router.post("/{ride_id}/board", responses=ACTION_ERRORS)
def board(ride_id: str, rider: CurrentRider, runtime: RuntimeDep) -> RidePublic:
    """The rider got in (stands in for the car's door sensor): after unlocking (409 before)."""
    return _act(runtime, rider.id, ride_id, runtime.live.board)


@router.post("/{ride_id}/buckle", responses={**ACTION_ERRORS, **error_responses(400)})
def buckle(
    ride_id: str, body: BuckleCreate, rider: CurrentRider, runtime: RuntimeDep
) -> RidePublic:
    """Seat belt fastened or not (stands in for the seat-belt sensor)."""
    return _act(runtime, rider.id, ride_id, lambda rid: runtime.live.buckle(rid, body.buckled))


@router.post("/{ride_id}/start", responses=ACTION_ERRORS)
def start(ride_id: str, rider: CurrentRider, runtime: RuntimeDep) -> RidePublic:
    """Start ride: 409 with the reason until the rider is on board and buckled."""
    return _act(runtime, rider.id, ride_id, runtime.live.start_ride)


@router.post("/{ride_id}/pull-over", responses=ACTION_ERRORS)
def pull_over(ride_id: str, rider: CurrentRider, runtime: RuntimeDep) -> RidePublic:
    """End the ride at the next safe curb spot."""
    return _act(runtime, rider.id, ride_id, runtime.live.pull_over)


@router.get(
    "/{ride_id}/greeting.wav",
    response_class=Response,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "the greeting as a WAV file"},
        **error_responses(
            401,
            404,
            409,
            503,
            e409="the car has not arrived yet",
            e503="no espeak-ng on the server: use the browser's speech instead",
        ),
    },
)
def greeting_wav(ride_id: str, who: RiderOrOperator, runtime: RuntimeDep) -> Response:
    """The car's greeting, "Hey there, <name>!", spoken by espeak-ng, once the car is there.

    Riders get their own rides' greetings (404 otherwise); operators any ride's.
    """
    ride = runtime.cached_ride(ride_id)
    if ride is None and len(ride_id) <= 64:
        ride = runtime.store.ride(ride_id)
    if ride is None or (who is not None and ride.rider_id != who.id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no ride {ride_id}")
    view = runtime.live.trip(ride_id)
    if view is None or view.greeting is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "the car greets its rider once it has arrived at the pick-up: ask again then",
        )
    return Response(
        runtime.voice.wav(ride.request.rider_name),
        media_type="audio/wav",
        headers={"Cache-Control": "private, max-age=3600"},
    )


@router.get(
    "/{ride_id}/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
        **error_responses(401, 404),
    },
)
async def stream(
    ride_id: str,
    rider: CurrentRider,
    runtime: RuntimeDep,
    max_s: float | None = Query(None, gt=0, description="end the stream after this (wall s)"),
) -> StreamingResponse:
    """Server-sent events: `ride` with the ride's current body whenever it changes.

    Ends with an `end` event once the ride is over, or after `max_s` (reconnect then).
    """
    cached = runtime.cached_ride(ride_id)
    if cached is None:
        await run_in_threadpool(own_ride, runtime, rider, ride_id)
    elif cached.rider_id != rider.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no ride {ride_id}")
    limit = min(max_s or runtime.settings.stream_max_s, runtime.settings.stream_max_s)

    async def events() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        due = loop.time()
        last = b""
        while True:
            wake = runtime.waiters.next_update()  # before reading: no update is missed
            data, state = await _current_body(runtime, rider, ride_id)
            if data != last:
                # the body's bytes are shared with every reader of this ride at this instant
                yield b"event: ride\ndata: " + data + b"\n\n"
                last = data
            if state.terminal:
                yield f"event: end\ndata: {json.dumps({'state': state.value})}\n\n".encode()
                return
            # At most one message a second, on this stream's own phase: streams opened at
            # different times stay spread out rather than all answering the same tick at once.
            due = max(due + STREAM_MIN_INTERVAL_S, loop.time())
            if due >= deadline:
                return
            await asyncio.sleep(due - loop.time())
            if not wake.is_set():  # nothing new since we read: wait for the next update
                try:
                    await asyncio.wait_for(wake.wait(), timeout=min(KEEPALIVE_S, deadline - due))
                except TimeoutError:
                    if loop.time() >= deadline:
                        return
                    yield b": keep-alive\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
