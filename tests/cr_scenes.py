"""Hand-built CommonRoad planning problems for tests: straight 300 m lanes side by side."""

from __future__ import annotations

from typing import Any

import numpy as np


def straight_lanes_problem(
    lane_ys: tuple[float, ...], lane_w: float, goal_y: float, goal_speed: tuple[float, float] | None
) -> tuple[Any, Any, Any]:
    """Lanes along x (0–300 m) centred at `lane_ys` (left of each other, same direction), the
    car at x = 20 m in the first at 12 m/s; the goal: 6 m × 3 m around (270, `goal_y`) at
    `goal_speed` (m/s) if given. Returns (scenario, planning problem, LaneletRouter)."""
    from commonroad.common.util import Interval
    from commonroad.geometry.shape import Rectangle
    from commonroad.planning.goal import GoalRegion
    from commonroad.planning.planning_problem import PlanningProblem
    from commonroad.scenario.lanelet import Lanelet, LaneletNetwork
    from commonroad.scenario.scenario import Scenario, ScenarioID
    from commonroad.scenario.state import CustomState, InitialState

    from robotaxi.sim.commonroad_lanes import LaneletRouter

    xs = np.linspace(0.0, 300.0, 31)
    half = np.array([0.0, 0.5 * lane_w])
    network = LaneletNetwork()
    for k, y in enumerate(lane_ys):
        c = np.column_stack([xs, np.full_like(xs, y)])
        links: dict[str, object] = {}
        if k + 1 < len(lane_ys):
            links |= {"adjacent_left": k + 2, "adjacent_left_same_direction": True}
        if k > 0:
            links |= {"adjacent_right": k, "adjacent_right_same_direction": True}
        network.add_lanelet(Lanelet(c + half, c, c - half, k + 1, **links))
    scenario = Scenario(0.1, ScenarioID())
    scenario.add_objects(network)
    init = InitialState(
        position=np.array([20.0, lane_ys[0]]), orientation=0.0, velocity=12.0, time_step=0,
        yaw_rate=0.0, slip_angle=0.0, acceleration=0.0,
    )  # fmt: skip
    state: dict[str, Any] = {
        "position": Rectangle(6.0, 3.0, center=np.array([270.0, goal_y])),
        "time_step": Interval(0, 300),
    }
    if goal_speed is not None:
        state["velocity"] = Interval(*goal_speed)
    problem = PlanningProblem(1, init, GoalRegion([CustomState(**state)]))
    return scenario, problem, LaneletRouter(scenario)
