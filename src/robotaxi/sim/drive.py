"""Autonomy fidelity: one car driven by our stack in SUMO city traffic (`robotaxi drive`).

Each tick: SUMO advances; the ego's cameras see the ground truth around it (SUMO's vehicles
plus scripted pedestrians); the stack tracks, predicts, plans and controls; the bicycle model
moves the car; SUMO is told where it went (`moveToXY`), so traffic reacts to it. To let an
ambulance pass a car stopped at the kerb, the ego is parked off its lane in SUMO while it
waits (the recipe in SUMO-NOTES) and put back when it moves on.

Sensing as on a real car (the scenario's `sensors`, on unless it turns them off): roof
microphones — each tick the array renders what it hears of every emergency vehicle with its
siren on within `audio_range_m` (from SUMO's ground truth at any range: sirens are heard
through buildings, with an extra loss when a block stands in between) over the street
background, and the stack's siren detector listens; city blocks — polygons from the map,
behind the pavement, that hide what is behind them from the cameras.

Scripted road users other than cars (cyclists, vans, buses, trucks) are SUMO vehicles of
their own vTypes (`SCENARIO_VTYPES`, added to the city's); a lane closed by road works is a
fenced works area that fills the lane, a standing obstacle the cameras see (SUMO's own
traffic is not told of it: scenarios keep their scripted cars out of the closed lane).
"""

from __future__ import annotations

import dataclasses
import math
import time as wall
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robotaxi.autonomy.planning.behaviour import Behaviour, BehaviourConfig, BehaviourPlanner
from robotaxi.autonomy.planning.motion import MotionPlanner
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.planning.route import CURB_SHOULDER_M, LaneRoute, reference_path
from robotaxi.autonomy.stack import (
    AutonomyStack,
    IdmPlanner,
    PdmPlanner,
    Planner,
    StackOutput,
    StageTimes,
)
from robotaxi.autonomy.vehicle import IPACE, VehicleState
from robotaxi.config import RunConfig, load_config
from robotaxi.config.scenario import LaneClosureSpec, ScenarioSpec
from robotaxi.config.sensors import MicArrayConfig
from robotaxi.core import (
    AgentKind,
    AgentState,
    ScenarioError,
    SirenState,
    TimePoint,
    TrajectoryColumn,
    VehicleEvent,
    WorldSnapshot,
    emergency_agents,
)
from robotaxi.core.types import FloatArray, Track
from robotaxi.map import Lane, RoadMap, RoutingGraph
from robotaxi.sim.ego import KERB_BEHAVIOURS, EgoCar, SoleCarDriver
from robotaxi.sim.runner import load_city
from robotaxi.sim.scenario_operator import ScenarioOperator
from robotaxi.sim.sensors import AUDIO_STAGE, CarSensors
from robotaxi.sim.sensors.cameras import map_block_occluders
from robotaxi.sim.simulation import Callback, Simulation, Tick
from robotaxi.world.traffic import SumoSetup, vehicle_types_xml

if TYPE_CHECKING:
    from robotaxi.world.sumo_world import SumoWorld

EGO_ID = "ego"
EV_YIELD_RANGE_M = 120.0
# behaviours that count as reacting to an EV
EV_REACTIONS = (Behaviour.EV_CAUTION, Behaviour.YIELD_TO_EV)
# Buildings stand behind the pavement, and the pavement starts at the kerb: the kerb lies
# `CURB_SHOULDER_M` right of the lane edge (where the car pulls over and pedestrians step
# off), so the blocks start that much plus a pavement's width from the lane edge.
PAVEMENT_M = 2.0
C = TrajectoryColumn
# vTypes of the scripted road users beyond cars and ambulances (SUMO's sizes for its
# default bicycle, delivery van, city bus and lorry); the default lane model keeps each on
# its lane's centre
SCENARIO_VTYPES = """
    <vType id="bicycle" vClass="bicycle" length="1.6" width="0.65" maxSpeed="8.0"
           accel="1.2" decel="3.0" sigma="0.2" minGap="0.5" color="60,200,60"/>
    <vType id="van" vClass="delivery" length="6.5" width="2.16" accel="2.0" decel="4.5"
           sigma="0.2" minGap="2.5" color="240,240,240"/>
    <vType id="bus" vClass="bus" length="12.0" width="2.5" maxSpeed="14.0" accel="1.2"
           decel="4.0" sigma="0.2" minGap="2.5" color="250,170,0"/>
    <vType id="truck" vClass="truck" length="10.0" width="2.5" maxSpeed="14.0" accel="1.3"
           decel="4.0" sigma="0.2" minGap="2.5" color="120,80,40"/>
"""
# a works area keeps this clear of its lane's edges (m); the gap shows the fence's cones
WORKS_INSET_M = 0.2


