"""The ego and the predicted road users in the reference path's Frenet frame, and the kerb."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import Predictions
from robotaxi.autonomy.vehicle import VehicleParams, VehicleState
from robotaxi.core.types import AgentKind, FloatArray

# predicted positions are projected every this many steps and interpolated in between
PREDICTION_PROJECTION_STRIDE = 4
# road users that can be a double-parked blocker, or whose gap a pass must respect
VEHICLE_KINDS = (AgentKind.CAR, AgentKind.ROBOTAXI, AgentKind.UNKNOWN, AgentKind.EMERGENCY)
# standing this far right of the lane centre counts as "at the kerb" (m): must leave it
# through a gap in the traffic from behind
AT_CURB_OFFSET_M = 0.3


@dataclass(frozen=True)
class FrenetScene:
    """Ego and predicted agents in the reference path's Frenet frame.

    `ego_s`, `ego_d`: rear axle (m); `agent_s`, `agent_d`: M×T centres along the
    predictions (m); `agent_v_s`: M speeds along the path (m/s, negative = oncoming)."""

    ego_s: float
    ego_d: float
    ego_heading_error: float
    agent_s: FloatArray
    agent_d: FloatArray
    agent_v_s: FloatArray


def frenet_scene(
    path: ReferencePath,
    ego: VehicleState,
    predictions: Predictions,
    window_back_m: float = 60.0,
    window_ahead_m: float = 160.0,
) -> FrenetScene:
    """Project the ego and all predictions onto `path`, searching only near the ego."""
    es, ed = path.project(ego.x, ego.y)
    ego_s = float(es)
    window = (ego_s - window_back_m, ego_s + window_ahead_m)
    heading_err = float((ego.heading - path.heading_at(ego_s) + np.pi) % (2 * np.pi) - np.pi)
    if len(predictions) == 0:
        empty = np.zeros((0, predictions.xy.shape[1]))
        return FrenetScene(ego_s, float(ed), heading_err, empty, empty, np.zeros(0))
    s, d = path.project_series(
        predictions.xy[..., 0], predictions.xy[..., 1], PREDICTION_PROJECTION_STRIDE, window
    )
    path_h = path.heading_at(s[:, 0])
    v_s = predictions.speed * np.cos(predictions.heading[:, 0] - path_h)
    return FrenetScene(ego_s, float(ed), heading_err, s, d, v_s)


def curb_offset_m(
    path: ReferencePath, s: float, cfg: BehaviourConfig, params: VehicleParams
) -> float:
    """Lateral offset (m) that puts the car's right side `curb_margin_m` from the kerb; never
    left of the lane centre."""
    room = float(path.right_room_at(s))
    return min(0.0, -(room - 0.5 * params.width_m - cfg.curb_margin_m))
