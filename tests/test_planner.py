"""Planner on hand-built scenes: reference path geometry, candidate choice against a brute-force
collision check, braking, red lights, kerbside stops, EV yielding, the fallback, and a full
closed loop (cameras → tracker → prediction → behaviour → motion → control → vehicle)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import Polygon

from robotaxi.autonomy.control import TrajectoryController
from robotaxi.autonomy.planning.behaviour import (
    Behaviour,
    BehaviourPlanner,
    BehaviourTarget,
    frenet_scene,
)
from robotaxi.autonomy.planning.motion import MotionPlanner
from robotaxi.autonomy.planning.reference import ReferencePath, StopLine
from robotaxi.autonomy.planning.steer_out import clearing_shift_m, steer_out_gap_m
from robotaxi.autonomy.prediction import predict
from robotaxi.autonomy.stack import AutonomyStack, IdmPlanner, PdmPlanner, PlannerInput
from robotaxi.autonomy.vehicle import IPACE, VehicleState, footprint_center, step
from robotaxi.core.geometry import box_corners, boxes_overlap
from robotaxi.core.time import TimePoint
from robotaxi.core.types import (
    AgentKind,
    AgentState,
    SirenState,
    Trajectory,
    TrajectoryColumn,
)
from robotaxi.metrics.driving import DrivingHistory, evaluate, scenario_score
from robotaxi.sim.sensors import CarSensors
from scenes import collides, track

C = TrajectoryColumn
LANE = 3.5


def road(**kw: object) -> ReferencePath:
    """Right lane of a two-lane one-way street with a 2.5 m parking strip on the right."""
    args: dict[str, object] = {
        "right_room_m": LANE / 2 + 2.5,
        "left_room_m": LANE / 2 + LANE,
        "speed_limit_mps": 13.4,
    }
    args.update(kw)
    return ReferencePath.straight((0.0, 0.0), 0.0, 600.0, **args)  # type: ignore[arg-type]


def test_reference_path_frenet_round_trip_on_an_arc() -> None:
    phi = np.linspace(0, math.pi / 2, 200)
    xy = np.column_stack([50 * np.sin(phi), 50 * (1 - np.cos(phi))])
    path = ReferencePath(xy, np.asarray(3.5), np.asarray(10.0), np.asarray(2.0), np.asarray(2.0))
    s = np.array([5.0, 30.0, 61.0])
    d = np.array([1.0, -1.5, 0.3])
    x, y, h = path.pose_at(s, d)
    s2, d2 = path.project(x, y)
    assert np.allclose(s2, s, atol=0.02) and np.allclose(d2, d, atol=0.02)
    # on a circle of radius 50 the arc length to angle phi is 50·phi
    assert path.length_m == pytest.approx(50 * math.pi / 2, rel=1e-4)
    assert h[1] == pytest.approx(30.0 / 50.0, abs=0.01)
    assert path.curvature_at(40.0) == pytest.approx(1 / 50.0, rel=0.01)
    # windowed projection agrees with the full search
    s3, d3 = path.project(x, y, s_window=(0.0, 70.0))
    assert np.allclose(s3, s2) and np.allclose(d3, d2)
    with pytest.raises(ValueError):
        ReferencePath(
            np.zeros((1, 2)), np.asarray(3.5), np.asarray(10.0), np.asarray(2.0), np.asarray(2.0)
        )


def test_projection_matches_shapely_on_a_sparse_winding_polyline() -> None:
    from shapely.geometry import LineString, Point

    # long straight stretches (as SUMO lane shapes have) and sharp bends
    xy = np.array([[0, 0], [120, 0], [130, 15], [130, 90], [60, 140], [-40, 100.0]])
    path = ReferencePath(xy, np.asarray(3.5), np.asarray(10.0), np.asarray(2.0), np.asarray(2.0))
    line = LineString(xy)
    rng = np.random.default_rng(2)
    pts = rng.uniform([-20, -20], [150, 150], (300, 2))
    s, d = path.project(pts[:, 0], pts[:, 1])
    for (px, py), si, di in zip(pts, s, d, strict=True):
        s_ref = line.project(Point(px, py))
        if 0.0 < s_ref < line.length:  # the ends extrapolate instead of clamping
            assert si == pytest.approx(s_ref, abs=1e-6)
            assert abs(di) == pytest.approx(line.distance(Point(px, py)), abs=1e-6)


@pytest.mark.parametrize("scene_name", ["truck_alongside", "crossing_car"])
def test_picks_a_collision_free_candidate_confirmed_by_brute_force(scene_name: str) -> None:
    ego = VehicleState(0.0, 0.0, 0.0, 10.0)
    if scene_name == "truck_alongside":
        # a wide truck hugging the line beside us while the behaviour asks to move 1 m left:
        # candidates at and beyond that offset hit it
        path = road()
        agent_track = track(1, 4.0, 3.0, 10.0, 0.0, length=12.0, width=2.5)
        target = BehaviourTarget(Behaviour.LANE_FOLLOW, 1.0, 13.4)
    else:
        path = road(right_room_m=LANE / 2)
        agent_track = track(1, 30.0, -12.0, 0.0, 5.0)  # a car crossing our lane from the right
        target = BehaviourTarget(Behaviour.LANE_FOLLOW, 0.0, 13.4)
    pred = predict([agent_track], 4.0, 0.1)
    scene = frenet_scene(path, ego, pred)
    planner = MotionPlanner()
    plan = planner.plan(ego, path, scene, pred, target)
    agent = [Polygon(c) for c in pred.footprints[0]]

    def collides(traj: np.ndarray) -> bool:
        cx, cy = footprint_center(traj[:, C.X], traj[:, C.Y], traj[:, C.HEADING], IPACE)
        corners = box_corners(
            cx,
            cy,
            traj[:, C.HEADING],
            np.full(len(traj), IPACE.length_m),
            np.full(len(traj), IPACE.width_m),
        )
        return any(Polygon(corners[k]).intersects(agent[k]) for k in range(1, len(traj)))

    brute = np.array([collides(c) for c in plan.candidates])
    # the vectorised check agrees with shapely on every candidate
    assert np.array_equal(~brute, planner.last_multipliers["no_at_fault_collision"])
    assert plan.ok and not collides(plan.trajectory)
    assert plan.scores[plan.chosen] == plan.scores.max() > 0
    if scene_name == "truck_alongside":
        assert brute.any() and not brute.all()  # the choice matters
        assert plan.lateral_offsets_m[plan.chosen] < target.lateral_offset_m


def test_separating_axis_test_matches_shapely() -> None:
    rng = np.random.default_rng(0)
    n = 400
    c1, c2 = rng.uniform(-4, 4, (n, 2)), rng.uniform(-4, 4, (n, 2))
    h1, h2 = rng.uniform(-3, 3, n), rng.uniform(-3, 3, n)
    l1, w1, l2, w2 = (rng.uniform(0.5, 5, n) for _ in range(4))
    ours = boxes_overlap(c1, h1, l1, w1, c2, h2, l2, w2)
    p1 = box_corners(c1[:, 0], c1[:, 1], h1, l1, w1)
    p2 = box_corners(c2[:, 0], c2[:, 1], h2, l2, w2)
    theirs = np.array([Polygon(a).intersects(Polygon(b)) for a, b in zip(p1, p2, strict=True)])
    assert np.array_equal(ours, theirs)


def closed_loop(
    path: ReferencePath,
    ego: VehicleState,
    agents_at,
    seconds: float,
    signals_at=lambda t: {},
    stop_request: float | None = None,
    planner: PdmPlanner | IdmPlanner | None = None,
):
    """Plan from ground-truth tracks (no sensor noise) and drive the vehicle model."""
    planner = planner if planner is not None else PdmPlanner()
    ctrl = TrajectoryController()
    log = []
    for k in range(round(seconds / 0.1)):
        t = k * 0.1
        agents = agents_at(t)
        tracks = tuple(
            track(
                i + 1,
                a.x,
                a.y,
                a.speed * math.cos(a.heading),
                a.speed * math.sin(a.heading),
                kind=a.kind,
                length=a.length,
                width=a.width,
                flashing_lights=a.siren == SirenState.ON,
            )
            for i, a in enumerate(agents)
        )
        pred = predict(tracks, 4.0, 0.1)
        scene = frenet_scene(path, ego, pred)
        out = planner.plan(
            PlannerInput(
                TimePoint.from_s(t), ego, tracks, pred, scene, path, signals_at(t), stop_request
            )
        )
        cmd = ctrl.command(ego, Trajectory(TimePoint.from_s(t), out.trajectory), 0.1)
        collided = collides(ego, agents)
        log.append((t, ego, out.behaviour, collided))
        ego = step(ego, cmd, 0.1)
    return log


def test_brakes_for_a_stopped_car_and_stops_behind_it() -> None:
    parked = AgentState("stopped", AgentKind.CAR, 60.0, 0.0, 0.0, 0.0)
    log = closed_loop(
        road(right_room_m=LANE / 2, left_room_m=LANE / 2),
        VehicleState(0.0, 0.0, 0.0, 12.0),
        lambda t: [parked],
        12.0,
    )
    assert not any(c for *_, c in log)
    _, final, behaviour, _ = log[-1]
    front = final.x + IPACE.rear_axle_to_front_m
    assert final.speed < 0.05
    # with room to steer out round it (it cannot back up), no further back than that needs
    needed = float(steer_out_gap_m(IPACE, clearing_shift_m(IPACE, 0.0, 0.0, parked.width)))
    assert needed <= (60.0 - 2.25) - front < needed + 1.0
    assert behaviour == Behaviour.CAR_FOLLOW


def test_stops_at_a_red_stop_line_then_goes_on_green() -> None:
    path = road(stop_lines=(StopLine(50.0, "tl1"),))
    signals = lambda t: {"tl1": "r" if t < 10.0 else "G"}  # noqa: E731
    log = closed_loop(path, VehicleState(0.0, 0.0, 0.0, 10.0), lambda t: [], 16.0, signals)
    at_9 = next(e for t, e, *_ in log if t >= 9.0)
    front = at_9.x + IPACE.rear_axle_to_front_m
    assert at_9.speed < 0.05
    assert 47.0 < front <= 50.0
    assert any(b == Behaviour.STOP_AT_LINE for _, _, b, _ in log)
    assert log[-1][1].x + IPACE.rear_axle_to_front_m > 60.0  # went on after green
    # the IDM baseline stops for red as well
    log = closed_loop(
        path, VehicleState(0.0, 0.0, 0.0, 10.0), lambda t: [], 9.0, signals, planner=IdmPlanner()
    )
    assert log[-1][1].x + IPACE.rear_axle_to_front_m <= 50.0


def test_kerbside_stop_at_the_requested_point() -> None:
    log = closed_loop(
        road(), VehicleState(0.0, 0.0, 0.0, 10.0), lambda t: [], 20.0, stop_request=70.0
    )
    _, final, behaviour, _ = log[-1]
    cx, cy = footprint_center(final.x, final.y, final.heading, IPACE)
    assert behaviour == Behaviour.CURBSIDE_STOP
    assert final.speed < 0.05
    assert abs(float(cx) - 70.0) < 1.5
    assert float(cy) < -1.8  # at the kerb, out of the lane
    assert abs(final.heading) < 0.05


def test_leaves_the_kerb_only_into_a_gap() -> None:
    path = road()
    start = VehicleState(0.0, -2.7, 0.0, 0.0)
    behind = lambda t: [AgentState("c", AgentKind.CAR, -25.0 + 10.0 * t, 0.0, 0.0, 10.0)]  # noqa: E731
    log = closed_loop(path, start, behind, 8.0)
    assert not any(c for *_, c in log)
    # waited at the kerb while the car passed (it passes us around t = 2.5 s)
    early = [e for t, e, *_ in log if t < 2.0]
    assert all(e.speed < 0.1 and e.y < -2.5 for e in early)
    assert log[0][2] == Behaviour.LEAVE_CURB
    assert log[-1][1].y > -0.5 and log[-1][1].speed > 3.0  # merged and driving
    log = closed_loop(path, start, lambda t: [], 1.5)
    assert log[-1][1].speed > 1.0  # empty street: goes at once


def test_yields_to_an_ambulance_approaching_from_behind() -> None:
    path = road()
    ego = VehicleState(0.0, 0.0, 0.0, 8.0)
    amb = track(7, -60.0, LANE, 16.0, 0.0, kind=AgentKind.EMERGENCY, flashing_lights=True)
    pred = predict([amb], 4.0, 0.1)
    scene = frenet_scene(path, ego, pred)
    target = BehaviourPlanner().step(ego, path, scene, pred, {}, None, 0.0)
    assert target.behaviour == Behaviour.YIELD_TO_EV
    assert target.lateral_offset_m < -2.0 and target.stop_s_m is not None
    plan = MotionPlanner().plan(ego, path, scene, pred, target)
    assert plan.ok and plan.trajectory[-1, C.Y] < -1.0
    assert plan.trajectory[-1, C.SPEED] < ego.speed
    # the baseline planner does not yield
    base = IdmPlanner().plan(PlannerInput(TimePoint(0), ego, (amb,), pred, scene, path, {}, None))
    assert base.behaviour == Behaviour.LANE_FOLLOW and abs(base.trajectory[-1, C.Y]) < 0.05
    # nor does ours for the same ambulance without lights
    quiet = predict([track(7, -60.0, LANE, 16.0, 0.0, kind=AgentKind.EMERGENCY)], 4.0, 0.1)
    target = BehaviourPlanner().step(
        ego, path, frenet_scene(path, ego, quiet), quiet, {}, None, 0.0
    )
    assert target.behaviour == Behaviour.LANE_FOLLOW


def test_emergency_brake_when_no_candidate_is_safe() -> None:
    path = road(right_room_m=LANE / 2, left_room_m=LANE / 2)
    ego = VehicleState(0.0, 0.0, 0.0, 12.0)
    wall = track(1, 9.0, 0.0, 0.0, 0.0, length=4.5, width=3.5)
    pred = predict([wall], 4.0, 0.1)
    scene = frenet_scene(path, ego, pred)
    plan = MotionPlanner().plan(
        ego, path, scene, pred, BehaviourTarget(Behaviour.LANE_FOLLOW, 0.0, 13.4)
    )
    assert not plan.ok and plan.chosen == -1
    assert np.allclose(plan.trajectory[1:4, C.ACCEL], -IPACE.max_brake_mps2)
    # the behaviour layer turns repeated failures into a safe stop
    bp = BehaviourPlanner()
    for k in range(3):
        target = bp.step(ego, path, scene, pred, {}, None, 0.1 * k, last_plan_ok=False)
    assert target.behaviour == Behaviour.SAFE_STOP


def _ambulance_scene(t: float) -> list[AgentState]:
    slow = AgentState("slow", AgentKind.CAR, 40.0 + 6.0 * t, 0.0, 0.0, 6.0)
    amb = AgentState(
        "amb",
        AgentKind.EMERGENCY,
        -120.0 + 16.0 * t,
        LANE,
        0.0,
        16.0,
        length=6.0,
        width=2.2,
        siren=SirenState.ON,
    )
    return [slow, amb]


def _drive_full_stack(seed: int, seconds: float):
    stack = AutonomyStack()
    sensors = CarSensors(seed=seed)  # the cameras see the scene; the stack sees what they report
    path = road()
    ego = VehicleState(0.0, 0.0, 0.0, 8.0)
    log = []
    for k in range(round(seconds / 0.1)):
        t = k * 0.1
        agents = _ambulance_scene(t)
        observation = sensors.observe(ego, agents, [], {}, TimePoint.from_s(t), 0.1)
        out = stack.step(ego, observation, path, None, 0.1)
        log.append((t, ego, out.behaviour, collides(ego, agents), out.command))
        ego = step(ego, out.command, 0.1)
    return log, stack


@pytest.fixture(scope="module")
def ambulance_drive():
    """The full stack's 25 s through `_ambulance_scene` (seed 1): read, never changed."""
    return _drive_full_stack(seed=1, seconds=25.0)


