"""Lane and car following: the target speed from the speed limits and bends ahead, and whether
a leading vehicle names the tick `car_follow` rather than `lane_follow`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from robotaxi.autonomy.control import ControllerGains
from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.policy import Behaviour, Draft, Tick
from robotaxi.autonomy.vehicle import VehicleParams

# the car's steering follows the path by pure pursuit toward a point this far ahead
# (`control.ControllerGains`): it cuts through wiggles of the path shorter than that
_STEERING = ControllerGains()
# samples of the path's curvature across that look-ahead
_LOOK_SAMPLES = 9


class FollowPolicy:
    """Drive the lane centre at the speed limit, slowed for bends (no latches)."""

    def __init__(self, config: BehaviourConfig, params: VehicleParams) -> None:
        self.config = config
        self.params = params

    def apply(self, tick: Tick, draft: Draft) -> Draft:
        """Set the draft's speed limit: the limit here, and no faster than lets us slow
        comfortably to each lower limit and each bend within `speed_preview_m`."""
        cfg, p = self.config, self.params
        path, s_ego, v = tick.path, tick.s_ego, tick.speed
        ahead = s_ego + np.linspace(0.0, cfg.speed_preview_m, 9)
        # each lower limit and each bend ahead caps today's speed only as far as braking
        # comfortably to it in time needs (less a second of travel: the jerk-limited speed
        # profile lags the target): the car is down to a limit where it begins, not
        # crawling toward it from the far end of the preview
        reach_m = np.maximum(ahead - (s_ego + p.rear_axle_to_front_m + v * 1.0), 0.0)
        brake_v2 = 2.0 * cfg.comfortable_decel_mps2 * reach_m
        limits = path.speed_limit_at(ahead)
        speed_limit = float(np.min(np.sqrt(np.square(limits) + brake_v2)))
        speed_limit = min(speed_limit, float(limits[0]))
        # slow for bends: lateral acceleration v²·κ within the comfortable limit, κ the
        # path's curvature averaged over the steering's look-ahead (pure pursuit steers on
        # the arc to a point that far ahead, so it cuts through a wiggle shorter than that:
        # a lane centre drawn from recorded data wiggles on a straight road)
        look = min(
            max(_STEERING.lookahead_time_s * max(v, 0.0), _STEERING.min_lookahead_m),
            _STEERING.max_lookahead_m,
        )
        across = np.linspace(-0.5 * look, 0.5 * look, _LOOK_SAMPLES)
        curvature = path.curvature_at((ahead[:, None] + across[None, :]).ravel())
        kappa = np.maximum(np.abs(curvature.reshape(len(ahead), -1).mean(axis=1)), 1e-6)
        bend_v2 = cfg.max_lateral_accel_mps2 / kappa
        bend_cap = float(np.min(np.sqrt(bend_v2 + brake_v2)))
        return replace(draft, speed_limit_mps=min(speed_limit, bend_cap))

    def behaviour(self, tick: Tick) -> Behaviour:
        """`car_follow` with a vehicle ahead within `follow_range_m` in our path (its width
        overlapping ours, with 0.3 m to spare), else `lane_follow`."""
        scene, pred = tick.scene, tick.predictions
        if len(pred) == 0:
            return Behaviour.LANE_FOLLOW
        rel = scene.agent_s[:, 0] - scene.ego_s
        lateral = (
            np.abs(scene.agent_d[:, 0] - scene.ego_d)
            < 0.5 * (self.params.width_m + pred.width) + 0.3
        )
        ahead = (rel > 0) & (rel < self.config.follow_range_m)
        return Behaviour.CAR_FOLLOW if bool(np.any(lateral & ahead)) else Behaviour.LANE_FOLLOW
