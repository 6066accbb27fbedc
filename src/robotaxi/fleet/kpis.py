"""Fleet KPIs, one definition each: pure functions over trip records (and the fleet's cars
and EV-yield records), shared by `robotaxi simulate` and the live service.

`metrics.fleet_kpis` builds `simulate`'s report from them over a finished `ServiceHistory`;
`LiveService.kpis` calls the same functions on the trips, cars and yields so far. Each
function's docstring says which records count. Durations are in s, distances in m; the
report dicts (`trip_kpis`, `vehicle_kpis`, `ev_yield_kpis`) round durations and distances
to 0.1, percentages to 0.01 and shares and ratios to 0.001.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from robotaxi.core import TimePoint, TripState
from robotaxi.core.stats import percentile
from robotaxi.fleet.trips import Trip

S = TripState


class VehicleRecord(Protocol):
    """What the vehicle KPIs read of a car: `fleet.manager.Vehicle` and the runner's
    `VehicleSummary` both fit. `busy_s` is time not idle (on the way to a pick-up, at the
    curb, carrying a rider), `occupied_s` time with a rider on board."""

    @property
    def km_empty(self) -> float: ...
    @property
    def km_occupied(self) -> float: ...
    @property
    def busy_s(self) -> float: ...
    @property
    def occupied_s(self) -> float: ...


class YieldRecordLike(Protocol):
    """What the EV-yield KPIs read of a `fleet.manager.YieldRecord` (times in s since the
    start; None until it happened)."""

    @property
    def in_range_s(self) -> float: ...
    @property
    def stopped_s(self) -> float | None: ...
    @property
    def resumed_s(self) -> float | None: ...


def first_time(trip: Trip, state: TripState) -> TimePoint | None:
    """Time of the trip's first transition into `state`, None if it never happened."""
    for event in trip.events:
        if event.state == state:
            return event.time
    return None


def pickup_waits_s(trips: Iterable[Trip]) -> list[float]:
    """A rider's pick-up wait (s): from the request to the car's first arrival at the pick-up.

    Counts every trip whose car arrived, whatever came next (completed, cancelled at the
    curb, or still under way). A trip cancelled before a car arrived has no wait (it shows
    in `cancelled_pct`), nor does one whose car is still on its way.
    """
    waits = []
    for trip in trips:
        arrived = first_time(trip, S.ARRIVED)
        if arrived is not None:
            waits.append(arrived - trip.request.time)
    return waits


def in_vehicle_times_s(trips: Iterable[Trip]) -> list[float]:
    """A rider's time in the car (s): from "Start ride" to the car's first arrival at the
    destination, over trips whose car reached the destination. A ride the rider cut short
    (pulled over) never arrives there and does not count."""
    times = []
    for trip in trips:
        started, at_destination = (
            first_time(trip, S.STARTED),
            first_time(trip, S.ARRIVED_AT_DESTINATION),
        )
        if started is not None and at_destination is not None:
            times.append(at_destination - started)
    return times


def _reached_destination(trips: Iterable[Trip]) -> list[Trip]:
    return [t for t in trips if first_time(t, S.ARRIVED_AT_DESTINATION) is not None]


def walks_m(trips: Iterable[Trip]) -> list[float]:
    """A rider's walk (m): to the pick-up curb plus from the drop-off curb, over trips whose
    car reached the destination (the only ones where the rider walked both)."""
    return [t.pickup_walk_m + t.dropoff_walk_m for t in _reached_destination(trips)]


def detour_ratios(trips: Iterable[Trip]) -> list[float]:
    """Distance driven with the rider over the shortest route's (1 = no detour), over trips
    whose car reached the destination and recorded both (`ride_m`, and `direct_m` > 0, on
    the arrival event)."""
    ratios = []
    for trip in _reached_destination(trips):
        event = next(e for e in trip.events if e.state == S.ARRIVED_AT_DESTINATION)
        direct = float(event.data.get("direct_m", 0.0))
        if "ride_m" in event.data and direct > 0:
            ratios.append(float(event.data["ride_m"]) / direct)
    return ratios


def cancellations_by_cause(trips: Iterable[Trip]) -> dict[str, int]:
    """Cancelled trips counted by the cause of their cancellation ("rider", "patience", …)."""
    causes: dict[str, int] = {}
    for trip in trips:
        if trip.state == S.CANCELLED:
            cause = trip.events[-1].cause
            causes[cause] = causes.get(cause, 0) + 1
    return causes


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _mean(values: Sequence[float], digits: int = 1) -> float | None:
    return round(float(np.mean(values)), digits) if values else None


