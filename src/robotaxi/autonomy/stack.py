"""The autonomy stack of one car: sensors → tracker → prediction → planner → controller.

`AutonomyStack.step` is the one call the simulation runner makes per tick per autonomous
car. Planners share a thin interface (`Planner._plan`); the base class `Planner.plan` times
every call, and the stack times every stage, so runtimes are recorded in one place
(nuPlan's pattern). Two planners ship: `PdmPlanner` (behaviour state machine + PDM-Closed
motion planner) and `IdmPlanner`, an IDM lane-following baseline (lane centre, leader and
red lights only) for benchmarks.

With roof microphones (`mic_config`), each tick's audio (what `MicrophoneArray.hear`
recorded, given to `step`) feeds a streaming `SirenDetector`, whose windows fold into a
`SirenEvidence` that the behaviour layer fuses with the cameras (audio alone: caution;
flashing lights seen: pull over and stop). Without microphones the stack is camera-only.
"""

from __future__ import annotations

import abc
import time as wall
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from robotaxi.autonomy.control import ControllerGains, TrajectoryController
from robotaxi.autonomy.perception.siren import SirenDetector, SirenEvidence, siren_evidence
from robotaxi.autonomy.perception.tracker import MultiObjectTracker, TrackerConfig
from robotaxi.autonomy.planning.behaviour import (
    Behaviour,
    BehaviourConfig,
    BehaviourPlanner,
    BehaviourTarget,
    FrenetScene,
    frenet_scene,
)
from robotaxi.autonomy.planning.motion import MotionPlanner
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import LaneLookup, Predictions, predict
from robotaxi.autonomy.sensors.cameras import CameraConfig, simulate_cameras
from robotaxi.autonomy.sensors.microphones import MicArrayConfig
from robotaxi.autonomy.vehicle import IPACE, VehicleParams, VehicleState, footprint_center
from robotaxi.core.errors import ConfigError
from robotaxi.core.time import TimePoint
from robotaxi.core.types import (
    AgentState,
    ControlCommand,
    Detection,
    FloatArray,
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


@dataclass(frozen=True)
class PlannerOutput:
    """A planner's answer: the trajectory ((N+1)×k, time column from 0), the behaviour name,
    whether planning succeeded, and optionally the target and all scored candidates."""

    trajectory: FloatArray
    behaviour: str
    ok: bool = True
    target: BehaviourTarget | None = None
    candidates: FloatArray | None = None
    scores: FloatArray | None = None


class Planner(abc.ABC):
    """Thin planner interface: subclasses implement `_plan`; `plan` records its runtime."""

    name = "planner"
    # whether `_plan` uses the siren evidence: a planner that ignores it needs no microphones
    hears_sirens = False

    def __init__(self) -> None:
        self.runtimes_s: list[float] = []

    def plan(self, inputs: PlannerInput) -> PlannerOutput:
        start = wall.perf_counter()
        out = self._plan(inputs)
        self.runtimes_s.append(wall.perf_counter() - start)
        return out

    @abc.abstractmethod
    def _plan(self, inputs: PlannerInput) -> PlannerOutput: ...


class PdmPlanner(Planner):
    """Behaviour state machine + PDM-Closed motion planner."""

    name = "pdm"
    hears_sirens = True

    def __init__(
        self, motion: MotionPlanner | None = None, behaviour: BehaviourPlanner | None = None
    ) -> None:
        super().__init__()
        self.motion = motion if motion is not None else MotionPlanner()
        self.behaviour = (
            behaviour if behaviour is not None else BehaviourPlanner(params=self.motion.params)
        )
        self._last_ok = True

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
        plan = self.motion.plan(inputs.ego, inputs.path, inputs.scene, inputs.predictions, target)
        self._last_ok = plan.ok
        name = target.behaviour if plan.ok else Behaviour.SAFE_STOP
        return PlannerOutput(
            plan.trajectory, str(name), plan.ok, target, plan.candidates, plan.scores
        )


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
        return PlannerOutput(states[0], str(target.behaviour), True, target)


class StackOutput(NamedTuple):
    """What one tick of the stack returns (unpacks as a 4-tuple)."""

    command: ControlCommand
    trajectory: Trajectory
    tracks: tuple[Track, ...]
    behaviour: str


STAGES = ("sensors", "tracking", "prediction", "planning", "control")
HEARING_STAGE = "hearing"  # the siren detector, timed only when the car has microphones


@dataclass
class StageTimes:
    """Runtimes (s) of each stage, one entry per tick: wall clock (`by_stage`) and this
    thread's CPU time (`cpu_by_stage`, what a dedicated core would take, without waiting
    for other processes on a shared machine)."""

    by_stage: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    cpu_by_stage: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})

    def add(self, stage: str, seconds: float, cpu_seconds: float | None = None) -> None:
        self.by_stage.setdefault(stage, []).append(seconds)
        if cpu_seconds is not None:
            self.cpu_by_stage.setdefault(stage, []).append(cpu_seconds)


