"""Route lane changes begun only into a gap, and arrival timed to the goal's window: the gap
rule on hand-built scenes with known answers, the route's lane change moved on while the
target lane is taken (and not while it is free), and the arrival speed bounds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cr_scenes import straight_lanes_problem
from robotaxi.autonomy.planning.arrival import GoalWindow, arrival_speed_bounds, region_span
from robotaxi.autonomy.planning.lane_change import follow_accel, lane_change_gap_ok
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import predict
from robotaxi.autonomy.vehicle import IPACE, VehicleState
from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentKind, Track

LANE_W = 3.5


def _car(track_id: int, x: float, y: float, speed: float) -> Track:
    return Track(
        track_id, TimePoint.from_s(0.0), x, y, speed, 0.0, AgentKind.CAR, 4.5, 1.9,
        np.eye(4) * 0.1,
    )  # fmt: skip


def _straight_lane(y: float, start_x: float = -100.0) -> ReferencePath:
    xs = np.linspace(start_x, 400.0, 501)
    return ReferencePath(np.column_stack([xs, np.full_like(xs, y)]), LANE_W, 30.0, 1.75, 1.75)


# the ego's rear axle at x = 0 in the right lane (y = 0) at 12 m/s; the target lane at y = 3.5
EGO = VehicleState(0.0, 0.0, 0.0, 12.0)
TARGET = _straight_lane(LANE_W)


@pytest.mark.parametrize(
    ("who", "ok"),
    [
        ([], True),  # nobody there
        ([(40.0, LANE_W, 12.0)], True),  # a leader far ahead, same speed
        ([(-35.0, LANE_W, 12.0)], True),  # a follower far behind, same speed
        ([(1.5, LANE_W, 12.0)], False),  # right beside us
        ([(9.0, LANE_W, 12.0)], False),  # a leader too close ahead
        # 4 m ahead and pulling away at 1 m/s: our own car following would still brake hard
        # behind it, in front of whoever follows, even at the shorter headway it keeps
        # right after a change
        ([(10.0, LANE_W, 13.0)], False),
        # 6 m ahead and pulling away at 3 m/s: at that shorter headway the car closes back
        # to its usual gap gently (`merge_headway`), so the gap is taken
        ([(12.0, LANE_W, 15.0)], True),
        ([(-12.0, LANE_W, 20.0)], False),  # a follower coming 8 m/s faster, 12 m back
        ([(-30.0, LANE_W, 22.0)], False),  # ... 10 m/s faster, 30 m back: it would brake hard
        ([(-30.0, LANE_W, 13.0)], True),  # ... 1 m/s faster, 30 m back: fine
        ([(1.5, 0.0, 12.0)], True),  # in our own lane: not the target lane's business
        ([(1.5, 2 * LANE_W, 12.0)], True),  # two lanes over
    ],
)
def test_gap_rule_on_hand_built_scenes(who, ok):
    tracks = [_car(i, x, y, v) for i, (x, y, v) in enumerate(who)]
    assert lane_change_gap_ok(EGO, predict(tracks), TARGET) is ok


def test_follow_accel_is_the_motion_planners_car_following():
    # no one near: nothing to brake for; a standing car close ahead: hard braking; a leader
    # at our speed at the IDM's desired gap (2 m + 1.5 s): none (the improved IDM keeps
    # that gap); at 4/5 of it: mild, a·(1 − 1.25²) eased by the ACC blend
    assert follow_accel(12.0, np.array([12.0]), np.array([500.0]))[0] > -0.1
    assert follow_accel(12.0, np.array([0.0]), np.array([10.0]))[0] < -5.0
    desired = follow_accel(12.0, np.array([12.0]), np.array([20.0]))[0]
    assert desired == pytest.approx(0.0, abs=1e-9)
    closer = follow_accel(12.0, np.array([12.0]), np.array([16.0]))[0]
    assert -1.0 < closer < -0.6


def test_gap_rule_ignores_traffic_coming_the_other_way():
    oncoming = Track(
        1, TimePoint.from_s(0.0), 2.0, LANE_W, -12.0, 0.0, AgentKind.CAR, 4.5, 1.9,
        np.eye(4) * 0.1,
    )  # fmt: skip
    assert lane_change_gap_ok(EGO, predict([oncoming]), TARGET)


def test_arrival_bounds_hold_back_an_early_car_and_hurry_a_late_one():
    window = GoalWindow(np.array([[90.0, -1.0], [110.0, -1.0], [110.0, 1.0], [90.0, 1.0]]), 10, 12)
    path = _straight_lane(0.0, start_x=0.0)
    span = region_span(path, window)
    assert span == pytest.approx((90.0, 110.0), abs=0.01)
    # 105 m to 3/4 through the region, 10 s before it opens: no faster than 10.5 m/s; 95 m
    # to 1/4 of the way in, 12 s before it closes: at least 95/12 m/s
    lo, hi = arrival_speed_bounds(span, 0.0, 0.0, window)
    assert hi == pytest.approx(10.5)
    assert lo == pytest.approx(95.0 / 12.0)
    # once open, no cap; the floor rises as time runs out
    lo, hi = arrival_speed_bounds(span, 85.0, 11.0, window)
    assert hi == float("inf") and lo == pytest.approx(10.0)
    # ... but only once that point is near: 105 m at 20 m/s is more than 4 s out
    assert arrival_speed_bounds(span, 0.0, 0.0, window, 20.0)[1] == float("inf")
    assert arrival_speed_bounds(span, 30.0, 0.0, window, 20.0)[1] == pytest.approx(7.5)
    # inside, past 3/4 of it before it opens: wait there
    assert arrival_speed_bounds(span, 106.0, 5.0, window) == (0.0, 0.0)
    # past the region, or after the window: nothing to ask
    assert arrival_speed_bounds(span, 111.0, 5.0, window) == (0.0, float("inf"))
    assert arrival_speed_bounds(span, 50.0, 12.5, window) == (0.0, float("inf"))
    # a region nowhere near the route bounds nothing
    far = GoalWindow(window.outline_xy + np.array([0.0, 50.0]), 10, 12)
    assert region_span(path, far) is None


def _two_lane_problem():
    """A CommonRoad problem on two parallel 300 m lanes (right lane id 1, left lane id 2)
    whose goal lies in the left lane 250 m ahead: the route changes lane once."""
    from robotaxi.sim.commonroad import CrProblem, goal_window

    scenario, problem, router = straight_lanes_problem((0.0, LANE_W), LANE_W, LANE_W, None)
    route = router.route(problem, 40.0, 300.0)
    return CrProblem("two-lanes", scenario, problem, route, router, 0.1, 0, 250,
                     goal_window(problem, 0.1))  # fmt: skip


@pytest.fixture(scope="module")
def two_lanes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _two_lane_problem()


def _lateral_at(path: ReferencePath, x: float) -> float:
    """The path's y (its lane) at map x: 0 in the right lane, 3.5 in the left."""
    s, _ = path.project(x, 0.0)
    return float(path.xy[int(np.argmin(np.abs(path.s - float(s))))][1])


