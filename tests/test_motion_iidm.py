"""The roll-out's car following is the improved IDM (IIDM): it follows a leader at the
desired gap s* = s0 + v·T instead of lagging behind it below the desired speed."""

from __future__ import annotations

import numpy as np

from robotaxi.autonomy.planning.behaviour import Behaviour, BehaviourTarget, frenet_scene
from robotaxi.autonomy.planning.motion import (
    IDM_MIN_GAP_M,
    IDM_TIME_HEADWAY_S,
    MotionPlanner,
)
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import predict
from robotaxi.autonomy.vehicle import IPACE, VehicleState
from robotaxi.core.types import TrajectoryColumn
from scenes import track

C = TrajectoryColumn
LIMIT = 13.4


def _lane_centre_rollout(ego: VehicleState, tracks, planner: MotionPlanner | None = None):
    """The single lane-centre, full-speed roll-out (the IDM baseline's)."""
    path = ReferencePath.straight((0.0, 0.0), 0.0, 600.0, speed_limit_mps=LIMIT)
    pred = predict(tracks, 4.0, 0.1)
    scene = frenet_scene(path, ego, pred)
    planner = planner or MotionPlanner()
    target = BehaviourTarget(Behaviour.CAR_FOLLOW, 0.0, LIMIT)
    states, _, _ = planner.rollout(ego, path, scene, pred, target, np.zeros(1), np.ones(1))
    return states[0]


def _leader_at_gap(ego_speed: float, lead_speed: float, gap_m: float):
    lead_x = IPACE.rear_axle_to_front_m + gap_m + 2.25  # 4.5 m long: its centre
    return [track(1, lead_x, 0.0, lead_speed, 0.0)]


def test_follows_a_leader_at_the_desired_gap_without_braking() -> None:
    # at s* behind a leader at our speed (well below the desired speed): IIDM holds the
    # speed; plain IDM would brake (its free-road term is short of the interaction term)
    v = 10.0
    s_star = IDM_MIN_GAP_M + v * IDM_TIME_HEADWAY_S
    traj = _lane_centre_rollout(VehicleState(0.0, 0.0, 0.0, v), _leader_at_gap(v, v, s_star))
    assert np.abs(traj[1:, C.ACCEL]).max() < 0.1
    assert abs(traj[-1, C.SPEED] - v) < 0.2


def test_closes_up_on_a_leader_pulling_away_below_the_desired_speed() -> None:
    # 35 m behind a leader 1 m/s faster, twice s*: IIDM speeds up past the leader's speed
    # to close the gap (plain IDM crept up to it: 11.4 m/s after 1 s, 12.0 after 4 s)
    traj = _lane_centre_rollout(VehicleState(0.0, 0.0, 0.0, 11.0), _leader_at_gap(11, 12, 35))
    assert traj[10, C.SPEED] > 11.55
    assert traj[-1, C.SPEED] > 12.5