def test_full_stack_follows_pulls_over_for_the_ambulance_and_resumes(ambulance_drive) -> None:
    log, stack = ambulance_drive
    assert not any(c for _, _, _, c, _ in log)
    behaviours = [b for _, _, b, _, _ in log]
    assert Behaviour.CAR_FOLLOW in behaviours[:50]  # behind the slower car first
    yield_ticks = [k for k, b in enumerate(behaviours) if b == Behaviour.YIELD_TO_EV]
    assert yield_ticks
    # stopped at the kerb, out of the ambulance's (left) lane, before it passed
    amb_x = lambda t: -120.0 + 16.0 * t  # noqa: E731
    stopped = [(t, e) for t, e, b, _, _ in log if b == Behaviour.YIELD_TO_EV and e.speed < 0.1]
    assert stopped and stopped[0][1].y < -2.0
    assert amb_x(stopped[0][0]) < stopped[0][1].x
    # resumed after it passed: back in the lane and moving
    _, final, b_final, _, _ = log[-1]
    assert final.speed > 5.0 and abs(final.y) < 0.5
    assert b_final in (Behaviour.CAR_FOLLOW, Behaviour.LANE_FOLLOW)
    assert all(len(v) == len(log) for v in stack.times.by_stage.values())
    # the recorded run, judged by the driving metrics
    results = evaluate(_history(log, road()))
    ev = results["ev_yield"].details
    assert ev["pulled_over"] and ev["resumed"] and not ev["blocked_ev"]
    assert ev["stopped_within_s"] is not None and ev["stopped_within_s"] < 10.0
    for name in (
        "no_at_fault_collision",
        "drivable_area_compliance",
        "driving_direction_compliance",
        "making_progress",
        "ev_yield",
    ):
        assert results[name].score == 1.0, (name, results[name])
    assert scenario_score(results) > 0.5