@dataclass
class DrivingRecord:
    """Everything recorded per tick, as lists (metrics turns it into a DrivingHistory)."""

    path_signal_ids: tuple[str, ...]
    time_s: list[float] = field(default_factory=list)
    ego: list[tuple[float, ...]] = field(default_factory=list)  # TrajectoryColumn order
    planned: list[FloatArray] = field(default_factory=list)
    behaviour: list[Behaviour] = field(default_factory=list)
    signals: list[tuple[str, ...]] = field(default_factory=list)
    # agent id → (kind, length, width, {tick: (x, y, heading, speed, siren)})
    agents: dict[str, tuple[AgentKind, float, float, dict[int, tuple[float, ...]]]] = field(
        default_factory=dict
    )
    reached_stop: bool = False
    # per tick, with microphones: the siren detector's verdict (empty without microphones)
    siren_heard: list[bool] = field(default_factory=list)
    # EV id → first time its siren was on anywhere in the world / its lights first detected
    # by a camera (s)
    ev_siren_onset_s: dict[str, float] = field(default_factory=dict)
    ev_first_seen_s: dict[str, float] = field(default_factory=dict)
    # road user id → when a camera first detected it (s): what occlusion hid, and how long
    first_detected_s: dict[str, float] = field(default_factory=dict)

    @classmethod
    def empty(cls, path: ReferencePath) -> DrivingRecord:
        return cls(tuple(line.signal_id for line in path.stop_lines))

    def add(
        self,
        now: TimePoint,
        ego: VehicleState,
        out: StackOutput,
        truth: Sequence[AgentState],
        signals: Mapping[str, str],
    ) -> None:
        tick = len(self.time_s)
        self.time_s.append(now.time_s)
        self.ego.append(
            (now.time_s, ego.x, ego.y, ego.heading, ego.speed, ego.accel, ego.steer_rad)
        )
        self.planned.append(out.trajectory.states)
        self.behaviour.append(out.behaviour)
        self.signals.append(tuple(signals.get(sid, "") for sid in self.path_signal_ids))
        for agent in truth:
            entry = self.agents.setdefault(
                agent.agent_id, (agent.kind, agent.length, agent.width, {})
            )
            entry[3][tick] = (
                agent.x,
                agent.y,
                agent.heading,
                agent.speed,
                float(agent.siren == SirenState.ON),
            )


@dataclass
class Frame:
    """What the renderer needs of one tick."""

    t: float
    ego: VehicleState
    planned: FloatArray
    tracks: tuple[Track, ...]
    truth: tuple[AgentState, ...]
    behaviour: Behaviour
    parked: bool


@dataclass
class DriveResult:
    scenario: ScenarioSpec
    record: DrivingRecord
    frames: list[Frame] = field(default_factory=list)
    collisions: list[tuple[str, str]] = field(default_factory=list)
    stage_ms: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    road_map: RoadMap | None = None
    route: LaneRoute | None = None
    microphones: bool = False
    city_blocks: bool = False
    audio_ms: list[float] = field(default_factory=list)  # rendering audio, wall time per tick
    audio_cpu_ms: list[float] = field(default_factory=list)  # … and this thread's CPU time
    stage_times: StageTimes | None = None  # the stack's per-tick runtimes of every stage
    sensor_times: StageTimes | None = None  # the simulated sensors' (cameras, audio)
    # remote assistance (a scenario with an `operator`): every request (JSON, with its time
    # to resolution) and event, and the times (s) the car stood across a solid centre line
    assistance: list[dict[str, Any]] = field(default_factory=list)
    assistance_events: list[VehicleEvent] = field(default_factory=list)
    across_solid_line_s: list[float] = field(default_factory=list)


