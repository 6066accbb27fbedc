"""SUMO's own taxi dispatch on our city: the peer baseline of the fleet benchmark.

The same network, background traffic (the same cached randomTrips file for the same seed),
ambulance runs, riders and fleet as a `robotaxi simulate` run, but SUMO's taxi device
dispatches the cars (`--device.taxi.dispatch-algorithm greedy|routeExtension|...`):

- each ride request becomes a `<person>` departing at the request time at the curb spot
  nearest its pick-up point, with one `<ride lines="taxi">` to the curb spot nearest its
  drop-off point (the same curb spots our fleet uses; riders do not walk to them);
- the N taxis are our robotaxi vType plus `has.taxi.device`, parked at the curb spots our
  fleet starts from (`fleet_start_curbs` replicates `FleetManager.initial_curbs`);
- the taxis dwell at pick-up and drop-off for the means of our riders' boarding + buckling
  and alighting times, so a car is busy for about as long per trip as ours.

SUMO's riders never give up. Patience is applied after the run: a rider whose pick-up wait
exceeded the request's `patience_s` counts as not served (our riders cancel instead, which
also frees the car; SUMO's cars still fetch them). Waits come from SUMO's personinfo output:
the ride's `depart` (the moment the rider boarded) minus the request time.

This module writes SUMO's inputs and reads its outputs; `sim.sumo_taxi.run_sumo_taxi` runs
it on the one runner, in a `SumoWorld` (libsumo: one simulation per process).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robotaxi.config import FleetConfig
from robotaxi.core import RideRequest, WorldError
from robotaxi.core.stats import percentile
from robotaxi.map import RoadMap
from robotaxi.world.traffic import ROBOTAXI_TYPE, SumoSetup, vehicle_types_xml

DISPATCH_ALGORITHMS = ("greedy", "greedyClosest", "greedyShared", "routeExtension")
ROUTING_ALGORITHMS = ("dijkstra", "astar", "CH", "CHWrapper")
TAXI_LINE = "taxi"
FLEET_RNG_TAG = 0xF1EE7  # FleetManager seeds its generator with [seed, 0xF1EE7]
PARK_S = 1e7


@dataclass(frozen=True, slots=True)
class SumoTaxiSettings:
    """How SUMO dispatches and routes. `routing_algorithm` "dijkstra" is SUMO's default."""

    dispatch_algorithm: str = "greedy"
    routing_algorithm: str = "dijkstra"
    dispatch_period_s: float = 15.0
    drain_s: float = 1800.0  # after the service window, finish rides for up to this long
    max_wall_s: float | None = None  # stop early (and say so) past this much wall time

    @property
    def label(self) -> str:
        router = "default router" if self.routing_algorithm == "dijkstra" else "CH"
        return f"SUMO {self.dispatch_algorithm} ({router})"


@dataclass(frozen=True, slots=True)
class RiderOutcome:
    """One rider in SUMO's run; times in s since the service start, None when it never came."""

    request_id: str
    request_s: float
    patience_s: float
    pickup_s: float | None
    delivered_s: float | None
    vehicle_id: str | None = None

    @property
    def wait_s(self) -> float | None:
        return None if self.pickup_s is None else self.pickup_s - self.request_s

    @property
    def served(self) -> bool:
        """Delivered, after a pick-up wait within the rider's patience."""
        wait = self.wait_s
        return self.delivered_s is not None and wait is not None and wait <= self.patience_s


@dataclass(frozen=True)
class SumoTaxiResult:
    settings: SumoTaxiSettings
    fleet_size: int
    service_s: float
    simulated_s: float
    wall_s: float  # the whole call: writing inputs, SUMO start-up, stepping, reading outputs
    window_wall_s: float | None  # from the call's start to the end of the service window
    capped: bool  # stopped at settings.max_wall_s before the drain finished
    riders: tuple[RiderOutcome, ...]
    teleports: int
    background_file: str | None


def fleet_start_curbs(curb_count: int, fleet_size: int, seed: int) -> list[int]:
    """The curb spots (indices) our fleet starts from: FleetManager.initial_curbs' draw."""
    rng = np.random.default_rng([seed, FLEET_RNG_TAG])
    picks = rng.choice(curb_count, size=fleet_size, replace=curb_count < fleet_size)
    return [int(i) for i in picks]