class AutonomyStack:
    """One autonomous car's brain. Keep one instance per car for the whole run: the tracker,
    the behaviour state and the controller's integral live here."""

    def __init__(
        self,
        planner: Planner | None = None,
        *,
        seed: int = 0,
        params: VehicleParams = IPACE,
        camera_config: CameraConfig | None = None,
        tracker_config: TrackerConfig | None = None,
        controller_gains: ControllerGains | None = None,
        lane_lookup: LaneLookup | None = None,
        mic_config: MicArrayConfig | None = None,
        siren_detector: SirenDetector | None = None,
    ) -> None:
        """`mic_config` gives the car roof microphones: `step` then takes each tick's audio
        and runs `siren_detector` (by default one for that array's geometry) on it."""
        self.params = params
        self.planner = planner if planner is not None else PdmPlanner(MotionPlanner(params))
        motion = getattr(self.planner, "motion", None)
        self.horizon_s = motion.horizon_s if isinstance(motion, MotionPlanner) else 4.0
        self.plan_dt_s = motion.dt_s if isinstance(motion, MotionPlanner) else 0.1
        self.camera_config = camera_config if camera_config is not None else CameraConfig()
        self.tracker = MultiObjectTracker(tracker_config)
        self.controller = TrajectoryController(
            controller_gains if controller_gains is not None else ControllerGains(), params
        )
        self.lane_lookup = lane_lookup
        self.rng = np.random.default_rng(seed)
        self.times = StageTimes()
        self.last_detections: tuple[Detection, ...] = ()
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

    def hear(
        self, audio: npt.NDArray[np.floating[Any]], ego: VehicleState, time: TimePoint
    ) -> SirenEvidence:
        """Run the siren detector over one tick of audio (mics×samples) and fold its
        windows into the evidence at `time` (the end of that audio)."""
        if self.siren_detector is None:
            raise ConfigError("audio given to a stack without microphones: pass mic_config")
        t0, c0 = wall.perf_counter(), wall.thread_time()
        windows = self.siren_detector.push(np.asarray(audio, dtype=np.float64))
        evidence = siren_evidence(windows, Pose(ego.x, ego.y, ego.heading), time, self.last_siren)
        self.last_siren = evidence
        self.times.add(HEARING_STAGE, wall.perf_counter() - t0, wall.thread_time() - c0)
        return evidence

    def step(
        self,
        ego: VehicleState,
        agents: Sequence[AgentState],
        path: ReferencePath,
        signals: Mapping[str, str],
        stop_request_s: float | None,
        time: TimePoint,
        dt_s: float,
        *,
        detections: Sequence[Detection] | None = None,
        static_occluders: Sequence[FloatArray] = (),
        ego_id: str | None = None,
        audio: npt.NDArray[np.floating[Any]] | None = None,
    ) -> StackOutput:
        """One tick: see with the cameras (unless `detections` are given), track, predict,
        plan, and return the command to apply for the next `dt_s` seconds.

        `ego` is the car's state at its rear axle; `agents` the ground truth of everyone else
        (the ego itself is dropped if `ego_id` names it); `signals` maps each stop line's
        `signal_id` to its state character; `stop_request_s` is the arc length along `path`
        where the car's centre should stop at the kerb, or None. `static_occluders` are
        polygons (city blocks) that hide objects from the cameras; `audio` is what the roof
        microphones recorded during the last `dt_s` (mics×samples, Pa; needs `mic_config`).
        """
        siren = self.hear(audio, ego, time) if audio is not None else None
        t0, c0 = wall.perf_counter(), wall.thread_time()
        if detections is None:
            cx, cy = footprint_center(ego.x, ego.y, ego.heading, self.params)
            detections = simulate_cameras(
                agents,
                Pose(float(cx), float(cy), ego.heading),
                time,
                self.rng,
                self.camera_config,
                static_occluders,
                ego_id,
            )
        self.last_detections = tuple(detections)
        t1, c1 = wall.perf_counter(), wall.thread_time()
        tracks = tuple(self.tracker.update(detections, time))
        t2, c2 = wall.perf_counter(), wall.thread_time()
        predictions = predict(tracks, self.horizon_s, self.plan_dt_s, self.lane_lookup)
        scene = frenet_scene(path, ego, predictions)
        self.last_predictions = predictions
        t3, c3 = wall.perf_counter(), wall.thread_time()
        out = self.planner.plan(
            PlannerInput(
                time, ego, tracks, predictions, scene, path, signals, stop_request_s, siren
            )
        )
        self.last_output = out
        t4, c4 = wall.perf_counter(), wall.thread_time()
        trajectory = Trajectory(time, out.trajectory)
        command = self.controller.command(ego, trajectory, dt_s)
        t5, c5 = wall.perf_counter(), wall.thread_time()
        walls = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
        cpus = (c1 - c0, c2 - c1, c3 - c2, c4 - c3, c5 - c4)
        for stage, seconds, cpu in zip(STAGES, walls, cpus, strict=True):
            self.times.add(stage, seconds, cpu)
        return StackOutput(command, trajectory, tracks, out.behaviour)