def _history(log: list, path: ReferencePath) -> DrivingHistory:
    """A `DrivingHistory` of a logged run of `_ambulance_scene` (how the runner records)."""
    times = np.array([t for t, *_ in log])
    ego = np.array([e.as_row(t) for t, e, *_ in log])
    scenes = [_ambulance_scene(t) for t in times]
    m = len(scenes[0])
    return DrivingHistory(
        time_s=times,
        ego=ego,
        agents_xy=np.array([[[a.x, a.y] for a in sc] for sc in scenes]),
        agents_heading=np.array([[a.heading for a in sc] for sc in scenes]),
        agents_speed=np.array([[a.speed for a in sc] for sc in scenes]),
        agents_valid=np.ones((len(times), m), bool),
        agents_length=np.array([a.length for a in scenes[0]]),
        agents_width=np.array([a.width for a in scenes[0]]),
        agents_is_ev=np.array([a.kind == AgentKind.EMERGENCY for a in scenes[0]]),
        agents_siren=np.array([[a.siren == SirenState.ON for a in sc] for sc in scenes]),
        path_xy=path.xy,
        path_lane_width_m=path.lane_width_m,
        path_left_room_m=path.left_room_m,
        path_right_room_m=path.right_room_m,
        path_speed_limit_mps=path.speed_limit_mps,
        ego_center_offset_m=IPACE.rear_axle_to_center_m,
    )


