"""Pure functions over a recorded history: driving metrics, fleet KPIs, plots.

The fleet KPIs are defined once, in `fleet.kpis` (the live service uses them too), and
re-exported here; `metrics.fleet_kpis` builds `robotaxi simulate`'s report from them.
"""

from robotaxi.core.stats import percentile
from robotaxi.fleet.kpis import (
    cancellations_by_cause,
    detour_ratios,
    ev_yield_kpis,
    first_time,
    in_vehicle_times_s,
    pickup_waits_s,
    trip_kpis,
    vehicle_kpis,
    walks_m,
)

__all__ = [
    "cancellations_by_cause",
    "detour_ratios",
    "ev_yield_kpis",
    "first_time",
    "in_vehicle_times_s",
    "percentile",
    "pickup_waits_s",
    "trip_kpis",
    "vehicle_kpis",
    "walks_m",
]
