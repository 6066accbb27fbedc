"""Driving rules found on the CommonRoad benchmark (issue 15), each on a hand-built scene
with a known answer: no braking for a car from behind whose prediction runs through us,
letting off the brake is no discomfort, the goal region's spot is aimed at within the lane,
a lower speed limit ahead is braked for only as early as comfortable braking needs, and no
slowing for a slower car behind in the lane we wait to change into."""

from __future__ import annotations

import numpy as np
import pytest

from robotaxi.autonomy.planning.arrival import (
    ALIGN_AHEAD_M,
    GoalWindow,
    region_aim_offset,
    region_lateral_extent,
)
from robotaxi.autonomy.planning.behaviour import Behaviour, BehaviourTarget, frenet_scene
from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.follow import FollowPolicy
from robotaxi.autonomy.planning.behaviour.policy import Draft, Tick
from robotaxi.autonomy.planning.lane_change import (
    YIELD_MARGIN_MPS,
    lane_change_gap_ok,
    yield_speed,
)
from robotaxi.autonomy.planning.motion import MotionPlanner
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import predict
from robotaxi.autonomy.vehicle import IPACE, VehicleState
from robotaxi.core.types import TrajectoryColumn
from scenes import track

C = TrajectoryColumn
LIMIT = 16.0


def _rollout(ego: VehicleState, tracks) -> np.ndarray:
    """The lane-centre, full-speed roll-out among `tracks` (constant-velocity predictions)."""
    path = ReferencePath.straight((0.0, 0.0), 0.0, 600.0, speed_limit_mps=LIMIT)
    pred = predict(tracks, 4.0, 0.1)
    scene = frenet_scene(path, ego, pred)
    target = BehaviourTarget(Behaviour.CAR_FOLLOW, 0.0, LIMIT)
    states, _, _ = MotionPlanner().rollout(ego, path, scene, pred, target, np.zeros(1), np.ones(1))
    return states[0]


def test_no_braking_for_a_faster_car_behind_in_our_lane() -> None:
    # 12 m behind our rear axle, 5 m/s faster: carried on at its speed it runs through us;
    # it is a follower, not a car cutting in (with it leading, the roll-out braked at once)
    ego = VehicleState(0.0, 0.0, 0.0, 14.0)
    traj = _rollout(ego, [track(1, -12.0, 0.0, 19.0, 0.0)])
    assert traj[1:, C.ACCEL].min() > -0.5


def test_no_braking_for_a_car_merging_in_from_behind_until_it_is_ahead() -> None:
    # from 20 m behind in the lane to our left, 6 m/s faster and drifting into our lane: it
    # comes into our corridor about level with us. It has to overtake us first, so it does
    # not lead yet (with its future place counted now, the roll-out braked at over 6 m/s²)
    ego = VehicleState(0.0, 0.0, 0.0, 14.0)
    traj = _rollout(ego, [track(1, -20.0, 3.5, 20.0, -1.0)])
    assert traj[1:11, C.ACCEL].min() > -1.0
    # ... but a car already ahead that cuts in still leads from before it is in our lane
    cut_in = _rollout(ego, [track(2, 12.0, 3.5, 14.0, -1.5)])
    assert cut_in[1:11, C.ACCEL].min() < -1.0


def test_letting_off_the_brake_is_not_discomfort() -> None:
    # two candidates alike but for their accelerations: one brakes at 2 m/s² throughout,
    # one lets the brake off within 0.2 s (10 m/s³, the roll-out's release); only a jerk
    # that brakes harder or pulls away harder counts against comfort
    planner = MotionPlanner()
    path = ReferencePath.straight((0.0, 0.0), 0.0, 200.0, speed_limit_mps=LIMIT)
    n = planner.n_steps + 1
    cand = np.zeros((2, n, 7))
    cand[:, :, C.T] = np.arange(n) * planner.dt_s
    cand[:, :, C.X] = 10.0 * cand[:, :, C.T]
    cand[:, :, C.SPEED] = 10.0
    cand[0, :, C.ACCEL] = -2.0
    cand[1, :, C.ACCEL] = np.concatenate([[-2.0, -2.0, -1.0], np.zeros(n - 3)])
    s_hist = cand[:, :, C.X].copy()
    d_hist = np.zeros_like(s_hist)
    target = BehaviourTarget(Behaviour.LANE_FOLLOW, 0.0, LIMIT)
    pred = predict([], 4.0, 0.1)
    planner.score(cand, s_hist, d_hist, path, pred, target)
    weighted = planner.last_weighted
    assert weighted[1] == pytest.approx(weighted[0])


def _window(xy: list[tuple[float, float]]) -> GoalWindow:
    return GoalWindow(np.asarray(xy, dtype=np.float64), 5.0, 6.0)


