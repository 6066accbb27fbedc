"""From the store's records and the live city's views to the API's `...Public` bodies."""

from __future__ import annotations

import math

import numpy as np
from fastapi import HTTPException, status

from robotaxi.core import TripEvent, TripState
from robotaxi.fleet.fares import FareRule, money_text
from robotaxi.fleet.manager import CurbStage, VehicleStatus
from robotaxi.service.runtime import ServiceRuntime
from robotaxi.service.schemas import (
    CarGroup,
    FarePublic,
    LatLon,
    ReceiptPublic,
    RideEventPublic,
    RidePublic,
    VehicleOperator,
    VehiclePosition,
    VehiclePublic,
)
from robotaxi.sim.live import LiveSnapshot, TripView, VehicleView
from robotaxi.store.records import Fare, Ride, Rider

S = TripState


def compass_deg(heading_rad: float) -> float:
    """Map-frame heading (rad, counter-clockwise from east) → compass degrees from north."""
    return round((90.0 - math.degrees(heading_rad)) % 360.0, 1)


def latlon(runtime: ServiceRuntime, xy: tuple[float, float]) -> LatLon:
    (lat, lon), *_ = runtime.to_latlon(np.array([xy]))
    return LatLon(lat=lat, lon=lon)


FARE_NOTES = {
    FareRule.METERED.value: "Distance and time of your ride",
    FareRule.CANCEL_FEE.value: "Cancellation fee: the car had arrived and waited for you",
    FareRule.CANCEL_FREE.value: "Cancelled before the car had waited for you: no charge",
    FareRule.INTERRUPTED.value: "Your ride was interrupted: only the distance driven is charged",
}


def fare_public(fare: Fare | None) -> FarePublic | None:
    """The rider's view of a ride's charge, or None before it has one."""
    return None if fare is None else fare_body(fare)


def fare_body(fare: Fare) -> FarePublic:
    text = money_text(fare.cents, fare.currency)
    if fare.refunded_cents:
        text += f" (refunded {money_text(fare.refunded_cents, fare.currency)})"
    return FarePublic(
        cents=fare.cents,
        refunded_cents=fare.refunded_cents,
        currency=fare.currency,
        rule=fare.rule,
        text=text,
        note=FARE_NOTES.get(fare.rule, "Your fare"),
    )


def _fare_of(runtime: ServiceRuntime, ride: Ride, view: TripView | None) -> Fare | None:
    """The ride's charge: as read, or, for a ride that has just ended in the live city (its
    cached record predates the charge), from the store once the writer has committed it."""
    if ride.fare is not None or view is None or not view.state.terminal:
        return ride.fare
    stored = runtime.store.ride(ride.id)
    return None if stored is None else stored.fare


def request_points(ride: Ride) -> tuple[tuple[float, float], tuple[float, float]]:
    """The map points a rider asked for: pick-up and drop-off."""
    req = ride.request
    return (req.pickup_x, req.pickup_y), (req.dropoff_x, req.dropoff_y)


def own_ride(runtime: ServiceRuntime, rider: Rider, ride_id: str) -> Ride:
    """The rider's ride, or 404 — also for another rider's ride, so ids reveal nothing."""
    ride = runtime.store.ride(ride_id) if len(ride_id) <= 64 else None
    if ride is None or ride.rider_id != rider.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no ride {ride_id}")
    return ride


