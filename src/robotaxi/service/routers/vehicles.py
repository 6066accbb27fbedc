"""Vehicles: public positions, full state for operators, and the in-car screen's view."""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Query, status

from robotaxi.autonomy.planning.behaviour import Behaviour
from robotaxi.service.deps import LiveDep, Operator, RiderOrOperator, RuntimeDep
from robotaxi.service.runtime import ServiceRuntime
from robotaxi.service.schemas import (
    CarGroup,
    CarScreenPublic,
    HearingPublic,
    NearbyPublic,
    SteeringPublic,
    VehicleOperator,
    VehiclePublic,
    error_responses,
)
from robotaxi.service.views import (
    compass_deg,
    position,
    ride_public,
    vehicle_operator,
    vehicle_public,
)
from robotaxi.sim.live import AutonomyView, LiveService, VehicleView

router = APIRouter(prefix="/api/vehicles", tags=["vehicles"])
NEARBY_RADIUS_M = 60.0
# what the in-car screen says to its rider: about "this car", never about the simulation
# (which part drives the car is `nearby_source`, for operators and tools)
NEARBY_NOTE = f"Road users within {NEARBY_RADIUS_M:.0f} m of this car."
STEERING_NOTE = "not available for this car"
AUTONOMY_NOTE = (
    f"What this car sees within {NEARBY_RADIUS_M:.0f} m: road users its cameras detect, "
    "where it estimates them to be."
)
AUTONOMY_STEERING_NOTE = "this car's steering-wheel angle, degrees, left positive"
HEARING_NOTE = "this car's roof microphones listen for sirens"
SUMO_YIELD_BANNER = "Pulling over: an emergency vehicle is passing. We'll continue in a moment."
SEEN_YIELD_BANNER = (
    "Ambulance — pulling over: an emergency vehicle is passing. We'll continue in a moment."
)
HEARD_YIELD_BANNER = (
    "Siren heard — pulling over: an emergency vehicle is coming. We'll continue in a moment."
)
SLOWING_BANNER = "Siren heard — slowing: an emergency vehicle is near but not in sight yet."
LISTENING_BANNER = "Siren heard — the car is watching for the emergency vehicle."
HEARD_FIRST_MIN_S = 0.5  # heard this much before seen counts as "heard first"


@router.get("")
def positions(runtime: RuntimeDep, live: LiveDep) -> list[VehiclePublic]:
    """Every robotaxi's position and whether it is free (no trip details)."""
    return vehicle_public(runtime, live.vehicles())


@router.get(
    "/state",
    responses=error_responses(
        401,
        403,
        422,
        e422="`status` is not one of the groups listed for it (or a query parameter is unknown)",
    ),
)
def full_state(
    _: Operator,
    runtime: RuntimeDep,
    live: LiveDep,
    group: Annotated[
        list[CarGroup] | None,
        Query(
            alias="status",
            description="only cars in any of these groups (repeat it for several: "
            "`?status=idle&status=charging`); every car when absent. idle: no ride; "
            "to_pickup: driving to or waiting for a rider; with_rider: a rider aboard; "
            "charging: going to, waiting for or at a charger; pulled_over: for an ambulance "
            "or its rider; needs_assistance: an open remote-assistance request",
        ),
    ] = None,
) -> list[VehicleOperator]:
    """Operators: every car (or those in the `status` groups asked for) with its status,
    groups, trip, stage and emergency yield."""
    assisted = frozenset(r["vehicle_id"] for r in live.assistance() if r["open"])
    cars = vehicle_operator(runtime, live.vehicles(), assisted)
    if not group:
        return cars
    wanted = set(group)
    return [c for c in cars if wanted.intersection(c.groups)]


@router.get(
    "/{vehicle_id}/screen",
    responses=error_responses(
        401, 404, e404="no such car, or you have no ride in it now (riders see only their own)"
    ),
)
def car_screen(
    vehicle_id: str, who: RiderOrOperator, runtime: RuntimeDep, live: LiveDep
) -> CarScreenPublic:
    """What the in-car screen shows: your ride in this car, its route, what is around it.

    A rider sees only the car serving their ride now — on its way, at the kerb or driving
    them — (404 otherwise: not a car they rode in before, nor one now serving someone else);
    operators see any car.
    """
    snapshot = live.snapshot()  # one instant for the car and what its stack sees
    v = snapshot.vehicles.get(vehicle_id)
    if v is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no car {vehicle_id}")
    ride = None
    if who is not None:
        ride = runtime.latest_ride(who.id)
        if ride is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no ride in car {vehicle_id}")
        if ride.id not in (v.trip_id, v.next_trip_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no ride in car {vehicle_id}")
    elif v.trip_id is not None:
        ride = runtime.store.ride(v.trip_id)
    ride_body = None if ride is None else ride_public(runtime, ride, live.trip(ride.id))
    autonomy = snapshot.autonomy.get(vehicle_id)
    if autonomy is not None and autonomy.driver == "autonomy":
        nearby, source, note = _tracked_nearby(runtime, v, autonomy), "autonomy", AUTONOMY_NOTE
        steering = SteeringPublic(
            angle_deg=autonomy.steering_wheel_deg, note=AUTONOMY_STEERING_NOTE
        )
    else:
        nearby, source, note = _sumo_nearby(runtime, live, v), "sumo", NEARBY_NOTE
        if autonomy is not None and who is None:
            # an autonomous car on a leg SUMO drives (no lane route): why, for operators
            note = f"{NEARBY_NOTE} {autonomy.note}"
        steering = SteeringPublic(angle_deg=None, note=STEERING_NOTE)
    banner, state = _emergency(v, autonomy)
    return CarScreenPublic(
        vehicle_id=vehicle_id,
        sim_now_s=round(live.now_s, 1),
        status=v.status,
        position=position(runtime, v),
        place_name=runtime.gazetteer().reverse((v.x, v.y)).label,
        speed_mps=round(v.speed, 2),
        ride=ride_body,
        route=runtime.to_latlon(live.route_xy(vehicle_id)),
        nearby=nearby,
        nearby_source=source,
        nearby_note=note,
        steering=steering,
        emergency_banner=banner,
        behaviour=autonomy.behaviour if source == "autonomy" and autonomy is not None else None,
        emergency_state=state,
        hearing=_hearing(autonomy) if source == "autonomy" and autonomy is not None else None,
    )


def _emergency(v: VehicleView, autonomy: AutonomyView | None) -> tuple[str | None, str | None]:
    """(banner, state) of the emergency-vehicle yield. A SUMO-driven car yields when the
    fleet says so; an autonomous car shows what its own stack does: a siren heard but not
    seen slows it ('siren_heard'), pulling over is 'pulling_over'."""
    if autonomy is None or autonomy.driver != "autonomy":
        return (SUMO_YIELD_BANNER, "pulling_over") if v.yielding_for is not None else (None, None)
    heard, seen = autonomy.siren_heard_since_s, autonomy.ev_seen_since_s
    if autonomy.behaviour == Behaviour.YIELD_TO_EV:
        if seen is None:
            return HEARD_YIELD_BANNER, "pulling_over"
        lead = _lead_s(autonomy)
        extra = f" We heard its siren {lead:.0f} s before we saw it." if lead is not None else ""
        return SEEN_YIELD_BANNER + extra, "pulling_over"
    if autonomy.behaviour == Behaviour.EV_CAUTION:
        return SLOWING_BANNER, "siren_heard"
    if autonomy.siren_heard and heard is not None and seen is None:
        return LISTENING_BANNER, "siren_heard"
    return None, None


def _lead_s(autonomy: AutonomyView) -> float | None:
    heard, seen = autonomy.siren_heard_since_s, autonomy.ev_seen_since_s
    if heard is None or seen is None or seen - heard < HEARD_FIRST_MIN_S:
        return None
    return round(seen - heard, 1)


def _hearing(autonomy: AutonomyView) -> HearingPublic | None:
    if not autonomy.hearing:
        return None
    return HearingPublic(
        siren_heard=autonomy.siren_heard,
        siren_probability=autonomy.siren_probability,
        siren_heard_since_s=autonomy.siren_heard_since_s,
        ev_seen_since_s=autonomy.ev_seen_since_s,
        heard_before_seen_s=_lead_s(autonomy),
        note=HEARING_NOTE,
    )


def _sumo_nearby(runtime: ServiceRuntime, live: LiveService, v: VehicleView) -> list[NearbyPublic]:
    """SUMO's road users near a car it drives (fleet fidelity: no sensors simulated)."""
    around = live.nearby(v.vehicle_id, NEARBY_RADIUS_M)
    coords = runtime.to_latlon(np.array([[a.x, a.y] for a in around]).reshape(-1, 2))
    return [
        NearbyPublic(
            id=a.agent_id,
            kind=a.kind.value,
            lat=c[0],
            lon=c[1],
            distance_m=round(math.hypot(a.x - v.x, a.y - v.y), 1),
            speed_mps=round(a.speed, 1),
            heading_deg=compass_deg(a.heading),
        )
        for a, c in zip(around, coords, strict=True)
    ]


def _tracked_nearby(
    runtime: ServiceRuntime, v: VehicleView, autonomy: AutonomyView
) -> list[NearbyPublic]:
    """The autonomy stack's tracks within the screen's radius, nearest first."""
    tracks = sorted(
        (
            (math.hypot(t.x - v.x, t.y - v.y), t)
            for t in autonomy.tracks
            if math.hypot(t.x - v.x, t.y - v.y) <= NEARBY_RADIUS_M
        ),
        key=lambda pair: (pair[0], pair[1].track_id),
    )
    coords = runtime.to_latlon(np.array([[t.x, t.y] for _, t in tracks]).reshape(-1, 2))
    return [
        NearbyPublic(
            id=f"track {t.track_id}",
            kind=t.kind,
            lat=c[0],
            lon=c[1],
            distance_m=round(distance, 1),
            speed_mps=round(t.speed, 1),
            heading_deg=None if t.heading is None else compass_deg(t.heading),
        )
        for (distance, t), c in zip(tracks, coords, strict=True)
    ]
