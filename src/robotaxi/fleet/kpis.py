"""Fleet KPIs, one definition each: pure functions over trip records (and the fleet's cars
and EV-yield records), shared by `robotaxi simulate` and the live service.

`metrics.fleet_kpis` builds `simulate`'s report from them over a finished `ServiceHistory`;
`LiveService.kpis` calls the same functions on the trips, cars and yields so far. Each
function's docstring says which records count. Durations are in s, distances in m; the
report dicts (`trip_kpis`, `vehicle_kpis`, `ev_yield_kpis`) round durations and distances
to 0.1, percentages to 0.01 and shares and ratios to 0.001.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
    """What the EV-yield KPIs read of a `fleet.manager.YieldRecord` (None until it
    happened)."""

    @property
    def in_range_at(self) -> TimePoint: ...
    @property
    def stopped_at(self) -> TimePoint | None: ...
    @property
    def resumed_at(self) -> TimePoint | None: ...


def first_time(trip: Trip, state: TripState) -> TimePoint | None:
    """Time of the trip's first transition into `state`, None if it never happened."""
    for event in trip.events:
        if event.state == state:
            return event.time
    return None


def pickup_eta_error(trip: Trip) -> float | None:
    """How late the car reached its rider against the pick-up ETA it was assigned on (s;
    negative: early). The assignment that counts is the last `assigned` event before the
    first `arrived` (earlier ones were taken back or reassigned); its `data["eta_s"]` is the
    ETA dispatch used (with what was left of the car's drop-off, if it was finishing one).
    None if no car arrived, that assignment carries no ETA, or another car arrived."""
    events = trip.events
    first = next((i for i, e in enumerate(events) if e.state == S.ARRIVED), None)
    if first is None:
        return None
    arrived = events[first]
    assigned = next((e for e in reversed(events[:first]) if e.state == S.ASSIGNED), None)
    if assigned is None or "eta_s" not in assigned.data:
        return None
    if arrived.vehicle_id is not None and assigned.vehicle_id != arrived.vehicle_id:
        return None
    return (arrived.time - assigned.time) - float(assigned.data["eta_s"])


@dataclass(frozen=True, slots=True)
class TripRecord:
    """What the KPIs need of one trip, in a few numbers (a `Trip` holds every event).

    A long-running service retires its ended trips into these (`FleetManager.retire_ended`)
    so that memory follows the open trips; `of` is the one place each per-trip figure is
    defined, and the list functions below read them. `wait_s` is the pick-up wait (request
    to the car's first arrival at the pick-up; None if no car arrived), `in_vehicle_s` the
    time in the car ("Start ride" to the first arrival at the destination), `walk_m` the walk
    to and from the car and `detour` the distance driven with the rider over the fastest
    route's when the ride started (the last two only when the car reached the destination;
    `detour` also needs `ride_m` and `direct_m` > 0 on the arrival event). `cancel_cause` is
    set on cancelled trips; `controlled` marks a real rider's (app) trip; `origin_zone` is
    the demand zone of the pick-up; `pickup_eta_error_s` is `pickup_eta_error`.
    """

    state: TripState
    requested_at: TimePoint
    wait_s: float | None = None
    in_vehicle_s: float | None = None
    walk_m: float | None = None
    detour: float | None = None
    cancel_cause: str | None = None
    controlled: bool = False
    origin_zone: str = ""
    pickup_eta_error_s: float | None = None

    @classmethod
    def of(cls, trip: Trip, *, controlled: bool = False) -> TripRecord:
        arrived = first_time(trip, S.ARRIVED)
        started = first_time(trip, S.STARTED)
        at_destination = next((e for e in trip.events if e.state == S.ARRIVED_AT_DESTINATION), None)
        walk = detour = in_vehicle = None
        if at_destination is not None:
            walk = trip.pickup_walk_m + trip.dropoff_walk_m
            direct = float(at_destination.data.get("direct_m", 0.0))
            if "ride_m" in at_destination.data and direct > 0:
                detour = float(at_destination.data["ride_m"]) / direct
            if started is not None:
                in_vehicle = at_destination.time - started
        return cls(
            state=trip.state,
            requested_at=trip.request.time,
            wait_s=None if arrived is None else arrived - trip.request.time,
            in_vehicle_s=in_vehicle,
            walk_m=walk,
            detour=detour,
            cancel_cause=trip.events[-1].cause if trip.state == S.CANCELLED else None,
            controlled=controlled,
            origin_zone=trip.request.origin_zone,
            pickup_eta_error_s=pickup_eta_error(trip),
        )


def _records(trips: Iterable[Trip | TripRecord]) -> list[TripRecord]:
    return [t if isinstance(t, TripRecord) else TripRecord.of(t) for t in trips]


def pickup_waits_s(trips: Iterable[Trip | TripRecord]) -> list[float]:
    """A rider's pick-up wait (s): from the request to the car's first arrival at the pick-up.

    Counts every trip whose car arrived, whatever came next (completed, cancelled at the
    curb, or still under way). A trip cancelled before a car arrived has no wait (it shows
    in `cancelled_pct`), nor does one whose car is still on its way.
    """
    return [r.wait_s for r in _records(trips) if r.wait_s is not None]


def in_vehicle_times_s(trips: Iterable[Trip | TripRecord]) -> list[float]:
    """A rider's time in the car (s): from "Start ride" to the car's first arrival at the
    destination, over trips whose car reached the destination. A ride the rider cut short
    (pulled over) never arrives there and does not count."""
    return [r.in_vehicle_s for r in _records(trips) if r.in_vehicle_s is not None]


def walks_m(trips: Iterable[Trip | TripRecord]) -> list[float]:
    """A rider's walk (m): to the pick-up curb plus from the drop-off curb, over trips whose
    car reached the destination (the only ones where the rider walked both)."""
    return [r.walk_m for r in _records(trips) if r.walk_m is not None]


def detour_ratios(trips: Iterable[Trip | TripRecord]) -> list[float]:
    """Distance driven with the rider over the length of the fastest route when the ride
    started (1 = no detour; below 1 when the car found a shorter way), over trips
    whose car reached the destination and recorded both (`ride_m`, and `direct_m` > 0, on
    the arrival event)."""
    return [r.detour for r in _records(trips) if r.detour is not None]


def pickup_eta_errors_s(trips: Iterable[Trip | TripRecord]) -> list[float]:
    """How late each car reached its rider against the ETA it was assigned on (s,
    `pickup_eta_error`), over trips whose assigned car arrived."""
    return [r.pickup_eta_error_s for r in _records(trips) if r.pickup_eta_error_s is not None]


def cancellations_by_cause(trips: Iterable[Trip | TripRecord]) -> dict[str, int]:
    """Cancelled trips counted by the cause of their cancellation ("rider", "patience", …)."""
    causes: dict[str, int] = {}
    for record in _records(trips):
        if record.cancel_cause is not None:
            causes[record.cancel_cause] = causes.get(record.cancel_cause, 0) + 1
    return causes


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _mean(values: Sequence[float], digits: int = 1) -> float | None:
    return round(float(np.mean(values)), digits) if values else None


