"""Motion planner rules added for closed-loop driving against recorded traffic and for
comfort: nuPlan's at-fault rules, jerk-limited speed profiles and stops, the ACC model's
answer to a cut-in, timing of crossing traffic, and the follower-aware score term."""

from __future__ import annotations

import numpy as np
import pytest

from robotaxi.autonomy.planning.behaviour import Behaviour, BehaviourTarget, frenet_scene
from robotaxi.autonomy.planning.motion import (
    IDM_DECEL_MPS2,
    JERK_FREE_BRAKE_MPS2,
    ROLLOUT_JERK_MPS3,
    ROLLOUT_RELEASE_JERK_MPS3,
    SOFT_STOP_DECEL_MPS2,
    MotionPlanner,
    _at_fault_hits,
    jerk_limited_stop_distance_m,
    soft_stop_target,
)
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import predict
from robotaxi.autonomy.vehicle import IPACE, VehicleState
from robotaxi.core.types import AgentKind, Track, TrajectoryColumn
from scenes import track

C = TrajectoryColumn
LANE = 3.5


def road() -> ReferencePath:
    """Right lane of a two-lane one-way street."""
    return ReferencePath.straight(
        (0.0, 0.0), 0.0, 600.0, right_room_m=LANE / 2 + 0.5, left_room_m=LANE / 2 + LANE,
        speed_limit_mps=13.4,
    )  # fmt: skip


def _plan(ego: VehicleState, tracks: list[Track], target: BehaviourTarget):
    path = road()
    pred = predict(tracks, 4.0, 0.1)
    scene = frenet_scene(path, ego, pred)
    planner = MotionPlanner()
    return planner, planner.plan(ego, path, scene, pred, target), (path, pred, scene)


# --- at-fault rules -------------------------------------------------------------------


def _one_contact(ego_xy, ego_h, agent_xy, agent_h, speed=5.0, in_lane=True, err=0.0):
    c = np.array([[ego_xy]], dtype=float)
    a = np.array([[agent_xy]], dtype=float)
    struck = np.zeros((1, 1), dtype=bool)
    hits = _at_fault_hits(
        c,
        np.array([[ego_h]]),
        IPACE,
        a,
        np.array([[agent_h]]),
        np.array([4.5]),
        np.array([1.8]),
        np.array([[err]]),
        0.0,
        np.array([[speed]]),
        np.array([[in_lane]]),
        struck,
    )
    return bool(hits[0, 0]), bool(struck[0, 0])


def test_at_fault_rules_follow_nuplan() -> None:
    # we run into a car ahead: ours
    assert _one_contact((0.0, 0.0), 0.0, (4.4, 0.0), 0.0) == (True, False)
    # a car runs into our back: not ours, and recorded as being struck
    assert _one_contact((0.0, 0.0), 0.0, (-4.4, 0.0), 0.0) == (False, True)
    # standing still, anything touching us is the other's doing
    assert _one_contact((0.0, 0.0), 0.0, (4.4, 0.0), 0.0, speed=0.0) == (False, False)
    # side by side, slightly behind us, we in our lane: it cut into us
    assert _one_contact((0.0, 0.0), 0.0, (-0.5, 1.85), 0.0) == (False, False)
    # the same contact while we straddle two lanes: ours
    assert _one_contact((0.0, 0.0), 0.0, (-0.5, 1.85), 0.0, in_lane=False) == (True, False)
    # side contact with a car ahead of our centre: ours (we see it and must keep clear)
    assert _one_contact((0.0, 0.0), 0.0, (0.8, 1.85), 0.0) == (True, False)
    # no contact at all
    assert _one_contact((0.0, 0.0), 0.0, (0.0, 4.0), 0.0) == (False, False)


# --- jerk-limited profiles ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("v", "a0", "decel"),
    [(10.6, 0.3, 3.0), (10.0, -3.0, 3.0), (1.0, 0.0, 3.0), (15.0, 1.0, 2.0), (5.0, -5.0, 3.0)],
)
def test_jerk_limited_stop_distance_matches_a_fine_integration(v, a0, decel) -> None:
    jerk, dt = 3.5, 1e-4
    x, speed, a = 0.0, v, max(a0, -decel)
    while speed > 0.0:
        a = max(a - jerk * dt, -decel)
        x += speed * dt + 0.5 * a * dt * dt
        speed += a * dt
    assert jerk_limited_stop_distance_m(v, a0, jerk, decel) == pytest.approx(x, abs=0.01)


def test_kerbside_stop_too_near_for_comfort_is_moved_on_but_a_stop_line_is_not() -> None:
    ego = VehicleState(0.0, 0.0, 0.0, 10.0, accel=0.0)
    scene = frenet_scene(road(), ego, predict([], 4.0, 0.1))
    want = jerk_limited_stop_distance_m(10.0, 0.0, ROLLOUT_JERK_MPS3, SOFT_STOP_DECEL_MPS2)
    near = soft_stop_target(ego, scene, BehaviourTarget(Behaviour.CURBSIDE_STOP, -1.0, 13.4, 5.0))
    assert near.stop_s_m == pytest.approx(want)
    far = soft_stop_target(ego, scene, BehaviourTarget(Behaviour.CURBSIDE_STOP, -1.0, 13.4, 60.0))
    assert far.stop_s_m == 60.0
    line = soft_stop_target(ego, scene, BehaviourTarget(Behaviour.STOP_AT_LINE, 0.0, 13.4, 5.0))
    assert line.stop_s_m == 5.0