def test_the_goal_region_is_aimed_at_within_the_lane() -> None:
    path = ReferencePath.straight((0.0, 0.0), 0.0, 300.0)  # 3.5 m lane
    # a region 2.4 m long, 1.8 m wide, straddling the lane's right edge (d −2.3 … −0.5)
    right = _window([(100.0, -2.3), (100.0, -0.5), (102.4, -0.5), (102.4, -2.3)])
    extent = region_lateral_extent(path, right)
    assert extent == pytest.approx((-2.3, -0.5))
    span = (100.0, 102.4)
    room = 0.5 * 3.5 - 0.5 * IPACE.width_m - 0.15
    # near it: as far right as 0.4 m inside the region, but no further than the lane allows
    assert region_aim_offset(span, extent, 80.0, 10.0, 3.5) == pytest.approx(-room)
    # too far ahead (beyond 3 s at 10 m/s), and once past it: no aim
    assert region_aim_offset(span, extent, 60.0, 10.0, 3.5) is None
    assert region_aim_offset(span, extent, 103.0, 10.0, 3.5) is None
    # standing still, from ALIGN_AHEAD_M
    assert region_aim_offset(span, extent, 100.0 - ALIGN_AHEAD_M + 1.0, 0.0, 3.5) is not None
    # a region over the lane centre with room to spare: keep to the centre
    centre = _window([(100.0, -1.5), (100.0, 0.6), (102.4, 0.6), (102.4, -1.5)])
    extent_c = region_lateral_extent(path, centre)
    assert extent_c is not None
    assert region_aim_offset(span, extent_c, 90.0, 10.0, 3.5) == 0.0
    # ... and only 0.1 m past the centre line: 0.4 m inside it
    edge = _window([(100.0, 0.1), (100.0, 1.7), (102.4, 1.7), (102.4, 0.1)])
    extent_e = region_lateral_extent(path, edge)
    assert extent_e is not None
    assert region_aim_offset(span, extent_e, 90.0, 10.0, 3.5) == pytest.approx(0.5)


def _follow_cap(limits: list[tuple[float, float]], s_ego: float, speed: float) -> float:
    """The follow policy's speed on a straight road whose limit changes at the given arc
    lengths ((from_s, limit) pairs)."""
    path = ReferencePath.straight((0.0, 0.0), 0.0, 400.0)
    speed_limit = np.full(len(path.s), limits[0][1])
    for from_s, limit in limits[1:]:
        speed_limit[path.s >= from_s] = limit
    path = ReferencePath(
        path.xy, path.lane_width_m, speed_limit, path.right_room_m, path.left_room_m
    )
    ego = VehicleState(s_ego, 0.0, 0.0, speed)
    pred = predict([], 4.0, 0.1)
    tick = Tick(ego, path, frenet_scene(path, ego, pred), pred, {}, None, 0.0, True, None, 3.5)
    policy = FollowPolicy(BehaviourConfig(), IPACE)
    return policy.apply(tick, Draft()).speed_limit_mps


def test_a_lower_limit_ahead_is_braked_for_only_as_early_as_needed() -> None:
    # 15 m/s road, 5 m/s from s = 100: 38 m before it (the preview reaches it) the car need
    # not slow yet (√(5² + 2·2·(38 − 3.9 − 15)) ≈ 9.9 m/s is the cap there, not 5 m/s) ...
    far = _follow_cap([(0.0, 15.0), (100.0, 5.0)], 62.0, 15.0)
    assert 9.0 < far < 15.0
    # ... close to it, the cap comes down toward the limit, and past the start it is the limit
    near = _follow_cap([(0.0, 15.0), (100.0, 5.0)], 92.0, 5.0)
    assert near < 7.0
    assert _follow_cap([(0.0, 15.0), (100.0, 5.0)], 101.0, 5.0) == pytest.approx(5.0)


def test_no_yielding_to_a_slower_car_behind_in_the_target_lane() -> None:
    # the route's lane change waits for its gap; the car that closes it sits just behind us
    # in the target lane. Slower by 3 m/s, it drops back while we keep our pace: no
    # braking to let it by. At our speed (in the blind spot) we still slow to let it by.
    ego = VehicleState(0.0, 0.0, 0.0, 15.0)
    lane = ReferencePath.straight((-100.0, 3.5), 0.0, 500.0)
    slower = predict([track(1, -4.5, 3.5, 12.0, 0.0)], 4.0, 0.1)
    assert not lane_change_gap_ok(ego, slower, lane)
    assert yield_speed(ego, slower, lane) is None
    alongside = predict([track(2, -4.5, 3.5, 15.0, 0.0)], 4.0, 0.1)
    assert yield_speed(ego, alongside, lane) == pytest.approx(15.0 - YIELD_MARGIN_MPS, abs=0.1)
