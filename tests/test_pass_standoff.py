"""Room to steer out: behind a standing vehicle or obstacle the car stops where it can still
steer round it (`planning.steer_out`, `behaviour.standoff`), not at car following's 2 m —
it cannot back up, so from there neither its own pass nor an operator's "this lane is
closed" could be carried out. Hand-built scenes in closed loop (ground-truth tracks, the
vehicle model), and the geometry against its closed form."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from robotaxi.autonomy.control import TrajectoryController
from robotaxi.autonomy.planning.behaviour import Behaviour, frenet_scene
from robotaxi.autonomy.planning.reference import ReferencePath, StopLine
from robotaxi.autonomy.planning.steer_out import (
    clearing_shift_m,
    room_to_steer_out,
    steer_out_gap_m,
)
from robotaxi.autonomy.prediction import predict
from robotaxi.autonomy.stack import PdmPlanner, PlannerInput
from robotaxi.autonomy.vehicle import IPACE, VehicleState, step
from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentKind, AgentState, Trajectory
from scenes import collides
from test_pass_double_parked import LANE, road, tracks_of

FRONT = IPACE.rear_axle_to_front_m


def drive(
    path: ReferencePath,
    ego: VehicleState,
    agents_at: Callable[[float], list[AgentState]],
    seconds: float,
    held_s: float = 0.0,
) -> list[tuple[float, VehicleState, Behaviour, bool]]:
    """Our planner in closed loop at 10 Hz: (t, ego, behaviour, touching anything); for the
    first `held_s` the car stays where it is, whatever the planner says."""
    planner, ctrl = PdmPlanner(), TrajectoryController()
    log = []
    for k in range(round(seconds / 0.1)):
        t = k * 0.1
        agents = agents_at(t)
        pred = predict(tracks_of(agents), 4.0, 0.1)
        scene = frenet_scene(path, ego, pred)
        out = planner.plan(PlannerInput(TimePoint.from_s(t), ego, (), pred, scene, path, {}, None))
        log.append((t, ego, out.behaviour, collides(ego, agents)))
        cmd = ctrl.command(ego, Trajectory(TimePoint.from_s(t), out.trajectory), 0.1)
        if t >= held_s:
            ego = step(ego, cmd, 0.1)
    return log


def needed_behind(agent: AgentState, ego_d: float = 0.0) -> float:
    shift = clearing_shift_m(IPACE, ego_d, agent.y, agent.width)
    return float(steer_out_gap_m(IPACE, shift))


def test_the_gap_is_the_turning_circle_s_at_a_crawl_and_grows_with_the_move() -> None:
    # at a crawl the wheels are at full lock before the car has moved: the front corner
    # runs on a circle about the turn's centre, R = wheelbase / tan(full lock) from the
    # rear axle; it has moved sideways by Δ where x² + (R + w/2 − Δ)² = r²
    big_r = IPACE.wheelbase_m / math.tan(IPACE.max_steer_rad)
    a, c = FRONT, IPACE.width_m / 2
    r2 = a * a + (big_r + c) ** 2
    for shift in (0.5, 1.5, 2.5, 3.5):
        closed_form = math.sqrt(r2 - (big_r + c - shift) ** 2) - a
        crawl = steer_out_gap_m(
            IPACE, shift, pull_out_speed_mps=0.02, lateral_margin_m=0.0, margin_m=0.0
        )
        assert float(crawl) == pytest.approx(closed_form, abs=0.05)
    gaps = steer_out_gap_m(IPACE, np.array([0.5, 1.5, 2.5, 3.5]))
    assert np.all(np.diff(gaps) > 0)
    # I-PACE behind a car in the middle of its lane, and behind works filling a 3.5 m lane
    car = AgentState("c", AgentKind.CAR, 0.0, 0.0, 0.0, 0.0, width=1.8)
    works = AgentState("w", AgentKind.UNKNOWN, 0.0, 0.0, 0.0, 0.0, width=LANE - 0.4)
    assert 4.5 < needed_behind(car) < needed_behind(works) < 5.5


@pytest.mark.parametrize(
    ("kind", "width", "length"),
    [(AgentKind.CAR, 1.8, 4.5), (AgentKind.UNKNOWN, LANE - 0.4, 20.0)],
    ids=["car", "works filling the lane"],
)
def test_from_the_least_room_the_car_steers_round_without_touching(
    kind: AgentKind, width: float, length: float
) -> None:
    """The formula against our planner: standing exactly that far behind (since a while),
    with the next lane free, the car passes without touching."""
    blocker = AgentState("b", kind, 40.0, 0.0, 0.0, 0.0, length=length, width=width)
    room = needed_behind(blocker)
    ego = VehicleState(40.0 - length / 2 - room - FRONT, 0.0, 0.0, 0.0)
    log = drive(road(), ego, lambda t: [blocker], 25.0, held_s=3.5)
    assert not any(hit for *_, hit in log)
    assert any(b == Behaviour.PASS_BLOCKER for _, _, b, _ in log)
    final = log[-1][1]
    assert final.x > 40.0 + length / 2 + 5.0


def test_behind_a_car_it_does_not_pass_it_stops_with_room_and_does_not_creep() -> None:
    """A car standing 40 m before a stop line is a queue to the car, not a blocker: it
    stands behind it with room to steer out, stays there, and follows when it drives off."""
    line = road(stop_lines=(StopLine(85.0, "tl"),))
    lead = AgentState("lead", AgentKind.CAR, 60.0, 0.0, 0.0, 0.0, width=1.8)
    starts_s = 25.0

    def agents_at(t: float) -> list[AgentState]:
        if t < starts_s:
            return [lead]
        moved = 0.5 * 1.5 * min(t - starts_s, 4.0) ** 2 + 6.0 * max(t - starts_s - 4.0, 0.0)
        speed = 1.5 * min(t - starts_s, 4.0)
        return [AgentState("lead", AgentKind.CAR, 60.0 + moved, 0.0, 0.0, speed, width=1.8)]

    log = drive(line, VehicleState(0.0, 0.0, 0.0, 12.0), agents_at, 34.0)
    assert not any(hit for *_, hit in log)
    rear = 60.0 - lead.length / 2
    needed = needed_behind(lead)
    standing = [(t, e) for t, e, _, _ in log if 10.0 < t < starts_s]
    gaps = [rear - (e.x + FRONT) for _, e in standing]
    assert all(e.speed < 0.05 for _, e in standing)
    assert needed <= min(gaps) and max(gaps) < needed + 1.0  # no creeping on
    assert all(b != Behaviour.PASS_BLOCKER for _, _, b, _ in log)
    assert log[-1][1].speed > 2.0  # it follows the lead once it goes


def test_drawn_up_closer_it_holds_where_it_stands() -> None:
    """Standing 3.5 m behind a car that stands too (both waited there, held on the brakes
    for `blocker_wait_s`): once that car counts as standing for good, ours stays put, as a
    driver would, instead of creeping on to car following's 2 m."""
    lead = AgentState("lead", AgentKind.CAR, 30.0, 0.0, 0.0, 0.0, width=1.8)
    ego = VehicleState(30.0 - lead.length / 2 - 3.5 - FRONT, 0.0, 0.0, 0.0)
    assert needed_behind(lead) > 3.5
    log = drive(road(left_lanes=0), ego, lambda t: [lead], 15.0, held_s=3.5)
    assert not any(hit for *_, hit in log)
    xs = [e.x for _, e, _, _ in log]
    assert max(xs) - min(xs) < 0.05


def test_the_room_to_steer_out_is_read_from_the_tracks_ahead_in_the_lane() -> None:
    path = road()
    standing = AgentState("s", AgentKind.CAR, 30.0, 0.0, 0.0, 0.0, width=1.8)
    moving = AgentState("m", AgentKind.CAR, 20.0, 0.0, 0.0, 8.0, width=1.8)
    beside = AgentState("b", AgentKind.CAR, 15.0, LANE, 0.0, 0.0, width=1.8)
    tracks = tracks_of([standing, moving, beside])
    room, needed = room_to_steer_out(path, 10.0, tracks, IPACE)
    assert room == pytest.approx(30.0 - 2.25 - 10.0, abs=0.05)
    assert needed == pytest.approx(needed_behind(standing), abs=0.01)
    assert room_to_steer_out(path, 10.0, tracks_of([moving, beside]), IPACE) == (math.inf, 0.0)
