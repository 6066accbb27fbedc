"""CommonRoad's interactive scenarios: our car in the scenario's own SUMO traffic, which reacts.

An interactive scenario (../shared/data/commonroad/interactive-ngsim) carries its traffic as
a SUMO network and routes (sumocr's format), not as recorded trajectories: its `.cr.xml`
holds the lanelets, the planning problem and only the first two steps of each car. Here the
traffic runs in SUMO (`world.scenario_net.ScenarioSumoWorld`: the scenario's network,
routes, vehicle types, seed, sublane resolution and presimulation, as sumocr runs them) and
our car is one of SUMO's vehicles whose pose our vehicle model sets every step (`MoveEgo` →
`moveToXY` + `setPreviousSpeed`, as `robotaxi drive` does in the grid city), so SUMO's
drivers see it as a leader, brake for it and change lanes around it.

The loop is the one runner's (`Simulation`): each tick SUMO steps one scenario step
(dt = 0.1 s), the snapshot's `around` is every other vehicle (footprint centres, read from
SUMO), the car's cameras see what is in their reach, the stack plans and controls, our
kinematic bicycle moves the car, and the car is placed back into SUMO. The route, the
stack set-up and the frames are those of `sim.commonroad` (same routes, same goals).

Judging: the traffic's actual SUMO trajectories, as recorded each step, become the dynamic
obstacles of a copy of the scenario (its lanelets and planning problem, the file's seed
states dropped), and `sim.commonroad.evaluate` judges the ego's trajectory on it with
CommonRoad's own code: goal reached (`GoalRegion.is_reached`), collision-free (drivability
checker), kinematically feasible (KS model). Who is at fault in a collision is for
`metrics.driving` to say (nuPlan's rules), from `InteractiveRun.traffic`.
"""

from __future__ import annotations

import copy
import math
import time as wall
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path

import numpy as np

from robotaxi.core.errors import DataNotFoundError, MissingExtraError

try:  # CommonRoad is an optional extra: without it, say how to install it
    from commonroad.geometry.shape import Rectangle
    from commonroad.prediction.prediction import TrajectoryPrediction
    from commonroad.scenario.obstacle import DynamicObstacle, ObstacleType
    from commonroad.scenario.scenario import Scenario
    from commonroad.scenario.state import InitialState, KSState
    from commonroad.scenario.trajectory import Trajectory as CrTrajectory
except ModuleNotFoundError as exc:
    MissingExtraError.raise_for(exc, extra="commonroad", what="CommonRoad support")

from robotaxi.autonomy.planning.arrival import GoalWindow
from robotaxi.autonomy.planning.behaviour import Behaviour
from robotaxi.autonomy.stack import AutonomyStack, Planner
from robotaxi.autonomy.vehicle import IPACE, VehicleParams, front_bumper
from robotaxi.core import AgentState, WorldSnapshot
from robotaxi.core.types import FloatArray, Track
from robotaxi.sim.commonroad import (
    EGO_ID,
    CrProblem,
    CrRun,
    CrVerdict,
    RouteLaneChanges,
    evaluate,
    initial_vehicle_state,
    ks_state,
    load_problem,
    to_commonroad,
)
from robotaxi.sim.commonroad_lanes import signal_states
from robotaxi.sim.ego import EgoCar, SoleCarDriver
from robotaxi.sim.sensors import CarSensors
from robotaxi.sim.simulation import Simulation, Tick
from robotaxi.world.scenario_net import (
    EgoStart,
    ScenarioSumoFiles,
    ScenarioSumoWorld,
    read_scenario_sumo,
)

# a SUMO car our car's follower counts as reacting when it is this close behind (m)
FOLLOWER_RANGE_M = 50.0


@dataclass(frozen=True)
class InteractiveProblem:
    """An interactive scenario: its CommonRoad problem (route, goal) and its SUMO files."""

    name: str
    problem: CrProblem
    files: ScenarioSumoFiles


