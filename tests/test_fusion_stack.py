"""Audio wired into the autonomy stack: microphones → siren detector → evidence → behaviour."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from robotaxi.autonomy.planning.behaviour import Behaviour
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.stack import AutonomyStack
from robotaxi.autonomy.vehicle import IPACE, VehicleState, footprint_center
from robotaxi.config.sensors import MicArrayConfig
from robotaxi.core.errors import ConfigError
from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentKind, AgentState, Observation, Pose, SirenState
from robotaxi.sim.sensors import CarSensors
from robotaxi.sim.sensors.microphones import MicrophoneArray

DT = 0.1


def _run(seconds: float, seed: int = 3) -> list[tuple[str, bool, float | None]]:
    """A car driving +x at 10 m/s; an ambulance 190 m behind closing at 16 m/s, beyond the
    cameras' 120 m: only the microphones can know. Returns (behaviour, heard, bearing)."""
    path = ReferencePath.straight(
        (-400.0, 0.0), 0.0, 1200.0, right_room_m=4.25, left_room_m=5.25, speed_limit_mps=11.0
    )
    config = MicArrayConfig(negatives_dir=None, seed=seed)
    mics = MicrophoneArray(config)
    cameras = CarSensors(seed=seed)  # nothing in sight; the array is driven by hand below
    stack = AutonomyStack(mic_config=config)
    ego = VehicleState(0.0, 0.0, 0.0, 10.0)
    log = []
    for k in range(round(seconds / DT)):
        t = k * DT
        amb = AgentState(
            "amb", AgentKind.EMERGENCY, -190.0 + 26.0 * t, 0.0, 0.0, 26.0, siren=SirenState.ON
        )
        cx, cy = footprint_center(ego.x, ego.y, ego.heading, IPACE)
        audio = mics.hear(Pose(float(cx), float(cy), ego.heading), [amb], t, DT, ego_speed_mps=10)
        # the ego moves on at constant speed: this test is about what the stack decides
        seen = cameras.observe(ego, [], [], {}, TimePoint.from_s(t + DT), DT)
        out = stack.step(ego, replace(seen, audio=audio), path, None, DT)
        siren = stack.last_siren
        assert siren is not None
        log.append((out.behaviour, siren.detected, siren.bearing_map_rad))
        ego = VehicleState(ego.x + 10.0 * DT, 0.0, 0.0, 10.0)
    return log


def test_microphones_feed_the_detector_and_the_behaviour_reacts_before_sight() -> None:
    log = _run(4.0)
    heard = [i for i, (_, h, _) in enumerate(log) if h]
    assert heard and heard[0] * DT <= 2.0  # detected within 2 s
    bearings = np.array([b for _, h, b in log if h and b is not None])
    # heard from behind: map bearing ≈ 180°
    error = np.abs(np.remainder(bearings - math.pi + math.pi, 2 * math.pi) - math.pi)
    assert np.median(error) < math.radians(15)
    names = [b for b, _, _ in log]
    assert names[0] == Behaviour.LANE_FOLLOW and names[-1] == Behaviour.EV_CAUTION
    # the same seed gives the same evidence and decisions, tick by tick
    assert _run(4.0) == log


def test_audio_without_microphones_is_a_clear_error() -> None:
    stack = AutonomyStack()
    path = ReferencePath.straight((0.0, 0.0), 0.0, 100.0)
    with pytest.raises(ConfigError, match="without microphones"):
        stack.step(
            VehicleState(0.0, 0.0, 0.0, 0.0),
            Observation(TimePoint(0), (), audio=np.zeros((4, 1600), dtype=np.float32)),
            path, None, DT,
        )  # fmt: skip
    assert stack.siren_detector is None and stack.last_siren is None
