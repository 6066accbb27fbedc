"""Frenetix (frenetix-motion-planner 2024.1.1) as a planning server over a pipe.

Runs in Frenetix's own Python 3.10 virtualenv (made by `robotaxi.sim.commonroad_peers`), so
it imports nothing from robotaxi. One process per scenario; JSON lines on stdin/stdout:

    -> {"cmd": "init", "scenario": PATH, "problem_id": ID, "vehicle": {...}, "work_dir": DIR,
        "live": false}
    <- {"ok": true, "init_s": S}
    -> {"cmd": "step"}          plan from the current state, move to the plan's next state
    -> {"cmd": "step", "time_step": K, "obstacles": [[x, y, heading, speed, length, width],
        ...]}                   the same, with "live": true (reactive traffic, below)
    <- {"ok": true, "time_step": K, "x": .., "y": .., "orientation": .., "velocity": ..,
        "steering_angle": .., "acceleration": .., "plan_s": S}   (rear-axle position)
       with "plan": true in the step, also "plan_xy": the chosen trajectory's positions
    <- {"ok": false, "error": "..."}                              no trajectory / crash
    -> {"cmd": "quit"}

Everything the libraries print goes to stderr; stdout carries only the protocol.

With `"live": true` the traffic is not the file's (an interactive scenario's SUMO cars,
which react to ours): the file's obstacles are dropped, and each step brings the cars'
current states (footprint centres, m and rad, m/s), which become the scenario's obstacles
and, carried on at constant velocity along their heading, Frenetix's predictions
(`_constant_velocity`): nobody knows their recorded future then.
"""

import json
import os
import sys
import time
import traceback
from copy import deepcopy

# Frenetix's recommended configuration (its repository's configurations/*.yaml, 2024.1),
# with the adaptations listed in ADAPTED; robotaxi.sim.commonroad_peers documents why.
PLANNING = {
    "dt": 0.1,
    "planning_horizon": 3.0,
    "low_vel_mode_threshold": 2.0,
    "emergency_mode": "stopping",
    "t_min": 1.1,
    "v_min": 0,
    "v_max": 0,
    "d_min": -3,
    "d_max": 3,
    "sampling_min": 2,
    "sampling_max": 3,
}
COST = {
    "cost_weights": {
        "acceleration": 0.0,
        "jerk": 0.0,
        "lateral_jerk": 1.0,
        "longitudinal_jerk": 1.0,
        "orientation_offset": 0.0,
        "path_length": 0.0,
        "lane_center_offset": 0.0,
        "velocity_offset": 1.0,
        "velocity": 0.0,
        "distance_to_reference_path": 3.0,
        "distance_to_obstacles": 0.0,
        "prediction": 200.0,
        "responsibility": 0,
    },
    "external_cost_weights": {"occ_pm": 0, "occ_um": 0, "occ_ve": 0},
}
DEBUG = {
    "save_all_traj": False,
    "save_unweighted_costs": False,
    "log_risk": False,
    "draw_traj_set": False,  # ADAPTED: no plots
    "kinematic_debug": True,
    "collision_report": False,  # ADAPTED: the benchmark's checker judges collisions
    "activate_logging": False,  # ADAPTED: no CSV logs per step
    "msg_log_mode": "WARNING",  # ADAPTED: INFO writes a log line per step to disk
    "multiproc": False,  # ADAPTED: 2 shared cores; one process per scenario
    "num_workers": 1,
    "use_cpp": True,
}
RISK = {
    "harm_mode": "log_reg",
    "sensor_occlusion_model": False,
    "occlusion_mode": False,
    "ignore_angle": False,
    "sym_angle": True,
    "reduced_angle_areas": True,
    "trajectory_risk": "max",
    "max_acceptable_risk": 1,
    "multiple_cost_functions": False,
    "lateral_acceleration": 0.5,
    "scale_factor_time": 0.9,
    "crash_angle_accuracy": 10,
    "crash_angle_simplified": True,
    "fast_prob_mahalanobis": False,
    "figures": {"create_figures": False, "number_plotted_trajectories": 3},
    "risk_dashboard": False,
    "collision_report": False,
}
# ADAPTED: harm_parameters.json is not in the wheel. With log_risk off and emergency_mode
# "stopping" it is read only to give a sample that leaves the road a harm > 0 (which rejects
# it, whatever the value) and to rank such samples when all are rejected: a monotone stand-in
# (harm rises with speed) keeps both.
HARM = {"log_reg": {"ignore_angle": {"const": -5.0, "speed": 0.2}}}
COV = [[0.1, 0.0], [0.0, 0.1]]


