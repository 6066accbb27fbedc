"""Energy and charging KPIs, one definition each: pure functions over the records of
`fleet.energy` and `fleet.charging` (cars' battery ledgers, charging sessions, fleet
samples, empty-battery events), shared by `robotaxi simulate`'s report and the service.

`energy_kpis` builds the report's `energy` record. Energy in kWh (rounded to 0.1; ratios
per ride and per km to 0.001), durations in s (0.1), percentages to 0.01, mean car counts
per hour to 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from robotaxi.core.stats import percentile


class CarEnergyLike(Protocol):
    """What the KPIs read of a car's battery (`fleet.energy.CarBattery`): km driven, kWh
    drawn from the battery (driving and standing) and put into it, its charge now."""

    @property
    def km(self) -> float: ...
    @property
    def kwh_used(self) -> float: ...
    @property
    def kwh_charged(self) -> float: ...
    @property
    def soc_kwh(self) -> float: ...
    @property
    def capacity_kwh(self) -> float: ...


class SessionLike(Protocol):
    """What the KPIs read of a `fleet.charging.ChargingSession` (s since the start; None
    until it happened)."""

    @property
    def reason(self) -> str: ...
    @property
    def arrived_s(self) -> float | None: ...
    @property
    def plugged_s(self) -> float | None: ...
    @property
    def left_s(self) -> float | None: ...
    @property
    def kwh_into_battery(self) -> float: ...
    @property
    def kwh_from_grid(self) -> float: ...


class SampleLike(Protocol):
    """A count of the fleet's cars by state at `time_s` (`fleet.charging.FleetSample`)."""

    @property
    def time_s(self) -> float: ...
    @property
    def available(self) -> int: ...
    @property
    def to_depot(self) -> int: ...
    @property
    def queued(self) -> int: ...
    @property
    def charging(self) -> int: ...


class EmptyLike(Protocol):
    """A battery that ran empty (`fleet.energy.EmptyBattery`), with the trip it was on."""

    @property
    def vehicle_id(self) -> str: ...
    @property
    def trip_id(self) -> str | None: ...


def kwh_used(cars: Iterable[CarEnergyLike]) -> float:
    """Energy drawn from the fleet's batteries (kWh): driving, standing, waiting to charge."""
    return sum(c.kwh_used for c in cars)


def kwh_per_ride(cars: Iterable[CarEnergyLike], rides: int) -> float | None:
    """All the energy the fleet drew over the rides it completed (kWh per ride): empty
    driving, waiting and trips to charge included, the energy cost of serving a ride.
    None before any ride."""
    return kwh_used(cars) / rides if rides > 0 else None


def kwh_per_km(cars: Iterable[CarEnergyLike]) -> float | None:
    """All the energy the fleet drew over the km it drove (kWh/km), standing included.
    None before any km."""
    cars = list(cars)
    km = sum(c.km for c in cars)
    return kwh_used(cars) / km if km > 0 else None


def queued_times_s(sessions: Iterable[SessionLike], end_s: float | None = None) -> list[float]:
    """Time each car stood in line at a depot (s): from its arrival to taking a charger, or
    to giving up its place. A car still in line counts up to `end_s` (the end of the run)
    if given, else not at all; a car that took a free charger on arrival queued 0 s."""
    times = []
    for s in sessions:
        if s.arrived_s is None:
            continue
        until = s.plugged_s if s.plugged_s is not None else s.left_s
        if until is None:
            until = end_s
        if until is not None:
            times.append(max(until - s.arrived_s, 0.0))
    return times


def charging_sessions(sessions: Iterable[SessionLike]) -> dict[str, int]:
    """Sessions in which the car took a charger, counted by why it went ("low",
    "opportunistic")."""
    counts: dict[str, int] = {}
    for s in sessions:
        if s.plugged_s is not None:
            counts[str(s.reason)] = counts.get(str(s.reason), 0) + 1
    return counts


def rides_lost_to_empty_battery(empties: Iterable[EmptyLike]) -> int:
    """Rides whose car ran empty on the way (distinct trips). Must be 0."""
    return len({e.trip_id for e in empties if e.trip_id is not None})