def _run_config(spec: ScenarioSpec, data_dir: Path | None, cache_dir: Path | None) -> RunConfig:
    overrides: dict[str, object] = {
        "map.city": spec.city,
        "seed": spec.seed,
        "world.step_s": spec.dt_s,
        "world.emergency_per_hour": 0.0,
        "world.background_vehicles_per_hour_per_km2": spec.background_per_hour_per_km2,
    }
    if data_dir is not None:
        overrides["map.data_dir"] = str(data_dir)
    if cache_dir is not None:
        overrides["map.cache_dir"] = str(cache_dir)
    return load_config(overrides=overrides)


def _pedestrians(spec: ScenarioSpec, route: LaneRoute, t: float) -> list[AgentState]:
    out = []
    path = route.path
    for ped in spec.pedestrians:
        if t < ped.start_s:
            continue
        right = float(path.right_room_at(ped.cross_at_m)) + 1.5
        left = float(path.left_room_at(ped.cross_at_m)) + 1.5
        walked = (t - ped.start_s) * ped.speed_mps
        start = ped.start_offset_m
        if start is None:
            start = -right if ped.from_side == "right" else left
        d = start + walked if ped.from_side == "right" else start - walked
        if not (-right <= d <= left):
            continue  # on the far pavement: out of the road
        x, y, heading = path.pose_at(ped.cross_at_m, d)
        cross_heading = float(heading) + (math.pi / 2 if ped.from_side == "right" else -math.pi / 2)
        out.append(
            AgentState(
                ped.id,
                AgentKind.PEDESTRIAN,
                float(x),
                float(y),
                cross_heading,
                ped.speed_mps,
                length=0.5,
                width=0.6,
            )
        )
    return out


def lane_closure_agents(road_map: RoadMap, spec: ScenarioSpec) -> list[AgentState]:
    """The scenario's works areas as standing obstacles, one box filling each closed stretch
    of lane (its fence and cones); straight lanes assumed, as on the grid."""
    out = []
    for k, closure in enumerate(spec.lane_closures):
        lane = _closure_lane(road_map, closure, spec.name)
        line = np.asarray(lane.centerline, dtype=np.float64)
        seg = np.hypot(*np.diff(line, axis=0).T)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        mid = 0.5 * (closure.from_m + closure.to_m)
        x, y = float(np.interp(mid, s, line[:, 0])), float(np.interp(mid, s, line[:, 1]))
        i = int(np.clip(np.searchsorted(s, mid) - 1, 0, len(seg) - 1))
        heading = math.atan2(line[i + 1, 1] - line[i, 1], line[i + 1, 0] - line[i, 0])
        full = lane.width - 2 * WORKS_INSET_M
        width = full if closure.width_m is None else min(closure.width_m, full)
        right = 0.5 * (full - width)  # from the right edge: the box's centre moves right
        x, y = x + right * math.sin(heading), y - right * math.cos(heading)
        out.append(
            AgentState(
                f"works{k}", AgentKind.UNKNOWN, x, y, heading, 0.0,
                length=closure.to_m - closure.from_m, width=width,
            )
        )  # fmt: skip
    return out


def _closure_lane(road_map: RoadMap, closure: LaneClosureSpec, scenario: str) -> Lane:
    edge = road_map.edges.get(closure.edge)
    if edge is None:
        raise ScenarioError(f"scenario {scenario}: lane closure on unknown edge {closure.edge!r}")
    lanes = [lane for lane in road_map.robotaxi_lanes(edge) if lane.index == closure.lane]
    if not lanes:
        raise ScenarioError(
            f"scenario {scenario}: edge {closure.edge} has no lane {closure.lane} to close"
        )
    lane = lanes[0]
    if closure.to_m > lane.length:
        raise ScenarioError(
            f"scenario {scenario}: lane closure ends at {closure.to_m} m, past the end of "
            f"{closure.edge} ({lane.length:.0f} m)"
        )
    return lane