def test_full_stack_is_deterministic_with_a_seed(ambulance_drive) -> None:
    # a fresh stack and fresh sensors with the same seed drive the first 6 s exactly as the
    # recorded 25 s drive did (a drive never looks ahead in time)
    a = ambulance_drive[0][:60]
    b, _ = _drive_full_stack(seed=1, seconds=6.0)
    assert [(e, cmd) for _, e, _, _, cmd in a] == [(e, cmd) for _, e, _, _, cmd in b]


def test_prediction_follows_the_lane_where_known_and_keeps_velocity_otherwise() -> None:
    # a quarter-circle lane of radius 30 m; a car on it at 10 m/s, another off any lane
    phi = np.linspace(0, math.pi / 2, 300)
    lane = np.column_stack([30 * np.sin(phi), 30 * (1 - np.cos(phi))])
    on_lane = track(1, 0.0, 0.0, 10.0, 0.0)
    off_lane = track(2, 100.0, 100.0, 0.0, -5.0)
    stopped = track(3, 5.0, 50.0, 0.1, 0.0)
    pred = predict(
        [on_lane, off_lane, stopped],
        3.0,
        0.1,
        lane_lookup=lambda tr: lane if tr.track_id != 2 else None,
    )
    assert pred.xy.shape == (3, 31, 2) and pred.footprints.shape == (3, 31, 4, 2)
    assert pred.on_lane.tolist() == [True, False, False]
    # 30 m along the arc after 3 s: angle 1 rad on the circle
    assert pred.xy[0, -1] == pytest.approx([30 * math.sin(1.0), 30 * (1 - math.cos(1.0))], abs=0.05)
    assert pred.heading[0, -1] == pytest.approx(1.0, abs=0.02)
    assert pred.xy[1, -1] == pytest.approx([100.0, 85.0])
    assert pred.xy[2, -1] == pytest.approx([5.0, 50.0])  # below 0.3 m/s: stays put


