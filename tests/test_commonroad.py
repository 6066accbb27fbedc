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


def _lanelet(lid, centre, width=3.5, **links):
    """A lanelet of constant `width` (m) around the centre polyline `centre`."""
    from commonroad.scenario.lanelet import Lanelet

    c = np.asarray(centre, dtype=np.float64)
    d = np.gradient(c, axis=0)
    normal = np.column_stack([-d[:, 1], d[:, 0]]) / np.hypot(*d.T)[:, None]
    return Lanelet(c + 0.5 * width * normal, c, c - 0.5 * width * normal, lid, **links)


def _hand_built_route(lanelets, start_xy, goal_xy, lane_change_m=30.0):
    """The route over hand-built lanelets from `start_xy` (heading +x, 10 m/s) to a goal
    box around `goal_xy`, and the union of the lanelet polygons."""
    from commonroad.common.util import Interval
    from commonroad.geometry.shape import Rectangle
    from commonroad.planning.goal import GoalRegion
    from commonroad.planning.planning_problem import PlanningProblem
    from commonroad.scenario.lanelet import LaneletNetwork
    from commonroad.scenario.scenario import Scenario, ScenarioID
    from commonroad.scenario.state import CustomState, InitialState
    from shapely.ops import unary_union

    from robotaxi.sim.commonroad_lanes import LaneletRouter

    network = LaneletNetwork()
    for lanelet in lanelets:
        network.add_lanelet(lanelet)
    scenario = Scenario(0.1, ScenarioID())
    scenario.add_objects(network)
    init = InitialState(
        position=np.asarray(start_xy, dtype=np.float64),
        orientation=0.0,
        velocity=10.0,
        time_step=0,
        yaw_rate=0.0,
        slip_angle=0.0,
        acceleration=0.0,
    )
    goal = GoalRegion(
        [
            CustomState(
                position=Rectangle(4.0, 2.0, center=np.asarray(goal_xy, dtype=np.float64)),
                time_step=Interval(0, 100),
            )
        ]
    )
    route = LaneletRouter(scenario).route(PlanningProblem(1, init, goal), lane_change_m, 100.0)
    area = unary_union([ll.polygon.shapely_object for ll in lanelets])
    return route, area


def _inside(area, xy, tol_m=0.01):
    from shapely import contains_xy

    return contains_xy(area.buffer(tol_m), xy[:, 0], xy[:, 1])


@pytest.mark.parametrize("overlap_m", [0.0, 0.3, 2.0])
def test_lanelets_joined_with_an_overlap_and_offset_give_a_smooth_route(overlap_m):
    # the second centre line starts `overlap_m` behind the first one's end, 0.15 m to the
    # side and turned by 3°: a plain chain of the two steps back and forth at the joint
    turn = math.radians(3.0)
    far = np.array([50.0 - overlap_m, 0.15]) + 50.0 * np.array([math.cos(turn), math.sin(turn)])
    first = _lanelet(1, [[0.0, 0.0], [25.0, 0.0], [50.0, 0.0]], successor=[2])
    second = _lanelet(2, [[50.0 - overlap_m, 0.15], far], predecessor=[1])
    route, area = _hand_built_route([first, second], (2.0, 0.0), far - [8.0, 0.4])
    path = route.path
    assert route.lanelet_ids == (1, 2) and route.reaches_goal
    # the arc length only grows along x: nothing doubles back at the joint
    assert np.all(np.diff(path.xy[:, 0]) > 0.5)
    # a 0.15 m step and a 3° turn over a 2 m smoothing window: a gentle bend, far below
    # the 0.1/m of a junction turn (a step back and forth reads as 0.2–1/m)
    assert np.abs(path.curvature_at(path.s)).max() < 0.03
    assert np.all(_inside(area, path.xy))


def test_two_lane_changes_in_a_row_share_the_stretch_without_a_jump():
    # three parallel 60 m lanelets (3.5 m apart), each followed by a straight one; the goal
    # is two lanes to the right: 60 m hold both changes (USA_Peach-4_2 at s ≈ 55 m, where
    # the second change was dropped and the path jumped a lane width at the joint)
    w = 3.5
    ids = {0: (1, 4), -w: (2, 5), -2 * w: (3, 6)}
    lanelets = []
    for y, (a, b) in ids.items():
        left = ids.get(y + w, (None, None))
        right = ids.get(y - w, (None, None))
        lanelets.append(
            _lanelet(
                a,
                [[0.0, y], [30.0, y], [60.0, y]],
                successor=[b],
                adjacent_left=left[0],
                adjacent_left_same_direction=left[0] is not None or None,
                adjacent_right=right[0],
                adjacent_right_same_direction=right[0] is not None or None,
            )
        )
        lanelets.append(_lanelet(b, [[60.0, y], [160.0, y]], predecessor=[a]))
    route, area = _hand_built_route(lanelets, (1.0, 0.0), (150.0, -2 * w), lane_change_m=45.0)
    path = route.path
    assert route.lanelet_ids[:4] == (1, 2, 3, 6)
    assert route.lane_changes[:4] == (False, True, True, False)
    # the whole sideways move (7 m) happens before the joint, in two half-length ramps
    _, d_joint = path.project(60.0, -2 * w)
    assert abs(float(d_joint)) < 0.05
    steps = np.hypot(*np.diff(path.xy, axis=0).T)
    assert steps.max() < 1.5  # no jump
    # a cosine ramp of 3.5 m over ~27 m peaks at π²·3.5/(2·27²) ≈ 0.024/m
    assert np.abs(path.curvature_at(path.s)).max() < 0.05
    assert np.all(_inside(area, path.xy))


def test_peach_route_has_no_kink_at_the_double_lane_change(cr):
    # USA_Peach-4_2: two lane changes to the right over the first 55 m, then a right turn
    problem = cr.load_problem(CR / "ngsim" / "Peachtree" / "USA_Peach-4_2_T-1.xml")
    path = problem.path
    before_turn = path.s < 58.0
    assert np.abs(path.curvature_at(path.s[before_turn])).max() < 0.06
    heading = np.degrees(path.heading_at(path.s[(path.s > 45.0) & (path.s < 58.0)]))
    assert np.ptp(heading) < 20.0  # was −100° → −138° → −99°
