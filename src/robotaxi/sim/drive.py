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
"""

from __future__ import annotations

import math
import time as wall
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robotaxi.autonomy.planning.behaviour import BehaviourConfig, BehaviourPlanner
from robotaxi.autonomy.planning.motion import MotionPlanner
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.planning.route import CURB_SHOULDER_M, LaneRoute, reference_path
from robotaxi.autonomy.sensors.cameras import StaticOccluders, map_block_occluders
from robotaxi.autonomy.sensors.microphones import (
    EmergencySource,
    MicArrayConfig,
    MicrophoneArray,
)
from robotaxi.autonomy.stack import (
    AutonomyStack,
    IdmPlanner,
    PdmPlanner,
    Planner,
    StackOutput,
    StageTimes,
)
from robotaxi.autonomy.vehicle import IPACE, VehicleState, footprint_center, front_bumper, step
from robotaxi.config import RunConfig, load_config
from robotaxi.config.scenario import ScenarioSpec, SensorsSpec
from robotaxi.core import (
    AgentKind,
    AgentState,
    ScenarioError,
    SirenState,
    TimePoint,
    TrajectoryColumn,
)
from robotaxi.core.types import FloatArray, Pose, Track
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.sim.runner import load_city
from robotaxi.world.sumo_world import SumoWorld

EGO_ID = "ego"
PARK_BELOW_MPS = 1.0  # pulled over and all but stopped: take the car off its lane in SUMO
PARK_OFFSET_M = 1.5
EV_YIELD_RANGE_M = 120.0
KERB_BEHAVIOURS = ("yield_to_ev", "ev_caution", "curbside_stop", "leave_curb", "safe_stop")
EV_REACTIONS = ("ev_caution", "yield_to_ev")  # behaviours that count as reacting to an EV
OCCLUDER_QUERY_M = 130.0  # city blocks this near the car are tested (the cameras' reach)
# Buildings stand behind the pavement, and the pavement starts at the kerb: the kerb lies
# `CURB_SHOULDER_M` right of the lane edge (where the car pulls over and pedestrians step
# off), so the blocks start that much plus a pavement's width from the lane edge.
PAVEMENT_M = 2.0
C = TrajectoryColumn


@dataclass
class DrivingRecord:
    """Everything recorded per tick, as lists (metrics turns it into a DrivingHistory)."""

    path_signal_ids: tuple[str, ...]
    time_s: list[float] = field(default_factory=list)
    ego: list[tuple[float, ...]] = field(default_factory=list)  # TrajectoryColumn order
    planned: list[FloatArray] = field(default_factory=list)
    behaviour: list[str] = field(default_factory=list)
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
    behaviour: str
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
        d = -right + walked if ped.from_side == "right" else left - walked
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
    """Run one scenario closed-loop and record what happened. `microphones` and
    `city_blocks` override the scenario's `sensors` settings when given; by default a
    planner that ignores sirens (the IDM baseline) drives without microphones, since it
    would only spend the simulator's time on audio nobody listens to."""
    wall0 = wall.perf_counter()
    config = _run_config(spec, data_dir, cache_dir)
    road_map, graph = city or load_city(config)
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
    sensors = spec.sensors
    planner = planner if planner is not None else default_planner()
    use_mics = sensors.microphones and planner.hears_sirens if microphones is None else microphones
    use_blocks = sensors.city_blocks if city_blocks is None else city_blocks
    mic_config = (
        MicArrayConfig(
            background_level_db_spl=sensors.background_db_spl,
            negatives_dir=Path(config.map.data_dir) / "audio" / "negatives",
            seed=spec.seed,
        )
        if use_mics
        else None
    )
    mic_array = MicrophoneArray(mic_config) if mic_config is not None else None
    occluders = (
        map_block_occluders(road_map, sidewalk_m=CURB_SHOULDER_M + PAVEMENT_M)
        if use_blocks
        else None
    )
    stack = AutonomyStack(planner, seed=spec.seed, mic_config=mic_config)
    world = SumoWorld(
        road_map, graph, config.world, config.fleet, seed=spec.seed, end_s=spec.duration_s,
        work_dir=work_dir, background=spec.background_per_hour_per_km2 > 0,
    )  # fmt: skip
    result = DriveResult(
        spec, DrivingRecord.empty(route.path), road_map=road_map, route=route,
        microphones=use_mics, city_blocks=use_blocks,
    )  # fmt: skip
    pending = sorted(spec.vehicles, key=lambda v: v.depart_s)
    stop_request = ego_spec.stop_at_m
    stopped_since: float | None = None
    parked = False
    steps = round(spec.duration_s / spec.dt_s)
    with world:
        world.add_ego(
            EGO_ID, ego_spec.route, depart_pos=max(s0, 0.1), lane=ego_spec.start_lane,
            speed=ego_spec.start_speed_mps,
        )  # fmt: skip
        for k in range(steps):
            t = k * spec.dt_s
            while pending and pending[0].depart_s <= t:
                v = pending.pop(0)
                world.add_vehicle(
                    v.id, v.route, type_id=v.type, depart_pos=v.pos_m, lane=v.lane,
                    speed=v.speed_mps, max_speed=v.max_speed_mps,
                    stop_at=v.stop_at_m, stop_s=v.stop_s,
                )  # fmt: skip
            world.step()
            now = world.time
            if k == 0 or not parked:
                fx, fy = front_bumper(ego.x, ego.y, ego.heading)
                world.move_ego(EGO_ID, fx, fy, ego.heading, ego.speed)
            truth = world.surroundings(EGO_ID) + _pedestrians(spec, route, t)
            signals = world.signal_states()
            result.collisions.extend(c for c in world.collisions() if EGO_ID in c)
            sirens = sirens_on(world)
            for ev in sirens:
                result.record.ev_siren_onset_s.setdefault(ev.agent_id, now.time_s - spec.dt_s)
            cx, cy = footprint_center(ego.x, ego.y, ego.heading, IPACE)
            audio = None
            if mic_array is not None:
                wall_a, cpu_a = wall.perf_counter(), wall.thread_time()
                sources = audible(sirens, (float(cx), float(cy)), sensors, occluders)
                audio = mic_array.hear(
                    Pose(float(cx), float(cy), ego.heading), sources, now.time_s - spec.dt_s,
                    spec.dt_s, ego_speed_mps=ego.speed,
                )  # fmt: skip
                result.audio_ms.append(1000.0 * (wall.perf_counter() - wall_a))
                result.audio_cpu_ms.append(1000.0 * (wall.thread_time() - cpu_a))
            blocks = (
                occluders.near(float(cx), float(cy), OCCLUDER_QUERY_M)
                if occluders is not None
                else ()
            )
            out = stack.step(
                ego, truth, path, signals, stop_request, now, spec.dt_s, ego_id=EGO_ID,
                static_occluders=blocks, audio=audio,
            )  # fmt: skip
            if stack.last_siren is not None:
                result.record.siren_heard.append(stack.last_siren.detected)
            for det in stack.last_detections:
                if det.flashing_lights and det.truth_id is not None:
                    result.record.ev_first_seen_s.setdefault(det.truth_id, now.time_s)
            # curbside stop: dwell, then ask to pull out by dropping the request
            if stop_request is not None and ego.speed < 0.1 and out.behaviour == "curbside_stop":
                stopped_since = t if stopped_since is None else stopped_since
                if t - stopped_since >= ego_spec.stop_dwell_s:
                    result.record.reached_stop = True
                    stop_request = None
            result.record.add(now, ego, out, truth, signals)
            if keep_frames:
                result.frames.append(
                    Frame(
                        t,
                        ego,
                        out.trajectory.states,
                        out.tracks,
                        tuple(truth),
                        out.behaviour,
                        parked,
                    )
                )
            new_ego = step(ego, out.command, spec.dt_s)
            # Park off the lane in SUMO while stopped at the kerb (pulled over for an
            # ambulance, at a pick-up, or before pulling out): a car beside its lane but on
            # it still blocks SUMO's traffic and ambulances (SUMO-NOTES).
            _, d_now = path.project(new_ego.x, new_ego.y)
            waiting = (
                out.behaviour in KERB_BEHAVIOURS
                and new_ego.speed < PARK_BELOW_MPS
                and float(d_now) <= -PARK_OFFSET_M
            )
            if waiting and not parked:
                parked = world.try_park_ego(EGO_ID)
            elif parked and not waiting:
                world.unpark_ego(EGO_ID)
                parked = False
                fx, fy = front_bumper(new_ego.x, new_ego.y, new_ego.heading)
                world.move_ego(EGO_ID, fx, fy, new_ego.heading, new_ego.speed)
            ego = new_ego
            if progress is not None and k % 50 == 0:
                progress(t, spec.duration_s)
    result.stage_ms = {
        stage: 1000.0 * float(np.median(times))
        for stage, times in stack.times.by_stage.items()
        if times
    }
    result.stage_times = stack.times
    if result.audio_ms:
        result.stage_ms["audio_synthesis"] = float(np.median(result.audio_ms))
    result.wall_s = wall.perf_counter() - wall0
    return result


