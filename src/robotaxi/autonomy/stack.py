"""The autonomy stack of one car: observation → tracker → prediction → planner → controller.

`AutonomyStack.step` is the one call the simulation runner makes per tick per autonomous
car. It is a function of what the car's sensors report (an `Observation`: camera
detections, traffic-light states, roof audio), the car's own state and its route, and of
the stack's own state — never of ground truth, which only the simulated sensors in `sim`
read. That state is explicit and lives here: the tracker's tracks, the siren detector's
stream and evidence, the behaviour layer's latches and the controller's integrator; so the
same observation stream into a fresh stack gives the same commands.

Planners share a thin interface (`Planner._plan`); the base class `Planner.plan` times
every call, and the stack times every stage, so runtimes are recorded in one place
(nuPlan's pattern). Two planners ship: `PdmPlanner` (behaviour state machine + PDM-Closed
motion planner) and `IdmPlanner`, an IDM lane-following baseline (lane centre, leader and
red lights only) for benchmarks.

With roof microphones (`mic_config`), each observation's audio feeds a streaming
`SirenDetector`, whose windows fold into a
`SirenEvidence` that the behaviour layer fuses with the cameras (audio alone: caution;
flashing lights seen: pull over and stop). Without microphones the stack is camera-only.
"""

from __future__ import annotations

import abc
import time as wall
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from robotaxi.autonomy.control import ControllerGains, TrajectoryController
from robotaxi.autonomy.perception.siren import SirenDetector, SirenEvidence, siren_evidence
from robotaxi.autonomy.perception.tracker import MultiObjectTracker, TrackerConfig
from robotaxi.autonomy.planning.arrival import (
    GoalWindow,
    arrival_speed_bounds,
    follower_pace,
    leader_pace,
    region_aim_offset,
    region_lateral_extent,
    region_span,
)
from robotaxi.autonomy.planning.behaviour import (
    Behaviour,
    BehaviourConfig,
    BehaviourPlanner,
    BehaviourTarget,
    FrenetScene,
    OncomingPassLeave,
    frenet_scene,
)
from robotaxi.autonomy.planning.hidden_traffic import (
    hidden_lane_yield_s,
    hidden_oncoming,
    with_phantoms,
)
from robotaxi.autonomy.planning.motion import MotionPlanner
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import LaneLookup, Predictions, predict
from robotaxi.autonomy.vehicle import IPACE, VehicleParams, VehicleState
from robotaxi.config.sensors import MicArrayConfig
from robotaxi.core.errors import ConfigError
from robotaxi.core.time import TimePoint
from robotaxi.core.types import (
    ControlCommand,
    Detection,
    FloatArray,
    Observation,
    Pose,
    Track,
    Trajectory,
)


@dataclass(frozen=True)
class PlannerInput:
    """Everything a planner may read in one tick (the ego at its rear axle)."""

    time: TimePoint
    ego: VehicleState
    tracks: tuple[Track, ...]
    predictions: Predictions
    scene: FrenetScene
    path: ReferencePath
    signals: Mapping[str, str]
    stop_request_s: float | None
    siren: SirenEvidence | None = None
    # where and when the route's goal must be reached (None: no time window to keep)
    goal_window: GoalWindow | None = None
    # a cap on the target speed the route asks for this tick (m/s; None: none), e.g. to let
    # a car in the target lane go by while a lane change waits for its gap
    speed_cap_mps: float | None = None
    # the time headway (s) to keep to a leader this tick (None: the planner's own), shorter
    # for a while after a lane change (`planning.lane_change.merge_headway`)
    headway_s: float | None = None


@dataclass(frozen=True)
class PlannerOutput:
    """A planner's answer: the trajectory ((N+1)×k, time column from 0), the behaviour,
    whether planning succeeded, and optionally the target and all scored candidates."""

    trajectory: FloatArray
    behaviour: Behaviour
    ok: bool = True
    target: BehaviourTarget | None = None
    candidates: FloatArray | None = None
    scores: FloatArray | None = None


RECENT_SAMPLES = 20_000
"""How many of the latest runtimes a `RuntimeStats` keeps: about 33 minutes of 0.1 s ticks,
all of a scenario drive, while a service that runs for days holds a fixed amount."""


