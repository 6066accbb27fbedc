"""The peer planners (CommonRoad reactive planner, Frenetix) in an interactive scenario's
reactive SUMO traffic, closed loop exactly as our stack drives there.

The loop is `sim.commonroad_interactive`'s (`drive_closed_loop`, the one runner): each tick
SUMO steps one scenario step (0.1 s), the traffic is recorded, the peer plans from the
state it is in, the ego moves to its plan's next state (the peer's own model is the
vehicle: perfect tracking, as in `sim.commonroad_peers`), and that state is placed into
SUMO (`MoveEgo`: `moveToXY` + `setPreviousSpeed`), so SUMO's drivers react to the peer as
they do to ours. Judged by the same checker on the traffic SUMO actually drove.

What the peers see, and why it differs from their non-interactive runs: there the recorded
future of every obstacle is known, and both peers plan against it (their examples do).
Here nobody knows SUMO's future, so each peer gets every SUMO car's *current* state
(footprint centre, heading, speed, size; ground truth, no sensor noise) and predicts it the
simplest standard way, at constant velocity along its heading over the peer's horizon
(`PREDICTION`):

- ``reactive``: its collision checker is rebuilt every step by its own
  `set_collision_checker` from a scenario holding those cars with constant-velocity
  trajectories (its package has no predictor of its own), and the road boundary built
  once; the rest is `sim.commonroad_peers`' set-up (package defaults, lengthened route);
- ``frenetix``: its server runs in ``live`` mode (`peers/frenetix_server.py`): the file's
  obstacles are dropped and each step's cars become its scenario's obstacles and its
  predictions at constant velocity (Frenetix offers WaleNet, which needs torch, or the
  recorded ground truth, which does not exist here).

A peer that finds no trajectory, raises, or runs out of time (`TIME_LIMIT_S` of wall time,
`STEP_TIMEOUT_S` per Frenetix answer) stops there: its run carries the cause
(`InteractiveRun.failure`) and is judged as far as it drove.
"""

from __future__ import annotations

import importlib
import tempfile
import time as wall
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robotaxi.autonomy.vehicle import IPACE, VehicleParams, front_bumper
from robotaxi.core import AgentState, MoveEgo, WorldSnapshot
from robotaxi.core.types import FloatArray
from robotaxi.sim.commonroad import EGO_ID, CrProblem, initial_vehicle_state
from robotaxi.sim.commonroad_interactive import (
    InteractiveProblem,
    InteractiveRun,
    RecordingDriver,
    drive_closed_loop,
    scenario_world,
)
from robotaxi.sim.commonroad_peers import (
    INIT_TIMEOUT_S,
    PEERS,
    STEP_TIMEOUT_S,
    TIME_LIMIT_S,
    FrenetixProcess,
    crash_cause,
    no_trajectory_cause,
    reactive_planner,
)

PREDICTION = "constant velocity along the heading, from each SUMO car's current state"


class PeerFailure(Exception):
    """The peer found no trajectory, or its server answered with an error: its cause."""


class _Peer(Protocol):
    """One peer planner on one scenario: plan at scenario step `k` from where it is, seeing
    `cars` now; returns its next rear-axle row (`TrajectoryColumn`, at k + 1) and its
    planning call's time (s). Raises `PeerFailure` with the cause."""

    def plan(self, k: int, cars: Sequence[AgentState]) -> tuple[FloatArray, float]: ...


def constant_velocity(
    car: AgentState, first_step: int, steps: int, dt_s: float
) -> list[tuple[int, float, float]]:
    """`car` carried on at its speed along its heading: (scenario step, x, y) of its
    footprint centre for `steps` steps from `first_step` (its current step) on."""
    out = []
    for j in range(steps):
        travelled = car.speed * j * dt_s
        out.append((first_step + j, car.x + travelled * np.cos(car.heading),
                    car.y + travelled * np.sin(car.heading)))  # fmt: skip
    return out


def _row(k: int, dt_s: float, state: Any) -> FloatArray:
    return np.array([
        k * dt_s, float(state.position[0]), float(state.position[1]), float(state.orientation),
        float(state.velocity), float(getattr(state, "acceleration", 0.0) or 0.0),
        float(getattr(state, "steering_angle", 0.0) or 0.0),
    ])  # fmt: skip