class _Scenario(Callback):
    """Puts the ego and the scenario's scripted road users into the world, each when due."""

    name = "scenario_traffic"

    def __init__(self, spec: ScenarioSpec, world: SumoWorld) -> None:
        self.spec = spec
        self.world = world
        self.pending = sorted(spec.vehicles, key=lambda v: v.depart_s)

    def on_start(self, sim: Simulation) -> None:
        ego = self.spec.ego
        self.world.add_ego(
            EGO_ID, ego.route, depart_pos=max(ego.start_pos_m, 0.1), lane=ego.start_lane,
            speed=ego.start_speed_mps,
        )  # fmt: skip
        self._add_due(0.0)

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        self._add_due(tick.time_s)

    def _add_due(self, t: float) -> None:
        while self.pending and self.pending[0].depart_s <= t:
            v = self.pending.pop(0)
            self.world.add_vehicle(
                v.id, v.route, type_id=v.type, depart_pos=v.pos_m, lane=v.lane,
                speed=v.speed_mps, max_speed=v.max_speed_mps,
                stop_at=v.stop_at_m, stop_s=v.stop_s,
            )  # fmt: skip


class _ScenarioDriver(SoleCarDriver):
    """The scenario's one car, at autonomy fidelity (`CarDrivers` for the runner): each
    world step it senses, plans and moves (`EgoCar`), and what happened is recorded."""

    def __init__(
        self,
        spec: ScenarioSpec,
        car: EgoCar,
        route: LaneRoute,
        world: SumoWorld,
        result: DriveResult,
        *,
        keep_frames: bool,
        progress: Callable[[float, float], None] | None,
    ) -> None:
        self.spec = spec
        self.car = car
        self.route = route
        self.world = world
        self.result = result
        self.keep_frames = keep_frames
        self.progress = progress
        self.stop_request = spec.ego.stop_at_m
        self.stopped_since: float | None = None
        self.ticks = 0
        self.works = lane_closure_agents(world.road_map, spec)
        self.operator = (
            ScenarioOperator(spec.operator, world.road_map, route, EGO_ID, ego=spec.ego)
            if spec.operator is not None
            else None
        )
        self.solid_lines = bool(np.any(route.path.solid_centre_line > 0))

    def drive(self, snapshot: WorldSnapshot, dt_s: float) -> None:
        spec, car, record = self.spec, self.car, self.result.record
        k = self.ticks
        self.ticks += 1
        t = k * dt_s  # the step began here; the world is now at `now`
        now = snapshot.time
        truth = [*snapshot.around.get(EGO_ID, ()), *_pedestrians(spec, self.route, t), *self.works]
        signals = snapshot.signals
        self.result.collisions.extend(c for c in snapshot.collisions if EGO_ID in c)
        sirens = emergency_agents(snapshot)
        for ev in sirens:
            record.ev_siren_onset_s.setdefault(ev.agent_id, now.time_s - dt_s)
        ego = car.state
        out = car.drive(truth, sirens, signals, self.route.path, self.stop_request, now, dt_s)
        if car.stack.last_siren is not None:
            record.siren_heard.append(car.stack.last_siren.detected)
        observation = car.last_observation
        detections = observation.detections if observation is not None else None
        for det in detections or ():
            if det.truth_id is not None:
                record.first_detected_s.setdefault(det.truth_id, now.time_s)
                if det.flashing_lights:
                    record.ev_first_seen_s.setdefault(det.truth_id, now.time_s)
        # curbside stop: dwell, then ask to pull out by dropping the request
        if (
            self.stop_request is not None
            and ego.speed < 0.1
            and out.behaviour == Behaviour.CURBSIDE_STOP
        ):
            self.stopped_since = t if self.stopped_since is None else self.stopped_since
            if t - self.stopped_since >= spec.ego.stop_dwell_s:
                record.reached_stop = True
                self.stop_request = None
        record.add(now, ego, out, truth, signals)
        if self.operator is not None:
            at_stop = out.behaviour in KERB_BEHAVIOURS or out.behaviour in EV_REACTIONS
            self.operator.tick(now.time_s, car, truth, at_stop=at_stop)
            self.route = self.operator.route  # "this lane is closed" changes the lane route
        if self.solid_lines and across_solid_line(self.route.path, car.state):
            self.result.across_solid_line_s.append(now.time_s)
        if self.keep_frames:
            self.result.frames.append(
                Frame(
                    t, ego, out.trajectory.states, out.tracks, tuple(truth), out.behaviour,
                    car.parked,
                )
            )  # fmt: skip
        car.place(self.world, self.route.path, out.behaviour)
        if self.progress is not None and k % 50 == 0:
            self.progress(t, spec.duration_s)