def test_speed_profiles_are_jerk_limited_unless_in_an_emergency() -> None:
    ego = VehicleState(0.0, 0.0, 0.0, 10.0, accel=0.5)
    target = BehaviourTarget(Behaviour.YIELD_TO_EV, -1.0, 13.4, 20.0)
    planner, plan, _ = _plan(ego, [], target)
    assert plan.ok
    # the whole roll-out set, from the car's present acceleration on
    cand = plan.candidates
    a = np.concatenate([np.full((len(cand), 1), 0.5), cand[:, 1:, C.ACCEL]], axis=1)
    da = np.diff(a, axis=1) / planner.dt_s
    hard = a[:, 1:] < -JERK_FREE_BRAKE_MPS2
    # where the car comes to rest the brake stops acting by itself: not a command
    rolling = cand[:, 1:, C.SPEED] > 0.05
    assert np.all((da >= -ROLLOUT_JERK_MPS3 - 1e-6) | hard)
    assert np.all((da <= ROLLOUT_RELEASE_JERK_MPS3 + 1e-6) | ~rolling)
    assert np.any(da < -ROLLOUT_JERK_MPS3 + 0.01)  # the limit is reached: it is in force
    # and the chosen one is (nearly) stopped by the horizon's end, braking no harder than
    # an emergency
    traj = plan.trajectory
    assert traj[-1, C.SPEED] < 0.5
    assert traj[:, C.ACCEL].min() > -JERK_FREE_BRAKE_MPS2


def test_a_car_cutting_in_at_our_speed_is_not_met_with_full_braking() -> None:
    # 3 m of bumper gap at 9 m/s, both at the same speed: IDM alone would brake at the
    # vehicle's limit; the ACC model opens the gap with about IDM's comfortable deceleration
    ego = VehicleState(0.0, 0.0, 0.0, 9.0)
    gap = 3.0
    lead_x = IPACE.rear_axle_to_front_m + gap + 2.25
    _, plan, _ = _plan(
        ego, [track(1, lead_x, 0.0, 9.0, 0.0)], BehaviourTarget(Behaviour.CAR_FOLLOW, 0.0, 13.4)
    )
    assert plan.ok
    a = plan.trajectory[1:, C.ACCEL]
    assert a.min() > -IDM_DECEL_MPS2 - 0.6
    assert a.min() < -0.5  # it does open the gap


def test_brakes_now_for_a_pedestrian_who_will_be_on_the_road_when_we_arrive() -> None:
    # walking toward our lane from the kerb, 35 m ahead: in our corridor from ~1.3 s to ~3 s,
    # we would get there at ~3 s — a conflict the 2 s look-ahead alone saw only later
    ego = VehicleState(0.0, 0.0, 0.0, 11.0)
    ped = track(1, 35.0 + IPACE.rear_axle_to_front_m, -4.0, 0.0, 1.4, kind=AgentKind.PEDESTRIAN,
                length=0.6, width=0.6)  # fmt: skip
    _, plan, _ = _plan(ego, [ped], BehaviourTarget(Behaviour.LANE_FOLLOW, 0.0, 11.0))
    assert plan.ok
    assert plan.trajectory[1:6, C.ACCEL].min() < -0.3


def test_does_not_brake_for_cross_traffic_that_will_have_cleared() -> None:
    # a car crossing our lane 45 m ahead at 10 m/s, already half across: it is gone long
    # before we get there (4 s at 11 m/s)
    ego = VehicleState(0.0, 0.0, 0.0, 11.0)
    crossing = track(1, 45.0 + IPACE.rear_axle_to_front_m, 0.5, 0.0, 10.0)
    _, plan, _ = _plan(ego, [crossing], BehaviourTarget(Behaviour.LANE_FOLLOW, 0.0, 11.0))
    assert plan.ok
    assert plan.trajectory[1:, C.ACCEL].min() > -0.3
    assert plan.trajectory[-1, C.SPEED] > 10.5


def test_a_follower_about_to_run_into_us_lowers_the_score_of_stopping() -> None:
    ego = VehicleState(0.0, 0.0, 0.0, 8.0)
    target = BehaviourTarget(Behaviour.LANE_FOLLOW, 0.0, 8.0)
    follower = track(1, -9.0, 0.0, 12.0, 0.0)
    _, alone, _ = _plan(ego, [], target)
    _, followed, _ = _plan(ego, [follower], target)
    stop_alone = alone.scores[alone.speed_fractions == 0.0]
    stop_followed = followed.scores[followed.speed_fractions == 0.0]
    assert np.all(stop_followed < stop_alone - 0.05)
    # never at fault, so still a valid choice
    assert np.all(stop_followed > 0.0)
    assert followed.ok and followed.speed_fractions[followed.chosen] == 1.0