def ride_public(
    runtime: ServiceRuntime,
    ride: Ride,
    view: TripView | None,
    snapshot: LiveSnapshot | None = None,
) -> RidePublic:
    """The ride's body: from the live view when it has one (at `snapshot`, default the
    current one), else from the store."""
    snapshot = runtime.live.snapshot() if snapshot is None else snapshot
    events: list[TripEvent] = (
        list(view.events) if view is not None else runtime.store.events(ride.id)
    )
    pickup = (
        LatLon(lat=ride.pickup_latlon.lat, lon=ride.pickup_latlon.lon)
        if ride.pickup_latlon
        else latlon(runtime, (ride.request.pickup_x, ride.request.pickup_y))
    )
    dropoff = (
        LatLon(lat=ride.dropoff_latlon.lat, lon=ride.dropoff_latlon.lon)
        if ride.dropoff_latlon
        else latlon(runtime, (ride.request.dropoff_x, ride.request.dropoff_y))
    )
    pickup_at, dropoff_at = (
        (view.pickup_curb_xy, view.dropoff_curb_xy) if view is not None else request_points(ride)
    )
    body = RidePublic(
        id=ride.id,
        state=(view.state if view is not None else ride.state).value,
        sim_now_s=round(snapshot.time_s, 1),
        vehicle_id=view.vehicle_id if view is not None else ride.vehicle_id,
        pickup=pickup,
        dropoff=dropoff,
        pickup_name=runtime.place_label(pickup_at),
        dropoff_name=runtime.place_label(dropoff_at),
        requested_s=ride.request.time.time_s,
        updated_s=(events[-1].time.time_s if events else ride.updated_at.time_s),
        live=view is not None,
        close_reason=ride.close_reason,
        fare=fare_public(_fare_of(runtime, ride, view)),
        events=[
            RideEventPublic(
                seq=e.seq,
                state=e.state.value,
                time_s=e.time.time_s,
                cause=e.cause,
                vehicle_id=e.vehicle_id,
            )
            for e in events
        ],
    )
    if view is None:
        return body
    vehicle = None
    if view.vehicle_id is not None and view.vehicle_xy is not None:
        v = snapshot.vehicles.get(view.vehicle_id)
        where = runtime.vehicle_latlon(snapshot, view.vehicle_id)
        if v is not None and where is not None:
            vehicle = VehiclePosition(
                lat=where[0], lon=where[1], heading_deg=compass_deg(v.heading)
            )
    blocked = view.start_blocked_reason
    pickup_curb, dropoff_curb = (
        runtime.curb_latlon(view.pickup_curb_xy),
        runtime.curb_latlon(view.dropoff_curb_xy),
    )
    return body.model_copy(
        update={
            "pickup_curb": LatLon(lat=pickup_curb[0], lon=pickup_curb[1]),
            "dropoff_curb": LatLon(lat=dropoff_curb[0], lon=dropoff_curb[1]),
            "eta_s": view.eta_s,
            "vehicle": vehicle,
            "car_route": _car_route(runtime, view, snapshot.time_s) if vehicle else None,
            "greeting": view.greeting,
            "on_board": view.on_board,
            "buckled": view.buckled,
            "unlocked": view.unlocked,
            "updates_delayed": not runtime.live.pacing().keeping_up,
            "signalled_s": view.signalled_s,
            "can_start": blocked is None,
            "start_blocked_reason": blocked,
            "yielding_for_emergency": view.yielding_for is not None,
            "support_note": SUPPORT_NOTE if view.assisted else None,
        }
    )


SUPPORT_NOTE = "Your car is checking the way ahead with our support team."


def live_ride_body(runtime: ServiceRuntime, ride: Ride) -> tuple[bytes, TripState] | None:
    """The JSON of a live ride's body and its state, or None when the ride is not live.

    Built once per snapshot version and shared: a ride's status reads and live streams
    between two ticks all send the same bytes.
    """
    snapshot = runtime.live.snapshot()
    view = snapshot.trips.get(ride.id)
    if view is None:
        return None
    cached = runtime.ride_body(ride.id, snapshot.version)
    if cached is not None:
        return cached
    data = ride_public(runtime, ride, view, snapshot).model_dump_json().encode()
    runtime.keep_ride_body(ride.id, snapshot.version, data, view.state)
    return data, view.state


def position(runtime: ServiceRuntime, v: VehicleView) -> VehiclePosition:
    where = latlon(runtime, (v.x, v.y))
    return VehiclePosition(lat=where.lat, lon=where.lon, heading_deg=compass_deg(v.heading))


def vehicle_public(runtime: ServiceRuntime, vehicles: list[VehicleView]) -> list[VehiclePublic]:
    coords = runtime.to_latlon(np.array([[v.x, v.y] for v in vehicles]).reshape(-1, 2))
    return [
        VehiclePublic(
            vehicle_id=v.vehicle_id,
            lat=c[0],
            lon=c[1],
            heading_deg=compass_deg(v.heading),
            available=v.available,
        )
        for v, c in zip(vehicles, coords, strict=True)
    ]


# the fleet's statuses behind each group of the operations view
_IDLE = frozenset({VehicleStatus.IDLE, VehicleStatus.REBALANCING})
_TO_PICKUP = frozenset({VehicleStatus.TO_PICKUP, VehicleStatus.AT_PICKUP})
_WITH_RIDER = frozenset({VehicleStatus.TO_DROPOFF, VehicleStatus.AT_DROPOFF})
_CHARGING = frozenset({VehicleStatus.TO_CHARGER, VehicleStatus.CHARGING})
# at the pick-up kerb, the rider is aboard once they fasten the belt (simulated riders) or
# press "I'm in the car" (riders of the app)
_ABOARD_AT_PICKUP = frozenset({CurbStage.BUCKLING, CurbStage.WAITING_FOR_START})