def taxi_types_xml(fleet: FleetConfig) -> str:
    """Our vTypes, with the robotaxi one given SUMO's taxi device and our riders' dwell times."""
    root = ET.fromstring(vehicle_types_xml(*_dims(fleet)))
    vtype = next(v for v in root.iter("vType") if v.get("id") == ROBOTAXI_TYPE)
    # boarding + buckling up before the car leaves, alighting at the destination (means)
    pickup_s = float(np.mean(fleet.boarding_s)) + float(np.mean(fleet.buckle_up_s))
    dropoff_s = float(np.mean(fleet.alighting_s))
    for key, value in (
        ("has.taxi.device", "true"),
        ("device.taxi.pickUpDuration", f"{pickup_s:.1f}"),
        ("device.taxi.dropOffDuration", f"{dropoff_s:.1f}"),
    ):
        ET.SubElement(vtype, "param", key=key, value=value)
    return ET.tostring(root, encoding="unicode")


def _dims(fleet: FleetConfig) -> tuple[float, float, float]:
    return fleet.vehicle_length_m, fleet.vehicle_width_m, fleet.max_speed_mps


def taxis_and_riders_xml(
    road_map: RoadMap, start_curbs: Sequence[int], requests: Sequence[RideRequest]
) -> str:
    """Taxis parked at their start curbs (t = 0), then one person per request, by time."""
    curbs = road_map.curbs
    riders = sorted(requests, key=lambda q: q.time.time_us)
    root = ET.Element("routes")
    for k, curb in enumerate(start_curbs):
        edge, pos = curbs.edge_ids[curb], float(curbs.pos[curb])
        lane = f"{edge}_{int(curbs.lane_index[curb])}"
        veh = ET.SubElement(
            root, "vehicle", id=f"taxi{k:03d}", type=ROBOTAXI_TYPE, depart="0",
            line=TAXI_LINE, departPos=f"{max(0.0, pos - 1.0):.2f}",
            departLane=str(int(curbs.lane_index[curb])), departSpeed="0",
        )  # fmt: skip
        ET.SubElement(veh, "route", edges=edge)
        # parked off the lane until dispatched, as our idle robotaxis are
        ET.SubElement(
            veh, "stop", lane=lane, startPos=f"{max(0.0, pos - 5.0):.2f}", endPos=f"{pos:.2f}",
            duration=f"{PARK_S:.0f}", parking="true",
        )  # fmt: skip
    xy = np.array(
        [[r.pickup_x, r.pickup_y, r.dropoff_x, r.dropoff_y] for r in riders], dtype=float
    ).reshape(-1, 2)
    idx = curbs.nearest(xy)[0].reshape(-1, 2) if riders else np.zeros((0, 2), dtype=np.int64)
    for r, (a, b) in zip(riders, idx, strict=True):
        person = ET.SubElement(
            root, "person", id=r.request_id, depart=f"{r.time.time_s:.2f}",
            departPos=f"{float(curbs.pos[a]):.2f}",
        )  # fmt: skip
        ET.SubElement(
            person, "ride", attrib={
                "from": curbs.edge_ids[a], "to": curbs.edge_ids[b],
                "arrivalPos": f"{float(curbs.pos[b]):.2f}", "lines": TAXI_LINE,
            },
        )  # fmt: skip
    return ET.tostring(root, encoding="unicode")


def check_requests_sorted(requests: Sequence[RideRequest]) -> None:
    times = [r.time.time_us for r in requests]
    if times != sorted(times):
        raise WorldError("ride requests must be sorted by time (as DemandSample gives them)")


def check_settings(settings: SumoTaxiSettings, start_curbs: Sequence[int]) -> None:
    if settings.dispatch_algorithm not in DISPATCH_ALGORITHMS:
        raise WorldError(
            f"unknown SUMO dispatch algorithm {settings.dispatch_algorithm!r}: "
            f"use one of {', '.join(DISPATCH_ALGORITHMS)}"
        )
    if settings.routing_algorithm not in ROUTING_ALGORITHMS:
        raise WorldError(
            f"unknown SUMO routing algorithm {settings.routing_algorithm!r}: "
            f"use one of {', '.join(ROUTING_ALGORITHMS)}"
        )
    if not start_curbs:
        raise WorldError("the SUMO taxi baseline needs at least one taxi: give start curbs")


