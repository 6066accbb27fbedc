"""`robotaxi simulate`: a robotaxi service at fleet fidelity, set up on the one runner.

`ServiceSimulation` builds the city, the demand, the fleet and a world (SUMO by default,
any `World` by factory), hangs the trail recorder, event sink and progress callbacks off a
`sim.simulation.Simulation`, runs it over the service window plus the time it takes to
finish the trips under way, and returns the `ServiceHistory` that metrics read.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from robotaxi.config import FleetConfig, RunConfig, WorldConfig, city_settings
from robotaxi.core import ConfigError, EmergencyRecord, RideRequest, World, WorldStats
from robotaxi.core.types import FloatArray
from robotaxi.fleet.charging import fleet_charging_for_map
from robotaxi.fleet.demand import (
    DemandModel,
    DemandSample,
    ServiceArea,
    SyntheticDemand,
    TncDemand,
)
from robotaxi.fleet.manager import FleetManager, YieldRecord
from robotaxi.fleet.trips import Trip
from robotaxi.map import RoadMap, RoutingGraph, build_network, load_map
from robotaxi.map.signals import DATASF_SIGNALS, preemption_tls_ids
from robotaxi.map.zones import load_tnc_zones, reaches_san_francisco
from robotaxi.sim.callbacks import (
    EventBatcher,
    EventSink,
    Progress,
    ProgressReporter,
    TrailRecorder,
)
from robotaxi.sim.simulation import Callback, RequestQueue, Simulation, Tick, TravelTimes

__all__ = ["EventSink", "Progress", "ServiceHistory", "ServiceSimulation", "WorldFactory"]

TRAIL_EVERY_S = 10.0
TRAVEL_TIME_UPDATE_S = 300.0
DRAIN_S = 1800.0  # after the last request, finish trips in progress for up to this long
EVENT_FLUSH = 500


class WorldFactory(Protocol):
    """Builds the world of a run (`SumoWorld` and `FakeWorld` both fit)."""

    def __call__(
        self,
        road_map: RoadMap,
        graph: RoutingGraph,
        world: WorldConfig,
        fleet: FleetConfig,
        *,
        seed: int,
        end_s: float,
        work_dir: Path,
        background: bool,
        start_day_hour: tuple[int, float],
        data_dir: Path | None,
    ) -> World: ...


def sumo_world(*args: Any, **kwargs: Any) -> World:
    """The default world: the city in SUMO (`SumoWorld`, called as a `WorldFactory`)."""
    from robotaxi.world.sumo_world import SumoWorld  # libsumo loads only when a run needs it

    return SumoWorld(*args, **kwargs)


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
    trails: dict[str, FloatArray] = field(default_factory=dict)  # N×3: t s, x m, y m
    fleet_command_failures: int = 0
    background: bool = True
    start_hour: float = 0.0  # clock hour the service started (8.0 for 08:00)
    energy: dict[str, Any] | None = None  # the energy KPI record (None: no batteries)
    signals: int = 0  # traffic lights in the network
    # the city's background calibration this run used (`config.city_settings`), if any
    calibration: dict[str, Any] | None = None


def load_city(config: RunConfig) -> tuple[RoadMap, RoutingGraph]:
    built = build_network(
        config.map.city,
        config.map.data_dir,
        config.map.cache_dir,
        traffic_model=config.world.traffic_model,
    )
    road_map = load_map(built)
    if config.map.city == "sf":
        # San Francisco's own signals: only those DataSF lists with fire pre-emption
        signals = preemption_tls_ids(road_map, config.map.data_dir / DATASF_SIGNALS)
        road_map = dataclasses.replace(road_map, preemption_signals=signals)
    if config.map.solid_centre_lines:
        unknown = sorted(set(config.map.solid_centre_lines) - set(road_map.edges))
        if unknown:
            raise ConfigError(
                f"map.solid_centre_lines: no edge {unknown[0]!r} in map {road_map.name}"
            )
        solid = road_map.solid_centre_lines | frozenset(config.map.solid_centre_lines)
        road_map = dataclasses.replace(road_map, solid_centre_lines=solid)
    graph = RoutingGraph(road_map)
    graph.prepare()
    return road_map, graph


def make_demand(config: RunConfig, road_map: RoadMap) -> DemandModel:
    """Real SFCTA demand on maps of San Francisco; synthetic hot spots at
    `demand.requests_per_hour` on the grid city and on a map of another place (SFCTA's data
    covers San Francisco only)."""
    bbox = road_map.bounds
    if config.map.city == "grid" or not reaches_san_francisco(road_map):
        return SyntheticDemand(bbox, config.demand, layout_seed=config.seed, inside=road_map.inside)
    zones = load_tnc_zones(config.map.data_dir)
    area = ServiceArea.of_map(road_map)
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
        world: WorldFactory = sumo_world,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        """`city` and `demand` may be given ready-made (the CLI builds them first, so that bad
        input fails before the progress bar starts); otherwise they are built from `config`.
        `world` builds the world (SUMO unless told otherwise); `callbacks` run after ours."""
        self.config = config
        self._city = city
        self._demand = demand
        self.work_dir = work_dir
        self.event_sink = event_sink
        self.progress = progress
        self.background = background
        self.with_fleet = with_fleet
        self.world_factory = world
        self.extra_callbacks = list(callbacks)
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
        total_s = service_s + DRAIN_S
        charging = fleet_charging_for_map(
            cfg.energy, road_map, demand=demand, day=day, start_hour=start_hour, seed=cfg.seed
        )
        fleet = FleetManager(
            road_map, graph, cfg.fleet, cfg.dispatch,
            demand=demand, day=day, start_hour=start_hour, seed=cfg.seed, charging=charging,
        )  # fmt: skip
        world = self.world_factory(
            road_map, graph, cfg.world, cfg.fleet,
            seed=cfg.seed, end_s=service_s, work_dir=self.work_dir, background=self.background,
            start_day_hour=(day, start_hour), data_dir=cfg.map.data_dir,
        )  # fmt: skip
        trails = TrailRecorder(road_map.bounds, every_s=TRAIL_EVERY_S)
        # the routing graph's travel times are the fleet's: traffic alone reads none
        callbacks: list[Callback] = [trails]
        if self.with_fleet:
            callbacks.insert(0, TravelTimes(TRAVEL_TIME_UPDATE_S))
        if self.event_sink is not None:
            callbacks.append(EventBatcher(self.event_sink, EVENT_FLUSH))
        if self.progress is not None:
            callbacks.append(ProgressReporter(self.progress, service_s, _status))
        callbacks += self.extra_callbacks
        sim = Simulation(
            world, graph,
            fleet=fleet if self.with_fleet else None,
            requests=RequestQueue(requests),
            callbacks=callbacks,
            step_s=cfg.world.tick_s,
        )  # fmt: skip

        def done(tick: Tick) -> bool:
            now = tick.time_s
            if now + 1e-9 < service_s:
                return False
            if now >= total_s or sim.fleet is None:
                return True
            return all(t.state.terminal for t in fleet.trips.values())

        with sim:
            last = sim.run(until=done)
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
            simulated_s=last.time_s,
            wall_s=time.perf_counter() - wall0,
            requests=tuple(requests),
            demand=sample,
            trips=fleet.trips,
            yields=fleet.yields + [v.yielding for v in fleet.vehicles.values() if v.yielding],
            vehicles=vehicles,
            emergency=list(world.emergency.values()),
            world=world.stats,
            trails=trails.trails(),
            fleet_command_failures=fleet.command_failures,
            background=self.background,
            start_hour=start_hour,
            signals=len(road_map.traffic_lights),
            calibration=_calibration(cfg) if self.background else None,
            energy=(
                charging.kpis(
                    rides=fleet.completed,
                    end_s=last.time_s,
                )
                if charging is not None
                else None
            ),
        )


def _calibration(config: RunConfig) -> dict[str, Any] | None:
    """The calibration table behind the city's background settings, when the run used them
    (Plan Bay Area background at the scale the city's settings file gives)."""
    entry = city_settings(config.map.city, config.world.traffic_model)
    if entry is None or config.world.background_demand != "planbayarea":
        return None
    calibration = entry.get("calibration")
    scale = (entry.get("settings") or {}).get("world", {}).get("background_scale")
    if not isinstance(calibration, dict) or scale != config.world.background_scale:
        return None  # the run chose its own scale
    return calibration


def _status(sim: Simulation) -> str:
    requests = len(sim.fleet.trips) if sim.fleet is not None else 0
    done = sim.fleet.completed if sim.fleet is not None else 0
    return f"{requests} requests, {done} completed, {sim.world.vehicle_count()} vehicles"
