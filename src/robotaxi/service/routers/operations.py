"""Operations: KPIs, open trips, emergency-vehicle yields and the vehicle event log (operator
token), and health."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import Response

from robotaxi.fleet.fares import money_text
from robotaxi.service.deps import LiveDep, Operator, RuntimeDep
from robotaxi.service.schemas import (
    HealthPublic,
    KpiSamplePublic,
    KpisPublic,
    RefundCreate,
    RefundPublic,
    TripOperator,
    VehicleEventPublic,
    YieldPublic,
    error_responses,
)
from robotaxi.service.views import fare_body

router = APIRouter(prefix="/api", tags=["operations"])
OPERATOR_ERRORS = error_responses(401, 403)


@router.get("/health")
async def health(runtime: RuntimeDep, live: LiveDep) -> HealthPublic:
    """Is the simulation running, and is it keeping its speed?"""
    pacing = live.pacing()
    return HealthPublic(
        status="ended" if pacing.ended else "ok" if pacing.keeping_up else "behind",
        note=pacing.falling_behind_note,
        city=live.map.name,
        sim_time_s=round(pacing.sim_time_s, 1),
        speed=pacing.speed,
        real_time_factor=pacing.real_time_factor,
        behind_s=pacing.behind_s,
        ended=pacing.ended,
    )


@router.get("/kpis", tags=["kpis"], responses=OPERATOR_ERRORS)
def kpis(_: Operator, live: LiveDep) -> KpisPublic:
    """Live fleet KPIs: requests, completions, waits, utilisation, EV yields, real-time factor."""
    return KpisPublic(**live.kpis())


@router.get("/kpis/history", tags=["kpis"], responses=OPERATOR_ERRORS)
def kpi_history(
    _: Operator,
    live: LiveDep,
    since_s: Annotated[
        float, Query(ge=0, allow_inf_nan=False, description="only samples from this sim second on")
    ] = 0.0,
) -> list[KpiSamplePublic]:
    """The KPIs once a simulated minute, oldest first (a day of them is kept): rides
    requested, completed and cancelled so far, riders waiting, the median pick-up wait of the
    minute, and the cars by what they are doing."""
    return [
        KpiSamplePublic(
            time_s=k.time_s,
            requests=k.requests,
            completed=k.completed,
            cancelled=k.cancelled,
            waiting=k.waiting,
            wait_p50_s=k.wait_p50_s,
            cars=dict(k.cars),
        )
        for k in live.kpi_history(since_s)
    ]


@router.get("/trips/open", responses=OPERATOR_ERRORS)
def open_trips(_: Operator, live: LiveDep) -> list[TripOperator]:
    return [
        TripOperator(
            id=t.trip_id,
            state=t.state.value,
            vehicle_id=t.vehicle_id,
            rider="app" if t.controlled else "simulated",
            requested_s=t.requested_s,
            eta_s=t.eta_s,
        )
        for t in live.open_trips()
    ]


@router.post(
    "/rides/{ride_id}/refund",
    responses=error_responses(
        400,
        401,
        403,
        404,
        409,
        413,
        e404="no such ride",
        e409="the ride has not been charged yet, or the refund is more than what is left",
    ),
)
def refund(ride_id: str, body: RefundCreate, _: Operator, runtime: RuntimeDep) -> RefundPublic:
    """Refund part or all of a ride's charged fare (refunds add up to the fare at most)."""
    ride = runtime.store.ride(ride_id) if len(ride_id) <= 64 else None
    if ride is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no ride {ride_id}")
    refunded = runtime.store.refund(ride_id, body.cents, body.reason)
    if refunded is None or refunded.fare is None:
        now = runtime.store.ride(ride_id)
        if now is None or now.fare is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"ride {ride_id} has not been charged yet ({ride.state.value}): "
                "refund it once it has ended",
            )
        left = now.fare.net_cents
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"ride {ride_id} has {money_text(left, now.fare.currency)} left to refund: "
            f"refund at most {left} cents",
        )
    return RefundPublic(ride_id=ride_id, fare=fare_body(refunded.fare))


@router.get("/yields", responses=OPERATOR_ERRORS)
def yields(_: Operator, live: LiveDep) -> list[YieldPublic]:
    """Every time a robotaxi pulled over for an emergency vehicle (in progress ones too)."""
    return [YieldPublic(**row) for row in live.yields()]


@router.get("/vehicle-events", responses=OPERATOR_ERRORS)
def vehicle_events(
    _: Operator,
    runtime: RuntimeDep,
    vehicle_id: str | None = Query(None, max_length=64, description="one car; all when unset"),
    limit: int = Query(200, ge=1, le=5000, description="the latest this many"),
) -> list[VehicleEventPublic]:
    """What cars did outside their trips (pulled over for an ambulance, …), from the store:
    this server run and earlier ones, newest last."""
    return [
        VehicleEventPublic(
            run_id=logged.run_id,
            this_run=logged.run_id == runtime.run_id,
            time_s=logged.event.time.time_s,
            vehicle_id=logged.event.vehicle_id,
            kind=logged.event.kind,
            data=dict(logged.event.data),
        )
        for logged in runtime.store.vehicle_event_log(vehicle_id=vehicle_id, limit=limit)
    ]


@router.get("/map", response_class=Response, tags=["map"])
def road_map(request: Request, runtime: RuntimeDep) -> Response:
    """The road network as [[lat, lon], ...] polylines (one per street direction).

    Pages draw the map from this: no tile server, works offline. Gzip-compressed (once, when
    first asked) for clients that accept it: ≈0.6 MB of JSON for the Mission.
    """
    headers = {"Cache-Control": "public, max-age=3600", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(runtime.map_json_gzip(), media_type="application/json", headers=headers)
    return Response(runtime.map_json(), media_type="application/json", headers=headers)