def test_yellow_light_stop_only_when_comfortable() -> None:
    path = road(stop_lines=(StopLine(60.0, "tl"),))
    bp = BehaviourPlanner()
    empty = predict([], 4.0, 0.1)
    far = VehicleState(0.0, 0.0, 0.0, 10.0)  # bumper 56 m from the line: 0.9 m/s² to stop
    target = bp.step(far, path, frenet_scene(path, far, empty), empty, {"tl": "y"}, None, 0.0)
    assert target.behaviour == Behaviour.STOP_AT_LINE and target.stop_s_m is not None
    front_stop = target.stop_s_m + IPACE.rear_axle_to_front_m
    assert front_stop == pytest.approx(59.0)
    near = VehicleState(48.0, 0.0, 0.0, 13.0)  # bumper 8 m before the line at 13 m/s: go
    target = BehaviourPlanner().step(
        near, path, frenet_scene(path, near, empty), empty, {"tl": "y"}, None, 0.0
    )
    assert target.behaviour == Behaviour.LANE_FOLLOW and target.stop_s_m is None


def test_yields_to_an_oncoming_ambulance_and_stops_short_of_an_intersection() -> None:
    # an ambulance coming head-on in the opposite lane; a stop line 15 m ahead (green)
    path = road(stop_lines=(StopLine(20.0, "tl"),), left_room_m=LANE / 2)
    ego = VehicleState(0.0, 0.0, 0.0, 6.0)
    amb = track(3, 70.0, LANE, -15.0, 0.0, kind=AgentKind.EMERGENCY, flashing_lights=True)
    pred = predict([amb], 4.0, 0.1)
    target = BehaviourPlanner().step(
        ego, path, frenet_scene(path, ego, pred), pred, {"tl": "G"}, None, 0.0
    )
    assert target.behaviour == Behaviour.YIELD_TO_EV
    # never inside the intersection: the front bumper stops before the line
    assert target.stop_s_m is not None
    assert target.stop_s_m + IPACE.rear_axle_to_front_m <= 20.0
    # an ambulance moving away ahead of us is no reason to stop
    away = predict(
        [track(3, 40.0, 0.0, 15.0, 0.0, kind=AgentKind.EMERGENCY, flashing_lights=True)], 4.0, 0.1
    )
    target = BehaviourPlanner().step(
        ego, path, frenet_scene(path, ego, away), away, {"tl": "G"}, None, 0.0
    )
    assert target.behaviour != Behaviour.YIELD_TO_EV


