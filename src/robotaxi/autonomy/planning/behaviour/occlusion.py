"""Slowing past what hides the kerb: a standing vehicle just right of our path (double-parked,
unloading, queued in the kerb lane) can hide someone about to step out in front of it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.policy import Draft, Tick
from robotaxi.autonomy.planning.behaviour.scene import VEHICLE_KINDS
from robotaxi.autonomy.vehicle import VehicleParams


class OccludedKerbPolicy:
    """Cap the target speed while passing a standing vehicle on our right whose side is within
    `occluder_gap_m` of ours: at its front we drive no faster than `occluded_pass_speed_mps`
    (slow enough to stop for someone who steps out from in front of it, once seen), and on
    the way there no faster than lets us brake to that comfortably (no latches)."""

    def __init__(self, config: BehaviourConfig, params: VehicleParams) -> None:
        self.config = config
        self.params = params

    def apply(self, tick: Tick, draft: Draft) -> Draft:
        cfg, p = self.config, self.params
        pred, scene = tick.predictions, tick.scene
        if not cfg.occlusion_caution or len(pred) == 0:
            return draft
        a_s, a_d = scene.agent_s[:, 0], scene.agent_d[:, 0]
        vehicle = np.array([k in VEHICLE_KINDS for k in pred.kinds], dtype=bool)
        # the gap between its left side and our right side, beside our path (m)
        side_gap = (scene.ego_d - 0.5 * p.width_m) - (a_d + 0.5 * pred.width)
        front_edge = a_s + 0.5 * pred.length
        our_front = scene.ego_s + p.rear_axle_to_front_m
        hiding = (
            vehicle
            & (pred.speed < cfg.blocker_speed_mps)
            & (pred.length >= cfg.occluder_min_length_m)
            & (side_gap > -0.3)
            & (side_gap < cfg.occluder_gap_m)
            & (front_edge > our_front - 1.0)
            & (front_edge - our_front < cfg.speed_preview_m + 30.0)
        )
        if not np.any(hiding):
            return draft
        # the cap at each one's front, and comfortable braking to it from here (less a
        # two seconds of travel: the speed profile eases toward a lower target)
        reach = np.maximum(front_edge[hiding] - our_front - tick.speed * 2.0, 0.0)
        v_cap = np.sqrt(cfg.occluded_pass_speed_mps**2 + 2.0 * cfg.comfortable_decel_mps2 * reach)
        return replace(draft, speed_limit_mps=min(draft.speed_limit_mps, float(v_cap.min())))