@dataclass(frozen=True)
class TrafficTrack:
    """One SUMO car as recorded: size (m) and per scenario time step its footprint centre
    (m), heading (rad) and speed (m/s)."""

    agent_id: str
    length_m: float
    width_m: float
    states: dict[int, tuple[float, float, float, float]]


@dataclass(frozen=True)
class InteractiveRun:
    """One closed-loop run: the ego's run (as `sim.commonroad` records it, cut to the steps
    the traffic was recorded at), the traffic's recorded tracks, the checker's scenario built
    from them, and what shows SUMO reacting (the ego's follower per step) or misbehaving."""

    run: CrRun
    traffic: dict[str, TrafficTrack]
    checker_problem: CrProblem
    # (scenario step, SUMO car id, gap m) whenever a SUMO car drove behind ours in its lane
    followers: tuple[tuple[int, str, float], ...]
    sumo_collisions: tuple[tuple[int, str, str], ...]
    # scenario step → the SUMO lane our car is on ("" off any lane)
    ego_lanes: dict[int, str]
    teleports: int
    wall_s: float
    stop_reason: str = ""
    # why the planner stopped early (a peer's crash, time-out or no trajectory), else None
    failure: str | None = None

    @property
    def first_step(self) -> int:
        return self.checker_problem.first_step

    def verdict(self, *, params: VehicleParams = IPACE) -> CrVerdict:
        """CommonRoad's verdicts on the ego against the traffic SUMO actually drove."""
        return evaluate(self.checker_problem, self.run.trajectory, params=params)


def load_interactive(folder: Path, default_speed_mps: float | None = None) -> InteractiveProblem:
    """Read the interactive scenario in `folder` (`<name>.cr.xml` and its SUMO files).
    Raises `DataNotFoundError` for a missing file, `ScenarioError` for a malformed one."""
    folder = Path(folder)
    cr_file = folder / f"{folder.name}.cr.xml"
    if not cr_file.is_file():
        raise DataNotFoundError(f"interactive scenario {folder.name}: {cr_file} not found")
    files = read_scenario_sumo(folder)
    problem = load_problem(cr_file, default_speed_mps)
    return InteractiveProblem(folder.name, problem, files)


def interactive_folders(root: Path) -> list[Path]:
    """Every scenario folder under `root`, sorted, complete or not: a folder whose files are
    missing fails to load with the reason (`load_interactive`) rather than going unseen."""
    return sorted(p for p in Path(root).iterdir() if p.is_dir())


class RecordingDriver(SoleCarDriver):
    """Our car in SUMO traffic (`CarDrivers` for the runner), whatever drives it: each tick
    it records the traffic at this scenario step, has `move` plan and move the car one step
    (timed: the step time), checks the goal and has `place` put the car back into SUMO. A
    driver whose planner fails sets `failure` (its cause), and the run stops there."""

    def __init__(
        self, problem: CrProblem, world: ScenarioSumoWorld, params: VehicleParams, row: FloatArray
    ) -> None:
        self.problem = problem
        self.world = world
        self.params = params
        self.rows = [row]  # rear-axle rows (`TrajectoryColumn`), one per scenario step
        self.stack_s: list[float] = []
        self.planner_s: list[float] = []
        self.goal_step: int | None = None
        self.last_recorded: int | None = None
        self.failure: str | None = None
        self.traffic: dict[str, tuple[float, float, dict[int, tuple[float, float, float, float]]]]
        self.traffic = {}
        self.collisions: list[tuple[int, str, str]] = []
        self.ego_lanes: dict[int, str] = {}

    def move(self, k: int, snapshot: WorldSnapshot, dt_s: float) -> float | None:
        """Plan at scenario step `k` from `snapshot` and move the car to step k + 1,
        appending its row to `rows`; returns the planning call's time (s), or None with
        `failure` set when the planner failed."""
        raise NotImplementedError

    def place(self) -> None:
        """Put the car into SUMO where `move` left it."""
        raise NotImplementedError

    def drive(self, snapshot: WorldSnapshot, dt_s: float) -> None:
        k = self.world.scenario_step
        self._record(k, snapshot.around[EGO_ID], snapshot)
        if self.failure is not None:
            return
        t0 = wall.perf_counter()
        planner_s = self.move(k, snapshot, dt_s)
        if planner_s is None:
            return
        self.stack_s.append(wall.perf_counter() - t0)
        self.planner_s.append(planner_s)
        if self.goal_step is None and self.problem.problem.goal.is_reached(
            ks_state(self.rows[-1], k + 1, self.params)
        ):
            self.goal_step = k + 1
        self.place()

    def _record(self, k: int, truth: tuple[AgentState, ...], snapshot: WorldSnapshot) -> None:
        for agent in truth:
            entry = self.traffic.setdefault(agent.agent_id, (agent.length, agent.width, {}))
            entry[2][k] = (agent.x, agent.y, agent.heading, agent.speed)
        self.collisions.extend((k, a, b) for a, b in snapshot.collisions if EGO_ID in (a, b))
        if snapshot.ids:
            self.ego_lanes[k] = snapshot.lane_ids[0]
        self.last_recorded = k


