"""Passing a double-parked car: the behaviour layer's blocker and gap decisions on hand-built
scenes, and the planner passing one in closed loop (ground-truth tracks, vehicle model)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from robotaxi.autonomy.control import TrajectoryController
from robotaxi.autonomy.planning.behaviour import (
    Behaviour,
    BehaviourPlanner,
    BehaviourTarget,
    frenet_scene,
)
from robotaxi.autonomy.planning.reference import ReferencePath, StopLine
from robotaxi.autonomy.prediction import predict
from robotaxi.autonomy.stack import PdmPlanner, PlannerInput
from robotaxi.autonomy.vehicle import IPACE, VehicleState, step
from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentKind, AgentState, Track, Trajectory
from scenes import collides

LANE = 3.5
BLOCKER_X = 40.0  # centre of the double-parked car, m


def road(left_lanes: int = 1, **kw: object) -> ReferencePath:
    """Right lane of a one-way street with `left_lanes` same-direction lanes beside it."""
    args: dict[str, object] = {
        "right_room_m": LANE / 2,
        "left_room_m": LANE / 2 + left_lanes * LANE,
        "speed_limit_mps": 13.4,
    }
    args.update(kw)
    return ReferencePath.straight((0.0, 0.0), 0.0, 400.0, **args)  # type: ignore[arg-type]


def car(x: float, y: float, speed: float, name: str = "c") -> AgentState:
    return AgentState(name, AgentKind.CAR, x, y, 0.0, speed)


def tracks_of(agents: list[AgentState]) -> tuple[Track, ...]:
    return tuple(
        Track(
            i + 1,
            TimePoint(0),
            a.x,
            a.y,
            a.speed * math.cos(a.heading),
            a.speed * math.sin(a.heading),
            a.kind,
            a.length,
            a.width,
            np.eye(4),
        )
        for i, a in enumerate(agents)
    )


def decide(
    planner: BehaviourPlanner,
    path: ReferencePath,
    ego: VehicleState,
    agents: list[AgentState],
    t: float,
    signals: dict[str, str] | None = None,
) -> BehaviourTarget:
    pred = predict(tracks_of(agents), 4.0, 0.1)
    scene = frenet_scene(path, ego, pred)
    return planner.step(ego, path, scene, pred, signals or {}, None, t)


def decide_for(
    path: ReferencePath, ego: VehicleState, agents_at: Callable[[float], list[AgentState]], s: float
) -> list[BehaviourTarget]:
    """The behaviour's targets over `s` seconds (10 Hz) with the ego held where it is."""
    planner = BehaviourPlanner()
    return [decide(planner, path, ego, agents_at(k * 0.1), k * 0.1) for k in range(round(s / 0.1))]


BEHIND = VehicleState(10.0, 0.0, 0.0, 0.0)  # standing 25 m behind the blocker's rear


def test_a_standing_car_becomes_a_blocker_after_the_wait_and_is_passed_into_a_free_lane() -> None:
    wait_s = BehaviourPlanner().config.blocker_wait_s
    targets = decide_for(road(), BEHIND, lambda t: [car(BLOCKER_X, 0.0, 0.0)], wait_s + 1.0)
    before = targets[: round(wait_s / 0.1) - 1]
    assert all(tg.behaviour == Behaviour.CAR_FOLLOW and tg.lateral_offset_m == 0 for tg in before)
    last = targets[-1]
    assert last.behaviour == Behaviour.PASS_BLOCKER
    assert last.lateral_offset_m == LANE  # the next lane's centre
    assert last.stop_s_m is None


def test_waits_while_a_close_fast_follower_comes_in_the_next_lane_then_goes() -> None:
    cfg = BehaviourPlanner().config
    path = road()

    def scene(t: float) -> list[AgentState]:
        # 12 m/s in the next lane, 30 m behind us at t = 4 s: time to collision 2.5 s
        return [car(BLOCKER_X, 0.0, 0.0, "blocker"), car(-20.0 + 12.0 * (t - 4.0), LANE, 12.0)]

    targets = decide_for(path, BEHIND, scene, 12.0)
    during = targets[round((cfg.blocker_wait_s + 0.2) / 0.1) : round(6.5 / 0.1)]
    assert all(tg.behaviour != Behaviour.PASS_BLOCKER for tg in during)
    assert all(tg.lateral_offset_m == 0.0 for tg in during)
    # waiting with room to steer out: front bumper pass_standoff_m behind its rear
    wait = (BLOCKER_X - 2.25) - cfg.pass_standoff_m - IPACE.rear_axle_to_front_m
    assert all(tg.stop_s_m is not None and abs(tg.stop_s_m - wait) < 0.3 for tg in during)
    # the follower has gone by (it is beside us at t ≈ 6.5 s and ahead after): pass
    first_pass = next(k for k, tg in enumerate(targets) if tg.behaviour == Behaviour.PASS_BLOCKER)
    follower_x = -20.0 + 12.0 * (first_pass * 0.1 - 4.0)
    assert follower_x - 2.25 > BEHIND.x + IPACE.rear_axle_to_front_m  # it was ahead of us
    assert targets[-1].lateral_offset_m == LANE


