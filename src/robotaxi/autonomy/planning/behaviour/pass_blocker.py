"""Passing a double-parked vehicle through the next same-direction lane to our left, when the
gap in that lane allows."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.policy import Behaviour, Draft, Tick
from robotaxi.autonomy.planning.behaviour.scene import VEHICLE_KINDS
from robotaxi.autonomy.vehicle import VehicleParams


@dataclass(slots=True)
class PassLatch:
    """The standing lead's track id and since when it stands (s), and, once the pass is
    under way, the arc length (m) of the blocker's front."""

    blocker_id: int | None = None
    blocker_since_s: float | None = None
    passing_front_s: float | None = None


class PassBlockerPolicy:
    """`pass_blocker` (package docstring). Only when nothing else holds the tick: no
    behaviour named, no siren caution, no yield, no safe stop and no kerbside stop."""

    def __init__(self, config: BehaviourConfig, params: VehicleParams) -> None:
        self.config = config
        self.params = params
        self.latch = PassLatch()

    def apply(self, tick: Tick, draft: Draft) -> Draft:
        if not (
            self.config.pass_blockers
            and draft.name is None
            and not draft.caution
            and not draft.yielding
            and not draft.safe_stopping
            and not draft.stops_for(Behaviour.CURBSIDE_STOP)
        ):
            self.latch = PassLatch()
            return draft
        pass_offset, wait_stop = self._pass(tick)
        if pass_offset is not None:
            draft = replace(draft, offset_m=pass_offset, passing=True)
        if wait_stop is not None:
            # hold back from it: room to steer out once the gap comes
            draft = draft.with_stop(Behaviour.CAR_FOLLOW, wait_stop)
        return draft

    def _pass(self, tick: Tick) -> tuple[float | None, float | None]:
        """(lateral offset to drive at, or None to keep our lane; rear-axle arc length to
        wait at behind the blocker, or None)."""
        cfg, p = self.config, self.params
        path, scene, pred, lane_w = tick.path, tick.scene, tick.predictions, tick.lane_width_m
        time_s = tick.time_s
        s_ego, d_ego = scene.ego_s, scene.ego_d
        front, rear = s_ego + p.rear_axle_to_front_m, s_ego - p.rear_overhang_m
        # the next lane's centre (SUMO gives the lanes of an edge one width)
        target_d = lane_w
        vehicle = np.array([k in VEHICLE_KINDS for k in pred.kinds], dtype=bool)
        passing_front_s = self.latch.passing_front_s
        if passing_front_s is not None:
            if rear > passing_front_s + cfg.pass_return_gap_m:
                self.latch = PassLatch()  # clear of it: back to our lane
                return None, None
            if d_ego >= cfg.pass_abort_below_m or self._gap_ok(
                tick, vehicle, target_d, passing_front_s
            ):
                return target_d, None
            # the gap closed before we were well over: back behind the blocker and wait
            self.latch.passing_front_s = None
        if len(pred) == 0:
            self.latch = PassLatch()
            return None, None
        a_s, a_d = scene.agent_s[:, 0], scene.agent_d[:, 0]
        half_len = 0.5 * pred.length
        rear_edge = a_s - half_len
        in_lane = vehicle & (np.abs(a_d) < 0.5 * lane_w)
        ahead = in_lane & (rear_edge > front - 0.5) & (rear_edge - front < cfg.follow_range_m)
        if not np.any(ahead):
            self.latch = PassLatch()
            return None, None
        i = int(np.argmin(np.where(ahead, rear_edge, np.inf)))
        if float(pred.speed[i]) >= cfg.blocker_speed_mps:
            self.latch = PassLatch()
            return None, None
        track = int(pred.track_ids[i])
        if track != self.latch.blocker_id or self.latch.blocker_since_s is None:
            self.latch.blocker_id, self.latch.blocker_since_s = track, time_s
        if time_s - self.latch.blocker_since_s < cfg.blocker_wait_s:
            return None, None
        b_front = float(a_s[i] + half_len[i])
        for line in path.stop_lines:
            if line.s_m > b_front - 1.0:
                if line.s_m - b_front < cfg.blocker_line_clear_m:
                    return None, None  # waiting at the line (or queued for it)
                break
        queue = (
            in_lane & (rear_edge > b_front - 0.5) & (rear_edge - b_front < cfg.blocker_queue_gap_m)
        )
        queue[i] = False
        if np.any(queue):
            return None, None  # traffic ahead of it: a queue, not a blocker
        span = np.linspace(s_ego, b_front + cfg.pass_return_gap_m + p.length_m, 16)
        if float(np.min(path.left_room_at(span))) < 1.5 * lane_w - 0.1:
            return None, None  # no same-direction lane beside ours all the way past it
        if self._gap_ok(tick, vehicle, target_d, b_front):
            self.latch.passing_front_s = b_front
            return target_d, None
        wait = float(rear_edge[i]) - cfg.pass_standoff_m - p.rear_axle_to_front_m
        return None, (wait if wait > s_ego - 0.5 else None)

    def _gap_ok(
        self,
        tick: Tick,
        vehicle: npt.NDArray[np.bool_],
        target_d: float,
        blocker_front_s: float,
    ) -> bool:
        """The gap in the lane at `target_d` takes us: its follower keeps a time gap of
        `pass_follower_headway_s` and a time to reach our rear of `pass_follower_ttc_s` at
        its tracked speed, its leader is `pass_leader_headway_s` ahead of us, nobody in it
        comes the other way, and nothing stands in it before we are past the blocker."""
        scene, pred, lane_w, v = tick.scene, tick.predictions, tick.lane_width_m, tick.speed
        if len(pred) == 0:
            return True
        cfg, p = self.config, self.params
        s_ego = scene.ego_s
        a_s, a_d, v_s = scene.agent_s[:, 0], scene.agent_d[:, 0], scene.agent_v_s
        half_len = 0.5 * pred.length
        in_target = vehicle & (np.abs(a_d - target_d) < 0.5 * lane_w + 0.3)
        behind = a_s < s_ego + p.rear_axle_to_center_m
        gap_behind = s_ego - p.rear_overhang_m - (a_s + half_len)
        v_f = np.maximum(v_s, 0.0)
        closing = v_f - v
        ttc = np.where(closing > 0.1, gap_behind / np.maximum(closing, 0.1), np.inf)
        follower_bad = (
            (gap_behind < cfg.pass_min_gap_m)
            | (gap_behind < v_f * cfg.pass_follower_headway_s)
            | (ttc < cfg.pass_follower_ttc_s)
        )
        gap_ahead = a_s - half_len - (s_ego + p.rear_axle_to_front_m)
        standing_in_way = (np.abs(v_s) < cfg.blocker_speed_mps) & (
            a_s - half_len < blocker_front_s + cfg.pass_return_gap_m + p.length_m
        )
        leader_bad = (gap_ahead < cfg.pass_min_gap_m + v * cfg.pass_leader_headway_s) | (
            standing_in_way
        )
        oncoming = v_s < -1.0
        bad = in_target & (oncoming | np.where(behind, follower_bad, leader_bad))
        return not bool(np.any(bad))