def run_scenario(
    spec: ScenarioSpec,
    *,
    work_dir: Path,
    planner: Planner | None = None,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    keep_frames: bool = False,
    progress: Callable[[float, float], None] | None = None,
    city: tuple[RoadMap, RoutingGraph] | None = None,
    microphones: bool | None = None,
    city_blocks: bool | None = None,
) -> DriveResult:
    """Run one scenario closed-loop on the runner and record what happened. `microphones`
    and `city_blocks` override the scenario's `sensors` settings when given; by default a
    planner that ignores sirens (the IDM baseline) drives without microphones, since it
    would only spend the simulator's time on audio nobody listens to."""
    wall0 = wall.perf_counter()
    config = _run_config(spec, data_dir, cache_dir)
    road_map, graph = city or load_city(config)
    road_map = _with_solid_centre_lines(road_map, spec)
    ego_spec = spec.ego
    route = reference_path(
        road_map, ego_spec.route, start_lane=ego_spec.start_lane, end_lane=ego_spec.end_lane
    )
    path = route.path
    first_lane = road_map.lanes[route.lane_ids[0]]
    if ego_spec.start_pos_m > first_lane.length - 5:
        raise ScenarioError(
            f"scenario {spec.name}: start_pos_m {ego_spec.start_pos_m} is off the road "
            f"(edge {ego_spec.route[0]} is {first_lane.length:.0f} m long)"
        )
    s0 = ego_spec.start_pos_m
    d0 = 0.0
    if ego_spec.start_at_curb:
        d0 = -(float(path.right_room_at(s0)) - IPACE.width_m / 2 - 0.3)
    x0, y0, h0 = path.pose_at(s0, d0)
    # the pose above is for the footprint centre; our state is the rear axle
    back = IPACE.length_m / 2 - IPACE.rear_overhang_m
    ego = VehicleState(
        float(x0) - back * math.cos(float(h0)), float(y0) - back * math.sin(float(h0)),
        float(h0), ego_spec.start_speed_mps,
    )  # fmt: skip
    sensors_spec = spec.sensors
    planner = planner if planner is not None else default_planner()
    use_mics = (
        sensors_spec.microphones and planner.hears_sirens if microphones is None else microphones
    )
    use_blocks = sensors_spec.city_blocks if city_blocks is None else city_blocks
    mic_config = (
        MicArrayConfig(
            background_level_db_spl=sensors_spec.background_db_spl,
            negatives_dir=Path(config.map.data_dir) / "audio" / "negatives",
            seed=spec.seed,
        )
        if use_mics
        else None
    )
    occluders = (
        map_block_occluders(road_map, sidewalk_m=CURB_SHOULDER_M + PAVEMENT_M)
        if use_blocks
        else None
    )
    sensors = CarSensors(
        seed=spec.seed, mic_config=mic_config, occluders=occluders, spec=sensors_spec
    )
    car = EgoCar(EGO_ID, sensors, AutonomyStack(planner, mic_config=mic_config), ego)
    from robotaxi.world.sumo_world import SumoWorld  # libsumo loads only when a run needs it

    world = SumoWorld(
        road_map, graph, config.world, config.fleet, seed=spec.seed, end_s=spec.duration_s,
        work_dir=work_dir, background=spec.background_per_hour_per_km2 > 0,
        setup=SumoSetup(types_xml=_scenario_types_xml(config)),
    )  # fmt: skip
    result = DriveResult(
        spec, DrivingRecord.empty(route.path), road_map=road_map, route=route,
        microphones=use_mics, city_blocks=use_blocks,
    )  # fmt: skip
    steps = round(spec.duration_s / spec.dt_s)
    sim = Simulation(world, graph, callbacks=[_Scenario(spec, world)], step_s=spec.dt_s)
    driver = _ScenarioDriver(
        spec, car, route, world, result, keep_frames=keep_frames, progress=progress
    )
    sim.drivers = driver
    with sim:
        sim.run(until=lambda tick: tick.index + 1 >= steps)
    operator = driver.operator
    if operator is not None:
        result.assistance = operator.report()
        result.assistance_events = operator.events
        # the lane route the car drove ("this lane is closed" moves it to another lane; the
        # same as the first up to there): what the metrics measure the run against
        result.route = operator.route
    stack_times = car.stack.times
    result.stage_ms = {
        stage: 1000.0 * float(np.median(times))
        for stage, times in (*stack_times.by_stage.items(), *sensors.times.by_stage.items())
        if len(times)
    }
    result.stage_times = stack_times
    result.sensor_times = sensors.times
    audio = sensors.times.by_stage.get(AUDIO_STAGE)
    audio_cpu = sensors.times.cpu_by_stage.get(AUDIO_STAGE)
    result.audio_ms = [1000.0 * x for x in audio] if audio is not None else []
    result.audio_cpu_ms = [1000.0 * x for x in audio_cpu] if audio_cpu is not None else []
    result.wall_s = wall.perf_counter() - wall0
    return result