def test_the_gap_check_uses_the_follower_speed_and_the_leader_in_the_next_lane() -> None:
    path = road()
    planner = BehaviourPlanner()
    blocker = car(BLOCKER_X, 0.0, 0.0, "blocker")
    for k in range(40):  # let it become a blocker with the next lane empty … then check
        decide(planner, path, BEHIND, [blocker], k * 0.1)
    cases = {
        # follower 60 m back at 12 m/s: time to collision 5 s > 4 s → go
        (-50.0 + 2.25 + 4.0 - 10.0, 12.0): True,
        # same place at 20 m/s: 3 s → wait
        (-50.0 + 2.25 + 4.0 - 10.0, 20.0): False,
        # standing in the next lane beside the blocker → wait (cannot get by)
        (BLOCKER_X + 3.0, 0.0): False,
        # leader 40 m ahead in the next lane, moving → go
        (60.0, 10.0): True,
    }
    for (x, v), go in cases.items():
        fresh = BehaviourPlanner()
        for k in range(40):
            tg = decide(fresh, path, BEHIND, [blocker, car(x, LANE, v, "other")], k * 0.1)
        assert (tg.behaviour == Behaviour.PASS_BLOCKER) is go, (x, v)


def test_no_pass_on_a_two_lane_street_in_a_queue_or_at_a_stop_line() -> None:
    blocker = car(BLOCKER_X, 0.0, 0.0, "blocker")
    one_lane_each_way = road(left_lanes=0)
    queued = [blocker, car(BLOCKER_X + 8.0, 0.0, 0.0, "ahead")]
    line = road(stop_lines=(StopLine(BLOCKER_X + 10.0, "tl"),))
    for path, agents in ((one_lane_each_way, [blocker]), (road(), queued), (line, [blocker])):
        targets = decide_for(path, BEHIND, lambda t, a=agents: a, 6.0)  # type: ignore[misc]
        assert all(tg.behaviour != Behaviour.PASS_BLOCKER for tg in targets)
        assert all(tg.lateral_offset_m == 0.0 for tg in targets)
    # a moving lead is followed, never passed
    targets = decide_for(road(), BEHIND, lambda t: [car(BLOCKER_X + 5.0 * t, 0.0, 5.0)], 6.0)
    assert all(tg.behaviour == Behaviour.CAR_FOLLOW for tg in targets)


def test_closed_loop_waits_for_the_gap_passes_and_returns_to_its_lane() -> None:
    path = road()
    planner, ctrl = PdmPlanner(), TrajectoryController()
    ego = VehicleState(0.0, 0.0, 0.0, 8.0)

    def agents_at(t: float) -> list[AgentState]:
        # a car in the next lane, close behind when the blocker is recognised (t = 3 s)
        return [car(BLOCKER_X, 0.0, 0.0, "blocker"), car(-35.0 + 12.0 * t, LANE, 12.0, "f")]

    log = []
    for k in range(250):
        t = k * 0.1
        agents = agents_at(t)
        pred = predict(tracks_of(agents), 4.0, 0.1)
        scene = frenet_scene(path, ego, pred)
        out = planner.plan(PlannerInput(TimePoint.from_s(t), ego, (), pred, scene, path, {}, None))
        cmd = ctrl.command(ego, Trajectory(TimePoint.from_s(t), out.trajectory), 0.1)
        log.append((t, ego, out.behaviour, collides(ego, agents), agents[1].x))
        ego = step(ego, cmd, 0.1)
    assert not any(hit for *_, hit, _ in log)
    # stayed in its lane while the follower was behind it
    ego_front = [(e.x + IPACE.rear_axle_to_front_m, e.y, fx) for _, e, _, _, fx in log]
    assert all(y < 0.6 for front, y, fx in ego_front if fx - 2.25 < front)
    assert any(b == Behaviour.PASS_BLOCKER for _, _, b, _, _ in log)
    assert max(e.y for _, e, *_ in log) > LANE - 0.6  # in the next lane
    final = log[-1][1]
    assert final.x > BLOCKER_X + 30.0 and abs(final.y) < 0.3 and final.speed > 5.0