def _clock_label(start_hour: float, index: int) -> str:
    minutes = round(((start_hour + index) % 24) * 60)
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def cars_by_hour(samples: Sequence[SampleLike], start_hour: float) -> dict[str, list[Any]]:
    """Mean car counts per hour of service (hour k covers [k, k+1) h after the start),
    labelled with the clock time the hour begins: `hours`, and per state
    `cars_available_by_hour`, `cars_to_depot_by_hour`, `cars_queued_by_hour`,
    `cars_charging_by_hour` (None for an hour without samples)."""
    if not samples:
        return {
            "hours": [],
            "cars_available_by_hour": [],
            "cars_to_depot_by_hour": [],
            "cars_queued_by_hour": [],
            "cars_charging_by_hour": [],
        }
    n_hours = int(max(s.time_s for s in samples) // 3600) + 1
    sums = [[0.0, 0.0, 0.0, 0.0, 0.0] for _ in range(n_hours)]
    for s in samples:
        row = sums[int(max(s.time_s, 0.0) // 3600)]
        row[0] += 1
        row[1] += s.available
        row[2] += s.to_depot
        row[3] += s.queued
        row[4] += s.charging

    def means(column: int) -> list[float | None]:
        return [round(r[column] / r[0], 1) if r[0] else None for r in sums]

    return {
        "hours": [_clock_label(start_hour, k) for k in range(n_hours)],
        "cars_available_by_hour": means(1),
        "cars_to_depot_by_hour": means(2),
        "cars_queued_by_hour": means(3),
        "cars_charging_by_hour": means(4),
    }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def energy_kpis(
    cars: Iterable[CarEnergyLike],
    sessions: Iterable[SessionLike],
    samples: Sequence[SampleLike],
    empties: Iterable[EmptyLike],
    *,
    rides: int,
    start_hour: float,
    end_s: float | None = None,
) -> dict[str, Any]:
    """The `energy` KPI record of a service, over every car, session and sample so far.

    kwh_used (from the batteries), kwh_per_ride (`kwh_per_ride`, over `rides` completed),
    kwh_per_km; kwh_charged (into the batteries) and kwh_from_grid; charging_sessions and
    charging_sessions_by_reason (`charging_sessions`); queued_p50_s, queued_p95_s,
    queued_total_s (`queued_times_s`, cars still in line counted to `end_s`);
    rides_lost_to_empty_battery (must be 0) and cars_ran_empty; soc_mean_pct and
    soc_min_pct of the cars now; and the per-hour car counts of `cars_by_hour`.
    """
    cars = list(cars)
    sessions = list(sessions)
    empties = list(empties)
    queued = queued_times_s(sessions, end_s)
    by_reason = charging_sessions(sessions)
    soc_pct = [100.0 * c.soc_kwh / c.capacity_kwh for c in cars if c.capacity_kwh > 0]
    return {
        "kwh_used": round(kwh_used(cars), 1),
        "kwh_per_ride": _round(kwh_per_ride(cars, rides), 3),
        "kwh_per_km": _round(kwh_per_km(cars), 3),
        "kwh_charged": round(sum(c.kwh_charged for c in cars), 1),
        "kwh_from_grid": round(sum(s.kwh_from_grid for s in sessions), 1),
        "charging_sessions": sum(by_reason.values()),
        "charging_sessions_by_reason": by_reason,
        "queued_p50_s": _round(percentile(queued, 50)),
        "queued_p95_s": _round(percentile(queued, 95)),
        "queued_total_s": round(sum(queued), 1),
        "rides_lost_to_empty_battery": rides_lost_to_empty_battery(empties),
        "cars_ran_empty": len({e.vehicle_id for e in empties}),
        "soc_mean_pct": _round(sum(soc_pct) / len(soc_pct), 2) if soc_pct else None,
        "soc_min_pct": _round(min(soc_pct), 2) if soc_pct else None,
        **cars_by_hour(samples, start_hour),
    }


__all__ = [
    "CarEnergyLike",
    "EmptyLike",
    "SampleLike",
    "SessionLike",
    "cars_by_hour",
    "charging_sessions",
    "energy_kpis",
    "kwh_per_km",
    "kwh_per_ride",
    "kwh_used",
    "queued_times_s",
    "rides_lost_to_empty_battery",
]
