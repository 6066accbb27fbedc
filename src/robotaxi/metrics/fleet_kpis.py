"""`robotaxi simulate`'s KPI report: a pure function of a recorded service history
(see sim.runner.ServiceHistory).

`fleet_kpis(history)` returns a flat dict whose top-level keys scripts can rely on:
requests, served_pct, cancelled_pct, wait_p50_s, wait_p95_s, in_vehicle_p50_s,
deadhead_km_share, ev_yields, sim_hours, wall_s (and more). The trip, vehicle and
EV-yield KPIs are `fleet.kpis`'s, where each is defined once for `simulate` and the live
service alike; the rest (ambulances, world counts, timing) exist only for a finished run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robotaxi.fleet.kpis import by_district, by_hour, ev_yield_kpis, trip_kpis, vehicle_kpis
from robotaxi.sim.runner import ServiceHistory


def fleet_kpis(history: ServiceHistory) -> dict[str, Any]:
    """`simulate`'s report: the trip, vehicle and EV-yield KPIs of `fleet.kpis` (the live
    service computes the same ones the same way), with the run's ambulances, world counts
    and timing."""
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
        **trip_kpis(history.trips.values()),
        **vehicle_kpis(history.vehicles, history.simulated_s),
        **ev_yield_kpis(history.yields),
        "ambulances": ev_rows,
        "ambulance_vs_ordinary_car_time_ratio": (
            round(float(np.mean([a / b for a, b in paired])), 3) if paired else None
        ),
        "teleports": history.world.teleports,
        "teleports_by_cause": dict(history.world.teleports_by_cause),
        "robotaxi_teleports": history.world.robotaxi_teleports,
        "robotaxi_teleport_places": [
            {"at_s": round(at, 1), "vehicle": vid, "street": place}
            for at, vid, place in history.world.robotaxi_teleport_places
        ],
        "robotaxi_stuck_reroutes": history.world.stuck_reroutes,
        "robotaxi_held_short": history.world.held_short,
        "robotaxi_turned_elsewhere": history.world.turned_elsewhere,
        "vehicles_entered": history.world.departed,
        "background_vehicles": history.world.background_vehicles,
        "signals": history.signals,
        "signals_preempted_for_ambulances": history.world.preemptions,
        "cars_cleared_for_ambulances": history.world.cleared_for_ev,
        "requests_dropped_outside_map": history.demand.dropped_outside_map,
        "command_failures": history.fleet_command_failures,
        "sim_hours": round(sim_hours, 3),
        "service_hours": round(history.service_s / 3600.0, 3),
        "wall_s": round(history.wall_s, 2),
        "real_time_factor": round(history.simulated_s / history.wall_s, 1)
        if history.wall_s
        else None,
        "by_hour": by_hour(history.trips.values(), history.start_hour),
        "by_district": by_district(history.trips.values(), history.demand.districts),
        "energy": history.energy,
        # background traffic against INRIX speeds (`robotaxi calibrate`), when it was used
        "calibration": history.calibration,
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
    ("pickup_eta_error_p50_s", "pick-up ETA error p50 (late +)", "s"),
    ("pickup_eta_error_abs_p95_s", "pick-up ETA error p95 (size)", "s"),
    ("deadhead_km_share", "empty (deadhead) km share", ""),
    ("utilisation", "vehicle utilisation", ""),
    ("ev_yields", "EV yields", ""),
    ("ev_yield_stopped_mean_s", "EV yield: mean time stopped", "s"),
    ("ambulance_vs_ordinary_car_time_ratio", "ambulance / ordinary car travel time", ""),
    ("teleports", "SUMO teleports", ""),
    ("robotaxi_teleports", "robotaxi teleports", ""),
    ("sim_hours", "simulated", "h"),
    ("wall_s", "wall time", "s"),
    ("real_time_factor", "speed", "× real time"),
)


def format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return str(value)
