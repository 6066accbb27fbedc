"""Emergency vehicles: caution when a siren is heard, pull over and stop at the kerb when one
is seen with flashing lights (or heard approaching long enough), rejoin once it has passed."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.policy import Behaviour, Draft, Tick
from robotaxi.autonomy.planning.behaviour.scene import AT_CURB_OFFSET_M, curb_offset_m
from robotaxi.autonomy.planning.behaviour.siren_caution import SirenBearing, SirenCaution
from robotaxi.autonomy.vehicle import VehicleParams


@dataclass(slots=True)
class EvYieldLatch:
    """The pull-over's state.

    - `yield_stop_s`: rear-axle arc length (m) to stand at for a seen EV (None: not yielding);
    - `audio_stop_s`: … for an EV heard approaching long enough (None: no stop on audio);
    - `last_seen_s`: when a threatening EV was last seen;
    - `standing_since_s`: since when we stand still while holding for an EV;
    - `hold_line_s`: the stop line (arc length, m) held before for a siren from a side street.
    """

    yield_stop_s: float | None = None
    audio_stop_s: float | None = None
    last_seen_s: float | None = None
    standing_since_s: float | None = None
    hold_line_s: float | None = None


@dataclass(frozen=True, slots=True)
class EvThreat:
    """What the cameras show of emergency vehicles with flashing lights: whether one demands
    yielding now (`threat`), whether one is seen at all (`seen`), and the seconds until the
    nearest threatening one reaches us (`t_meet_s`, inf if none)."""

    threat: bool
    seen: bool
    t_meet_s: float


def ev_threat(tick: Tick, config: BehaviourConfig) -> EvThreat:
    """Emergency vehicles with flashing lights within `ev_yield_range_m` in our or an
    adjacent lane (or predicted to enter them) that are catching up, coming toward us,
    alongside or crossing, and have not passed us (package docstring, `yield_to_ev`)."""
    cfg, scene, pred, lane_w = config, tick.scene, tick.predictions, tick.lane_width_m
    ego_speed = tick.speed
    ev = np.flatnonzero(pred.flashing_lights)
    if len(ev) == 0:
        return EvThreat(False, False, np.inf)
    rel_s = scene.agent_s[ev] - scene.ego_s
    near_lanes = np.abs(scene.agent_d[ev]) <= 1.5 * lane_w
    in_range = np.abs(rel_s) <= cfg.ev_yield_range_m
    corridor = near_lanes & in_range
    now_near = corridor[:, 0]
    # behind and catching up, ahead and coming toward us, or alongside
    alongside = np.abs(rel_s[:, 0]) <= cfg.ev_passed_margin_m
    # moving across our road (an intersection ahead) rather than along it
    ev_speed = pred.speed[ev]
    crossing = (ev_speed > 1.0) & (np.abs(scene.agent_v_s[ev]) < 0.7 * ev_speed)
    approaching = (
        ((rel_s[:, 0] < 0) & (scene.agent_v_s[ev] > 0.5))
        | ((rel_s[:, 0] > 0) & (scene.agent_v_s[ev] < -0.5))
        | alongside
        | crossing
    )
    # ahead and not coming toward us (an oncoming EV has passed once it is behind)
    passed = (rel_s[:, 0] > cfg.ev_passed_margin_m) & (scene.agent_v_s[ev] > -0.5) & ~crossing
    # not in our lanes yet, but predicted to enter them within range (e.g. crossing)
    entering = np.any(corridor, axis=1) & ~near_lanes[:, 0] & ~passed
    threat = (now_near & approaching & ~passed) | entering
    if not np.any(threat):
        return EvThreat(False, True, np.inf)
    # time to meet: along the road from the closing speed; for one about to enter our
    # road, when the prediction first puts it there
    v_s = scene.agent_v_s[ev]
    closing = np.where(rel_s[:, 0] < 0, v_s - ego_speed, ego_speed - v_s)
    t_along = np.abs(rel_s[:, 0]) / np.maximum(closing, 0.5)
    first_in = np.argmax(corridor, axis=1) * pred.dt_s
    t_meet = np.where(entering, first_in, t_along)
    return EvThreat(True, True, float(np.min(t_meet[threat])))


class EvYieldPolicy:
    """`ev_caution` and `yield_to_ev` (package docstring): the siren heard (`heard`, a
    `SirenCaution`) and the flashing lights seen, fused. Tells later policies whether we
    yield, whether the caution is on, and when a yield ended."""

    def __init__(self, config: BehaviourConfig, params: VehicleParams) -> None:
        self.config = config
        self.params = params
        self.heard = SirenCaution(config)
        self.latch = EvYieldLatch()

    def apply(self, tick: Tick, draft: Draft) -> Draft:
        caution = self.heard.hear(tick)
        if not caution:
            self.latch.hold_line_s = None
        seen = ev_threat(tick, self.config)
        settled = self._settled(tick)
        released = self._update_yield(tick, draft, seen, settled)
        if released and seen.seen:
            # the EV we heard has been seen go by: its fading siren is no new threat
            self.heard.disarm()
            caution = False
        if self.latch.yield_stop_s is None and not seen.threat:
            self._update_audio_stop(tick, caution, settled)
        draft = self._propose(tick, draft, caution)
        return replace(draft, yielding=self.latch.yield_stop_s is not None, ev_released=released)

    def _settled(self, tick: Tick) -> bool:
        """Whether a stop for an EV may end now: we have stood still `ev_resume_dwell_s`
        while holding for it (no jerk from braking straight into pulling away), or are still
        above `ev_release_above_mps`."""
        cfg, latch, v, time_s = self.config, self.latch, tick.speed, tick.time_s
        holding = latch.yield_stop_s is not None or latch.audio_stop_s is not None
        if not holding or v > cfg.ev_release_below_mps:
            latch.standing_since_s = None
        elif latch.standing_since_s is None:
            latch.standing_since_s = time_s
        standing_for = (
            time_s - latch.standing_since_s if latch.standing_since_s is not None else -1.0
        )
        return standing_for >= cfg.ev_resume_dwell_s or v >= cfg.ev_release_above_mps

    def _update_yield(self, tick: Tick, draft: Draft, seen: EvThreat, settled: bool) -> bool:
        """Start the yield for a threatening EV seen, or end it once it has passed or been
        out of sight long enough; whether it ended this tick."""
        cfg, latch, time_s = self.config, self.latch, tick.time_s
        if seen.threat:
            latch.last_seen_s = time_s
            # seen: the camera-based yield takes over from a stop on audio, keeping its
            # stopping point when that is nearer (no creeping forward once at the kerb)
            audio_stop, latch.audio_stop_s = latch.audio_stop_s, None
            if latch.yield_stop_s is None:
                latch.yield_stop_s = self._yield_stop(tick, draft, seen.t_meet_s, audio_stop)
        elif latch.yield_stop_s is not None:
            # Seen and no longer a threat: it has passed or is moving away. Not seen: it may
            # only be hidden for a moment, so wait before rejoining the lane.
            gone_for = time_s - (latch.last_seen_s if latch.last_seen_s is not None else time_s)
            # Finish a stop that is nearly complete before moving off again (a car that
            # stops, then goes, reads clearly to everyone around it): `settled`.
            if (seen.seen or gone_for >= cfg.ev_lost_resume_s) and settled:
                latch.yield_stop_s = None
                return True
        return False

    def _propose(self, tick: Tick, draft: Draft, caution: bool) -> Draft:
        """The draft with this policy's say: stand at the kerb for a seen EV, or for one heard
        approaching long enough; for one only heard, slow toward the kerb."""
        cfg, p, latch = self.config, self.params, self.latch
        path, s_ego, v = tick.path, tick.s_ego, tick.speed
        offset, speed_limit = draft.offset_m, draft.speed_limit_mps
        if latch.yield_stop_s is not None:
            draft = draft.with_stop(Behaviour.YIELD_TO_EV, latch.yield_stop_s)
            offset = curb_offset_m(path, s_ego, cfg, p)
        elif latch.audio_stop_s is not None:
            # heard approaching long enough: stop at the kerb without waiting to see it
            draft = draft.with_stop(Behaviour.EV_CAUTION, latch.audio_stop_s)
            offset = curb_offset_m(path, s_ego, cfg, p)
            caution = True
        elif caution:
            # heard, not seen: slow down gently and keep toward the kerb; a siren from a side
            # street may cross at the next junction, so hold before its line (comfortably)
            speed_limit = min(speed_limit, max(cfg.caution_speed_mps, v - cfg.caution_slowdown_mps))
            offset = cfg.caution_kerb_fraction * curb_offset_m(path, s_ego, cfg, p)
            next_line = draft.next_line
            if self.heard.latch.bearing == SirenBearing.SIDE and next_line is not None:
                line_rear = next_line.s_m - cfg.stop_line_margin_m - p.rear_axle_to_front_m
                dist = line_rear - s_ego
                need = v * v / (2 * max(dist, 0.1))
                # once holding for a line, keep to it (braking may end above the comfortable
                # rate); a line first seen too close for a comfortable stop is crossed
                if latch.hold_line_s == next_line.s_m or (
                    dist <= cfg.caution_junction_hold_m and need <= cfg.comfortable_decel_mps2
                ):
                    latch.hold_line_s = next_line.s_m
                    draft = draft.with_stop(Behaviour.EV_CAUTION, line_rear)
        return replace(draft, offset_m=offset, speed_limit_mps=speed_limit, caution=caution)

    def _yield_stop(
        self, tick: Tick, draft: Draft, t_meet_s: float, audio_stop_s: float | None
    ) -> float:
        """Where to stand for an EV first seen now (rear-axle arc length, m)."""
        cfg, p = self.config, self.params
        path, s_ego, d_ego, v = tick.path, tick.s_ego, tick.d_ego, tick.speed
        # Be standing a moment before it arrives: brake harder than comfortable if it is
        # close (up to ev_max_decel_mps2). With time to spare, also take the room needed to
        # reach the kerb; otherwise standing still in time comes first and we get as near
        # the kerb as the stopping distance allows.
        needed = v / max(t_meet_s - cfg.ev_stop_before_s, 0.5)
        decel = float(np.clip(needed, cfg.comfortable_decel_mps2, cfg.ev_max_decel_mps2))
        brake_m = v * v / (2 * decel)
        if needed <= cfg.comfortable_decel_mps2:
            lateral = abs(curb_offset_m(path, s_ego, cfg, p) - d_ego)
            reach_kerb = float(
                np.clip(cfg.pull_over_m_per_m * lateral, 3.0, cfg.ev_max_pull_over_m)
            )
            brake_m = max(brake_m, reach_kerb)
        stop = s_ego + brake_m
        if draft.line_stop_s is not None:
            stop = min(stop, draft.line_stop_s)
        for line in path.stop_lines:
            # never come to rest inside an intersection: stop short of the line
            line_rear = line.s_m - cfg.stop_line_margin_m - p.rear_axle_to_front_m
            if s_ego - 0.5 < line_rear < stop + p.length_m:
                stop = min(stop, line_rear)
        if audio_stop_s is not None:
            stop = min(stop, audio_stop_s)
        return max(stop, s_ego)

    def _update_audio_stop(self, tick: Tick, caution: bool, settled: bool) -> None:
        """Start or end the stop at the kerb on audio alone (package docstring)."""
        cfg, p, latch, heard = self.config, self.params, self.latch, self.heard.latch
        path, s_ego, d_ego, v = tick.path, tick.s_ego, tick.d_ego, tick.speed
        if latch.audio_stop_s is not None:
            if not caution and settled:
                latch.audio_stop_s = None
            return
        if not caution or heard.caution_since_s is None or heard.bearing_from_road_rad is None:
            return
        # approaching for long enough (the caution itself needs a rising siren; here it must
        # not have turned receding since), from where it can reach us on our road
        if heard.quiet_since_s is not None or heard.detected_for_s < cfg.audio_stop_detect_s:
            return
        if (
            heard.bearing_from_road_rad > cfg.audio_stop_side_max_rad
            and heard.bearing != SirenBearing.BEHIND
        ):
            return
        brake_m = v * v / (2 * cfg.audio_stop_decel_mps2)
        lateral = abs(curb_offset_m(path, s_ego, cfg, p) - d_ego)
        reach_kerb = float(np.clip(cfg.pull_over_m_per_m * lateral, 3.0, cfg.ev_max_pull_over_m))
        stop = s_ego + max(brake_m, reach_kerb)
        for line in path.stop_lines:
            line_rear = line.s_m - cfg.stop_line_margin_m - p.rear_axle_to_front_m
            if line_rear <= s_ego and stop < line.s_m + cfg.audio_junction_clear_m:
                # at or past a line: come to rest clear of the junction
                stop = line.s_m + cfg.audio_junction_clear_m
            elif s_ego < line_rear < stop + p.length_m:
                # a line ahead: stop short of it if the audio stop's braking does it (the
                # motion planner's profiles overshoot a stop that needs much harder braking)
                if v * v / (2 * max(line_rear - s_ego, 0.1)) > cfg.audio_stop_decel_mps2:
                    return  # too close: carry on through and decide past the junction
                stop = min(stop, line_rear)
        # only where there is a kerb to pull over to (not on a junction's internal lanes)
        if curb_offset_m(path, stop, cfg, p) > -AT_CURB_OFFSET_M - 0.5:
            return
        latch.audio_stop_s = stop