class RuntimeStats:
    """Runtimes (s) of one timed thing: the latest `capacity` samples in a ring buffer, and
    the count, sum and maximum over every sample ever added (these never lose information).

    Reads as the sequence of the latest samples, oldest first: `len`, iteration, indexing
    (`[-1]` is the newest) and `np.asarray` (a copy), so medians and percentiles are over at
    most the last `capacity` samples and `mean_s`/`max_s` over the whole run."""

    def __init__(self, capacity: int = RECENT_SAMPLES) -> None:
        if capacity < 1:
            raise ConfigError(f"a runtime buffer needs room for a sample, got capacity {capacity}")
        self.capacity = capacity
        self.count = 0  # samples ever added
        self.total_s = 0.0
        self.max_s = 0.0  # runtimes are never negative: 0 until the first sample
        # grows by doubling up to `capacity`, so a short run holds a short buffer
        self._buffer: FloatArray = np.empty(min(capacity, 64))

    def add(self, seconds: float) -> None:
        n = self.count
        if n < self.capacity and n == len(self._buffer):
            grown = np.empty(min(2 * n, self.capacity))
            grown[:n] = self._buffer
            self._buffer = grown
        self._buffer[n % self.capacity] = seconds
        self.count = n + 1
        self.total_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds

    @property
    def mean_s(self) -> float:
        """Mean over every sample ever added (NaN before the first)."""
        return self.total_s / self.count if self.count else float("nan")

    def recent(self) -> FloatArray:
        """A copy of the samples held, oldest first."""
        if self.count <= self.capacity:
            return self._buffer[: self.count].copy()
        start = self.count % self.capacity
        return np.concatenate((self._buffer[start:], self._buffer[:start]))

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    def __getitem__(self, index: int) -> float:
        held = len(self)
        position = index + held if index < 0 else index
        if not 0 <= position < held:
            raise IndexError(f"runtime sample {index} out of range: {held} held")
        start = self.count % self.capacity if self.count > self.capacity else 0
        return float(self._buffer[(start + position) % len(self._buffer)])

    def __iter__(self) -> Iterator[float]:
        return iter(self.recent().tolist())

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> FloatArray:
        held = self.recent()
        return held if dtype is None else held.astype(dtype)

    def __repr__(self) -> str:
        return (
            f"RuntimeStats(count={self.count}, held={len(self)}, "
            f"total_s={self.total_s:.6g}, max_s={self.max_s:.6g})"
        )


class Planner(abc.ABC):
    """Thin planner interface: subclasses implement `_plan`; `plan` records its runtime."""

    name = "planner"
    # whether `_plan` uses the siren evidence: a planner that ignores it needs no microphones
    hears_sirens = False
    # whether the car begins a lane change its route needs only into an acceptable gap in the
    # target lane (`planning.lane_change`), rather than where the route lays it out
    checks_lane_change_gaps = False
    # whether the planner slows ahead of time for a lower speed limit ahead (a preview): a
    # target speed the route asks for only in a stretch (a goal's) is then laid from where
    # that stretch begins, not from far enough before it for a car that only reacts to it
    brakes_ahead_for_limits = False

    def __init__(self) -> None:
        self.runtimes_s = RuntimeStats()

    def plan(self, inputs: PlannerInput) -> PlannerOutput:
        start = wall.perf_counter()
        out = self._plan(inputs)
        self.runtimes_s.add(wall.perf_counter() - start)
        return out

    @abc.abstractmethod
    def _plan(self, inputs: PlannerInput) -> PlannerOutput: ...


# how much faster than its own target speed the car may go to reach a goal region before
# its window closes (a fraction)
ARRIVAL_SPEEDUP = 0.0


