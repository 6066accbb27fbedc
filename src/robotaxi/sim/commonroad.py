"""Peer benchmark: our autonomy stack on CommonRoad scenarios, judged by CommonRoad's tools.

A CommonRoad scenario (lanelets, recorded obstacles) and its planning problem (initial
state, goal region) become a closed loop on the one runner (a replay of the recording as
its world, our car as its driver): every time step the scenario's obstacles at that
step are the ground truth the car's cameras see (replayed, not reactive; traffic lights
become stop lines and signal states); prediction follows the lanelet a track drives on; the
stack plans and controls; our kinematic bicycle moves the ego by the scenario's `dt`. The
stack knows the goal region and its time window (`GoalWindow`) to time its arrival; a lane
change the route needs is begun only into a gap the car sees in the target lane, for
planners that check gaps (`RouteLaneChanges`). The
run ends when the goal is reached or at the goal's last time step (at most
`MAX_DURATION_S`). The ego's trajectory is then written as a CommonRoad `Trajectory` of
`KSState`s and judged by CommonRoad's own code:

- goal reached: `planning_problem.goal.is_reached(state)` for some state of the trajectory;
- collision-free: the drivability checker's `create_collision_checker(scenario)` against
  the ego's `TrajectoryPrediction` (a time-variant collision object) with the I-PACE's
  footprint (4.68 m × 2.01 m);
- kinematically feasible: `feasibility_checker.trajectory_feasibility` with the kinematic
  single-track model `VehicleDynamics.KS(VehicleType.BMW_320i)` — CommonRoad's passenger
  car, the closest it ships to an I-PACE — with its axle positions `a`, `b` and body `l`,
  `w` replaced by the I-PACE's (limits stay the BMW 320i's: steering ±1.066 rad at
  ≤ 0.4 rad/s, acceleration ≤ 11.5 m/s² with its power limit above 7.3 m/s).

Frames: a CommonRoad state's position is the vehicle's centre; the KS model integrates the
rear axle, which the checker recovers as `position − b·(cos ψ, sin ψ)`. Our `VehicleState`
is the rear axle, so we write `position = rear axle + b·(cos ψ, sin ψ)` with
b = `IPACE.rear_axle_to_center_m` (1.54 m), which is also the centre of the footprint the
collision checker uses: both checks see the same car.
"""

from __future__ import annotations

import importlib
import math
import time as wall
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from robotaxi.core.errors import DataNotFoundError, MissingExtraError, ScenarioError

try:  # CommonRoad is an optional extra: without it, say how to install it
    from commonroad.common.file_reader import CommonRoadFileReader
    from commonroad.geometry.shape import Circle, Polygon, Rectangle
    from commonroad.planning.planning_problem import PlanningProblem
    from commonroad.prediction.prediction import TrajectoryPrediction
    from commonroad.scenario.obstacle import ObstacleType
    from commonroad.scenario.scenario import Scenario
    from commonroad.scenario.state import KSState
    from commonroad.scenario.trajectory import Trajectory as CrTrajectory

    # commonroad_dc ships a type stub (pycrcc.pyi) that is not valid Python, which stops mypy
    # outright; importing its modules by name keeps mypy out of the package.
    _dispatch: Any = importlib.import_module(
        "commonroad_dc.collision.collision_detection.pycrcc_collision_dispatch"
    )
    feasibility_checker: Any = importlib.import_module(
        "commonroad_dc.feasibility.feasibility_checker"
    )
    _dynamics: Any = importlib.import_module("commonroad_dc.feasibility.vehicle_dynamics")
except ModuleNotFoundError as exc:
    MissingExtraError.raise_for(exc, extra="commonroad", what="CommonRoad support")

from robotaxi.autonomy.planning.arrival import GoalWindow
from robotaxi.autonomy.planning.lane_change import (
    GapRule,
    lane_change_gap_ok,
    merge_headway,
    yield_speed,
)
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import Predictions
from robotaxi.autonomy.stack import AutonomyStack, Planner
from robotaxi.autonomy.vehicle import IPACE, VehicleParams, VehicleState
from robotaxi.core import (
    CommandFailure,
    EmergencyRecord,
    VehicleCommand,
    WorldError,
    WorldSnapshot,
    WorldStats,
)
from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentKind, AgentState, FloatArray, Track
from robotaxi.sim.commonroad_lanes import (
    DEFAULT_SPEED_LIMIT_MPS,
    ChangeStart,
    LaneletRouter,
    LaneRoute,
    signal_states,
)
from robotaxi.sim.ego import EgoCar, SoleCarDriver
from robotaxi.sim.sensors import CarSensors
from robotaxi.sim.simulation import Simulation, Tick