def test_route_lane_change_waits_while_the_target_lane_is_taken(two_lanes):
    from robotaxi.sim.commonroad import RouteLaneChanges

    assert two_lanes.route.lane_changes == (False, True)
    free = RouteLaneChanges(two_lanes, IPACE)
    taken = RouteLaneChanges(two_lanes, IPACE)
    # a car keeps beside the ego in the left lane, at its speed, the whole way
    for k in range(60):
        x = 20.0 + 12.0 * 0.1 * k
        ego = VehicleState(x, 0.0, 0.0, 12.0)
        free_path = free.path_for(ego, predict([]))
        taken_path = taken.path_for(ego, predict([_car(7, x + 1.0, LANE_W, 12.0)]))
    # free: begun once the car had watched its surroundings for a few ticks (moved on only
    # that long), and the path is over in the left lane 40 m on; taken: moved on ahead of
    # the car all along, still in the right lane
    assert free.deferrals <= 2 and free.begun
    assert _lateral_at(free_path, x + 40.0) == pytest.approx(LANE_W, abs=0.1)
    assert taken.deferrals > 5 and not taken.begun
    assert _lateral_at(taken_path, x + 5.0) == pytest.approx(0.0, abs=0.1)
    # once the car has gone, the change is taken where the car then is
    for k in range(60, 100):
        x = 20.0 + 12.0 * 0.1 * k
        taken_path = taken.path_for(VehicleState(x, 0.0, 0.0, 12.0), predict([]))
    assert taken.begun
    assert _lateral_at(taken_path, x + 45.0) == pytest.approx(LANE_W, abs=0.1)


def test_route_lane_change_moves_no_further_than_the_lanelet_allows(two_lanes):
    from robotaxi.sim.commonroad import RouteLaneChanges

    taken = RouteLaneChanges(two_lanes, IPACE)
    for k in range(250):
        x = 20.0 + 12.0 * 0.1 * k
        path = taken.path_for(VehicleState(x, 0.0, 0.0, 12.0), predict([_car(7, x, LANE_W, 12.0)]))
        if taken.begun:
            break
    # given up waiting with room for the change still left on the lanelet (300 m long)
    assert taken.begun and x < 300.0 - 20.0
    assert _lateral_at(path, 299.0) == pytest.approx(LANE_W, abs=0.1)


def test_the_idm_baseline_keeps_the_route_as_laid_out(two_lanes):
    from robotaxi.sim.commonroad import RouteLaneChanges

    fixed = RouteLaneChanges(two_lanes, IPACE, enabled=False)
    ego = VehicleState(30.0, 0.0, 0.0, 12.0)
    assert fixed.path_for(ego, predict([_car(7, 31.0, LANE_W, 12.0)])) is two_lanes.path


def test_a_lane_change_laid_out_where_the_car_starts_is_checked_too(two_lanes):
    from robotaxi.sim.commonroad import RouteLaneChanges

    # the route lays the change 5 m ahead of the car's centre: its front is already past
    # it. A car beside in the target lane: the change must wait, not count as under way
    taken = RouteLaneChanges(two_lanes, IPACE)
    start_x = float(taken.starts[0].start_xy[0])
    x = start_x - IPACE.rear_axle_to_front_m + 1.0
    for k in range(10):
        ego = VehicleState(x + 1.2 * k, 0.0, 0.0, 12.0)
        beside = [_car(7, ego.x + 1.0, LANE_W, 12.0)]
        path = taken.path_for(ego, predict(beside) if k else None)
    assert not taken.begun and taken.deferrals > 0
    assert _lateral_at(path, ego.x + 5.0) == pytest.approx(0.0, abs=0.1)
