"""The kerb: stop at it where a stop was requested, and leave it through a gap in the traffic
coming from behind."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.policy import Behaviour, Draft, Tick
from robotaxi.autonomy.planning.behaviour.scene import AT_CURB_OFFSET_M, curb_offset_m
from robotaxi.autonomy.vehicle import VehicleParams

# leaving the kerb is done once the rear axle is this near the lane centre (m)
MERGED_OFFSET_M = -0.3
# standing at the kerb: slower than this (m/s)
AT_CURB_BELOW_MPS = 2.0


@dataclass(slots=True)
class KerbLatch:
    """Whether we are merging from the kerb into the lane (the gap was taken)."""

    merging: bool = False


class KerbPolicy:
    """`curbside_stop` (footprint centre at the requested arc length, at the kerb, once
    within `curb_approach_m`; not while yielding to an EV) and `leave_curb` (standing at
    the kerb with no stop holding us there: wait for a gap behind, then merge)."""

    def __init__(self, config: BehaviourConfig, params: VehicleParams) -> None:
        self.config = config
        self.params = params
        self.latch = KerbLatch()

    def apply(self, tick: Tick, draft: Draft) -> Draft:
        cfg, p, latch = self.config, self.params, self.latch
        s_ego, d_ego, v = tick.s_ego, tick.d_ego, tick.speed
        if draft.ev_released:
            latch.merging = False  # pulled over for an EV: wait for a gap anew
        stop_request_s = tick.stop_request_s
        if stop_request_s is not None and not draft.yielding:
            stop_rear = stop_request_s - p.rear_axle_to_center_m
            if stop_rear - s_ego <= cfg.curb_approach_m and stop_rear > s_ego - 1.0:
                draft = draft.with_stop(Behaviour.CURBSIDE_STOP, stop_rear)
                draft = replace(draft, offset_m=curb_offset_m(tick.path, stop_request_s, cfg, p))
                latch.merging = False

        # parked beside the lane with nothing holding us there
        caution = draft.caution
        at_curb = d_ego < -AT_CURB_OFFSET_M and v < AT_CURB_BELOW_MPS and not caution
        if (not draft.stops and at_curb) or (latch.merging and not draft.stops and not caution):
            if not latch.merging and self._gap_behind(tick):
                latch.merging = True
            if latch.merging:
                draft = replace(draft, name=Behaviour.LEAVE_CURB)
                if d_ego > MERGED_OFFSET_M:
                    latch.merging = False
            else:
                draft = replace(draft, name=Behaviour.LEAVE_CURB, offset_m=d_ego)
                draft = draft.with_stop(Behaviour.LEAVE_CURB, s_ego)
        return draft

    def _gap_behind(self, tick: Tick) -> bool:
        """No traffic in the lane (d ≈ 0) behind us arriving within the merge gap."""
        scene, pred = tick.scene, tick.predictions
        if len(pred) == 0:
            return True
        cfg = self.config
        in_lane = np.abs(scene.agent_d[:, 0]) < 0.5 * tick.lane_width_m + 0.5
        gap = scene.ego_s - scene.agent_s[:, 0] - 0.5 * pred.length
        behind = gap > -self.params.length_m
        closing = np.maximum(scene.agent_v_s, 0.1)
        too_close = (gap < cfg.merge_gap_min_m) | (gap / closing < cfg.merge_gap_time_s)
        return not bool(np.any(in_lane & behind & too_close))