def test_yields_to_an_ambulance_crossing_at_the_intersection_ahead() -> None:
    # the ambulance drives north on the cross street at x = 40; our stop line at s = 34 (green)
    path = road(stop_lines=(StopLine(34.0, "tl"),))
    ego = VehicleState(0.0, 0.0, 0.0, 8.0)
    bp = BehaviourPlanner()
    empty = predict([], 4.0, 0.1)
    for y_amb in (-60.0, -20.0, 0.0, 20.0):
        amb = track(5, 40.0, y_amb, 0.0, 14.0, kind=AgentKind.EMERGENCY, flashing_lights=True)
        pred = predict([amb], 4.0, 0.1)
        target = bp.step(ego, path, frenet_scene(path, ego, pred), pred, {"tl": "G"}, None, 0.0)
        # approaching (predicted to enter our road), in it, and just past it: yield
        if y_amb <= 0.0:
            assert target.behaviour == Behaviour.YIELD_TO_EV, y_amb
            assert target.stop_s_m is not None
            assert target.stop_s_m + IPACE.rear_axle_to_front_m <= 34.0
    # gone well past: resume (the EV is seen, no longer a threat)
    far = predict(
        [track(5, 40.0, 90.0, 0.0, 14.0, kind=AgentKind.EMERGENCY, flashing_lights=True)], 4.0, 0.1
    )
    target = bp.step(ego, path, frenet_scene(path, ego, far), far, {"tl": "G"}, None, 1.0)
    assert target.behaviour != Behaviour.YIELD_TO_EV
    target = bp.step(ego, path, frenet_scene(path, ego, empty), empty, {"tl": "G"}, None, 1.1)
    assert target.behaviour == Behaviour.LANE_FOLLOW


