"""Peer planners on CommonRoad problems: the CommonRoad reactive planner and Frenetix.

Each peer drives a `CrProblem` closed loop the way its own example loop does, re-planning
every scenario step (0.1 s): it plans from the state it is in, the ego moves to the plan's
state one step later (the peer's own model is the vehicle: perfect tracking), and the next
cycle starts there. The replayed obstacles cannot react, so the loop needs no world. The
ego's states become the same rear-axle rows (`TrajectoryColumn`) and CommonRoad trajectory
as our stack's (`robotaxi.sim.commonroad`), judged by the same `evaluate`.

- ``reactive``: commonroad-reactive-planner 2025.1 (`commonroad_rp`), in process, with its
  package defaults (`ReactivePlannerConfiguration()`: 6 s horizon, lateral samples ±3 m, 4
  sampling levels, desired speed from the goal) and its route from
  commonroad-route-planner's shortest reference path.
- ``frenetix``: frenetix-motion-planner 2024.1.1 (C++ core), which needs Python < 3.11 and
  commonroad-io 2023.2, so it runs in its own Python 3.10 virtualenv (`frenetix_python`,
  made on first use under `PEER_CACHE`), one long-lived `peers/frenetix_server.py` process
  per scenario spoken to in JSON lines; its configuration is its repository's recommended
  one (`frenetix_server.py` lists it).

Adapted for both, and why:

- re-planning every step (their examples re-plan every 3rd step): the same 0.1 s loop as
  ours;
- the vehicle's size and axle positions are the I-PACE's (4.68 m × 2.01 m, rear axle 1.54 m
  behind the centre, wheelbase 2.99 m), its limits the BMW 320i's (their default vehicle),
  which is exactly the car the checker judges;
- multiprocessing off (2 shared cores), plots and per-step logs off;
- both see the scenario's recorded future (the reactive planner's collision checker is
  built from the scenario, as in its example; Frenetix's prediction mode is
  ``ground_truth`` instead of WaleNet, whose torch dependency we do not install, so it is
  installed without the ``wale-net`` package);
- the reactive planner's reference path (commonroad-route-planner's, which ends at the end
  of the goal lanelet) is lengthened by straight pieces, 10 m before its start and far
  enough past its end for the whole horizon at the top sampled speed, as Frenetix's own
  interface does to its path: without it every sample that runs past the end makes the
  planner raise (``CurvilinearProjectionDomainLongitudinalError``) on short NGSIM problems;
- Frenetix's wheel ships without the ``harm_parameters.json`` its planner loads: a monotone
  stand-in (see `frenetix_server.py`); scipy < 1.14 and matplotlib < 3.9 are pinned there
  because frenetix 2024.1.1 and commonroad-io 2023.2 import names later releases removed.

A peer that finds no trajectory, raises, or runs out of time stops there; its run carries
the cause (`PeerRun.failure`) and is judged as far as it drove.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import selectors
import shutil
import subprocess
import tempfile
import time as wall
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robotaxi.autonomy.vehicle import IPACE, VehicleParams
from robotaxi.core.errors import RobotaxiError
from robotaxi.core.types import FloatArray
from robotaxi.sim.commonroad import (  # raises MissingExtraError without the extra
    CrProblem,
    CrTrajectory,
    initial_vehicle_state,
    to_commonroad,
)

PEERS = ("reactive", "frenetix")
FRENETIX_VERSION = "2024.1.1"
# frenetix-motion-planner's own requirements less wale-net (torch); two upper pins for
# names that later scipy/matplotlib releases removed (module docstring)
FRENETIX_REQUIREMENTS = (
    "commonroad-io==2023.2",
    "commonroad-drivability-checker>=2023.1,<2024.0",
    "commonroad-route-planner>=2022.3,<2023.0",
    "commonroad-vehicle-models>=3.0.2,<4.0.0",
    "frenetix==0.1.3",
    "frenetix-occlusion>=2024.1.2,<2025",
    "imageio>=2.31.2,<3.0.0",
    "matplotlib>=3.8.1,<3.9",
    "methodtools>=0.4.7,<0.5.0",
    "numpy>=1.24.2,<2.0.0",
    "omegaconf>=2.1.1,<3.0.0",
    "onnxruntime>=1.16.3,<2.0.0",
    "pandas>=2.0.3,<3.0.0",
    "psutil>=5.9.6",
    "pygeos>=0.14,<0.15",
    "scipy>=1.9.3,<1.14",
    "shapely>=2.0.2,<3.0.0",
    "triangle>=20200424",
    "wheel>=0.38.4,<0.39.0",
)
# shared by every checkout on this machine (the virtualenv is ~0.6 GB)
PEER_CACHE = Path.home() / ".cache" / "robotaxi" / "peers"
SERVER = Path(__file__).resolve().parent / "peers" / "frenetix_server.py"
# a scenario's whole run (10× real time for the longest, 60 s problems), and one Frenetix
# answer (its start-up reads the scenario), s
TIME_LIMIT_S = 600.0
STEP_TIMEOUT_S = 30.0
INIT_TIMEOUT_S = 120.0
# the reactive planner's reference path is lengthened at its start (m) and end (see
# `_end_extension_m`), as Frenetix's own interface does (module docstring)
REFERENCE_EXTENSION_START_M = 10.0


class PeerError(RobotaxiError):
    """A peer planner cannot be set up (no Python 3.10, its install failed)."""


@dataclass(frozen=True)
class PeerRun:
    """One peer's closed-loop run, like `CrRun`: rear-axle rows (T×7, `TrajectoryColumn`),
    its CommonRoad trajectory, wall-clock time per step (s) for the whole step and for the
    peer's planning call alone, the goal step, and why it stopped early (None if it did
    not)."""

    planner: str
    states: FloatArray
    trajectory: CrTrajectory
    stack_time_s: tuple[float, ...]
    planner_time_s: tuple[float, ...]
    goal_step: int | None
    failure: str | None = None


def _row(t_s: float, x: float, y: float, heading: float, speed: float, accel: float,
         steer: float) -> FloatArray:  # fmt: skip
    return np.array([t_s, x, y, heading, speed, accel, steer])


def _finish(
    name: str,
    problem: CrProblem,
    rows: list[FloatArray],
    stack: list[float],
    plan: list[float],
    goal_step: int | None,
    failure: str | None,
    params: VehicleParams,
) -> PeerRun:
    states = np.asarray(rows)
    trajectory = to_commonroad(states, problem.first_step, params)
    return PeerRun(name, states, trajectory, tuple(stack), tuple(plan), goal_step, failure)


def no_run(name: str, problem: CrProblem, failure: str, params: VehicleParams = IPACE) -> PeerRun:
    """The run of a peer that could not start: the initial state only, with the cause."""
    rows = [initial_vehicle_state(problem, params).as_row(problem.first_step * problem.dt_s)]
    return _finish(name, problem, rows, [], [], None, failure, params)


def _reached(problem: CrProblem, row: FloatArray, step: int, params: VehicleParams) -> bool:
    from robotaxi.sim.commonroad import ks_state

    return bool(problem.problem.goal.is_reached(ks_state(row, step, params)))


class _StepLoop:
    """What every peer's closed loop does after a step: progress, the first step at the goal
    (and stopping there), and the wall-time limit (a time-out is the peer's failure)."""

    def __init__(
        self,
        problem: CrProblem,
        params: VehicleParams,
        *,
        stop_at_goal: bool,
        time_limit_s: float,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.problem, self.params = problem, params
        self.stop_at_goal, self.time_limit_s, self.progress = stop_at_goal, time_limit_s, progress
        self.steps = problem.last_step - problem.first_step
        self.goal_step: int | None = None
        self.failure: str | None = None
        self.start = wall.perf_counter()

    def done_after(self, i: int, k: int, row: FloatArray) -> bool:
        """Step `i` (scenario step `k`) ended at `row`: True when the loop should stop."""
        if self.progress is not None:
            self.progress(i + 1, self.steps)
        if self.goal_step is None and _reached(self.problem, row, k, self.params):
            self.goal_step = k
            if self.stop_at_goal:
                return True
        if wall.perf_counter() - self.start > self.time_limit_s:
            self.failure = f"time-out: {self.time_limit_s:.0f} s spent by step {k}"
            return True
        return False


def reactive_config(problem: CrProblem, params: VehicleParams = IPACE) -> Any:
    """The reactive planner's package defaults with our adaptations (module docstring)."""
    from commonroad_rp.utility.config import (
        DebugConfiguration,
        PlanningConfiguration,
        ReactivePlannerConfiguration,
        VehicleConfiguration,
    )

    b = params.rear_axle_to_center_m
    config = ReactivePlannerConfiguration(
        vehicle=VehicleConfiguration(
            length=params.length_m,
            width=params.width_m,
            wb_front_axle=params.wheelbase_m - b,
            wb_rear_axle=b,
        ),
        planning=PlanningConfiguration(dt=problem.dt_s, replanning_frequency=1),
        debug=DebugConfiguration(
            multiproc=False,
            logging_level="ERROR",
            show_plots=False,
            save_plots=False,
            draw_traj_set=False,
        ),
    )
    config.update(
        scenario=copy.deepcopy(problem.scenario), planning_problem=copy.deepcopy(problem.problem)
    )
    return config


# CommonRoad's BMW 320i (vehicle type 2), both peers' default car, in our terms: the car of
# their example runs (`reactive_example_config`)
BMW_320I = VehicleParams(
    wheelbase_m=1.1561957064 + 1.4227170936,
    length_m=4.508,
    width_m=1.61,
    rear_overhang_m=4.508 / 2 - 1.4227170936,
)
EXAMPLE_SCENARIO = "ZAM_Tjunction-1_42_T-1"  # both packages' example scenario


def reactive_example_config(problem: CrProblem) -> Any:
    """The reactive planner's own example settings for `EXAMPLE_SCENARIO` (its repository's
    configurations/ZAM_Tjunction-1_42_T-1.yaml: 2 s horizon re-planned every 3rd step,
    t_min 1 s, low-speed mode below 2 m/s, the BMW 320i), multiprocessing and plots off."""
    from commonroad_rp.utility.config import (
        DebugConfiguration,
        PlanningConfiguration,
        ReactivePlannerConfiguration,
        SamplingConfiguration,
    )

    config = ReactivePlannerConfiguration(
        planning=PlanningConfiguration(
            dt=problem.dt_s,
            replanning_frequency=3,
            time_steps_computation=20,
            low_vel_mode_threshold=2.0,
        ),
        sampling=SamplingConfiguration(t_min=1.0),
        debug=DebugConfiguration(multiproc=False, logging_level="ERROR"),
    )
    config.update(
        scenario=copy.deepcopy(problem.scenario), planning_problem=copy.deepcopy(problem.problem)
    )
    return config


def reactive_planner(problem: CrProblem, config: Any = None, params: VehicleParams = IPACE) -> Any:
    """The reactive planner on `problem` (its route's reference path lengthened, see the
    module docstring), ready for its first planning cycle; `config` replaces
    `reactive_config(problem, params)`."""
    from commonroad_clcs.config import CLCSParams
    from commonroad_route_planner.fast_api.fast_api import (
        generate_reference_path_from_lanelet_network_and_planning_problem as reference_path,
    )
    from commonroad_rp.reactive_planner import ReactivePlanner
    from commonroad_rp.utility.utils_coordinate_system import CoordinateSystem

    logging.getLogger("RP_LOGGER").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = config if config is not None else reactive_config(problem, params)
        route = reference_path(config.scenario.lanelet_network, config.planning_problem)
        planner = ReactivePlanner(config)
        # the default CLCS parameters, passed explicitly: commonroad-clcs 2025.x no longer
        # fills them in for `params=None` as reactive-planner 2025.1 expects
        reference = _extend_straight(route.reference_path, REFERENCE_EXTENSION_START_M,
                                     _end_extension_m(problem, config))  # fmt: skip
        frame = CoordinateSystem(reference, clcs_params=CLCSParams())
        planner.set_reference_path(coordinate_system=frame)
        planner.record_state_and_input(planner.x_0)
    return planner


def no_trajectory_cause(planner: Any, step: int) -> str:
    """Why the reactive planner found no trajectory at scenario step `step`, from its own
    counters."""
    reasons = planner.infeasible_reason_dict
    worst = max(reasons, key=reasons.get) if reasons else "none"
    return (
        f"no trajectory found at step {step} (of the last {planner.total_count_samples} "
        f"samples {planner.infeasible_count_kinematics} kinematically infeasible, most for "
        f"{worst}; {planner.infeasible_count_collision} colliding)"
    )


def crash_cause(err: Exception) -> str:
    """A peer's exception as its failure: `crash: Type: first line of the message`."""
    return f"crash: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def run_reactive(
    problem: CrProblem,
    *,
    config: Any = None,
    params: VehicleParams = IPACE,
    stop_at_goal: bool = True,
    time_limit_s: float = TIME_LIMIT_S,
    progress: Callable[[int, int], None] | None = None,
) -> PeerRun:
    """Drive `problem` with the CommonRoad reactive planner (module docstring); `config`
    replaces `reactive_config(problem)` (e.g. its example's settings)."""
    rows = [initial_vehicle_state(problem, params).as_row(problem.first_step * problem.dt_s)]
    stack: list[float] = []
    plan: list[float] = []
    failure: str | None = None
    loop = _StepLoop(
        problem, params, stop_at_goal=stop_at_goal, time_limit_s=time_limit_s, progress=progress
    )
    try:
        planner = reactive_planner(problem, config, params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            every = max(1, int(planner.config.planning.replanning_frequency))
            optimal: Any = None
            for i in range(loop.steps):
                t0 = wall.perf_counter()
                if i % every == 0:  # a planning cycle; in between, follow the last plan
                    planner.set_desired_velocity(current_speed=planner.x_0.velocity)
                    t1 = wall.perf_counter()
                    optimal = planner.plan()
                    plan.append(wall.perf_counter() - t1)
                if not optimal:
                    failure = no_trajectory_cause(planner, problem.first_step + i)
                    break
                j = i % every + 1
                nxt = optimal[0].state_list[j]
                planner.record_state_and_input(nxt)
                planner.reset(
                    initial_state_cart=nxt,
                    initial_state_curv=(optimal[1][j], optimal[2][j]),
                    collision_checker=planner.collision_checker,
                    coordinate_system=planner.coordinate_system,
                )
                stack.append(wall.perf_counter() - t0)
                k = problem.first_step + i + 1
                rows.append(_row(k * problem.dt_s, float(nxt.position[0]),
                                 float(nxt.position[1]), float(nxt.orientation),
                                 float(nxt.velocity), float(nxt.acceleration or 0.0),
                                 float(nxt.steering_angle or 0.0)))  # fmt: skip
                if loop.done_after(i, k, rows[-1]):
                    break
    except Exception as err:  # the peer's crash is its failure, with its cause
        failure = crash_cause(err)
    failure = failure or loop.failure
    return _finish("reactive", problem, rows, stack, plan, loop.goal_step, failure, params)


def _end_extension_m(problem: CrProblem, config: Any) -> float:
    """How far the reference path must reach past its end for every sample of the horizon:
    the top sampled speed (initial speed + 5 m/s, the planner's velocity sampling) over the
    horizon, plus 10 m."""
    v0 = float(getattr(problem.problem.initial_state, "velocity", 0.0) or 0.0)
    return (v0 + 5.0) * float(config.planning.planning_horizon) + 10.0


def _extend_straight(path: FloatArray, start_m: float, end_m: float) -> FloatArray:
    """`path` (N×2) lengthened by straight pieces along its first and last segments,
    sampled every metre."""
    head = path[0] - path[1]
    tail = path[-1] - path[-2]
    head /= np.linalg.norm(head)
    tail /= np.linalg.norm(tail)
    before = path[0] + np.outer(np.arange(math.ceil(start_m), 0, -1), head)
    after = path[-1] + np.outer(np.arange(1, math.ceil(end_m) + 1), tail)
    out: FloatArray = np.vstack([before, path, after])
    return out


def find_python310() -> Path | None:
    """A working Python 3.10 interpreter: `python3.10` on the PATH or a pyenv 3.10.x (pyenv's
    shims answer only when a version is selected, so each candidate is asked), else None."""
    candidates: list[Path] = []
    found = shutil.which("python3.10")
    if found:
        candidates.append(Path(found))
    roots = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            roots.append(Path(out.stdout.strip()))
    roots.append(Path.home() / ".pyenv")
    for root in roots:
        candidates += sorted((root / "versions").glob("3.10.*/bin/python3.10"), reverse=True)
    probe = "import sys; print(sys.version_info[:2] == (3, 10))"
    for candidate in candidates:
        out = subprocess.run([str(candidate), "-c", probe], capture_output=True, text=True,
                             check=False)  # fmt: skip
        if out.returncode == 0 and out.stdout.strip() == "True":
            return candidate
    return None


def frenetix_python(cache: Path = PEER_CACHE, *, log: Callable[[str], None] | None = None) -> Path:
    """The Python of Frenetix's virtualenv under `cache`, made on first use (a Python 3.10
    from `find_python310`, then pip from PyPI) and reused while its requirements are the
    same. Raises `PeerError` without a Python 3.10 or when the install fails."""
    venv = cache / f"frenetix-{FRENETIX_VERSION}-py310"
    python = venv / "bin" / "python"
    wanted = json.dumps([f"frenetix-motion-planner=={FRENETIX_VERSION}", *FRENETIX_REQUIREMENTS])
    marker = venv / "robotaxi-requirements.json"
    if python.is_file() and marker.is_file() and marker.read_text() == wanted:
        return python
    base = find_python310()
    if base is None:
        raise PeerError("Frenetix needs Python 3.10: install one (e.g. pyenv install 3.10.13)")
    if log is not None:
        log(f"making Frenetix's Python 3.10 virtualenv at {venv} (once)")
    venv.parent.mkdir(parents=True, exist_ok=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for cmd in (
        [str(base), "-m", "venv", "--clear", str(venv)],
        [*pip, "--no-deps", f"frenetix-motion-planner=={FRENETIX_VERSION}"],
        [*pip, *FRENETIX_REQUIREMENTS],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise PeerError(f"setting up Frenetix failed ({' '.join(cmd[:4])} …): {tail}")
    marker.write_text(wanted)
    return python


class FrenetixProcess:
    """One Frenetix server process, spoken to in JSON lines with a time-out per answer."""

    def __init__(self, python: Path, stderr_path: Path) -> None:
        self._stderr = stderr_path.open("w")
        self.proc = subprocess.Popen(
            [str(python), str(SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"},
        )
        self._sel = selectors.DefaultSelector()
        if self.proc.stdout is not None:  # always, with PIPE
            self._sel.register(self.proc.stdout, selectors.EVENT_READ)

    def ask(self, msg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        if self.proc.stdin is None or self.proc.stdout is None:
            raise PeerError("the Frenetix server has no pipes")
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return {"ok": False, "error": f"crash: server exited ({self.proc.poll()})"}
        if not self._sel.select(timeout_s):
            return {"ok": False, "error": f"time-out: no answer within {timeout_s:.0f} s"}
        line = self.proc.stdout.readline()
        if not line:
            return {"ok": False, "error": f"crash: server exited ({self.proc.wait()})"}
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._sel.close()
        self._stderr.close()


def run_frenetix(
    problem: CrProblem,
    scenario_path: Path,
    python: Path,
    *,
    params: VehicleParams = IPACE,
    stop_at_goal: bool = True,
    time_limit_s: float = TIME_LIMIT_S,
    step_timeout_s: float = STEP_TIMEOUT_S,
    progress: Callable[[int, int], None] | None = None,
) -> PeerRun:
    """Drive `problem` (read from `scenario_path`) with Frenetix in its own process, started
    with `python` (`frenetix_python`); see the module docstring."""
    b = params.rear_axle_to_center_m
    vehicle = {
        "length": params.length_m,
        "width": params.width_m,
        "wb_rear_axle": b,
        "wb_front_axle": params.wheelbase_m - b,
        "wheelbase": params.wheelbase_m,
    }
    rows = [initial_vehicle_state(problem, params).as_row(problem.first_step * problem.dt_s)]
    stack: list[float] = []
    plan: list[float] = []
    failure: str | None = None
    loop = _StepLoop(
        problem, params, stop_at_goal=stop_at_goal, time_limit_s=time_limit_s, progress=progress
    )
    with tempfile.TemporaryDirectory(prefix="frenetix-") as work:
        server = FrenetixProcess(python, Path(work) / "stderr.log")
        try:
            init = {
                "cmd": "init",
                "scenario": str(scenario_path),
                "vehicle": vehicle,
                "problem_id": int(problem.problem.planning_problem_id),
                "work_dir": work,
            }
            answer = server.ask(init, INIT_TIMEOUT_S)
            if not answer["ok"]:
                failure = f"{answer['error']} (start-up)"
            loop.start = wall.perf_counter()  # the time limit counts from a started planner
            for i in range(loop.steps if failure is None else 0):
                t0 = wall.perf_counter()
                answer = server.ask({"cmd": "step"}, step_timeout_s)
                k = problem.first_step + i + 1
                if not answer["ok"]:
                    failure = f"{answer['error']} at step {k - 1}"
                    break
                stack.append(wall.perf_counter() - t0)
                plan.append(float(answer["plan_s"]))
                rows.append(_row(k * problem.dt_s, answer["x"], answer["y"],
                                 answer["orientation"], answer["velocity"],
                                 answer["acceleration"], answer["steering_angle"]))  # fmt: skip
                if loop.done_after(i, k, rows[-1]):
                    break
            failure = failure or loop.failure
            if failure is not None and failure.startswith("crash"):
                lines = (Path(work) / "stderr.log").read_text().strip().splitlines()
                failure += f" [{lines[-1]}]" if lines else ""
        finally:
            server.close()
    return _finish("frenetix", problem, rows, stack, plan, loop.goal_step, failure, params)