VehicleDynamics = _dynamics.VehicleDynamics
VehicleType = _dynamics.VehicleType
create_collision_checker = _dispatch.create_collision_checker
create_collision_object = _dispatch.create_collision_object

FEASIBILITY_VEHICLE = VehicleType.BMW_320i
# lane changes are laid out over this many seconds at the initial speed, within bounds (m)
LANE_CHANGE_TIME_S = 3.5
LANE_CHANGE_MIN_M = 25.0
LANE_CHANGE_MAX_M = 80.0
# a goal's velocity interval applies from this far before the goal region's centre (m); for
# a planner that brakes ahead for lower limits itself, from where the car's centre enters
# the region
GOAL_SPEED_LEAD_M = 20.0
# ... aimed this far inside the interval's upper end (m/s; at most a quarter of its width)
GOAL_SPEED_MARGIN_MPS = 0.2
# goals open for very long (a loading bay's is 1000 s) are attempted for at most this long
MAX_DURATION_S = 60.0
# a route lane change is decided on (the gap in its target lane checked) once its start is
# this close ahead of the car's front: metres, plus seconds of travel at the car's speed
LANE_CHANGE_DECIDE_M = 10.0
LANE_CHANGE_DECIDE_S = 1.5
# a lane change waiting for its gap moves on in steps of this (m): the path is rebuilt no
# more often
LANE_CHANGE_DEFER_STEP_M = 5.0
# a lane change moved on keeps at least this length of its lanelet (m, and this fraction of
# its planned length) for itself
LANE_CHANGE_MIN_BLEND_M = 20.0
LANE_CHANGE_MIN_FRACTION = 0.6
# the car watches its surroundings for this many ticks (its tracker confirming what it sees)
# before it takes any gap
LANE_CHANGE_WATCH_TICKS = 3

_KINDS = {
    ObstacleType.PEDESTRIAN: AgentKind.PEDESTRIAN,
    ObstacleType.BICYCLE: AgentKind.UNKNOWN,
    ObstacleType.MOTORCYCLE: AgentKind.CAR,
}


@dataclass(frozen=True)
class CrProblem:
    """A loaded scenario, the planning problem we solve, and the ego's route."""

    name: str
    scenario: Scenario
    problem: PlanningProblem
    route: LaneRoute
    router: LaneletRouter
    dt_s: float
    first_step: int
    last_step: int
    # where and when the goal must be reached, for the planner to time its arrival (None: the
    # goal has no position, or offers alternatives)
    goal_window: GoalWindow | None = None

    @property
    def path(self) -> ReferencePath:
        return self.route.path


@dataclass(frozen=True)
class CrRun:
    """One closed-loop run: the ego's rear-axle states (T×7, `TrajectoryColumn` order, time
    from the scenario's start), its CommonRoad trajectory, and the stack's wall-clock
    runtimes per step (s): the whole stack and the planner alone."""

    planner: str
    states: FloatArray
    trajectory: CrTrajectory
    stack_time_s: tuple[float, ...]
    planner_time_s: tuple[float, ...]
    goal_step: int | None


@dataclass(frozen=True)
class CrVerdict:
    """CommonRoad's verdicts on one trajectory; `*_step` is the first offending (or, for the
    goal, first reaching) time step."""

    goal_reached: bool
    goal_step: int | None
    collision: bool
    collision_step: int | None
    feasible: bool
    infeasible_step: int | None
    # every obstacle touching the ego at the first collision is behind the ego's centre and
    # drives the same way: a replayed car ran into us (it cannot react), not we into it
    struck_from_behind: bool = False

    @property
    def success(self) -> bool:
        return self.goal_reached and not self.collision and self.feasible

    @property
    def failure_reasons(self) -> tuple[str, ...]:
        reasons = []
        if self.collision:
            reasons.append("collision")
        if not self.goal_reached:
            reasons.append("goal_not_reached")
        if not self.feasible:
            reasons.append("infeasible")
        return tuple(reasons)


