"""Fleet KPIs: pure functions of a recorded service history (see sim.runner.ServiceHistory).

`fleet_kpis(history)` returns a flat dict whose top-level keys scripts can rely on:
requests, served_pct, cancelled_pct, wait_p50_s, wait_p95_s, in_vehicle_p50_s,
deadhead_km_share, ev_yields, sim_hours, wall_s (and more, documented inline).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robotaxi.core import TripState
from robotaxi.fleet.trips import Trip
from robotaxi.sim.runner import ServiceHistory

S = TripState


def _t(trip: Trip, state: TripState) -> float | None:
    for event in trip.events:
        if event.state == state:
            return event.time.time_s
    return None


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 1) if values else None


def trip_waits(history: ServiceHistory) -> list[float]:
    """Pick-up wait (s): request to the car's arrival at the curb, for every served rider."""
    waits = []
    for trip in history.trips.values():
        arrived = _t(trip, S.ARRIVED)
        if arrived is not None and trip.state == S.COMPLETED:
            waits.append(arrived - trip.request.time.time_s)
    return waits


def fleet_kpis(history: ServiceHistory) -> dict[str, Any]:
    trips = list(history.trips.values())
    n = len(trips)
    completed = [t for t in trips if t.state == S.COMPLETED]
    cancelled = [t for t in trips if t.state == S.CANCELLED]
    cancel_causes: dict[str, int] = {}
    for t in cancelled:
        cause = t.events[-1].cause
        cancel_causes[cause] = cancel_causes.get(cause, 0) + 1
    waits = trip_waits(history)
    in_vehicle: list[float] = []
    walks: list[float] = []
    detours: list[float] = []
    for t in completed:
        started, at_dest = _t(t, S.STARTED), _t(t, S.ARRIVED_AT_DESTINATION)
        if started is not None and at_dest is not None:
            in_vehicle.append(at_dest - started)
        walks.append(t.pickup_walk_m + t.dropoff_walk_m)
        for event in t.events:
            if event.state == S.ARRIVED_AT_DESTINATION and "ride_m" in event.data:
                direct = float(event.data.get("direct_m", 0.0))
                if direct > 0:
                    detours.append(float(event.data["ride_m"]) / direct)
    km_empty = sum(v.km_empty for v in history.vehicles)
    km_occ = sum(v.km_occupied for v in history.vehicles)
    fleet_s = max(history.fleet_size * history.simulated_s, 1e-9)
    done_yields = [y for y in history.yields if y.stopped_s is not None]
    stopped_times = [
        y.resumed_s - y.stopped_s
        for y in done_yields
        if y.resumed_s is not None and y.stopped_s is not None
    ]
    reaction = [y.stopped_s - y.in_range_s for y in done_yields if y.stopped_s is not None]
    ev_rows = [
        {
            "vehicle": e.vehicle_id,
            "route_m": round(e.route_m),
            "travel_s": e.travel_s,
            "ordinary_car_s": e.probe_travel_s,
        }
        for e in history.emergency
    ]
    paired = [
        (e.travel_s, e.probe_travel_s) for e in history.emergency if e.travel_s and e.probe_travel_s
    ]
    sim_hours = history.simulated_s / 3600.0
    return {
        "city": history.city,
        "policy": history.policy,
        "fleet": history.fleet_size,
        "seed": history.seed,
        "requests": n,
        "served": len(completed),
        "served_pct": round(100.0 * len(completed) / n, 2) if n else 0.0,
        "cancelled_pct": round(100.0 * len(cancelled) / n, 2) if n else 0.0,
        "cancelled_by_cause": cancel_causes,
        "unfinished": n - len(completed) - len(cancelled),
        "wait_mean_s": _mean(waits),
        "wait_p50_s": _pct(waits, 50),
        "wait_p95_s": _pct(waits, 95),
        "in_vehicle_p50_s": _pct(in_vehicle, 50),
        "in_vehicle_mean_s": _mean(in_vehicle),
        "walk_mean_m": _mean(walks),
        "detour_ratio_mean": round(float(np.mean(detours)), 3) if detours else None,
        "km_total": round(km_empty + km_occ, 1),
        "deadhead_km_share": round(km_empty / (km_empty + km_occ), 3)
        if km_empty + km_occ > 0
        else None,
        "utilisation": round(sum(v.busy_s for v in history.vehicles) / fleet_s, 3),
        "occupied_time_share": round(sum(v.occupied_s for v in history.vehicles) / fleet_s, 3),
        "ev_yields": len(done_yields),
        "ev_yields_resumed": sum(1 for y in done_yields if y.resumed_s is not None),
        "ev_yield_reaction_mean_s": _mean(reaction),
        "ev_yield_stopped_mean_s": _mean(stopped_times),
        "ambulances": ev_rows,
        "ambulance_vs_ordinary_car_time_ratio": (
            round(float(np.mean([a / b for a, b in paired])), 3) if paired else None
        ),
        "teleports": history.world.teleports,
        "cars_cleared_for_ambulances": history.world.cleared_for_ev,
        "requests_dropped_outside_map": history.demand.dropped_outside_map,
        "command_failures": history.fleet_command_failures,
        "sim_hours": round(sim_hours, 3),
        "service_hours": round(history.service_s / 3600.0, 3),
        "wall_s": round(history.wall_s, 2),
        "real_time_factor": round(history.simulated_s / history.wall_s, 1)
        if history.wall_s
        else None,
    }


KPI_ROWS = (
    ("requests", "requests", ""),
    ("served_pct", "served", "%"),
    ("cancelled_pct", "cancelled", "%"),
    ("wait_p50_s", "pick-up wait p50", "s"),
    ("wait_p95_s", "pick-up wait p95", "s"),
    ("in_vehicle_p50_s", "in-vehicle time p50", "s"),
    ("walk_mean_m", "walking distance, mean", "m"),
    ("detour_ratio_mean", "detour ratio, mean", ""),
    ("deadhead_km_share", "empty (deadhead) km share", ""),
    ("utilisation", "vehicle utilisation", ""),
    ("ev_yields", "EV yields", ""),
    ("ev_yield_stopped_mean_s", "EV yield: mean time stopped", "s"),
    ("ambulance_vs_ordinary_car_time_ratio", "ambulance / ordinary car travel time", ""),
    ("teleports", "SUMO teleports", ""),
    ("sim_hours", "simulated", "h"),
    ("wall_s", "wall time", "s"),
    ("real_time_factor", "speed", "× real time"),
)


def format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return str(value)