def trip_kpis(trips: Iterable[Trip]) -> dict[str, Any]:
    """The trip KPIs of a service, over every trip requested so far.

    requests; served (completed trips, pulled-over ones included) and served_pct,
    cancelled_pct and cancelled_by_cause (shares of all requests); unfinished (neither
    completed nor cancelled); pick-up waits (`pickup_waits_s`: mean, p50, p95); time in
    the car (`in_vehicle_times_s`: p50, mean); walk_mean_m (`walks_m`);
    detour_ratio_mean (`detour_ratios`).
    """
    trips = list(trips)
    n = len(trips)
    served = sum(1 for t in trips if t.state == S.COMPLETED)
    cancelled = sum(1 for t in trips if t.state == S.CANCELLED)
    waits = pickup_waits_s(trips)
    in_vehicle = in_vehicle_times_s(trips)
    return {
        "requests": n,
        "served": served,
        "served_pct": round(100.0 * served / n, 2) if n else 0.0,
        "cancelled_pct": round(100.0 * cancelled / n, 2) if n else 0.0,
        "cancelled_by_cause": cancellations_by_cause(trips),
        "unfinished": n - served - cancelled,
        "wait_mean_s": _mean(waits),
        "wait_p50_s": _round(percentile(waits, 50)),
        "wait_p95_s": _round(percentile(waits, 95)),
        "in_vehicle_p50_s": _round(percentile(in_vehicle, 50)),
        "in_vehicle_mean_s": _mean(in_vehicle),
        "walk_mean_m": _mean(walks_m(trips)),
        "detour_ratio_mean": _mean(detour_ratios(trips), 3),
    }


def vehicle_kpis(vehicles: Iterable[VehicleRecord], elapsed_s: float) -> dict[str, Any]:
    """The fleet's distance and time KPIs over its cars' records after `elapsed_s` of service.

    km_total; deadhead_km_share (empty km over all km, None before any km); utilisation
    (busy time over the fleet's time, cars × `elapsed_s`) and occupied_time_share (time
    with a rider on board over the same); both None before any time passed.
    """
    vehicles = list(vehicles)
    km_empty = sum(v.km_empty for v in vehicles)
    km_total = km_empty + sum(v.km_occupied for v in vehicles)
    fleet_s = len(vehicles) * elapsed_s
    return {
        "km_total": round(km_total, 1),
        "deadhead_km_share": round(km_empty / km_total, 3) if km_total > 0 else None,
        "utilisation": round(sum(v.busy_s for v in vehicles) / fleet_s, 3) if fleet_s > 0 else None,
        "occupied_time_share": (
            round(sum(v.occupied_s for v in vehicles) / fleet_s, 3) if fleet_s > 0 else None
        ),
    }


def ev_yield_kpis(yields: Iterable[YieldRecordLike]) -> dict[str, Any]:
    """Pull-overs for emergency vehicles, over the yield records (finished and under way).

    ev_yields counts those in which the car came to a stand (a car the ambulance passed
    before it stopped did not yield); of those, ev_yields_resumed have driven on;
    ev_yield_reaction_mean_s is the mean time from the ambulance in range (or the car's
    own detection) to standing, ev_yield_stopped_mean_s the mean time stood, over the
    resumed ones.
    """
    stopped = [y for y in yields if y.stopped_s is not None]
    reaction = [y.stopped_s - y.in_range_s for y in stopped if y.stopped_s is not None]
    stood = [
        y.resumed_s - y.stopped_s
        for y in stopped
        if y.resumed_s is not None and y.stopped_s is not None
    ]
    return {
        "ev_yields": len(stopped),
        "ev_yields_resumed": len(stood),
        "ev_yield_reaction_mean_s": _mean(reaction),
        "ev_yield_stopped_mean_s": _mean(stood),
    }


__all__ = [
    "VehicleRecord",
    "YieldRecordLike",
    "cancellations_by_cause",
    "detour_ratios",
    "ev_yield_kpis",
    "first_time",
    "in_vehicle_times_s",
    "pickup_waits_s",
    "trip_kpis",
    "vehicle_kpis",
    "walks_m",
]