@dataclass
class _Timings:
    stack: list[float] = field(default_factory=list)
    planner: list[float] = field(default_factory=list)


def load_problem(path: Path, default_speed_mps: float | None = None) -> CrProblem:
    """Read a CommonRoad file and build the ego's route for its first planning problem
    (lowest id). Raises `DataNotFoundError` for a missing file and `ScenarioError` for a
    scenario without a planning problem."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"CommonRoad scenario {path} not found")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scenario, problems = CommonRoadFileReader(str(path)).open()
    if not problems.planning_problem_dict:
        raise ScenarioError(f"CommonRoad scenario {path.name} has no planning problem")
    problem = problems.planning_problem_dict[min(problems.planning_problem_dict)]
    init = problem.initial_state
    v0 = float(getattr(init, "velocity", 0.0) or 0.0)
    router = LaneletRouter(
        scenario, DEFAULT_SPEED_LIMIT_MPS if default_speed_mps is None else default_speed_mps
    )
    goal_steps = [s.time_step for s in problem.goal.state_list]
    first = int(init.time_step)
    last = max(int(getattr(t, "end", t)) for t in goal_steps)
    last = min(last, first + round(MAX_DURATION_S / scenario.dt))
    horizon_m = max(v0, router.default_speed_mps) * (last - first) * scenario.dt + 50.0
    change_m = min(max(LANE_CHANGE_TIME_S * v0, LANE_CHANGE_MIN_M), LANE_CHANGE_MAX_M)
    route = router.route(problem, change_m, horizon_m)
    route = replace(route, path=_goal_speed(route.path, problem, v0, router, route))
    dt = float(scenario.dt)
    window = goal_window(problem, dt)
    return CrProblem(path.stem, scenario, problem, route, router, dt, first, last, window)


def goal_window(problem: PlanningProblem, dt_s: float) -> GoalWindow | None:
    """The goal's region (its shapes' outline points) and time window (s, from the
    scenario's step 0) for the planner to time its arrival; None for a goal without a
    position or with several alternative goal states."""
    states = problem.goal.state_list
    if len(states) != 1 or not states[0].has_value("position"):
        return None
    state = states[0]
    points = _region_points(getattr(state.position, "shapes", [state.position]))
    if not len(points):
        return None
    steps = state.time_step
    first = float(getattr(steps, "start", steps))
    last = float(getattr(steps, "end", steps))
    return GoalWindow(points, first * dt_s, last * dt_s)


def _region_points(shapes: Sequence[object]) -> FloatArray:
    """Outline points of a goal region's shapes (circles: centre and four rim points), n×2
    (0×2: none of a known kind)."""
    points: list[FloatArray] = []
    for shape in shapes:
        if isinstance(shape, Circle):
            c, r = np.asarray(shape.center, dtype=np.float64), float(shape.radius)
            points.append(c + r * np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [0, 0]]))
        elif hasattr(shape, "vertices"):
            points.append(np.asarray(shape.vertices, dtype=np.float64)[:, :2])
    return np.concatenate(points) if points else np.zeros((0, 2))


def _goal_speed(
    path: ReferencePath,
    problem: PlanningProblem,
    v0: float,
    router: LaneletRouter,
    route: LaneRoute,
    from_region: bool = False,
) -> ReferencePath:
    """Speeds along the route: signed limits stay; on unsigned roads the default rises to
    the speed the ego starts with (the recorded traffic's speed there); a goal velocity
    interval caps (or, if above, sets) the target from `GOAL_SPEED_LEAD_M` before the goal
    region's centre on (everywhere, for a goal without a position), as a CommonRoad planner
    aims for it. With `from_region` (a planner that slows ahead for a lower limit itself)
    it applies only from where the car's centre enters the region: the checker judges the
    goal's velocity only inside it, and a car that brakes ahead needs no lead."""
    signed = any(router.speed_limit(lid) is not None for lid in route.lanelet_ids)
    speed = path.speed_limit_mps.copy()
    if not signed:
        # the pace of traffic there: the ego's own speed at the start and, where the goal
        # asks to arrive faster, the middle of the goal's velocity interval (the desired
        # speed a CommonRoad planner takes from the goal)
        pace = v0
        for state in problem.goal.state_list:
            if state.has_value("velocity"):
                mid = 0.5 * (float(state.velocity.start) + float(state.velocity.end))
                pace = max(pace, mid)
                break
        speed = np.maximum(speed, min(pace, IPACE.max_speed_mps))
    for state in problem.goal.state_list:
        if state.has_value("velocity"):
            lo, hi = float(state.velocity.start), float(state.velocity.end)
            # aimed a little inside the interval: a target on its very edge is overshot by
            # the last centimetre per second as often as not
            margin = min(GOAL_SPEED_MARGIN_MPS, 0.25 * max(hi - lo, 0.0))
            goal_speed = np.minimum(speed, max(hi - margin, 0.5))
            goal_speed = np.where(goal_speed < lo, 0.5 * (lo + hi), goal_speed)
            near = np.ones(len(speed), dtype=bool)
            if state.has_value("position"):
                shapes = getattr(state.position, "shapes", [state.position])
                centre = np.mean([np.asarray(sh.center) for sh in shapes], axis=0)
                s_goal, _ = path.project(centre[0], centre[1])
                begin = float(s_goal) - GOAL_SPEED_LEAD_M
                if from_region:
                    edge = _region_points(shapes)
                    if len(edge):
                        s_edge, _ = path.project(edge[:, 0], edge[:, 1])
                        # the path's arc length is the rear axle's: the centre enters the
                        # region that much later
                        begin = float(np.min(s_edge)) - IPACE.rear_axle_to_center_m
                near = path.s >= begin
            speed = np.where(near, goal_speed, speed)
            break
    return ReferencePath(
        path.xy, path.lane_width_m, speed, path.right_room_m, path.left_room_m, path.stop_lines
    )


class RouteLaneChanges:
    """The route's lane changes, each begun only into an acceptable gap in its target lane
    (`planning.lane_change`), as the car's own predictions show it: once a change's start is
    within `LANE_CHANGE_DECIDE_M` (+ `LANE_CHANGE_DECIDE_S` of travel) of the car's front,
    a gap that does not take the car moves the start on, `LANE_CHANGE_DEFER_STEP_M` at a
    time, to that far ahead of it, while the lanelet leaves the change room for itself. The
    car keeps its lane meanwhile, slowing to let whoever closes the gap go by
    (`planning.lane_change.yield_speed`, handed to the stack as `speed_cap_mps`), and looks
    again every tick; when the gap comes, the start is brought back near the car. With no
    room left on the lanelet, a change moves on to the next lanelets where they run side by
    side (the last of changes in a row first). Changes in a row (two lanes over) are
    checked and moved one at a time. No gap is taken before the car has watched for
    `LANE_CHANGE_WATCH_TICKS` ticks. A change whose start the car has reached is under way
    and is not moved again, nor is one with no room left to move. Once a change has taken
    its gap, `headway_s` (handed to the stack) is the shorter time headway the car keeps to
    its leader for a while (`planning.lane_change.merge_headway`). With `enabled` False the
    changes stay where the route lays them out (the IDM baseline's route). With
    `goal_speed_from_region` the goal's velocity interval is laid from the goal region's
    edge on (a planner that brakes ahead for lower limits itself; `_goal_speed`)."""

    def __init__(
        self,
        problem: CrProblem,
        params: VehicleParams = IPACE,
        rule: GapRule | None = None,
        *,
        enabled: bool = True,
        goal_speed_from_region: bool = False,
    ) -> None:
        self.problem = problem
        self.params = params
        self.rule = rule
        self.enabled = enabled and any(problem.route.lane_changes)
        self.goal_speed_from_region = goal_speed_from_region
        self.path = problem.path
        self.route = problem.route  # its lane changes where they are now
        self.delays_m: dict[int, float] = {}
        self.begun: set[int] = set()
        self.taken: set[int] = set()  # lane changes whose gap the car has seen acceptable
        self.deferrals = 0  # how many times a start was moved on
        self.watched = 0  # ticks with the car's predictions so far
        self.waiting: set[int] = set()  # lane changes moved on and waiting for their gap
        # the speed (m/s) to let the road user closing the gap go by, this tick (None: none)
        self.speed_cap_mps: float | None = None
        # the time headway (s) the car keeps to its leader this tick, shorter for a while
        # after a change took its gap (`planning.lane_change.merge_headway`; None: its own)
        self.headway_s: float | None = None
        self.ticks = 0  # calls of `path_for` so far
        self._taken_tick: int | None = None  # the tick the last change took its gap
        self._lanes: dict[int, ReferencePath] = {}
        self.starts: list[ChangeStart] = []
        if self.enabled:
            _, self.starts = problem.router.path(problem.route, self.delays_m)
        if goal_speed_from_region:
            self._rebuild()

    def _rebuild(self) -> None:
        problem = self.problem
        path, self.starts = problem.router.path(self.route, self.delays_m)
        v0 = float(getattr(problem.problem.initial_state, "velocity", 0.0) or 0.0)
        self.path = _goal_speed(
            path, problem.problem, v0, problem.router, self.route, self.goal_speed_from_region
        )

    def _defer_lanelet(self, hop: int) -> bool:
        """Move the last of the lane changes in a row from `hop` on to the next lanelet
        (`LaneletRouter.defer_change`), which leaves the earlier ones more room; whether
        the lanelets allowed it."""
        changes = self.route.lane_changes
        last = hop
        while last + 1 < len(changes) and changes[last + 1]:
            last += 1
        moved = self.problem.router.defer_change(self.route, last)
        if moved is None:
            return False
        self.route = moved
        self.delays_m.pop(last, None)
        return True

    def _lane(self, lanelet_id: int) -> ReferencePath:
        lane = self._lanes.get(lanelet_id)
        if lane is None:
            lane = self.problem.router.lane_path(lanelet_id)
            self._lanes[lanelet_id] = lane
        return lane

    def path_for(self, ego: VehicleState, predictions: Predictions | None) -> ReferencePath:
        """The path to drive this tick, `ego` at its rear axle and `predictions` the car's
        latest (None: none yet, nothing is moved)."""
        self.speed_cap_mps = None
        if not self.enabled:
            return self.path
        self.ticks += 1
        if predictions is not None:
            self.watched += 1
        self.headway_s = None
        if self._taken_tick is not None:
            since_s = (self.ticks - self._taken_tick) * self.problem.dt_s
            self.headway_s = merge_headway(since_s)
        es, _ = self.path.project(ego.x, ego.y)
        s_ego = float(es)
        front = s_ego + self.params.rear_axle_to_front_m
        decide_m = LANE_CHANGE_DECIDE_M + LANE_CHANGE_DECIDE_S * max(ego.speed, 0.0)
        for start in self.starts:
            if start.hop in self.begun:
                continue
            sx, sy = start.start_xy
            ss, _ = self.path.project(sx, sy, (s_ego - 20.0, s_ego + 400.0))
            ahead = float(ss) - front
            # Under way once the car is past its start: one the car never found a gap for
            # (the route lays the first change just ahead of where the car starts, and the
            # car has not watched yet) only once it is well past, so it too is checked
            if ahead <= 0.0 and (start.hop in self.taken or ahead <= -LANE_CHANGE_DEFER_STEP_M):
                self.begun.add(start.hop)
                continue
            waiting = start.hop in self.waiting
            if ahead > decide_m and not waiting:
                break
            lane = self._lane(start.to_lanelet)
            # the tracker needs a few looks before the cars around count as seen: till then
            # no gap is known to be there
            if (
                predictions is not None
                and self.watched >= LANE_CHANGE_WATCH_TICKS
                and lane_change_gap_ok(ego, predictions, lane, self.params, self.rule)
            ):
                self.waiting.discard(start.hop)
                self.taken.add(start.hop)
                self._taken_tick = self.ticks
                self.headway_s = merge_headway(0.0)
                pull_m = ahead - LANE_CHANGE_DECIDE_M
                if waiting and pull_m > LANE_CHANGE_DEFER_STEP_M:
                    # the gap came while the start was moved on: take it from nearer
                    new_u = max(start.start_u - pull_m / start.length_m, start.earliest_u)
                    self.delays_m[start.hop] = (new_u - start.earliest_u) * start.length_m
                    self._rebuild()
                break
            self.waiting.add(start.hop)
            if predictions is not None:
                # meanwhile, let whoever closes the gap go by
                self.speed_cap_mps = yield_speed(ego, predictions, lane, self.params, self.rule)
            if ahead > decide_m:
                break
            min_blend = max(
                LANE_CHANGE_MIN_BLEND_M,
                LANE_CHANGE_MIN_FRACTION * self.route.lane_change_length_m,
            )
            latest_u = 1.0 - start.run * min_blend / start.length_m
            step_m = LANE_CHANGE_DEFER_STEP_M * math.ceil(
                max(decide_m - ahead, LANE_CHANGE_DEFER_STEP_M) / LANE_CHANGE_DEFER_STEP_M
            )
            new_u = min(start.start_u + step_m / start.length_m, latest_u)
            if new_u > start.start_u + 1e-9:
                self.delays_m[start.hop] = (new_u - start.earliest_u) * start.length_m
            elif not self._defer_lanelet(start.hop):
                self.begun.add(start.hop)  # no room left to wait: it goes where it is
                self.waiting.discard(start.hop)
                self.speed_cap_mps = None
                break
            self.deferrals += 1
            self._rebuild()
            break
        return self.path


def _shape_size(shape: object) -> tuple[float, float]:
    if isinstance(shape, Rectangle):
        return float(shape.length), float(shape.width)
    if isinstance(shape, Circle):
        return 2.0 * float(shape.radius), 2.0 * float(shape.radius)
    if isinstance(shape, Polygon):
        v = np.asarray(shape.vertices)
        span = v.max(axis=0) - v.min(axis=0)
        return float(span.max()), float(span.min())
    return 4.5, 1.8


def obstacles_at(scenario: Scenario, time_step: int) -> list[AgentState]:
    """Ground truth of every obstacle present at `time_step` (centres, m; m/s)."""
    out: list[AgentState] = []
    for obstacle in (*scenario.dynamic_obstacles, *scenario.static_obstacles):
        state = obstacle.state_at_time(time_step)
        if state is None:
            if obstacle in scenario.static_obstacles:
                state = obstacle.initial_state
            else:
                continue
        length, width = _shape_size(obstacle.obstacle_shape)
        pos = np.asarray(state.position, dtype=np.float64)
        out.append(
            AgentState(
                str(obstacle.obstacle_id),
                _KINDS.get(obstacle.obstacle_type, AgentKind.CAR),
                float(pos[0]),
                float(pos[1]),
                float(getattr(state, "orientation", 0.0) or 0.0),
                float(getattr(state, "velocity", 0.0) or 0.0),
                length=length,
                width=width,
            )
        )
    return out


def initial_vehicle_state(problem: CrProblem, params: VehicleParams = IPACE) -> VehicleState:
    """The planning problem's initial state as our rear-axle `VehicleState`."""
    init = problem.problem.initial_state
    heading = float(init.orientation)
    b = params.rear_axle_to_center_m
    x, y = (float(c) for c in init.position)
    return VehicleState(
        x - b * math.cos(heading),
        y - b * math.sin(heading),
        heading,
        float(getattr(init, "velocity", 0.0) or 0.0),
        0.0,
        float(getattr(init, "acceleration", 0.0) or 0.0),
        params.steering_ratio,
    )


def ks_state(row: FloatArray, time_step: int, params: VehicleParams = IPACE) -> KSState:
    """One of our rear-axle trajectory rows as a CommonRoad KS state (vehicle centre)."""
    heading = float(row[3])
    wrapped = (heading + math.pi) % (2 * math.pi) - math.pi
    b = params.rear_axle_to_center_m
    centre = np.array([row[1] + b * math.cos(heading), row[2] + b * math.sin(heading)])
    return KSState(
        time_step=time_step,
        position=centre,
        orientation=wrapped,
        velocity=float(row[4]),
        steering_angle=float(row[6]),
    )


def to_commonroad(
    states: FloatArray, first_step: int, params: VehicleParams = IPACE
) -> CrTrajectory:
    """Rear-axle rows (T×7, one per time step from `first_step`) as a CommonRoad trajectory."""
    return CrTrajectory(
        first_step, [ks_state(row, first_step + i, params) for i, row in enumerate(states)]
    )


EGO_ID = "ego"


class _ReplayWorld:
    """A scenario's recorded traffic as the runner's `World`: each step brings the obstacles
    and signal states of the next time step. Nothing the ego does changes them (recorded
    traffic cannot react), so the ego's moves are taken and dropped."""

    def __init__(self, problem: CrProblem) -> None:
        self.problem = problem
        self.stats = WorldStats()
        self._k = problem.first_step - 1

    @property
    def emergency(self) -> dict[str, EmergencyRecord]:
        return {}

    @property
    def time(self) -> TimePoint:
        return TimePoint.from_s(self._k * self.problem.dt_s)

    @property
    def time_step(self) -> int:
        return self._k

    def start(self) -> None:
        self._k = self.problem.first_step - 1

    def close(self) -> None:
        pass

    def step(self) -> None:
        self._k += 1

    def snapshot(self) -> WorldSnapshot:
        scenario = self.problem.scenario
        empty = np.zeros(0)
        return WorldSnapshot(
            time=self.time, ids=(), kinds=(), xy=np.zeros((0, 2)), heading=empty,
            speed=empty, length=empty, width=empty, lane_ids=(), lane_pos=empty, sirens=(),
            signals=signal_states(scenario, self._k),
            around={EGO_ID: tuple(obstacles_at(scenario, self._k))},
        )  # fmt: skip

    def apply(self, commands: Iterable[VehicleCommand]) -> list[CommandFailure]:
        return []

    def add_robotaxi(self, vehicle_id: str, curb_index: int) -> None:
        raise WorldError("a recorded CommonRoad scenario has no kerb spots for robotaxis")

    def vehicle_count(self) -> int:
        return len(self.problem.scenario.obstacles)

    def edge_travel_times(self, edges: Sequence[str]) -> dict[str, float]:
        return {}

    def vehicles_near(self, vehicle_id: str, radius_m: float) -> tuple[AgentState, ...]:
        return ()


class _CrDriver(SoleCarDriver):
    """The ego on a CommonRoad problem (`CarDrivers` for the runner): each time step it
    senses the recorded obstacles, plans and moves (`EgoCar`); its states are recorded."""

    def __init__(self, problem: CrProblem, car: EgoCar, params: VehicleParams) -> None:
        self.problem = problem
        self.car = car
        self.params = params
        self.rows = [car.state.as_row(problem.first_step * problem.dt_s)]
        self.timings = _Timings()
        self.goal_step: int | None = None
        planner = car.stack.planner
        self.lane_changes = RouteLaneChanges(
            problem,
            params,
            enabled=planner.checks_lane_change_gaps,
            goal_speed_from_region=planner.brakes_ahead_for_limits,
        )

    def drive(self, snapshot: WorldSnapshot, dt_s: float) -> None:
        k = round(snapshot.time.time_s / dt_s)
        t0 = wall.perf_counter()
        car = self.car
        path = self.lane_changes.path_for(car.state, car.stack.last_predictions)
        car.stack.speed_cap_mps = self.lane_changes.speed_cap_mps
        car.stack.headway_s = self.lane_changes.headway_s
        car.drive(snapshot.around[EGO_ID], (), snapshot.signals, path, None, snapshot.time, dt_s)
        self.timings.stack.append(wall.perf_counter() - t0)
        self.timings.planner.append(car.stack.times.by_stage["planning"][-1])
        self.rows.append(car.state.as_row((k + 1) * dt_s))
        if self.goal_step is None and self.problem.problem.goal.is_reached(
            ks_state(self.rows[-1], k + 1, self.params)
        ):
            self.goal_step = k + 1


def run(
    problem: CrProblem,
    planner: Planner,
    *,
    seed: int = 0,
    params: VehicleParams = IPACE,
    stop_at_goal: bool = True,
    lane_prediction: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> CrRun:
    """Drive `problem` closed loop on the runner with a fresh stack around `planner` (module
    docstring); with `lane_prediction`, tracks are predicted along the lanelet they drive on."""
    router = problem.router

    def lane_lookup(track: Track) -> FloatArray | None:
        return router.lane_of(track.x, track.y, track.heading)

    stack = AutonomyStack(
        planner,
        params=params,
        lane_lookup=lane_lookup if lane_prediction else None,
        goal_window=problem.goal_window,
    )
    sensors = CarSensors(seed=seed, params=params)
    car = EgoCar(EGO_ID, sensors, stack, initial_vehicle_state(problem, params))
    dt = problem.dt_s
    world = _ReplayWorld(problem)
    driver = _CrDriver(problem, car, params)
    sim = Simulation(world, step_s=dt)
    sim.drivers = driver
    steps = problem.last_step - problem.first_step

    def done(tick: Tick) -> bool:
        if progress is not None:
            progress(tick.index + 1, steps)
        return tick.index + 1 >= steps or (stop_at_goal and driver.goal_step is not None)

    if steps > 0:
        with sim:
            sim.run(until=done)
    states = np.asarray(driver.rows)
    return CrRun(
        planner.name,
        states,
        to_commonroad(states, problem.first_step, params),
        tuple(driver.timings.stack),
        tuple(driver.timings.planner),
        driver.goal_step,
    )


def feasibility_dynamics(params: VehicleParams = IPACE) -> Any:
    """CommonRoad's KS model of a BMW 320i with the I-PACE's geometry (module docstring)."""
    dynamics = VehicleDynamics.KS(FEASIBILITY_VEHICLE)
    b = params.rear_axle_to_center_m
    dynamics.parameters = replace(
        dynamics.parameters, a=params.wheelbase_m - b, b=b, l=params.length_m, w=params.width_m
    )
    return dynamics


def ego_shape(params: VehicleParams = IPACE) -> Rectangle:
    return Rectangle(params.length_m, params.width_m)


def evaluate(
    problem: CrProblem,
    trajectory: CrTrajectory,
    *,
    params: VehicleParams = IPACE,
    check_feasibility: bool = True,
) -> CrVerdict:
    """CommonRoad's verdicts on `trajectory` (module docstring)."""
    goal = problem.problem.goal
    goal_step = next((s.time_step for s in trajectory.state_list if goal.is_reached(s)), None)
    checker = create_collision_checker(problem.scenario)
    shape = ego_shape(params)
    ego = create_collision_object(TrajectoryPrediction(trajectory, shape))
    collision = bool(checker.collide(ego))
    collision_step = None
    struck = False
    if collision:
        for state in trajectory.state_list:
            box = Rectangle(shape.length, shape.width, state.position, state.orientation)
            if checker.time_slice(state.time_step).collide(create_collision_object(box)):
                collision_step = int(state.time_step)
                struck = _struck_from_behind(problem.scenario, state, box)
                break
    feasible, infeasible_step = True, None
    if check_feasibility and len(trajectory.state_list) > 1:
        dynamics = feasibility_dynamics(params)
        feasible, inputs = feasibility_checker.trajectory_feasibility(
            trajectory, dynamics, problem.dt_s
        )
        if not feasible:
            infeasible_step = int(trajectory.initial_time_step + len(inputs.state_list))
    return CrVerdict(
        goal_step is not None,
        None if goal_step is None else int(goal_step),
        collision,
        collision_step,
        bool(feasible),
        infeasible_step,
        struck,
    )


def _struck_from_behind(scenario: Scenario, state: KSState, box: Rectangle) -> bool:
    """Whether all obstacles overlapping the ego box at `state` come from behind (see
    `CrVerdict.struck_from_behind`)."""
    ego = create_collision_object(box)
    heading = float(state.orientation)
    ux, uy = math.cos(heading), math.sin(heading)
    hits = []
    for agent in obstacles_at(scenario, int(state.time_step)):
        other = Rectangle(agent.length, agent.width, np.array([agent.x, agent.y]), agent.heading)
        if ego.collide(create_collision_object(other)):
            along = (agent.x - state.position[0]) * ux + (agent.y - state.position[1]) * uy
            same_way = math.cos(agent.heading - heading) > 0.5
            hits.append(along < 0.0 and same_way)
    return bool(hits) and all(hits)


def scenario_files(root: Path, folders: Sequence[str]) -> list[Path]:
    """CommonRoad XML files under `root`/folder for each folder, sorted; duplicates (the same
    file name in two folders) are kept once."""
    seen: set[str] = set()
    out: list[Path] = []
    for folder in folders:
        for f in sorted((root / folder).rglob("*.xml")):
            if f.name not in seen:
                seen.add(f.name)
                out.append(f)
    return out