def sumo_taxi_setup(
    road_map: RoadMap,
    fleet: FleetConfig,
    requests: Sequence[RideRequest],
    start_curbs: Sequence[int],
    settings: SumoTaxiSettings,
    *,
    service_s: float,
    work_dir: Path,
) -> SumoSetup:
    """SUMO's inputs for its own taxi dispatch on our city: the taxis and riders as route
    files, the taxi device's options, and where SUMO writes each rider's outcome
    (`personinfo.xml` in `work_dir`, read back by `read_rider_outcomes`)."""
    check_settings(settings, start_curbs)
    check_requests_sorted(requests)
    work_dir.mkdir(parents=True, exist_ok=True)
    riders_file = work_dir / "taxis-riders.rou.xml"
    riders_file.write_text(taxis_and_riders_xml(road_map, start_curbs, requests))
    args = (
        "--device.taxi.dispatch-algorithm", settings.dispatch_algorithm,
        "--device.taxi.dispatch-period", f"{settings.dispatch_period_s:g}",
        "--device.taxi.idle-algorithm", "stop",
        "--tripinfo-output", str(work_dir / "tripinfo.xml"),
        "--personinfo-output", str(work_dir / "personinfo.xml"),
        "--tripinfo-output.write-unfinished", "true",
    )  # fmt: skip
    return SumoSetup(
        types_xml=taxi_types_xml(fleet),
        route_files=(riders_file,),
        extra_args=args,
        routing_algorithm=settings.routing_algorithm,
        sumo_end_s=service_s + settings.drain_s + 1,
    )


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    x = float(value)
    return None if x < 0 or math.isnan(x) else x


def read_rider_outcomes(
    personinfo: Path, requests: Sequence[RideRequest], *, deliver_by_s: float
) -> tuple[RiderOutcome, ...]:
    """Pick-up and delivery time per request from SUMO's personinfo output (-1 = never)."""
    rides: dict[str, tuple[float | None, float | None, str | None]] = {}
    if personinfo.exists():
        for _event, elem in ET.iterparse(personinfo):
            if elem.tag != "personinfo":
                continue
            ride = elem.find("ride")
            if ride is not None:
                pickup = _float(ride.get("depart"))
                arrival = _float(ride.get("arrival"))
                if arrival is not None and arrival > deliver_by_s + 1e-6:
                    arrival = None
                vehicle = (ride.get("vehicle") or None) if pickup is not None else None
                rides[elem.get("id", "")] = (pickup, arrival, vehicle)
            elem.clear()
    out = []
    for r in requests:
        pickup, arrival, vehicle = rides.get(r.request_id, (None, None, None))
        out.append(
            RiderOutcome(r.request_id, r.time.time_s, r.patience_s, pickup, arrival, vehicle)
        )
    return tuple(out)


def shared_rides(riders: Sequence[RiderOutcome]) -> int:
    """Riders who were in a car together with another rider (routeExtension may pool them)."""
    trips: dict[str, list[tuple[float, float]]] = {}
    for r in riders:
        if r.vehicle_id is not None and r.pickup_s is not None:
            end = r.delivered_s if r.delivered_s is not None else math.inf
            trips.setdefault(r.vehicle_id, []).append((r.pickup_s, end))
    shared = 0
    for spans in trips.values():
        for i, (a0, a1) in enumerate(spans):
            # on board together: the two intervals overlap by more than a boarding step
            if any(a0 < b1 - 1.0 and b0 < a1 - 1.0 for j, (b0, b1) in enumerate(spans) if j != i):
                shared += 1
    return shared


def baseline_kpis(result: SumoTaxiResult) -> dict[str, Any]:
    """served %, waits and counts over all riders, in the same terms as metrics.fleet_kpis."""
    riders = result.riders
    n = len(riders)
    served = [r for r in riders if r.served]
    waits = [r.wait_s for r in served if r.wait_s is not None]
    picked = [r for r in riders if r.pickup_s is not None]
    late = [r for r in riders if r.delivered_s is not None and not r.served]

    def stat(fn: Callable[[list[float]], float | None]) -> float | None:
        value = fn(waits) if waits else None
        return None if value is None else round(float(value), 1)

    return {
        "label": result.settings.label,
        "dispatch_algorithm": result.settings.dispatch_algorithm,
        "routing_algorithm": result.settings.routing_algorithm,
        "dispatch_period_s": result.settings.dispatch_period_s,
        "fleet": result.fleet_size,
        "requests": n,
        "served": len(served),
        "served_pct": round(100.0 * len(served) / n, 2) if n else 0.0,
        "picked_up": len(picked),
        "delivered_but_past_patience": len(late),
        "never_picked_up": n - len(picked),
        "shared_rides": shared_rides(riders),
        "wait_mean_s": stat(np.mean),
        "wait_p50_s": stat(lambda w: percentile(w, 50)),
        "wait_p95_s": stat(lambda w: percentile(w, 95)),
        "teleports": result.teleports,
        "simulated_s": round(result.simulated_s, 1),
        "wall_s": round(result.wall_s, 2),
        "window_wall_s": None if result.window_wall_s is None else round(result.window_wall_s, 2),
        "real_time_factor": round(result.simulated_s / result.wall_s, 1) if result.wall_s else None,
        "capped": result.capped,
    }