def car_groups(v: VehicleView, needs_assistance: bool) -> list[CarGroup]:
    """The operations view's groups a car is in now (most cars are in one; see `CarGroup`)."""
    fleet_status = VehicleStatus(v.status)
    groups: list[CarGroup] = []
    free = v.trip_id is None and v.next_trip_id is None
    if fleet_status in _IDLE and free:
        groups.append(CarGroup.IDLE)
    aboard = fleet_status in _WITH_RIDER or (
        fleet_status == VehicleStatus.AT_PICKUP and v.stage in _ABOARD_AT_PICKUP
    )
    # a parked car given a ride is on its way to that rider from the next tick
    if (fleet_status in _TO_PICKUP and not aboard) or (fleet_status in _IDLE and not free):
        groups.append(CarGroup.TO_PICKUP)
    if aboard:
        groups.append(CarGroup.WITH_RIDER)
    if fleet_status in _CHARGING:
        groups.append(CarGroup.CHARGING)
    if v.yielding_for is not None or v.stage == CurbStage.RIDER_PULL_OVER:
        groups.append(CarGroup.PULLED_OVER)
    if needs_assistance:
        groups.append(CarGroup.NEEDS_ASSISTANCE)
    return groups


def vehicle_operator(
    runtime: ServiceRuntime, vehicles: list[VehicleView], assisted: frozenset[str] = frozenset()
) -> list[VehicleOperator]:
    """Every car for operators; `assisted` names the cars with an open assistance request."""
    public = vehicle_public(runtime, vehicles)
    return [
        VehicleOperator(
            **p.model_dump(),
            status=v.status,
            groups=car_groups(v, v.vehicle_id in assisted),
            speed_mps=round(v.speed, 2),
            stopped=v.stopped,
            trip_id=v.trip_id,
            next_trip_id=v.next_trip_id,
            stage=v.stage,
            yielding_for=v.yielding_for,
        )
        for p, v in zip(public, vehicles, strict=True)
    ]


def receipt(runtime: ServiceRuntime, ride: Ride, view: TripView | None) -> ReceiptPublic:
    events = list(view.events) if view is not None else runtime.store.events(ride.id)

    def first(state: TripState) -> float | None:
        for e in events:
            if e.state == state:
                return e.time.time_s
        return None

    state = events[-1].state if events else ride.state
    arrived, started = first(S.ARRIVED), first(S.STARTED)
    dropped = first(S.ARRIVED_AT_DESTINATION)
    if dropped is None:
        dropped = first(S.PULLED_OVER)
    ride_m = None
    for e in events:
        if e.state == S.ARRIVED_AT_DESTINATION and "ride_m" in e.data:
            ride_m = float(e.data["ride_m"])
    requested = ride.request.time.time_s
    route = runtime.live.driven_xy(ride.id)
    route_kind = "driven"
    if len(route) < 2:  # a ride of an earlier run: its trail was not kept, show the plan
        route = runtime.live.route_between(
            (ride.request.pickup_x, ride.request.pickup_y),
            (ride.request.dropoff_x, ride.request.dropoff_y),
        )
        route_kind = "planned"
    pickup_at, dropoff_at = (
        (view.pickup_curb_xy, view.dropoff_curb_xy) if view is not None else request_points(ride)
    )
    return ReceiptPublic(
        ride_id=ride.id,
        state=state.value,
        ended=state.terminal,
        pickup_name=runtime.place_label(pickup_at),
        dropoff_name=runtime.place_label(dropoff_at),
        requested_s=requested,
        picked_up_s=started,
        dropped_off_s=dropped,
        wait_s=None if arrived is None else round(arrived - requested, 1),
        ride_s=None if started is None or dropped is None else round(dropped - started, 1),
        ride_m=ride_m,
        pickup_walk_m=ride.pickup_walk_m,
        dropoff_walk_m=ride.dropoff_walk_m,
        vehicle_id=ride.vehicle_id if view is None else view.vehicle_id,
        ended_by=events[-1].cause if events and state.terminal else None,
        close_reason=ride.close_reason,
        route=runtime.to_latlon(route) if started is not None else [],
        route_kind=route_kind if started is not None else None,
        fare=fare_public(ride.fare),
    )


def _car_route(runtime: ServiceRuntime, view: TripView, now_s: float) -> list[list[float]] | None:
    """The car's way to the rider's pick-up while it comes (assigned, en route)."""
    if view.vehicle_id is None or view.state not in (TripState.ASSIGNED, TripState.EN_ROUTE):
        return None
    return runtime.car_route(view.vehicle_id, now_s) or None