def _sim_config(work_dir, vehicle, problem_id, scenario_name):
    return {
        "simulation": {
            "use_multiagent": False,
            "multiprocessing": False,
            "log_path": os.path.join(work_dir, "logs"),
            "mod_path": work_dir,
            "msg_log_mode": "WARNING",
            "name_scenario": scenario_name,
            "ego_agent_id": problem_id,
        },
        "vehicle": dict({"cr_vehicle_id": 2}, **vehicle),
        # ADAPTED: "ground_truth" instead of "walenet": WaleNet needs torch (GBs of CUDA
        # wheels); the recorded futures are what the CommonRoad reactive planner sees too
        "prediction": {
            "mode": "ground_truth",
            "calc_visible_area": False,
            "sensor_radius": 80,
            "cone_angle": 0,
            "cone_safety_dist": 5,
        },
        "occlusion": {"use_occlusion_module": False},
        "behavior": {"use_behavior_planner": False},
        "visualization": {"ref_path_debug": False, "show_plots": False, "save_plots": False},
        "evaluation": {},
    }


def _ground_truth(scenario, time_step, horizon_steps):
    """The recorded futures of every obstacle from `time_step` on, in Frenetix's prediction
    format (centres, orientations, speeds, a small fixed covariance)."""
    import numpy as np
    from commonroad.scenario.obstacle import ObstacleRole

    out = {}
    for obstacle in scenario.obstacles:
        if not hasattr(obstacle.obstacle_shape, "length"):
            # as in Frenetix's own ground-truth prediction, whose per-obstacle try drops every
            # shape without a length: its collision check raises for any other shape
            continue
        pos, yaw, speed = [], [], []
        for k in range(time_step, time_step + horizon_steps):
            if obstacle.obstacle_role == ObstacleRole.DYNAMIC:
                state = obstacle.state_at_time(k)
                if state is None:
                    break
            else:
                state = obstacle.initial_state
            pos.append(list(state.position))
            yaw.append(float(getattr(state, "orientation", 0.0) or 0.0))
            speed.append(float(getattr(state, "velocity", 0.0) or 0.0))
        if not pos:
            continue
        shape = obstacle.obstacle_shape

        out[obstacle.obstacle_id] = {
            "pos_list": np.array(pos),
            "cov_list": np.array([COV] * len(pos)),
            "orientation_list": np.array(yaw),
            "v_list": np.array(speed),
            "shape": {"length": float(shape.length), "width": float(shape.width)},
        }
    return out


def _constant_velocity(cars, dt, horizon_steps, first_id):
    """Each car carried on at its speed along its heading over the horizon, from now, in
    Frenetix's prediction format; keys are `first_id` plus the cars' places in `cars`."""
    import numpy as np

    out = {}
    for i, (x, y, heading, speed, length, width) in enumerate(cars):
        t = np.arange(horizon_steps) * dt
        pos = np.stack([x + speed * t * np.cos(heading), y + speed * t * np.sin(heading)], 1)
        out[first_id + i] = {
            "pos_list": pos,
            "cov_list": np.array([COV] * horizon_steps),
            "orientation_list": np.full(horizon_steps, heading),
            "v_list": np.full(horizon_steps, speed),
            "shape": {"length": float(length), "width": float(width)},
        }
    return out


def _live_obstacles(cars, predictions, time_step):
    """The cars as CommonRoad obstacles at `time_step` (ids as in `predictions`), moving as
    predicted: what Frenetix's collision check and cost functions read from the scenario."""
    import numpy as np
    from commonroad.geometry.shape import Rectangle
    from commonroad.prediction.prediction import TrajectoryPrediction
    from commonroad.scenario.obstacle import DynamicObstacle, ObstacleType
    from commonroad.scenario.state import InitialState, KSState
    from commonroad.scenario.trajectory import Trajectory

    obstacles = []
    for obstacle_id, pred in predictions.items():
        shape = Rectangle(pred["shape"]["length"], pred["shape"]["width"])
        states = [
            KSState(
                time_step=time_step + j,
                position=np.array(pos),
                orientation=float(yaw),
                velocity=float(v),
            )
            for j, (pos, yaw, v) in enumerate(
                zip(pred["pos_list"], pred["orientation_list"], pred["v_list"], strict=True)
            )
        ]
        first = states[0]
        initial = InitialState(
            time_step=time_step,
            position=first.position,
            orientation=first.orientation,
            velocity=first.velocity,
            acceleration=0.0,
            yaw_rate=0.0,
            slip_angle=0.0,
        )
        prediction = TrajectoryPrediction(Trajectory(time_step + 1, states[1:]), shape)
        obstacles.append(DynamicObstacle(obstacle_id, ObstacleType.CAR, shape, initial, prediction))
    return obstacles