class PdmPlanner(Planner):
    """Behaviour state machine + PDM-Closed motion planner. Before an unprotected left turn
    the motion planner also waits for phantom oncoming cars where a vehicle opposite hides
    the oncoming lanes (`planning.hidden_traffic`)."""

    name = "pdm"
    hears_sirens = True
    checks_lane_change_gaps = True
    brakes_ahead_for_limits = True

    def __init__(
        self, motion: MotionPlanner | None = None, behaviour: BehaviourPlanner | None = None
    ) -> None:
        super().__init__()
        self.motion = motion if motion is not None else MotionPlanner()
        self.behaviour = (
            behaviour if behaviour is not None else BehaviourPlanner(params=self.motion.params)
        )
        self._last_ok = True
        self.last_phantoms: Predictions | None = None
        # the goal region along the path last planned on: (path, window, its span along
        # the path, its lateral extent)
        self._goal_span: (
            tuple[
                ReferencePath,
                GoalWindow,
                tuple[float, float] | None,
                tuple[float, float] | None,
            ]
            | None
        ) = None

    def _plan(self, inputs: PlannerInput) -> PlannerOutput:
        target = self.behaviour.step(
            inputs.ego,
            inputs.path,
            inputs.scene,
            inputs.predictions,
            inputs.signals,
            inputs.stop_request_s,
            inputs.time.time_s,
            self._last_ok,
            inputs.siren,
        )
        predictions, scene = inputs.predictions, inputs.scene
        phantoms = hidden_oncoming(
            inputs.path, inputs.ego, scene.ego_s, predictions, inputs.signals, self.motion.params
        )
        if phantoms is not None:
            # what a vehicle opposite hides before a left turn: assumed coming, waited for
            # short of the lanes it could come down
            predictions = with_phantoms(predictions, phantoms)
            scene = frenet_scene(inputs.path, inputs.ego, predictions)
            lane_w = float(inputs.path.lane_width_at(scene.ego_s))
            wait_s = hidden_lane_yield_s(
                inputs.path, scene.ego_s, phantoms, lane_w, self.motion.params
            )
            if wait_s is not None and (target.stop_s_m is None or wait_s < target.stop_s_m):
                target = replace(target, stop_s_m=wait_s)
        self.last_phantoms = phantoms
        if inputs.goal_window is not None:
            target = self._paced(target, inputs)
        if inputs.speed_cap_mps is not None and inputs.speed_cap_mps < target.target_speed_mps:
            target = replace(target, target_speed_mps=inputs.speed_cap_mps)
        if inputs.headway_s is not None:
            target = replace(target, headway_s=inputs.headway_s)
        plan = self.motion.plan(inputs.ego, inputs.path, scene, predictions, target)
        self._last_ok = plan.ok
        name = target.behaviour if plan.ok else Behaviour.SAFE_STOP
        return PlannerOutput(plan.trajectory, name, plan.ok, target, plan.candidates, plan.scores)

    def _paced(self, target: BehaviourTarget, inputs: PlannerInput) -> BehaviourTarget:
        """The target speed kept within the goal window's arrival bounds
        (`planning.arrival`): slower where the car would pass through the goal region before
        the window opens, faster — by at most `ARRIVAL_SPEEDUP` of the behaviour's speed —
        where it would get there after the window closes. Near the region, while following
        its lane, the car also moves over within its lane as far as it takes to pass through
        the region (`planning.arrival.region_aim_offset`). Stops, leaders and the scoring
        still apply on top."""
        window = inputs.goal_window
        if window is None:
            return target
        cached = self._goal_span
        if cached is None or cached[0] is not inputs.path or cached[1] is not window:
            cached = (
                inputs.path,
                window,
                region_span(inputs.path, window),
                region_lateral_extent(inputs.path, window),
            )
            self._goal_span = cached
        span, extent = cached[2], cached[3]
        if span is None:
            return target
        params = self.motion.params
        centre_s = inputs.scene.ego_s + params.rear_axle_to_center_m
        speed = target.target_speed_mps
        lo, hi = arrival_speed_bounds(span, centre_s, inputs.time.time_s, window, speed)
        lane_w = float(inputs.path.lane_width_at(inputs.scene.ego_s))
        pace = follower_pace(inputs.scene, inputs.predictions, lane_w, params)
        if pace is not None:
            hi = max(hi, min(speed, pace))  # not slower than someone close behind
        if (
            leader_pace(inputs.scene, inputs.predictions, lane_w, inputs.ego.speed, params)
            is not None
        ):
            hi = speed  # someone close ahead sets when we get there: keep up with it
        paced = min(max(speed, min(lo, speed * (1.0 + ARRIVAL_SPEEDUP))), hi)
        if paced != speed:
            target = replace(target, target_speed_mps=paced)
        if (
            extent is not None
            and target.behaviour in (Behaviour.LANE_FOLLOW, Behaviour.CAR_FOLLOW)
            and target.lateral_offset_m == 0.0
            and not target.borrow_oncoming
        ):
            aim = region_aim_offset(span, extent, centre_s, inputs.ego.speed, lane_w, params)
            if aim is not None and aim != 0.0:
                target = replace(target, lateral_offset_m=aim)
        return target