class ReactivePeer:
    """The CommonRoad reactive planner in process (module docstring)."""

    def __init__(self, problem: CrProblem, params: VehicleParams = IPACE) -> None:
        # imported by name: commonroad_dc's type stub is not valid Python (sim.commonroad)
        boundary: Any = importlib.import_module("commonroad_dc.boundary.boundary")

        self.problem = problem
        self.planner = reactive_planner(problem, None, params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, self.road_boundary = boundary.create_road_boundary_obstacle(
                self.planner.config.scenario
            )
        self.last_plan: Any = None
        planning = self.planner.config.planning
        # the checker must cover every sampled step: the horizon plus the start
        self.horizon_steps = round(planning.planning_horizon / problem.dt_s) + 2

    def _traffic(self, k: int, cars: Sequence[AgentState]) -> Any:
        """A scenario holding `cars` from step `k`, at constant velocity over the horizon."""
        from commonroad.geometry.shape import Rectangle
        from commonroad.prediction.prediction import TrajectoryPrediction
        from commonroad.scenario.obstacle import DynamicObstacle, ObstacleType
        from commonroad.scenario.scenario import Scenario
        from commonroad.scenario.state import InitialState, KSState
        from commonroad.scenario.trajectory import Trajectory

        traffic = Scenario(self.problem.dt_s)
        for i, car in enumerate(cars, start=1):
            shape = Rectangle(car.length, car.width)
            states = [
                KSState(time_step=step, position=np.array([x, y]), orientation=car.heading,
                        velocity=car.speed)
                for step, x, y in constant_velocity(car, k, self.horizon_steps, self.problem.dt_s)
            ]  # fmt: skip
            first = states[0]
            initial = InitialState(
                time_step=k, position=first.position, orientation=car.heading,
                velocity=car.speed, acceleration=0.0, yaw_rate=0.0, slip_angle=0.0,
            )  # fmt: skip
            prediction = TrajectoryPrediction(Trajectory(k + 1, states[1:]), shape)
            traffic.add_objects(DynamicObstacle(i, ObstacleType.CAR, shape, initial, prediction))
        return traffic

    def plan(self, k: int, cars: Sequence[AgentState]) -> tuple[FloatArray, float]:
        planner = self.planner
        if int(planner.x_0.time_step) != k:
            raise PeerFailure(f"crash: the planner is at step {planner.x_0.time_step}, not {k}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            planner.set_collision_checker(
                scenario=self._traffic(k, cars), road_boundary_obstacle=self.road_boundary
            )
            planner.set_desired_velocity(current_speed=planner.x_0.velocity)
            t0 = wall.perf_counter()
            optimal = planner.plan()
            plan_s = wall.perf_counter() - t0
            if not optimal:
                raise PeerFailure(no_trajectory_cause(planner, k))
            self.last_plan = optimal[0]  # its chosen trajectory (rear axle), for a look
            nxt = optimal[0].state_list[1]
            planner.record_state_and_input(nxt)
            planner.reset(
                initial_state_cart=nxt,
                initial_state_curv=(optimal[1][1], optimal[2][1]),
                collision_checker=planner.collision_checker,
                coordinate_system=planner.coordinate_system,
            )
        return _row(k + 1, self.problem.dt_s, nxt), plan_s


class FrenetixPeer:
    """Frenetix's server in live mode (module docstring); `close` ends it."""

    def __init__(
        self,
        problem: CrProblem,
        scenario_path: Path,
        python: Path,
        work_dir: Path,
        params: VehicleParams = IPACE,
        step_timeout_s: float = STEP_TIMEOUT_S,
    ) -> None:
        self.problem = problem
        self.step_timeout_s = step_timeout_s
        # with `keep_plan`, each step's chosen trajectory's positions (N×2), for a look
        self.keep_plan = False
        self.last_plan_xy: list[list[float]] | None = None
        self.server = FrenetixProcess(python, work_dir / "stderr.log")
        self.stderr_path = work_dir / "stderr.log"
        b = params.rear_axle_to_center_m
        init = {
            "cmd": "init",
            "scenario": str(scenario_path),
            "vehicle": {
                "length": params.length_m,
                "width": params.width_m,
                "wb_rear_axle": b,
                "wb_front_axle": params.wheelbase_m - b,
                "wheelbase": params.wheelbase_m,
            },
            "problem_id": int(problem.problem.planning_problem_id),
            "work_dir": str(work_dir),
            "live": True,
        }
        answer = self.server.ask(init, INIT_TIMEOUT_S)
        if not answer["ok"]:
            failure = self._with_stderr(f"{answer['error']} (start-up)")
            self.server.close()
            raise PeerFailure(failure)

    def _with_stderr(self, failure: str) -> str:
        """A crash's cause with the server's last line of stderr (its traceback's last)."""
        if not failure.startswith("crash"):
            return failure
        lines = self.stderr_path.read_text().strip().splitlines()
        return failure + (f" [{lines[-1]}]" if lines else "")

    def plan(self, k: int, cars: Sequence[AgentState]) -> tuple[FloatArray, float]:
        obstacles = [[c.x, c.y, c.heading, c.speed, c.length, c.width] for c in cars]
        answer = self.server.ask(
            {"cmd": "step", "time_step": k, "obstacles": obstacles, "plan": self.keep_plan},
            self.step_timeout_s,
        )
        if not answer["ok"]:
            raise PeerFailure(self._with_stderr(f"{answer['error']} at step {k}"))
        self.last_plan_xy = answer.get("plan_xy")
        row = np.array([
            (k + 1) * self.problem.dt_s, answer["x"], answer["y"], answer["orientation"],
            answer["velocity"], answer["acceleration"], answer["steering_angle"],
        ])  # fmt: skip
        return row, float(answer["plan_s"])

    def close(self) -> None:
        self.server.close()


class _PeerDriver(RecordingDriver):
    """A peer drives our car in SUMO: it plans, the car takes the plan's next state. A peer
    that could not start (`peer` a cause) fails at the first tick."""

    def __init__(
        self,
        problem: CrProblem,
        world: Any,
        params: VehicleParams,
        peer: _Peer | str,
        time_limit_s: float,
    ) -> None:
        row = initial_vehicle_state(problem, params).as_row(problem.first_step * problem.dt_s)
        super().__init__(problem, world, params, row)
        self.peer = peer
        self.time_limit_s = time_limit_s
        self.start = wall.perf_counter()

    def move(self, k: int, snapshot: WorldSnapshot, dt_s: float) -> float | None:
        if isinstance(self.peer, str):
            self.failure = self.peer
            return None
        if wall.perf_counter() - self.start > self.time_limit_s:
            self.failure = f"time-out: {self.time_limit_s:.0f} s spent by step {k}"
            return None
        try:
            row, plan_s = self.peer.plan(k, snapshot.around[EGO_ID])
        except PeerFailure as failure:
            self.failure = str(failure)
            return None
        except Exception as err:  # the peer's crash is its failure, with its cause
            self.failure = crash_cause(err)
            return None
        self.rows.append(row)
        return plan_s

    def place(self) -> None:
        x, y, heading, speed = self.rows[-1][1:5]
        fx, fy = front_bumper(x, y, heading, self.params)
        self.world.apply([MoveEgo(EGO_ID, float(fx), float(fy), float(heading), float(speed))])


def run_interactive_peer(
    scenario: InteractiveProblem,
    name: str,
    *,
    frenetix: Path | None = None,
    params: VehicleParams = IPACE,
    stop_at_goal: bool = True,
    max_steps: int | None = None,
    time_limit_s: float = TIME_LIMIT_S,
    progress: Callable[[int, int], None] | None = None,
) -> InteractiveRun:
    """Drive `scenario` closed loop in its reactive SUMO traffic with the peer `name`
    (``reactive`` or ``frenetix``, whose Python `frenetix` is, see
    `commonroad_peers.frenetix_python`); module docstring. The peer is set up before the
    loop (not counted in its step times); `max_steps` cuts the run short (a short look).
    One SUMO per process."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}: one of {', '.join(PEERS)}")
    wall0 = wall.perf_counter()
    problem = scenario.problem
    with tempfile.TemporaryDirectory(prefix="frenetix-") as work:
        peer: _Peer | str
        try:
            if name == "reactive":
                peer = ReactivePeer(problem, params)
            elif frenetix is None:
                peer = "unavailable: no Frenetix Python given"
            else:
                cr_file = scenario.files.folder / f"{scenario.name}.cr.xml"
                peer = FrenetixPeer(problem, cr_file, frenetix, Path(work), params)
        except PeerFailure as failure:
            peer = str(failure)
        except Exception as err:  # a crash while setting up is the peer's failure too
            peer = crash_cause(err) + " (start-up)"
        world = scenario_world(scenario, params)
        driver = _PeerDriver(problem, world, params, peer, time_limit_s)
        try:
            return drive_closed_loop(
                scenario, name, world, driver,
                stop_at_goal=stop_at_goal, max_steps=max_steps, progress=progress, wall0=wall0,
            )  # fmt: skip
        finally:
            if isinstance(peer, FrenetixPeer):
                peer.close()