def sirens_on(world: SumoWorld) -> list[AgentState]:
    """Every emergency vehicle in the world with its siren on (ground truth, any range),
    centred on its footprint (SUMO reports the front bumper)."""
    snap = world.snapshot()
    out = []
    for i, vid in enumerate(snap.ids):
        if snap.kinds[i] != AgentKind.EMERGENCY or not snap.sirens[i]:
            continue
        h, half = float(snap.heading[i]), 0.5 * float(snap.length[i])
        out.append(
            AgentState(
                vid,
                AgentKind.EMERGENCY,
                float(snap.xy[i, 0]) - half * math.cos(h),
                float(snap.xy[i, 1]) - half * math.sin(h),
                h,
                float(snap.speed[i]),
                length=float(snap.length[i]),
                width=float(snap.width[i]),
                siren=SirenState.ON,
            )
        )
    return out


def audible(
    sirens: Sequence[AgentState],
    ear_xy: tuple[float, float],
    sensors: SensorsSpec,
    occluders: StaticOccluders | None,
) -> list[EmergencySource]:
    """The sirens within `audio_range_m` as sound sources: one heard through a city block
    (no line of sight) gets the block's extra loss (diffraction round the corner)."""
    near = [
        a for a in sirens if math.hypot(a.x - ear_xy[0], a.y - ear_xy[1]) <= sensors.audio_range_m
    ]
    if not near:
        return []
    blocked = (
        occluders.blocks_sight(ear_xy, np.array([[a.x, a.y] for a in near]))
        if occluders is not None
        else np.zeros(len(near), dtype=bool)
    )
    return [
        EmergencySource.from_agent(a, extra_loss_db=sensors.block_sound_loss_db if b else 0.0)
        for a, b in zip(near, blocked, strict=True)
    ]


def default_planner() -> Planner:
    """Our planner, with the ambulance-yield range at the roof camera's reach: a head-on
    ambulance closes at ~25 m/s, and stopping at the kerb from 40 km/h takes ~4 s."""
    motion = MotionPlanner()
    behaviour = BehaviourPlanner(BehaviourConfig(ev_yield_range_m=EV_YIELD_RANGE_M), motion.params)
    return PdmPlanner(motion, behaviour)


def idm_planner() -> Planner:
    return IdmPlanner()