class IdmPlanner(Planner):
    """Baseline: IDM along the lane centre behind the leader in the lane, stopping for red
    (and stoppable yellow) lines; no pulling over, no kerb manoeuvres, no scoring."""

    name = "idm"
    hears_sirens = False

    def __init__(
        self, motion: MotionPlanner | None = None, behaviour_config: BehaviourConfig | None = None
    ) -> None:
        super().__init__()
        base = motion if motion is not None else MotionPlanner()
        self.motion = MotionPlanner(
            base.params, base.horizon_s, base.dt_s, (0.0,), (1.0,), base.gains
        )
        self.config = behaviour_config if behaviour_config is not None else BehaviourConfig()

    def _plan(self, inputs: PlannerInput) -> PlannerOutput:
        cfg, p = self.config, self.motion.params
        s_ego, v = inputs.scene.ego_s, inputs.ego.speed
        front = s_ego + p.rear_axle_to_front_m
        stop_s = None
        for line in inputs.path.stop_lines:
            dist = line.s_m - cfg.stop_line_margin_m - front
            if dist <= -0.5:
                continue
            state = inputs.signals.get(line.signal_id, "g")
            need = v * v / (2 * max(dist, 0.1))
            if (state in ("r", "R", "u") and need <= cfg.red_max_decel_mps2) or (
                state in ("y", "Y") and need <= cfg.yellow_max_decel_mps2
            ):
                stop_s = line.s_m - cfg.stop_line_margin_m - p.rear_axle_to_front_m
            break
        limit = float(inputs.path.speed_limit_at(s_ego))
        target = BehaviourTarget(
            Behaviour.STOP_AT_LINE if stop_s is not None else Behaviour.LANE_FOLLOW,
            0.0,
            limit,
            stop_s,
        )
        lat, frac = np.zeros(1), np.ones(1)
        states, _, _ = self.motion.rollout(
            inputs.ego, inputs.path, inputs.scene, inputs.predictions, target, lat, frac
        )
        return PlannerOutput(states[0], target.behaviour, True, target)


class StackOutput(NamedTuple):
    """What one tick of the stack returns (unpacks as a 4-tuple)."""

    command: ControlCommand
    trajectory: Trajectory
    tracks: tuple[Track, ...]
    behaviour: Behaviour


STAGES = ("tracking", "prediction", "planning", "control")
HEARING_STAGE = "hearing"  # the siren detector, timed only when the car has microphones


def _stats_by_stage() -> dict[str, RuntimeStats]:
    return {stage: RuntimeStats() for stage in STAGES}


@dataclass
class StageTimes:
    """Runtimes (s) of each stage, one sample per tick (the latest `RECENT_SAMPLES` held,
    count/sum/max over the whole run): wall clock (`by_stage`) and this thread's CPU time
    (`cpu_by_stage`, what a dedicated core would take, without waiting for other processes
    on a shared machine)."""

    by_stage: dict[str, RuntimeStats] = field(default_factory=_stats_by_stage)
    cpu_by_stage: dict[str, RuntimeStats] = field(default_factory=_stats_by_stage)

    def add(self, stage: str, seconds: float, cpu_seconds: float | None = None) -> None:
        _stats_of(self.by_stage, stage).add(seconds)
        if cpu_seconds is not None:
            _stats_of(self.cpu_by_stage, stage).add(cpu_seconds)


def _stats_of(by_stage: dict[str, RuntimeStats], stage: str) -> RuntimeStats:
    stats = by_stage.get(stage)
    if stats is None:
        stats = by_stage[stage] = RuntimeStats()
    return stats