def _with_solid_centre_lines(road_map: RoadMap, spec: ScenarioSpec) -> RoadMap:
    """The map with the scenario's solid centre lines marked."""
    if not spec.solid_centre_lines:
        return road_map
    for edge in spec.solid_centre_lines:
        if edge not in road_map.edges:
            raise ScenarioError(f"scenario {spec.name}: solid centre line on unknown edge {edge!r}")
    solid = road_map.solid_centre_lines | frozenset(spec.solid_centre_lines)
    return dataclasses.replace(road_map, solid_centre_lines=solid)


def across_solid_line(path: ReferencePath, ego: VehicleState) -> bool:
    """The car's footprint reaches over a solid centre line (into the oncoming lane)."""
    cx = ego.x + IPACE.rear_axle_to_center_m * math.cos(ego.heading)
    cy = ego.y + IPACE.rear_axle_to_center_m * math.sin(ego.heading)
    s, d = path.project(cx, cy)
    reach = float(d) + 0.5 * IPACE.width_m
    return bool(path.solid_centre_line_at(s)) and reach > float(path.left_room_at(s)) + 0.1


def _scenario_types_xml(config: RunConfig) -> str:
    """The city's vTypes and the scripted road users' (`SCENARIO_VTYPES`)."""
    fleet = config.fleet
    base = vehicle_types_xml(
        fleet.vehicle_length_m, fleet.vehicle_width_m, fleet.max_speed_mps,
        rerouting=config.world.route_around_jams,
    )  # fmt: skip
    return base.replace("</additional>", SCENARIO_VTYPES + "</additional>")


def default_planner() -> Planner:
    """Our planner, with the ambulance-yield range at the roof camera's reach: a head-on
    ambulance closes at ~25 m/s, and stopping at the kerb from 40 km/h takes ~4 s."""
    motion = MotionPlanner()
    behaviour = BehaviourPlanner(BehaviourConfig(ev_yield_range_m=EV_YIELD_RANGE_M), motion.params)
    return PdmPlanner(motion, behaviour)


def idm_planner() -> Planner:
    return IdmPlanner()