class Session:
    def __init__(self, msg):
        from commonroad.common.file_reader import CommonRoadFileReader
        from cr_scenario_handler.planner_interfaces.frenet_interface import (
            FrenetPlannerInterface,
        )
        from cr_scenario_handler.utils.configuration import (
            FrenetConfiguration,
            SimConfiguration,
        )
        from omegaconf import OmegaConf

        work_dir = msg["work_dir"]
        os.makedirs(os.path.join(work_dir, "configurations"), exist_ok=True)
        for name, data in (("risk.json", RISK), ("harm_parameters.json", HARM)):
            with open(os.path.join(work_dir, "configurations", name), "w") as f:
                json.dump(data, f)
        scenario, problems = CommonRoadFileReader(msg["scenario"]).open()
        problem = problems.planning_problem_dict[msg["problem_id"]]
        self.live = bool(msg.get("live", False))
        if self.live:  # the traffic comes with each step (module docstring)
            scenario.remove_obstacle(list(scenario.obstacles))
            # the live cars' ids: above every id in the scenario and the ego's
            self.first_obstacle_id = max(scenario.generate_object_id(), msg["problem_id"] + 1)
        planning = dict(PLANNING, dt=float(scenario.dt))
        config_plan = FrenetConfiguration(
            OmegaConf.create({"planning": planning, "debug": DEBUG, "cost": COST})
        )
        config_sim = SimConfiguration(
            OmegaConf.create(
                _sim_config(work_dir, msg["vehicle"], msg["problem_id"], str(scenario.scenario_id))
            )
        )
        self.scenario = scenario
        self.horizon_steps = round(planning["planning_horizon"] / scenario.dt)
        self.interface = FrenetPlannerInterface(
            msg["problem_id"], config_plan, config_sim, scenario, deepcopy(problem),
            os.path.join(work_dir, "logs"), work_dir,
        )  # fmt: skip
        self.time_step = int(problem.initial_state.time_step)

    def step(self, msg):
        if self.live:
            if msg.get("time_step") != self.time_step:
                return {
                    "ok": False,
                    "error": f"crash: asked for step {msg.get('time_step')} "
                    f"at step {self.time_step}",
                }
            predictions = _constant_velocity(
                msg["obstacles"], self.scenario.dt, self.horizon_steps, self.first_obstacle_id
            )
            self.scenario.remove_obstacle(list(self.scenario.obstacles))
            for obstacle in _live_obstacles(msg["obstacles"], predictions, self.time_step):
                self.scenario.add_objects(obstacle)
        else:
            predictions = _ground_truth(self.scenario, self.time_step, self.horizon_steps)
        t0 = time.perf_counter()  # the planner's own time, as the reactive planner's
        self.interface.update_planner(self.scenario, predictions)
        trajectory = self.interface.step_interface(self.time_step)
        plan_s = time.perf_counter() - t0
        if trajectory is None:
            return {"ok": False, "error": "no kinematically feasible trajectory found"}
        self.time_step += 1
        x0 = self.interface.x_0
        reply: dict = {
            "ok": True,
            "time_step": self.time_step,
            "x": float(x0.position[0]),
            "y": float(x0.position[1]),
            "orientation": float(x0.orientation),
            "velocity": float(x0.velocity),
            "steering_angle": float(getattr(x0, "steering_angle", 0.0) or 0.0),
            "acceleration": float(getattr(x0, "acceleration", 0.0) or 0.0),
            "plan_s": plan_s,
        }
        if msg.get("plan"):  # the chosen trajectory's positions too, for a look
            reply["plan_xy"] = [[float(v) for v in st.position] for st in trajectory.state_list]
        return reply


def main():
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # library prints go to stderr
    sys.stdout = sys.stderr
    session = None
    reply: dict = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        try:
            if msg["cmd"] == "quit":
                break
            if msg["cmd"] == "init":
                t0 = time.perf_counter()
                session = Session(msg)
                reply = {"ok": True, "init_s": time.perf_counter() - t0}
            elif msg["cmd"] == "step" and session is not None:
                reply = session.step(msg)
            else:
                reply = {"ok": False, "error": f"unknown command {msg['cmd']!r}"}
        except Exception as exc:
            traceback.print_exc()
            reply = {"ok": False, "error": f"crash: {type(exc).__name__}: {exc}"}
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