def test_follows_a_curved_lane_with_the_planner_in_the_loop() -> None:
    # 60 m straight, a 90° left bend of radius 25 m, then straight again (a turn at a corner)
    straight_in = np.column_stack([np.linspace(-60, 0, 61)[:-1], np.zeros(60)])
    phi = np.linspace(0, math.pi / 2, 80)
    bend = np.column_stack([25 * np.sin(phi), 25 * (1 - np.cos(phi))])
    straight_out = np.column_stack([np.full(60, 25.0), 25 + np.linspace(0, 60, 61)[1:]])
    xy = np.concatenate([straight_in, bend, straight_out])
    path = ReferencePath(
        xy, np.asarray(LANE), np.asarray(8.0), np.asarray(LANE / 2), np.asarray(LANE / 2)
    )
    log = closed_loop(path, VehicleState(-60.0, 0.0, 0.0, 8.0), lambda t: [], 18.0)
    pts = np.array([[e.x, e.y] for _, e, *_ in log])
    s, d = path.project(pts[:, 0], pts[:, 1])
    assert np.max(np.abs(d)) < 0.3  # stays near the lane centre through the bend
    assert s[-1] > 60 + 25 * math.pi / 2 + 20  # and through it
    assert max(abs(e.steer_rad) for _, e, *_ in log) < IPACE.max_steer_rad
    # slowed for the bend: √(2 m/s² × 25 m) ≈ 7.1 m/s, below the 8 m/s limit
    in_bend = [e.speed for (_, e, *_), si in zip(log, s, strict=True) if 65 < si < 95]
    assert max(in_bend) < 7.3


def test_subsampled_projection_of_smooth_series_matches_the_exact_one() -> None:
    phi = np.linspace(0, math.pi, 400)
    path = ReferencePath(
        np.column_stack([40 * np.sin(phi), 40 * (1 - np.cos(phi))]),
        np.asarray(3.5),
        np.asarray(10.0),
        np.asarray(2.0),
        np.asarray(2.0),
    )
    t = np.arange(41) * 0.1
    # three cars driving arcs at 1 m offsets from the path at 8–12 m/s
    ang = np.array([0.1, 0.5, 1.0])[:, None] + np.array([8.0, 10.0, 12.0])[:, None] * t / 41.0
    radius = np.array([39.0, 40.0, 41.0])[:, None]
    x, y = radius * np.sin(ang), 40 - radius * np.cos(ang)
    s_fast, d_fast = path.project_series(x, y, stride=4)
    s_exact, d_exact = path.project(x, y)
    assert np.allclose(s_fast, s_exact, atol=0.02)
    assert np.allclose(d_fast, d_exact, atol=0.01)


