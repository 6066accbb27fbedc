"""The service runner: one flat loop that owns the world (DESIGN.md, "One tick").

world.step → snapshot → fleet.tick → world.apply, with history recorded for metrics and
callbacks for progress and the event log. Only this package calls world and fleet together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robotaxi.config import RunConfig
from robotaxi.core import RideRequest, TimePoint, TripEvent, VehicleEvent
from robotaxi.fleet.demand import (
    DemandModel,
    DemandSample,
    ServiceArea,
    SyntheticDemand,
    TncDemand,
    load_tnc_zones,
)
from robotaxi.fleet.manager import FleetManager, YieldRecord
from robotaxi.fleet.trips import Trip
from robotaxi.map import RoadMap, RoutingGraph, build_network, load_map
from robotaxi.world.sumo_world import EmergencyRecord, SumoWorld, WorldStats

# called with the new ride requests, trip events and vehicle events since the last call
EventSink = Callable[[Sequence[RideRequest], Sequence[TripEvent], Sequence[VehicleEvent]], None]
Progress = Callable[[float, float, str], None]  # (sim seconds done, total, status text)

TRAIL_EVERY_S = 10.0
TRAVEL_TIME_UPDATE_S = 300.0
DRAIN_S = 1800.0  # after the last request, finish trips in progress for up to this long
EVENT_FLUSH = 500


@dataclass
class VehicleSummary:
    vehicle_id: str
    km_empty: float
    km_occupied: float
    busy_s: float
    occupied_s: float


@dataclass
class ServiceHistory:
    """What a run recorded: the input for fleet KPIs and pictures (pure data)."""

    city: str
    seed: int
    policy: str
    fleet_size: int
    service_s: float
    simulated_s: float
    wall_s: float
    requests: tuple[RideRequest, ...]
    demand: DemandSample
    trips: dict[str, Trip]
    yields: list[YieldRecord]
    vehicles: list[VehicleSummary]
    emergency: list[EmergencyRecord]
    world: WorldStats
    trails: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    fleet_command_failures: int = 0
    background: bool = True


def load_city(config: RunConfig) -> tuple[RoadMap, RoutingGraph]:
    built = build_network(config.map.city, config.map.data_dir, config.map.cache_dir)
    road_map = load_map(built)
    return road_map, RoutingGraph(road_map)


def place_fleet(world: SumoWorld, fleet: FleetManager) -> None:
    """Put the fleet's cars at their starting curbs, in the world and in the fleet's books."""
    for k, curb in enumerate(fleet.initial_curbs()):
        vehicle_id = f"taxi{k:03d}"
        world.add_robotaxi(vehicle_id, curb)
        fleet.add_vehicle(vehicle_id, curb)


def make_demand(config: RunConfig, road_map: RoadMap) -> DemandModel:
    """Real SFCTA demand on San Francisco maps, synthetic hot spots on the grid city."""
    bbox = road_map.bounds
    if config.map.city == "grid":
        return SyntheticDemand(bbox, config.demand, layout_seed=config.seed, inside=road_map.inside)
    zones = load_tnc_zones(config.map.data_dir)
    area = ServiceArea(to_xy=road_map.projection.lonlat_to_xy, inside=road_map.inside, bbox_m=bbox)
    return TncDemand(zones, area, config.demand)


class ServiceSimulation:
    """Runs a robotaxi service at fleet fidelity for the configured window."""

    def __init__(
        self,
        config: RunConfig,
        work_dir: Path,
        *,
        event_sink: EventSink | None = None,
        progress: Progress | None = None,
        background: bool = True,
        with_fleet: bool = True,
        city: tuple[RoadMap, RoutingGraph] | None = None,
        demand: DemandModel | None = None,
    ) -> None:
        """`city` and `demand` may be given ready-made (the CLI builds them first, so that bad
        input fails before the progress bar starts); otherwise they are built from `config`."""
        self.config = config
        self._city = city
        self._demand = demand
        self.work_dir = work_dir
        self.event_sink = event_sink
        self.progress = progress
        self.background = background
        self.with_fleet = with_fleet
        self.road_map: RoadMap | None = None

    def run(self) -> ServiceHistory:
        cfg = self.config
        wall0 = time.perf_counter()
        road_map, graph = self._city or load_city(cfg)
        self.road_map = road_map
        day, start_hour = cfg.start_day_hour
        demand = self._demand or make_demand(cfg, road_map)
        sample = demand.sample(day, start_hour, cfg.hours, seed=cfg.seed)
        requests = sample.requests if self.with_fleet else ()
        service_s = cfg.hours * 3600.0
        fleet = FleetManager(
            road_map, graph, cfg.fleet, cfg.dispatch,
            demand=demand, day=day, start_hour=start_hour, seed=cfg.seed,
        )  # fmt: skip
        world = SumoWorld(
            road_map, graph, cfg.world, cfg.fleet,
            seed=cfg.seed, end_s=service_s, work_dir=self.work_dir, background=self.background,
        )  # fmt: skip
        trails: dict[str, list[tuple[float, float, float]]] = {}
        pending_events: list[TripEvent] = []
        pending_rides: list[RideRequest] = []
        pending_vehicle: list[VehicleEvent] = []
        total_s = service_s + DRAIN_S
        next_request = 0
        next_trail = 0.0
        next_tt_update = TRAVEL_TIME_UPDATE_S
        with world:
            if self.with_fleet:
                place_fleet(world, fleet)
            now = 0.0
            while True:
                world.step()
                now = world.time.time_s
                snapshot = world.snapshot()
                due: list[RideRequest] = []
                while next_request < len(requests) and requests[next_request].time.time_s <= now:
                    due.append(requests[next_request])
                    next_request += 1
                if self.with_fleet:
                    result = fleet.tick(snapshot, due)
                    for command, reason in world.apply(result.commands):
                        fleet.on_command_failed(command, reason)
                    pending_events.extend(result.events)
                    pending_rides.extend(due)
                    pending_vehicle.extend(result.vehicle_events)
                    if self.event_sink is not None and len(pending_events) >= EVENT_FLUSH:
                        self.event_sink(pending_rides, pending_events, pending_vehicle)
                        pending_events, pending_rides, pending_vehicle = [], [], []
                if now >= next_trail:
                    next_trail += TRAIL_EVERY_S
                    xmin, ymin, xmax, ymax = road_map.bounds
                    for i, vid in enumerate(snapshot.ids):
                        x, y = float(snapshot.xy[i, 0]), float(snapshot.xy[i, 1])
                        # a car between teleport and re-insertion reports a bogus position
                        if xmin - 100 <= x <= xmax + 100 and ymin - 100 <= y <= ymax + 100:
                            trails.setdefault(vid, []).append((now, x, y))
                if now >= next_tt_update:
                    next_tt_update += TRAVEL_TIME_UPDATE_S
                    graph.update_travel_times(world.edge_travel_times(graph.edge_ids))
                if self.progress is not None and int(now) % 60 == 0:
                    self.progress(min(now, service_s), service_s, self._status(fleet, world))
                if now + 1e-9 >= service_s and self._drained(fleet, now, service_s, total_s):
                    final_status = self._status(fleet, world)
                    break
        if self.event_sink is not None and (pending_events or pending_rides or pending_vehicle):
            self.event_sink(pending_rides, pending_events, pending_vehicle)
        if self.progress is not None:
            self.progress(service_s, service_s, final_status)
        vehicles = [
            VehicleSummary(v.vehicle_id, v.km_empty, v.km_occupied, v.busy_s, v.occupied_s)
            for v in fleet.vehicles.values()
        ]
        return ServiceHistory(
            city=cfg.map.city,
            seed=cfg.seed,
            policy=cfg.dispatch.policy,
            fleet_size=cfg.fleet.size if self.with_fleet else 0,
            service_s=service_s,
            simulated_s=now,
            wall_s=time.perf_counter() - wall0,
            requests=tuple(requests),
            demand=sample,
            trips=fleet.trips,
            yields=fleet.yields + [v.yielding for v in fleet.vehicles.values() if v.yielding],
            vehicles=vehicles,
            emergency=list(world.emergency.values()),
            world=world.stats,
            trails=trails,
            fleet_command_failures=fleet.command_failures,
            background=self.background,
        )

    def _drained(self, fleet: FleetManager, now: float, service_s: float, total_s: float) -> bool:
        if now >= total_s or not self.with_fleet:
            return True
        return all(t.state.terminal for t in fleet.trips.values())

    @staticmethod
    def _status(fleet: FleetManager, world: SumoWorld) -> str:
        done = sum(1 for t in fleet.trips.values() if t.state.value == "completed")
        return f"{len(fleet.trips)} requests, {done} completed, {world.vehicle_count()} vehicles"


def first_time(trip: Trip, state: str) -> TimePoint | None:
    for event in trip.events:
        if event.state.value == state:
            return event.time
    return None


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan
