"""The CommonRoad adapter on real scenarios: loading, the lanelet route, closed-loop runs
and CommonRoad's own verdicts (which must be able to say no)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CR = DATA / "commonroad"

pytestmark = [
    pytest.mark.sfdata,
    pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is absent"),
]

ZIP = CR / "hand-crafted" / "ZAM_Zip-1_6_T-1.xml"
US101 = CR / "ngsim" / "US101" / "USA_US101-11_1_T-1.xml"
LANKER = CR / "ngsim" / "Lankershim" / "USA_Lanker-1_10_T-1.xml"


@pytest.fixture(scope="module")
def cr():  # the adapter imports commonroad, which only the dev extra installs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from robotaxi.sim import commonroad

    return commonroad


@pytest.fixture(scope="module")
def zip_problem(cr):
    return cr.load_problem(ZIP)


def _rear_axle_rows(x0, y0, h0, v, steer, n, dt):
    """Our bicycle model at constant speed and steering: n+1 rear-axle rows."""
    from robotaxi.autonomy.vehicle import IPACE, VehicleState, step
    from robotaxi.core.types import ControlCommand

    state = VehicleState(x0, y0, h0, v, steer)
    rows = [state.as_row()]
    for _ in range(n):
        state = step(state, ControlCommand(0.0, 0.0), dt, IPACE)
        rows.append(state.as_row())
    return np.asarray(rows)


def test_scenarios_load_and_route_follows_the_lanelets(cr):
    for path in (ZIP, US101, LANKER):
        problem = cr.load_problem(path)
        init = problem.problem.initial_state
        # the route starts on the lanelet under the car and reaches a goal lanelet
        assert problem.route.reaches_goal, path.name
        s, d = problem.path.project(*init.position)
        assert abs(float(d)) < 1.0, (path.name, float(d))
        assert problem.path.length_m > float(s) + 50.0
        assert problem.dt_s == pytest.approx(0.1)
        # widths come from the lanelet bounds: compare at the start lanelet's vertices
        lane = problem.scenario.lanelet_network.find_lanelet_by_id(problem.route.lanelet_ids[0])
        bound_width = np.hypot(*(lane.left_vertices - lane.right_vertices).T)
        s_v, d_v = problem.path.project(lane.center_vertices[:, 0], lane.center_vertices[:, 1])
        on_path = np.abs(d_v) < 0.05  # before any lane change leaves this lanelet
        assert on_path.sum() >= 2
        np.testing.assert_allclose(
            problem.path.lane_width_at(s_v[on_path]), bound_width[on_path], atol=0.05
        )
        assert np.all(problem.path.right_room_m >= 0.5 * problem.path.lane_width_m - 0.05)
        assert np.all(problem.path.left_room_m >= 0.5 * problem.path.lane_width_m - 0.05)


def test_us101_goal_in_the_next_lane_is_reached_by_a_lane_change(cr):
    problem = cr.load_problem(US101)
    assert any(problem.route.lane_changes)
    goal_ids = cr.LaneletRouter(problem.scenario).goal_lanelets(problem.problem)
    assert problem.route.lanelet_ids[0] not in goal_ids
    assert set(problem.route.lanelet_ids) & goal_ids
    # the path ends up on the goal lanelet's centre line, having left the start lanelet's
    goal = problem.scenario.lanelet_network.find_lanelet_by_id(next(iter(goal_ids)))
    start = problem.scenario.lanelet_network.find_lanelet_by_id(problem.route.lanelet_ids[0])
    _, d_goal = problem.path.project(*goal.center_vertices[-1])
    _, d_start = problem.path.project(*start.center_vertices[-1])
    assert abs(float(d_goal)) < 0.2
    assert abs(float(d_start)) > 2.5


def test_a_lane_change_without_room_left_moves_to_the_next_lanelet(cr):
    # Lankershim 1_10 starts 3 m before the end of a turn lanelet whose route continues in
    # the lane to its left: squeezed into those 3 m, the change was a sideways jump of a
    # lane width at the joint (an S-bend of radius ~2 m in the smoothed path)
    problem = cr.load_problem(LANKER)
    net = problem.scenario.lanelet_network
    ids, changes = problem.route.lanelet_ids, problem.route.lane_changes
    assert any(changes) and not changes[1]
    first_change = changes.index(True)
    before = net.find_lanelet_by_id(ids[first_change - 1])
    assert before.lanelet_id in net.find_lanelet_by_id(ids[0]).successor
    assert ids[first_change] in (before.adj_left, before.adj_right)
    s0, _ = problem.path.project(*problem.problem.initial_state.position)
    bends = np.abs(problem.path.curvature_at(float(s0) + np.arange(0.0, 40.0)))
    assert bends.max() < 0.15  # radius above ~7 m: the intersection's own turn


def test_run_produces_a_trajectory_commonroad_accepts_and_judges(cr, zip_problem):
    from robotaxi.autonomy.stack import IdmPlanner, PdmPlanner

    init = zip_problem.problem.initial_state
    verdicts = {}
    for planner in (IdmPlanner(), PdmPlanner()):
        out = cr.run(zip_problem, planner, seed=3)
        traj = out.trajectory
        assert traj.initial_time_step == zip_problem.first_step
        assert len(traj.state_list) == len(out.states)
        # the first state is the planning problem's initial state, back in the centre frame
        np.testing.assert_allclose(traj.state_list[0].position, init.position, atol=1e-9)
        assert traj.state_list[0].velocity == pytest.approx(init.velocity)
        assert len(out.stack_time_s) == len(out.states) - 1
        verdict = cr.evaluate(zip_problem, traj)
        assert isinstance(verdict.collision, bool)
        # our bicycle model's motion is a feasible KS motion (frames converted correctly)
        assert verdict.feasible, planner.name
        assert verdict.goal_reached == (out.goal_step is not None)
        assert verdict.success == (
            verdict.goal_reached and verdict.feasible and not verdict.collision
        )
        verdicts[planner.name] = verdict
    # the baseline reaches the zip merge's goal in its time window
    assert verdicts["idm"].goal_reached


def test_collision_check_flags_driving_through_an_obstacle(cr, zip_problem):
    scenario = zip_problem.scenario
    obstacle = scenario.dynamic_obstacles[0]
    k = obstacle.initial_state.time_step + 10
    target = obstacle.state_at_time(k)
    heading = float(target.orientation)
    b = cr.IPACE.rear_axle_to_center_m
    # straight along the obstacle's heading, through its centre at step k
    n, dt, v = 20, zip_problem.dt_s, 10.0
    back = v * dt * (k - zip_problem.first_step)
    x0 = target.position[0] - (back + b) * math.cos(heading)
    y0 = target.position[1] - (back + b) * math.sin(heading)
    rows = _rear_axle_rows(x0, y0, heading, v, 0.0, n, dt)
    hit = cr.to_commonroad(rows, zip_problem.first_step)
    np.testing.assert_allclose(hit.state_list[k].position, target.position, atol=1e-6)
    verdict = cr.evaluate(zip_problem, hit)
    assert verdict.collision
    assert verdict.collision_step is not None and verdict.collision_step <= k
    # the same motion 500 m away from everything is collision-free
    rows_far = rows.copy()
    rows_far[:, 2] += 500.0
    far = cr.evaluate(zip_problem, cr.to_commonroad(rows_far, zip_problem.first_step))
    assert not far.collision and far.collision_step is None


def test_being_run_into_from_behind_is_told_apart_from_running_into(cr):
    # DEU_Test-1_1: one car at 10 m/s from x = 17 m along y = 2 m, a car parked at x = 65 m
    problem = cr.load_problem(CR / "tum-bsd" / "DEU_Test-1_1_T-1.xml")
    b = cr.IPACE.rear_axle_to_center_m
    dt = problem.dt_s
    # standing with the centre at x = 40 m: the moving car's front reaches our rear at ~1.8 s
    standing = _rear_axle_rows(40.0 - b, 2.0, 0.0, 0.0, 0.0, 30, dt)
    hit = cr.evaluate(problem, cr.to_commonroad(standing, 0), check_feasibility=False)
    assert hit.collision and hit.struck_from_behind
    assert hit.collision_step is not None and 15 <= hit.collision_step <= 21
    # driving at 20 m/s from x = 45 m into the parked car: our fault, not struck from behind
    driving = _rear_axle_rows(45.0 - b, 2.25, 0.0, 20.0, 0.0, 15, dt)
    into = cr.evaluate(problem, cr.to_commonroad(driving, 0), check_feasibility=False)
    assert into.collision and not into.struck_from_behind


def test_feasibility_check_accepts_the_bicycle_model_and_rejects_jumps(cr, zip_problem):
    dt = zip_problem.dt_s
    # a tight constant-steering arc of our bicycle model is feasible ...
    arc = _rear_axle_rows(0.0, 0.0, 0.3, 8.0, 0.3, 15, dt)
    arc_traj = cr.to_commonroad(arc, 0)
    ok, _ = cr.feasibility_checker.trajectory_feasibility(arc_traj, cr.feasibility_dynamics(), dt)
    assert ok
    # ... but not if the rear axle were written as the centre (the frame matters) ...
    wrong = cr.CrTrajectory(
        0,
        [
            cr.KSState(
                time_step=i,
                position=row[1:3].copy(),
                orientation=float(row[3]),
                velocity=float(row[4]),
                steering_angle=float(row[6]),
            )
            for i, row in enumerate(arc)
        ],
    )
    bad, _ = cr.feasibility_checker.trajectory_feasibility(wrong, cr.feasibility_dynamics(), dt)
    assert not bad
    # ... and a 3 m sideways jump in one step is caught at that step
    jump = _rear_axle_rows(0.0, 0.0, 0.0, 10.0, 0.0, 10, dt)
    jump[6:, 2] += 3.0
    verdict = cr.evaluate(zip_problem, cr.to_commonroad(jump, zip_problem.first_step + 0))
    assert not verdict.feasible
    assert verdict.infeasible_step == zip_problem.first_step + 6


def test_same_seed_same_run(cr):
    from robotaxi.autonomy.stack import PdmPlanner

    problem = cr.load_problem(LANKER)
    a = cr.run(problem, PdmPlanner(), seed=5)
    b = cr.run(problem, PdmPlanner(), seed=5)
    np.testing.assert_array_equal(a.states, b.states)
    assert a.goal_step == b.goal_step


def test_missing_file_and_problem_free_scenario_are_named_errors(cr, tmp_path):
    from robotaxi.core.errors import DataNotFoundError, ScenarioError

    with pytest.raises(DataNotFoundError):
        cr.load_problem(tmp_path / "nope.xml")
    with pytest.raises(ScenarioError):
        cr.load_problem(CR / "tum-bsd" / "Tut_compliance.xml")
