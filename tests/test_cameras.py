"""Simulated cameras: field of view, range, occlusion, noise, misses, false positives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robotaxi.autonomy.sensors.cameras import CameraConfig, line_of_sight, simulate_cameras
from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentKind, AgentState, Pose, SirenState

T0 = TimePoint(0)
EGO = Pose(0.0, 0.0, 0.0)
PERFECT = CameraConfig(
    heading_std_rad=0.0, speed_std_mps=0.0, miss_probability=0.0, false_positives_per_frame=0.0
)


def car(agent_id: str, x: float, y: float, **kw: object) -> AgentState:
    return AgentState(agent_id, kw.pop("kind", AgentKind.CAR), x, y, 0.0, 5.0, **kw)  # type: ignore[arg-type]


def seen(detections: list) -> set[str]:
    return {d.truth_id for d in detections if d.truth_id is not None}


def test_range_and_field_of_view() -> None:
    agents = [
        car("far", 150.0, 0.0),  # beyond the roof camera's 120 m
        car("behind", -60.0, 0.0),  # the roof camera sees all around
        car("beside", 0.0, 3.0),  # inside the roof camera's blind ring: side camera
        car("beside_right", 0.5, -3.0),
    ]
    dets = simulate_cameras(agents, EGO, T0, np.random.default_rng(0), PERFECT)
    assert seen(dets) == {"behind", "beside", "beside_right"}
    by_id = {d.truth_id: d for d in dets}
    assert by_id["behind"].sensor_id == "roof_360"
    assert by_id["beside"].sensor_id == "side_left"
    assert by_id["beside_right"].sensor_id == "side_right"
    # a rig with only a forward 90° camera does not see behind or beside
    from robotaxi.autonomy.sensors.cameras import CameraSpec

    narrow = PERFECT.model_copy(
        update={"cameras": (CameraSpec(camera_id="front", fov_rad=math.pi / 2),)}
    )
    dets = simulate_cameras(
        [*agents, car("ahead", 30.0, 5.0)], EGO, T0, np.random.default_rng(0), narrow
    )
    assert seen(dets) == {"ahead"}


def test_vehicles_shadow_what_is_behind_them_and_blocks_hide_cross_streets() -> None:
    truck = AgentState("truck", AgentKind.CAR, 15.0, 0.0, 0.0, 0.0, length=10.0, width=2.6)
    hidden = car("hidden", 40.0, 0.0)
    visible = car("visible", 40.0, 12.0)
    dets = simulate_cameras([truck, hidden, visible], EGO, T0, np.random.default_rng(0), PERFECT)
    assert seen(dets) == {"truck", "visible"}
    block = np.array([[20.0, 5.0], [60.0, 5.0], [60.0, 40.0], [20.0, 40.0]])
    dets = simulate_cameras(
        [visible], EGO, T0, np.random.default_rng(0), PERFECT, static_occluders=[block]
    )
    assert seen(dets) == set()
    no_occlusion = PERFECT.model_copy(update={"occlusion": False})
    dets = simulate_cameras([truck, hidden], EGO, T0, np.random.default_rng(0), no_occlusion)
    assert seen(dets) == {"truck", "hidden"}


def test_line_of_sight_against_brute_force_cases() -> None:
    square = np.array([[4.0, -1.0], [6.0, -1.0], [6.0, 1.0], [4.0, 1.0]])
    targets = np.array([[10.0, 0.0], [10.0, 5.0], [5.0, 0.0], [3.0, 0.0]])
    owner = np.array([1, 1, 0, 1])
    vis = line_of_sight((0.0, 0.0), targets, owner, [square], [0])
    # behind the square: hidden; off to the side: seen; the square's own centre: seen
    # (own occluder ignored); in front of it: seen
    assert vis.tolist() == [False, True, True, True]


def test_flashing_lights_only_when_the_ev_is_seen() -> None:
    amb = car("amb", -40.0, 0.0, kind=AgentKind.EMERGENCY, siren=SirenState.ON)
    dets = simulate_cameras([amb], EGO, T0, np.random.default_rng(0), PERFECT)
    assert [d.flashing_lights for d in dets] == [True]
    blocker = AgentState("bus", AgentKind.CAR, -15.0, 0.0, 0.0, 0.0, length=12.0, width=2.6)
    dets = simulate_cameras([amb, blocker], EGO, T0, np.random.default_rng(0), PERFECT)
    assert seen(dets) == {"bus"}
    assert not any(d.flashing_lights for d in dets)


def test_noise_misses_and_false_positives_match_their_parameters() -> None:
    cfg = CameraConfig(miss_probability=0.2, false_positives_per_frame=0.5)
    rng = np.random.default_rng(7)
    target = car("t", 50.0, 0.0)
    errs, hits, fps = [], 0, 0
    frames = 3000
    for _ in range(frames):
        dets = simulate_cameras([target], EGO, T0, rng, cfg)
        for d in dets:
            if d.truth_id == "t":
                hits += 1
                errs.append(d.x - 50.0)
            else:
                fps += 1
    expected_std = 0.15 + 0.004 * 50.0
    assert np.std(errs) == pytest.approx(expected_std, rel=0.08)
    assert abs(np.mean(errs)) < 0.03
    assert hits / frames == pytest.approx(0.8, abs=0.03)
    assert fps / frames == pytest.approx(0.5 * len(cfg.cameras), rel=0.08)


def test_same_seed_same_detections() -> None:
    agents = [car(f"c{i}", 10.0 * i - 50, (i % 3) * 3.5 - 3.5) for i in range(12)]
    cfg = CameraConfig(false_positives_per_frame=0.3)
    a = simulate_cameras(agents, EGO, T0, np.random.default_rng(11), cfg)
    b = simulate_cameras(agents, EGO, T0, np.random.default_rng(11), cfg)
    c = simulate_cameras(agents, EGO, T0, np.random.default_rng(12), cfg)
    assert a == b
    assert a != c