def _left_turn_path() -> ReferencePath:
    """Eastbound on y = 0, a left turn (radius 8.75 m) at x ≈ -3.5 across the westbound lane
    (y = 3.5) into a northbound street."""
    radius = 8.75
    straight_in = np.column_stack([np.linspace(-80, -3.5, 77)[:-1], np.zeros(76)])
    phi = np.linspace(0, math.pi / 2, 40)
    bend = np.column_stack([-3.5 + radius * np.sin(phi), radius * (1 - np.cos(phi))])
    out = np.column_stack([np.full(60, -3.5 + radius), radius + np.linspace(0, 60, 61)[1:]])
    xy = np.concatenate([straight_in, bend, out])
    return ReferencePath(
        xy, np.asarray(LANE), np.asarray(10.0), np.asarray(LANE / 2), np.asarray(LANE / 2)
    )


@pytest.mark.parametrize("gap_s", [2.5, 6.0])
def test_unprotected_left_turn_waits_for_a_gap_in_oncoming_traffic(gap_s: float) -> None:
    def oncoming(t: float) -> list[AgentState]:
        xs = [60.0 - 10.0 * (t - i * gap_s) for i in range(12)]
        return [
            AgentState(f"o{i}", AgentKind.CAR, x, LANE, math.pi, 10.0)
            for i, x in enumerate(xs)
            if -60.0 < x < 200.0
        ]

    path = _left_turn_path()
    log = closed_loop(path, VehicleState(-60.0, 0.0, 0.0, 8.0), oncoming, 20.0)
    assert not any(c for *_, c in log)
    s_final = float(path.project(log[-1][1].x, log[-1][1].y)[0])
    if gap_s < 3.0:
        # 25 m gaps are too short to cross: it waits, out of the oncoming lane
        for _, e, _, _ in log:
            corners = box_corners(
                *footprint_center(e.x, e.y, e.heading, IPACE),
                np.asarray(e.heading),
                np.asarray(IPACE.length_m),
                np.asarray(IPACE.width_m),
            )
            assert corners[:, 1].max() < LANE / 2
        assert s_final < 80.0
    else:
        assert s_final > 76.5 + 8.75 * math.pi / 2 + 10.0  # through the turn and away


def test_projection_window_prefers_the_nearby_pass_but_not_far_points() -> None:
    # a U-shaped route that comes back 1.5 m beside itself: the window picks the pass
    out_leg = np.column_stack([np.linspace(0, 100, 101), np.zeros(101)])
    phi = np.linspace(-math.pi / 2, math.pi / 2, 20)[1:-1]
    turn = np.column_stack([100 + 0.75 * np.cos(phi), 0.75 + 0.75 * np.sin(phi)])
    back_leg = np.column_stack([np.linspace(100, 0, 101), np.full(101, 1.5)])
    path = ReferencePath(
        np.concatenate([out_leg, turn, back_leg]),
        np.asarray(3.5),
        np.asarray(10.0),
        np.asarray(1.0),
        np.asarray(1.0),
    )
    s_any, _ = path.project(50.0, 0.8)
    s_out, d_out = path.project(50.0, 0.8, s_window=(0.0, 90.0))
    s_back, d_back = path.project(50.0, 0.8, s_window=(110.0, path.length_m))
    assert s_out == pytest.approx(50.0, abs=1e-6) and d_out == pytest.approx(0.8)
    assert s_back == pytest.approx(path.length_m - 50.0, abs=0.01)
    assert d_back == pytest.approx(0.7, abs=1e-6)
    assert s_any in (pytest.approx(float(s_back)), pytest.approx(float(s_out)))
    # a point far behind the start is not pulled into the window
    s_far, d_far = path.project(-120.0, 0.5, s_window=(10.0, 60.0))
    assert s_far == pytest.approx(-120.0) and d_far == pytest.approx(0.5)
