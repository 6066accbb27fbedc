"""A car's simulated sensors: ground truth in, an `Observation` out (DESIGN.md, `sim`).

`CarSensors.observe` is the only place where what a car can see and hear is made from the
world's ground truth: the cameras (`cameras.simulate_cameras`, with city blocks from the
map hiding what is behind them) and the roof microphones (`microphones.MicrophoneArray`,
rendering every emergency vehicle with its siren on within `audio_range_m`, with a block's
extra loss when one stands in between). The brain (`autonomy`) only ever sees the result.
"""

from __future__ import annotations

import math
import time as wall
from collections.abc import Mapping, Sequence

import numpy as np

from robotaxi.autonomy.stack import StageTimes
from robotaxi.autonomy.vehicle import IPACE, VehicleParams, VehicleState, footprint_center
from robotaxi.config.scenario import SensorsSpec
from robotaxi.config.sensors import CameraConfig, MicArrayConfig
from robotaxi.core import AgentState, Observation, Pose, TimePoint
from robotaxi.sim.sensors.cameras import StaticOccluders, simulate_cameras
from robotaxi.sim.sensors.microphones import EmergencySource, Float32Array, MicrophoneArray

OCCLUDER_QUERY_M = 130.0  # city blocks this near the car are tested (the cameras' reach)
CAMERA_STAGE = "sensors"
AUDIO_STAGE = "audio_synthesis"


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


class CarSensors:
    """One car's cameras and (optionally) roof microphones, with their own randomness.

    `seed` drives the cameras' noise, misses and phantoms; the microphones' background is
    seeded by `mic_config.seed`. `times` holds the wall and CPU time of each kind of
    sensing per step (stage "sensors" for the cameras, "audio_synthesis" for the array).
    """

    def __init__(
        self,
        *,
        seed: int,
        camera_config: CameraConfig | None = None,
        mic_config: MicArrayConfig | None = None,
        occluders: StaticOccluders | None = None,
        spec: SensorsSpec | None = None,
        params: VehicleParams = IPACE,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.camera_config = camera_config if camera_config is not None else CameraConfig()
        self.mic_config = mic_config
        self.spec = spec if spec is not None else SensorsSpec()
        # the scenario's own siren-free sounds (music, birds, a crowd) play at the array too
        self.mics = (
            MicrophoneArray(mic_config, sounds=self.spec.sounds) if mic_config is not None else None
        )
        self.occluders = occluders
        self.params = params
        self.times = StageTimes(by_stage={}, cpu_by_stage={})

    @property
    def hearing(self) -> bool:
        return self.mics is not None

    def center(self, ego: VehicleState) -> tuple[float, float]:
        """Where the sensors sit in plan view: the footprint centre (roof centre)."""
        cx, cy = footprint_center(ego.x, ego.y, ego.heading, self.params)
        return float(cx), float(cy)

    def listen(
        self,
        ego: VehicleState,
        sirens: Sequence[AgentState],
        time: TimePoint,
        dt_s: float,
        center: tuple[float, float] | None = None,
    ) -> Float32Array | None:
        """What the microphones recorded over the `dt_s` ending at `time` (sirens where they
        are at `time`), or None without microphones."""
        if self.mics is None:
            return None
        cx, cy = center if center is not None else self.center(ego)
        wall0, cpu0 = wall.perf_counter(), wall.thread_time()
        sources = audible(sirens, (cx, cy), self.spec, self.occluders)
        audio = self.mics.hear(
            Pose(cx, cy, ego.heading), sources, time.time_s - dt_s, dt_s, ego_speed_mps=ego.speed
        )
        self.times.add(AUDIO_STAGE, wall.perf_counter() - wall0, wall.thread_time() - cpu0)
        return audio

    def observe(
        self,
        ego: VehicleState,
        truth: Sequence[AgentState],
        sirens: Sequence[AgentState],
        signals: Mapping[str, str],
        time: TimePoint,
        dt_s: float,
        *,
        ego_id: str | None = None,
        cameras: bool = True,
    ) -> Observation:
        """One step of sensing at `time`: the cameras' frame of `truth` (the ego itself,
        named `ego_id`, left out) unless `cameras` is False, the signals the car reads, and
        the audio of the `dt_s` before `time` (`sirens`: every siren on, anywhere)."""
        center = self.center(ego)
        audio = self.listen(ego, sirens, time, dt_s, center)
        detections = None
        if cameras:
            wall0, cpu0 = wall.perf_counter(), wall.thread_time()
            blocks = (
                self.occluders.near(center[0], center[1], OCCLUDER_QUERY_M)
                if self.occluders is not None
                else ()
            )
            detections = tuple(
                simulate_cameras(
                    truth, Pose(center[0], center[1], ego.heading), time, self.rng,
                    self.camera_config, blocks, ego_id,
                )
            )  # fmt: skip
            self.times.add(CAMERA_STAGE, wall.perf_counter() - wall0, wall.thread_time() - cpu0)
        return Observation(time, detections, signals, audio)