class _StackDriver(RecordingDriver):
    """Our autonomy stack drives the car: its cameras, the stack, our vehicle model."""

    def __init__(
        self, problem: CrProblem, car: EgoCar, world: ScenarioSumoWorld, params: VehicleParams
    ) -> None:
        super().__init__(
            problem, world, params, car.state.as_row(problem.first_step * problem.dt_s)
        )
        self.car = car
        self.path = problem.path
        self.behaviour: Behaviour | None = None
        planner = car.stack.planner
        self.lane_changes = RouteLaneChanges(
            problem,
            params,
            enabled=planner.checks_lane_change_gaps,
            goal_speed_from_region=planner.brakes_ahead_for_limits,
        )

    def move(self, k: int, snapshot: WorldSnapshot, dt_s: float) -> float | None:
        car = self.car
        self.path = self.lane_changes.path_for(car.state, car.stack.last_predictions)
        car.stack.speed_cap_mps = self.lane_changes.speed_cap_mps
        car.stack.headway_s = self.lane_changes.headway_s
        truth = snapshot.around[EGO_ID]
        signals = signal_states(self.problem.scenario, k)
        out = car.drive(truth, (), signals, self.path, None, snapshot.time, dt_s)
        self.behaviour = out.behaviour
        self.rows.append(car.state.as_row((k + 1) * dt_s))
        return car.stack.times.by_stage["planning"][-1]

    def place(self) -> None:
        self.car.place(self.world, self.path, self.behaviour)


def _on_sumo_clock(window: GoalWindow | None, scenario: InteractiveProblem) -> GoalWindow | None:
    """The goal window on the world's clock: SUMO's time runs `presimulation_steps` ahead of
    the scenario's step (`world.scenario_net`)."""
    if window is None:
        return None
    files = scenario.files
    ahead_s = files.presimulation_steps * files.step_s
    return replace(window, open_s=window.open_s + ahead_s, close_s=window.close_s + ahead_s)


