"""Simulated cameras: field of view, range, occlusion, noise, misses, false positives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentKind, AgentState, Pose, SirenState
from robotaxi.sim.sensors.cameras import (
    CameraConfig,
    StaticOccluders,
    block_polygons,
    line_of_sight,
    map_block_occluders,
    simulate_cameras,
)

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
    from robotaxi.config.sensors import CameraSpec

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


def _crossroads() -> tuple[list[np.ndarray], list[float]]:
    """Two 7 m wide streets crossing at the origin (one lane each way), as lane centrelines."""
    lines = [
        np.array([[-100.0, -1.75], [100.0, -1.75]]),
        np.array([[100.0, 1.75], [-100.0, 1.75]]),
        np.array([[1.75, -100.0], [1.75, 100.0]]),
        np.array([[-1.75, 100.0], [-1.75, -100.0]]),
    ]
    return lines, [3.5] * 4


def test_city_blocks_from_the_streets_hide_the_cross_street_until_the_corner() -> None:
    lines, widths = _crossroads()
    blocks = block_polygons(lines, widths, (-100.0, -100.0, 100.0, 100.0), sidewalk_m=2.0)
    # four blocks, one per quadrant, from the road edge + pavement (3.5 + 2 m) to the bounds
    assert len(blocks) == 4
    boxes = sorted(np.concatenate([b.min(axis=0), b.max(axis=0)]).tolist() for b in blocks)
    expected = [
        [-100.0, -100.0, -5.5, -5.5],
        [-100.0, 5.5, -5.5, 100.0],
        [5.5, -100.0, 100.0, -5.5],
        [5.5, 5.5, 100.0, 100.0],
    ]
    np.testing.assert_allclose(boxes, expected, atol=0.05)
    occluders = StaticOccluders(blocks)
    # an ambulance on the cross street, 40 m west of the junction, eastbound
    amb = AgentState("amb", AgentKind.EMERGENCY, -40.0, -1.75, 0.0, 12.0, siren=SirenState.ON)
    far_back = Pose(1.75, -40.0, math.pi / 2)  # our car 40 m south of the junction
    at_corner = Pose(1.75, -3.0, math.pi / 2)  # our car at the junction
    rng = np.random.default_rng(0)
    polys = occluders.near(far_back.x, far_back.y, 130.0)
    assert len(polys) == 4
    assert seen(simulate_cameras([amb], far_back, T0, rng, PERFECT, polys)) == set()
    # the same ambulance seen when there is no block in the way (no occluders given), and
    # from the junction, where the sight line runs along the open street
    assert seen(simulate_cameras([amb], far_back, T0, rng, PERFECT)) == {"amb"}
    dets = simulate_cameras([amb], at_corner, T0, rng, PERFECT, polys)
    assert seen(dets) == {"amb"} and dets[0].flashing_lights
    # the line of sight by hand: through the south-west block or along the street
    assert occluders.blocks_sight((1.75, -40.0), np.array([[-40.0, -1.75]])).tolist() == [True]
    assert occluders.blocks_sight((1.75, -3.0), np.array([[-40.0, -1.75]])).tolist() == [False]
    # looking straight down our own street is never blocked
    assert occluders.blocks_sight((1.75, -40.0), np.array([[1.75, 60.0]])).tolist() == [False]
    # `near` keeps only blocks whose bounding box is within reach
    assert len(occluders.near(50.0, 50.0, 10.0)) == 1


@pytest.mark.sumo
def test_grid_city_blocks_hide_the_hidden_cross_street_ambulance() -> None:
    from robotaxi.config import load_config
    from robotaxi.sim.runner import load_city

    road_map, _ = load_city(load_config(overrides={"map.city": "grid"}))
    occluders = map_block_occluders(road_map)
    # 10 × 10 blocks of the 300 m grid, each a bit smaller than 300 × 300 m by the streets
    assert len(occluders) == 100
    sizes = np.array([p.max(axis=0) - p.min(axis=0) for p in occluders.polygons])
    assert np.all((sizes > 270.0) & (sizes < 296.0))
    # scenario ambulance-hidden-cross-street: ambulance eastbound on A2B2 (y = 595.2), our car
    # northbound on B1B2 (x = 301.6), the block's corner at about (294.8, 591.4): 60 m west
    # of the junction it is hidden from 45 m back and from the stop line; 8 m west it is
    # seen from the stop line; 21 m west, not from 45 m back
    rng = np.random.default_rng(0)
    for amb_x, ego_y, expected in (
        (240.0, 540.0, set()),
        (240.0, 588.0, set()),
        (293.0, 588.0, {"amb"}),
        (280.0, 540.0, set()),
    ):
        amb = AgentState("amb", AgentKind.EMERGENCY, amb_x, 595.2, 0.0, 15.0, siren=SirenState.ON)
        pose = Pose(301.6, ego_y, math.pi / 2)
        polys = occluders.near(pose.x, pose.y, 130.0)
        assert seen(simulate_cameras([amb], pose, T0, rng, PERFECT, polys)) == expected
        assert seen(simulate_cameras([amb], pose, T0, rng, PERFECT)) == {"amb"}


@pytest.mark.sumo
def test_a_maps_blocks_are_computed_once_and_equal_a_fresh_computation(grid_map) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    lanes = list(grid_map.lanes.values())
    centerlines = [lane.centerline for lane in lanes]
    widths = [lane.width for lane in lanes]
    fresh = block_polygons(centerlines, widths, grid_map.bounds, sidewalk_m=3.0)
    first = map_block_occluders(grid_map, sidewalk_m=3.0)
    again = map_block_occluders(dataclasses.replace(grid_map), sidewalk_m=3.0)
    assert len(first) == len(fresh) == 100
    for kept, computed in zip(first.polygons, fresh, strict=True):
        np.testing.assert_array_equal(kept, computed)
        assert not kept.flags.writeable
    # the same map again: the very same arrays, not a second union of the streets
    assert all(a is b for a, b in zip(again.polygons, first.polygons, strict=True))
    # anything the blocks depend on changes them: the pavement, a lane's width
    wider = map_block_occluders(grid_map, sidewalk_m=2.0)
    assert wider.polygons[0] is not first.polygons[0]
    np.testing.assert_array_equal(
        wider.polygons[0], block_polygons(centerlines, widths, grid_map.bounds)[0]
    )
    lane = lanes[0]
    widened = {**grid_map.lanes, lane.lane_id: dataclasses.replace(lane, width=lane.width + 1)}
    changed = map_block_occluders(dataclasses.replace(grid_map, lanes=widened), sidewalk_m=3.0)
    assert all(a is not b for a, b in zip(changed.polygons, first.polygons, strict=False))