def trip_kpis(trips: Iterable[Trip | TripRecord]) -> dict[str, Any]:
    """The trip KPIs of a service, over every trip requested so far.

    requests; served (completed trips, pulled-over ones included) and served_pct,
    cancelled_pct and cancelled_by_cause (shares of all requests); unfinished (neither
    completed nor cancelled); pick-up waits (`pickup_waits_s`: mean, p50, p95); time in
    the car (`in_vehicle_times_s`: p50, mean); walk_mean_m (`walks_m`);
    detour_ratio_mean (`detour_ratios`); the pick-up ETA error (`pickup_eta_errors_s`:
    p50, and p95 of its size).
    """
    records = _records(trips)
    n = len(records)
    served = sum(1 for r in records if r.state == S.COMPLETED)
    cancelled = sum(1 for r in records if r.state == S.CANCELLED)
    waits = pickup_waits_s(records)
    in_vehicle = in_vehicle_times_s(records)
    eta_error = pickup_eta_errors_s(records)
    return {
        "requests": n,
        "served": served,
        "served_pct": round(100.0 * served / n, 2) if n else 0.0,
        "cancelled_pct": round(100.0 * cancelled / n, 2) if n else 0.0,
        "cancelled_by_cause": cancellations_by_cause(records),
        "unfinished": n - served - cancelled,
        "wait_mean_s": _mean(waits),
        "wait_p50_s": _round(percentile(waits, 50)),
        "wait_p95_s": _round(percentile(waits, 95)),
        "in_vehicle_p50_s": _round(percentile(in_vehicle, 50)),
        "in_vehicle_mean_s": _mean(in_vehicle),
        "walk_mean_m": _mean(walks_m(records)),
        "detour_ratio_mean": _mean(detour_ratios(records), 3),
        "pickup_eta_error_p50_s": _round(percentile(eta_error, 50)),
        "pickup_eta_error_abs_p95_s": _round(percentile(np.abs(eta_error), 95)),
    }


HOURLY_KEYS = (
    "requests", "served", "served_pct", "cancelled_pct", "wait_p50_s", "wait_p95_s",
    "in_vehicle_p50_s",
)  # fmt: skip


def by_hour(trips: Iterable[Trip | TripRecord], start_hour: float) -> list[dict[str, Any]]:
    """The trip KPIs hour by hour of service, each trip counted in the hour it was requested:
    a list of `trip_kpis`-style records (requests, served_pct, cancelled_pct, waits) with
    `hour`, the clock time the hour starts ("08:00"; the day wraps after "23:00"), from the
    first hour of service to the last hour with a request."""
    groups: dict[int, list[TripRecord]] = {}
    for record in _records(trips):
        groups.setdefault(int(record.requested_at.time_s // 3600), []).append(record)
    rows = []
    for k in range(max(groups) + 1 if groups else 0):
        kpis = trip_kpis(groups.get(k, []))
        clock = (start_hour + k) % 24
        rows.append(
            {
                "hour": f"{int(clock):02d}:{round(60 * (clock % 1)):02d}",
                **{key: kpis[key] for key in HOURLY_KEYS},
            }
        )
    return rows


DISTRICT_KEYS = ("requests", "served", "served_pct", "cancelled_pct", "wait_p50_s", "wait_p95_s")


def by_district(
    trips: Iterable[Trip | TripRecord], districts: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The trip KPIs per district of the pick-up (`districts`: demand zone → district, e.g.
    a traffic zone → its neighbourhood; a zone it does not name is its own district), in
    order of requests, most first: `trip_kpis`-style records (requests, served, waits) with
    `district`."""
    groups: dict[str, list[TripRecord]] = {}
    for record in _records(trips):
        zone = record.origin_zone
        groups.setdefault(districts.get(zone, zone) or "unknown", []).append(record)
    rows = []
    for name, records in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        kpis = trip_kpis(records)
        rows.append({"district": name, **{key: kpis[key] for key in DISTRICT_KEYS}})
    return rows


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
    stopped = [y for y in yields if y.stopped_at is not None]
    reaction = [y.stopped_at - y.in_range_at for y in stopped if y.stopped_at is not None]
    stood = [
        y.resumed_at - y.stopped_at
        for y in stopped
        if y.resumed_at is not None and y.stopped_at is not None
    ]
    return {
        "ev_yields": len(stopped),
        "ev_yields_resumed": len(stood),
        "ev_yield_reaction_mean_s": _mean(reaction),
        "ev_yield_stopped_mean_s": _mean(stood),
    }


__all__ = [
    "TripRecord",
    "VehicleRecord",
    "YieldRecordLike",
    "by_hour",
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