def run_interactive(
    scenario: InteractiveProblem,
    planner: Planner,
    *,
    seed: int = 0,
    params: VehicleParams = IPACE,
    stop_at_goal: bool = True,
    lane_prediction: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> InteractiveRun:
    """Drive `scenario` closed loop in its reactive SUMO traffic with a fresh stack around
    `planner` (module docstring). Runs to the goal (with `stop_at_goal`) or to the goal's
    last time step, like `sim.commonroad.run`. One SUMO per process: nothing else in this
    process may be running SUMO meanwhile (`WorldError` otherwise)."""
    wall0 = wall.perf_counter()
    problem = scenario.problem
    router = problem.router

    def lane_lookup(track: Track) -> FloatArray | None:
        return router.lane_of(track.x, track.y, track.heading)

    stack = AutonomyStack(
        planner,
        params=params,
        lane_lookup=lane_lookup if lane_prediction else None,
        goal_window=_on_sumo_clock(problem.goal_window, scenario),
    )
    sensors = CarSensors(seed=seed, params=params)
    state0 = initial_vehicle_state(problem, params)
    car = EgoCar(EGO_ID, sensors, stack, state0)
    world = scenario_world(scenario, params)
    driver = _StackDriver(problem, car, world, params)
    return drive_closed_loop(
        scenario, planner.name, world, driver,
        stop_at_goal=stop_at_goal, progress=progress, wall0=wall0,
    )  # fmt: skip


def scenario_world(scenario: InteractiveProblem, params: VehicleParams) -> ScenarioSumoWorld:
    """The scenario's SUMO traffic with our car (`EGO_ID`) at the problem's initial state."""
    problem = scenario.problem
    state0 = initial_vehicle_state(problem, params)
    fx, fy = front_bumper(state0.x, state0.y, state0.heading, params)
    start = EgoStart(
        fx, fy, state0.heading, state0.speed, params.length_m, params.width_m,
        params.max_brake_mps2,
    )  # fmt: skip
    return ScenarioSumoWorld(
        scenario.files, EGO_ID, start, first_step=problem.first_step,
        follower_range_m=FOLLOWER_RANGE_M,
    )  # fmt: skip


def drive_closed_loop(
    scenario: InteractiveProblem,
    name: str,
    world: ScenarioSumoWorld,
    driver: RecordingDriver,
    *,
    stop_at_goal: bool = True,
    max_steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    wall0: float | None = None,
) -> InteractiveRun:
    """Run the one runner's loop on `world` with `driver` until the goal (with
    `stop_at_goal`), the goal's last time step, the driver's failure, or `max_steps` steps
    (a short look, e.g. in tests); the run as recorded (`name`: the planner's)."""
    wall0 = wall.perf_counter() if wall0 is None else wall0
    problem = scenario.problem
    params = driver.params
    sim = Simulation(world, step_s=problem.dt_s)
    sim.drivers = driver
    steps = problem.last_step - problem.first_step
    stop = {"reason": "goal time over"}

    def done(tick: Tick) -> bool:
        if progress is not None:
            progress(tick.index + 1, steps)
        recorded = driver.last_recorded
        goal = driver.goal_step
        # stop once the traffic at the goal step is on record
        if stop_at_goal and goal is not None and recorded is not None and recorded >= goal:
            stop["reason"] = "goal reached"
            return True
        if driver.failure is not None:
            stop["reason"] = "planner failed"
            return True
        limit = problem.first_step + max_steps if max_steps is not None else None
        if limit is not None and recorded is not None and recorded >= limit:
            stop["reason"] = "step limit"
            return True
        return recorded is not None and recorded >= problem.last_step

    if steps > 0:
        with sim:
            sim.run(until=done)
    last = driver.last_recorded if driver.last_recorded is not None else problem.first_step
    states = np.asarray(driver.rows[: last - problem.first_step + 1])
    # the tick after the last recorded traffic moved the car once more: not judged
    n_ticks = len(states) - 1
    run = CrRun(
        name,
        states,
        to_commonroad(states, problem.first_step, params),
        tuple(driver.stack_s[:n_ticks]),
        tuple(driver.planner_s[:n_ticks]),
        driver.goal_step if driver.goal_step is not None and driver.goal_step <= last else None,
    )
    traffic = {
        vid: TrafficTrack(vid, length, width, states_by_step)
        for vid, (length, width, states_by_step) in driver.traffic.items()
    }
    follower_steps = [
        (round(t / problem.dt_s) - scenario.files.presimulation_steps, vid, gap)
        for t, vid, gap in world.followers
    ]
    return InteractiveRun(
        run=run,
        traffic=traffic,
        checker_problem=replace(problem, scenario=traffic_scenario(problem.scenario, traffic)),
        followers=tuple((k, vid, gap) for k, vid, gap in follower_steps if k <= last),
        sumo_collisions=tuple(driver.collisions),
        ego_lanes={k: lane for k, lane in driver.ego_lanes.items() if k <= last},
        teleports=world.stats.teleports,
        wall_s=wall.perf_counter() - wall0,
        stop_reason=stop["reason"],
        failure=driver.failure,
    )


def lane_change_before(run: InteractiveRun, step: int, window_steps: int) -> bool:
    """Whether our car moved to another lane of the same road (SUMO's lane index changed on
    one edge) within `window_steps` up to `step`: a contact then is one nuPlan counts as a
    lateral collision with our car in two lanes, which `metrics.driving` does not check."""
    lanes = [run.ego_lanes.get(k, "") for k in range(step - window_steps, step + 1)]
    for before, after in pairwise(lanes):
        if before and after and not before.startswith(":") and not after.startswith(":"):
            edge_a, _, index_a = before.rpartition("_")
            edge_b, _, index_b = after.rpartition("_")
            if edge_a == edge_b and index_a != index_b:
                return True
    return False


def traffic_scenario(scenario: Scenario, traffic: dict[str, TrafficTrack]) -> Scenario:
    """A copy of `scenario` (lanelets, signs, lights) whose dynamic obstacles are the recorded
    SUMO cars instead of the file's seed states: what CommonRoad's checker judges against."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        judged = Scenario(scenario.dt, scenario.scenario_id)
        judged.add_objects(copy.deepcopy(scenario.lanelet_network))
    for track in sorted(traffic.values(), key=lambda tr: tr.agent_id):
        obstacle = _obstacle(judged.generate_object_id(), track)
        if obstacle is not None:
            judged.add_objects(obstacle)
    return judged


def _obstacle(obstacle_id: int, track: TrafficTrack) -> DynamicObstacle | None:
    """The track as a CommonRoad car; steps after a gap (it left the network) are dropped."""
    steps = sorted(track.states)
    if not steps:
        return None
    run = [steps[0]]
    for k in steps[1:]:
        if k != run[-1] + 1:
            break
        run.append(k)
    shape = Rectangle(track.length_m, track.width_m)

    def state(k: int) -> KSState:
        x, y, heading, speed = track.states[k]
        wrapped = (heading + math.pi) % (2 * math.pi) - math.pi
        return KSState(time_step=k, position=np.array([x, y]), orientation=wrapped, velocity=speed)

    first = state(run[0])
    initial = InitialState(
        time_step=run[0], position=first.position, orientation=first.orientation,
        velocity=first.velocity, acceleration=0.0, yaw_rate=0.0, slip_angle=0.0,
    )  # fmt: skip
    prediction = None
    if len(run) > 1:
        prediction = TrajectoryPrediction(CrTrajectory(run[1], [state(k) for k in run[1:]]), shape)
    return DynamicObstacle(obstacle_id, ObstacleType.CAR, shape, initial, prediction)


@dataclass
class TrafficArrays:
    """The recorded traffic as arrays over the run's steps (T) and cars (M), for metrics:
    centres T×M×2, heading and speed T×M, present T×M, length and width M, ids M."""

    ids: tuple[str, ...]
    xy: FloatArray
    heading: FloatArray
    speed: FloatArray
    valid: np.ndarray
    length: FloatArray
    width: FloatArray
    steps: tuple[int, ...] = field(default_factory=tuple)


def traffic_arrays(run: InteractiveRun) -> TrafficArrays:
    """`run.traffic` at the steps of the ego's recorded states."""
    first = run.first_step
    steps = tuple(range(first, first + len(run.run.states)))
    ids = tuple(sorted(run.traffic))
    t, m = len(steps), len(ids)
    xy = np.zeros((t, m, 2))
    heading = np.zeros((t, m))
    speed = np.zeros((t, m))
    valid = np.zeros((t, m), dtype=bool)
    for j, vid in enumerate(ids):
        for k, (x, y, h, v) in run.traffic[vid].states.items():
            i = k - first
            if 0 <= i < t:
                xy[i, j] = (x, y)
                heading[i, j], speed[i, j], valid[i, j] = h, v, True
    length = np.array([run.traffic[v].length_m for v in ids], dtype=float)
    width = np.array([run.traffic[v].width_m for v in ids], dtype=float)
    return TrafficArrays(ids, xy, heading, speed, valid, length, width, steps)