class AutonomyStack:
    """One autonomous car's brain. Keep one instance per car for the whole run: the tracker,
    the siren stream, the behaviour state and the controller's integral live here."""

    def __init__(
        self,
        planner: Planner | None = None,
        *,
        params: VehicleParams = IPACE,
        tracker_config: TrackerConfig | None = None,
        controller_gains: ControllerGains | None = None,
        lane_lookup: LaneLookup | None = None,
        mic_config: MicArrayConfig | None = None,
        siren_detector: SirenDetector | None = None,
        goal_window: GoalWindow | None = None,
    ) -> None:
        """`mic_config` says the car has roof microphones (their geometry): observations then
        carry audio, and `siren_detector` (by default one for that geometry) listens.
        `goal_window` is where and when the route's goal must be reached, for the planner to
        time its arrival (None: no window)."""
        self.params = params
        self.goal_window = goal_window
        # a cap on the target speed that the route asks for, set before each tick's `step`
        # by whoever drives the route (m/s; None: none)
        self.speed_cap_mps: float | None = None
        # likewise the time headway to keep to a leader (s; None: the planner's own)
        self.headway_s: float | None = None
        self.planner = planner if planner is not None else PdmPlanner(MotionPlanner(params))
        motion = getattr(self.planner, "motion", None)
        self.horizon_s = motion.horizon_s if isinstance(motion, MotionPlanner) else 4.0
        self.plan_dt_s = motion.dt_s if isinstance(motion, MotionPlanner) else 0.1
        self.tracker = MultiObjectTracker(tracker_config)
        self.controller = TrajectoryController(
            controller_gains if controller_gains is not None else ControllerGains(), params
        )
        self.lane_lookup = lane_lookup
        self.times = StageTimes()
        self.last_tracks: tuple[Track, ...] = ()
        self.last_predictions: Predictions | None = None
        self.last_output: PlannerOutput | None = None
        self.mic_config = mic_config
        if siren_detector is None and mic_config is not None:
            siren_detector = SirenDetector(
                mic_config.n_mics,
                mic_xy=mic_config.mic_xy()[:, :2],
                speed_of_sound_mps=mic_config.speed_of_sound_mps,
            )
        self.siren_detector = siren_detector
        self.last_siren: SirenEvidence | None = None

    def permit_oncoming_pass(self, path: ReferencePath, from_s_m: float, to_s_m: float) -> str:
        """Remote assistance's leave to pass the blocker on the stretch `from_s_m`..`to_s_m`
        (m) of `path` through the oncoming lane, across a solid centre line, when the car
        itself finds that lane clear; "" when taken, else why not (no oncoming lane there,
        or a planner that passes nobody)."""
        behaviour = getattr(self.planner, "behaviour", None)
        if not isinstance(behaviour, BehaviourPlanner):
            return f"its {self.planner.name} planner never passes a blocker"
        return behaviour.permit_oncoming_pass(OncomingPassLeave(path, from_s_m, to_s_m))

    def _hear(
        self, audio: npt.NDArray[np.floating[Any]], ego: VehicleState, time: TimePoint
    ) -> SirenEvidence:
        """Run the siren detector over one step of audio (mics×samples) and fold its
        windows into the evidence at `time` (the end of that audio)."""
        if self.siren_detector is None:
            raise ConfigError("audio given to a stack without microphones: pass mic_config")
        t0, c0 = wall.perf_counter(), wall.thread_time()
        windows = self.siren_detector.push(np.asarray(audio, dtype=np.float64))
        evidence = siren_evidence(windows, Pose(ego.x, ego.y, ego.heading), time, self.last_siren)
        self.last_siren = evidence
        self.times.add(HEARING_STAGE, wall.perf_counter() - t0, wall.thread_time() - c0)
        return evidence

    def _track(self, detections: Sequence[Detection] | None, time: TimePoint) -> tuple[Track, ...]:
        if detections is not None:
            self.last_tracks = tuple(self.tracker.update(detections, time))
        return self.last_tracks

    def perceive(self, ego: VehicleState, observation: Observation) -> tuple[Track, ...]:
        """Take in an observation without planning (a car waiting at its stop keeps
        watching and listening): the tracks and the siren evidence move on."""
        if observation.audio is not None:
            self._hear(observation.audio, ego, observation.time)
        return self._track(observation.detections, observation.time)

    def step(
        self,
        ego: VehicleState,
        observation: Observation,
        path: ReferencePath,
        stop_request_s: float | None,
        dt_s: float,
    ) -> StackOutput:
        """One tick: track, predict, plan, and return the command for the next `dt_s` s.

        `ego` is the car's state at its rear axle; `observation` what its sensors reported
        at `observation.time`; `stop_request_s` the arc length along `path` where the car's
        centre should stop at the kerb, or None.
        """
        time = observation.time
        siren = self._hear(observation.audio, ego, time) if observation.audio is not None else None
        t1, c1 = wall.perf_counter(), wall.thread_time()
        tracks = self._track(observation.detections, time)
        t2, c2 = wall.perf_counter(), wall.thread_time()
        predictions = predict(tracks, self.horizon_s, self.plan_dt_s, self.lane_lookup)
        scene = frenet_scene(path, ego, predictions)
        self.last_predictions = predictions
        t3, c3 = wall.perf_counter(), wall.thread_time()
        out = self.planner.plan(
            PlannerInput(
                time, ego, tracks, predictions, scene, path, observation.signals,
                stop_request_s, siren, self.goal_window, self.speed_cap_mps,
                self.headway_s,
            )
        )  # fmt: skip
        self.last_output = out
        t4, c4 = wall.perf_counter(), wall.thread_time()
        trajectory = Trajectory(time, out.trajectory)
        command = self.controller.command(ego, trajectory, dt_s)
        t5, c5 = wall.perf_counter(), wall.thread_time()
        walls = (t2 - t1, t3 - t2, t4 - t3, t5 - t4)
        cpus = (c2 - c1, c3 - c2, c4 - c3, c5 - c4)
        for stage, seconds, cpu in zip(STAGES, walls, cpus, strict=True):
            self.times.add(stage, seconds, cpu)
        return StackOutput(command, trajectory, tracks, out.behaviour)
