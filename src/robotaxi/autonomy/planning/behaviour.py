"""Behaviour layer: a small explicit state machine that sets the motion planner's target.

Behaviours, by priority (the highest active one names the tick):

- `safe_stop`: the motion planner failed for several ticks in a row → stop where we are;
- `yield_to_ev`: an emergency vehicle with flashing lights is within range, behind or
  ahead, in our or an adjacent lane (or its predicted path enters them, as when it crosses
  at an intersection ahead), and is catching up, coming toward us, alongside or crossing
  → move to the kerb and stop there (before any stop line, so never inside an
  intersection); stay until it has passed (seen ahead and moving away, or behind and
  moving away) or has been out of sight for `ev_lost_resume_s`, then rejoin the lane;
- `ev_caution`: a siren is heard (roof microphones, `SirenEvidence`) and rising, but no
  emergency vehicle with lights is seen yet: slow to `caution_speed_mps`, move part of
  the way toward the kerb and, when the siren comes from a side street, hold before the
  next stop line (never inside the junction). Once the siren has kept approaching for
  `audio_stop_detect_s` from behind, ahead or a side street ahead, and there is a kerb,
  audio alone completes the pull-over (CVC 21806: "drive to the right-hand edge … and
  stop until the authorized emergency vehicle has passed"): brake at `audio_stop_decel_mps2`
  to a stop at the kerb, short of any stop line and clear of the junction just crossed.
  The cameras seeing the lights hand over to `yield_to_ev`; a siren that fades or recedes
  without being seen ends the caution (after standing `ev_resume_dwell_s`);
- `stop_at_line`: the next stop line's signal is red, or yellow and we can stop
  comfortably → stop with the front bumper before the line;
- `curbside_stop`: a stop was requested at arc length s → move to the kerb and stop with
  the footprint centre at s;
- `leave_curb`: standing beside the lane at the kerb → wait for a gap in the traffic coming
  from behind in the lane, then merge into the lane;
- `pass_blocker`: the vehicle ahead in our lane is a blocker (double-parked: standing for
  `blocker_wait_s`, not queued at a stop line nor behind other traffic) and the next
  same-direction lane to our left has room (the map's `left_room`) → wait `pass_standoff_m`
  behind it until the gap in that lane is acceptable (its follower far enough in time gap
  and time to collision, its leader far enough ahead), move into it, pass, and return to
  our lane `pass_return_gap_m` past the blocker. Never across into opposing traffic: a
  street without a same-direction lane beside ours has no room to the left for it;
- `car_follow` / `lane_follow`: drive the lane centre at the speed limit, with or without a
  leading vehicle within `follow_range_m`.

Stops are given as a rear-axle arc length `stop_s_m` at which the car must stand; the
motion planner treats it as a standing obstacle in its IDM speed profiles.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from robotaxi.autonomy.perception.siren import SirenEvidence
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import Predictions
from robotaxi.autonomy.vehicle import IPACE, VehicleParams, VehicleState
from robotaxi.core.types import AgentKind, FloatArray

# predicted positions are projected every this many steps and interpolated in between
PREDICTION_PROJECTION_STRIDE = 4
# road users that can be a double-parked blocker, or whose gap a pass must respect
VEHICLE_KINDS = (AgentKind.CAR, AgentKind.ROBOTAXI, AgentKind.UNKNOWN, AgentKind.EMERGENCY)
# standing this far right of the lane centre counts as "at the kerb" (m): must leave it
# through a gap in the traffic from behind
AT_CURB_OFFSET_M = 0.3


class Behaviour(enum.StrEnum):
    LANE_FOLLOW = "lane_follow"
    CAR_FOLLOW = "car_follow"
    STOP_AT_LINE = "stop_at_line"
    LEAVE_CURB = "leave_curb"
    CURBSIDE_STOP = "curbside_stop"
    YIELD_TO_EV = "yield_to_ev"
    EV_CAUTION = "ev_caution"
    SAFE_STOP = "safe_stop"
    PASS_BLOCKER = "pass_blocker"


class BehaviourConfig(BaseModel):
    """Parameters of the behaviour layer (units in the names)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ev_yield_range_m: float = Field(default=80.0, gt=0, description="yield to an EV this close")
    ev_passed_margin_m: float = Field(default=12.0, ge=0, description="EV this far ahead → passed")
    ev_lost_resume_s: float = Field(default=2.0, ge=0, description="EV unseen this long → resume")
    ev_max_pull_over_m: float = Field(
        default=20.0, gt=0, description="most room allowed for reaching the kerb, m"
    )
    pull_over_m_per_m: float = Field(
        default=8.0, gt=0, description="distance along the lane per metre of lateral move, m/m"
    )
    ev_stop_before_s: float = Field(
        default=1.5, ge=0, description="be standing this long before the EV reaches us, s"
    )
    ev_release_below_mps: float = Field(
        default=0.2, ge=0, description="once the EV has passed, resume from at most this speed"
    )
    ev_release_above_mps: float = Field(
        default=3.0, ge=0, description="… or at once if still above this speed, m/s"
    )
    ev_resume_dwell_s: float = Field(
        default=1.0,
        ge=0,
        description="once stopped for an EV, stand this long before moving off (no jerk "
        "from braking straight into pulling away), s",
    )
    ev_max_decel_mps2: float = Field(
        default=4.0, gt=0, description="hardest braking to stop in time for an EV, m/s²"
    )
    audio_min_detect_s: float = Field(
        default=1.0, ge=0, description="siren heard continuously this long before acting, s"
    )
    audio_rising_db_per_s: float = Field(
        default=0.4, description="a level trend this steep counts as approaching, dB/s"
    )
    audio_release_s: float = Field(
        default=2.0, ge=0, description="siren lost or receding this long → end the caution, s"
    )
    audio_stop_detect_s: float = Field(
        default=1.0,
        ge=0,
        description="siren heard and approaching this long → stop at the kerb on audio, s",
    )
    audio_stop_decel_mps2: float = Field(
        default=2.5, gt=0, description="braking for a stop at the kerb on audio alone, m/s²"
    )
    audio_stop_side_max_rad: float = Field(
        default=math.radians(100.0),
        gt=0,
        description="a siren from the side counts as ahead (a side street to come) within this "
        "of our heading",
    )
    audio_junction_clear_m: float = Field(
        default=30.0, ge=0, description="an audio stop comes to rest this far past a stop line"
    )
    audio_rearm_s: float = Field(
        default=5.0,
        ge=0,
        description="after a caution ended for good (EV seen passing, or never seen), the "
        "siren must go unheard this long before a new one can start a caution, s",
    )
    audio_caution_max_s: float = Field(
        default=40.0, gt=0, description="heard but never seen this long → give up the caution, s"
    )
    caution_speed_mps: float = Field(
        default=5.0, gt=0, description="speed while a siren is heard but not seen, m/s"
    )
    caution_slowdown_mps: float = Field(
        default=1.5,
        gt=0,
        description="each tick aim at most this far below the current speed (gentle slowing)",
    )
    caution_kerb_fraction: float = Field(
        default=0.6, ge=0, le=1, description="share of the way to the kerb taken on audio alone"
    )
    caution_junction_hold_m: float = Field(
        default=80.0, ge=0, description="siren from a side street: hold before a line this near"
    )
    audio_ahead_sector_rad: float = Field(
        default=math.radians(40.0), gt=0, description="bearing within this of the road → ahead"
    )
    audio_behind_sector_rad: float = Field(
        default=math.radians(40.0), gt=0, description="… within this of the road behind → behind"
    )

    curb_margin_m: float = Field(default=0.5, ge=0, description="gap kept to the kerb, m")
    curb_approach_m: float = Field(
        default=40.0, gt=0, description="start moving to the kerb this far before a requested stop"
    )
    comfortable_decel_mps2: float = Field(default=2.0, gt=0)
    max_lateral_accel_mps2: float = Field(
        default=2.0, gt=0, description="bends are taken no faster than this allows, m/s²"
    )
    speed_preview_m: float = Field(
        default=40.0, gt=0, description="speed limits and bends this far ahead count, m"
    )
    yellow_max_decel_mps2: float = Field(
        default=3.0, gt=0, description="stop for yellow only below"
    )
    red_max_decel_mps2: float = Field(
        default=6.0, gt=0, description="past this a red line is run (already committed)"
    )
    stop_line_margin_m: float = Field(
        default=1.0, ge=0, description="front bumper stops this far before the line"
    )
    follow_range_m: float = Field(default=60.0, gt=0)
    merge_gap_time_s: float = Field(
        default=4.0,
        gt=0,
        description="traffic from behind must be this many seconds away to leave the kerb",
    )
    merge_gap_min_m: float = Field(default=10.0, ge=0)
    safe_stop_after_failures: int = Field(default=3, ge=1)
    pass_blockers: bool = Field(default=True, description="pass double-parked vehicles")
    blocker_speed_mps: float = Field(
        default=0.3, ge=0, description="a lead vehicle slower than this is standing, m/s"
    )
    blocker_wait_s: float = Field(
        default=3.0, ge=0, description="standing this long (seen) before it counts as a blocker"
    )
    blocker_line_clear_m: float = Field(
        default=50.0,
        ge=0,
        description="standing within this of the next stop line beyond it → queued at the "
        "line, not a blocker, m",
    )
    blocker_queue_gap_m: float = Field(
        default=20.0, ge=0, description="any vehicle this near ahead of it → a queue, m"
    )
    pass_standoff_m: float = Field(
        default=8.0, gt=0, description="wait this far behind a blocker (room to steer out), m"
    )
    pass_min_gap_m: float = Field(
        default=6.0, ge=0, description="least bumper gap to traffic in the target lane, m"
    )
    pass_follower_headway_s: float = Field(
        default=1.2, ge=0, description="target-lane follower's time gap to our rear, at least, s"
    )
    pass_follower_ttc_s: float = Field(
        default=4.0, ge=0, description="target-lane follower's time to reach our rear, at least"
    )
    pass_leader_headway_s: float = Field(
        default=1.0, ge=0, description="our time gap to the target-lane leader, at least, s"
    )
    pass_return_gap_m: float = Field(
        default=6.0, ge=0, description="return to our lane once our rear is this far past it"
    )
    pass_abort_below_m: float = Field(
        default=1.2,
        ge=0,
        description="a gap that closes while we are less than this far over aborts the pass",
    )
    safe_stop_release_ticks: int = Field(default=10, ge=1)


@dataclass(frozen=True, slots=True)
class BehaviourTarget:
    """What the motion planner aims for: lateral offset `lateral_offset_m` from the reference
    path (m, left positive), speed `target_speed_mps`, and, when set, the rear-axle arc
    length `stop_s_m` (m) where the car must be standing."""

    behaviour: Behaviour
    lateral_offset_m: float
    target_speed_mps: float
    stop_s_m: float | None = None


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


class BehaviourPlanner:
    """The behaviour state machine of one car (module docstring)."""

    def __init__(self, config: BehaviourConfig | None = None, params: VehicleParams = IPACE):
        self.config = config if config is not None else BehaviourConfig()
        self.params = params
        self.state = Behaviour.LANE_FOLLOW
        self._failures = 0
        self._ok_streak = 0
        self._safe_stop_s: float | None = None
        self._yield_stop_s: float | None = None
        self._ev_last_seen_s: float | None = None
        self._committed_line: float | None = None
        self._merging = False
        # audio: when the caution began, since when the siren is lost or receding, whether a
        # rising siren may start a caution, and where the siren is heard from
        self._caution_since_s: float | None = None
        self._quiet_since_s: float | None = None
        self._audio_armed = True
        self._caution_hold_line: float | None = None
        self.audio_direction: str | None = None
        self._audio_rel_rad: float | None = None  # siren bearing from our heading, 0–π
        self._audio_stop_s: float | None = None  # stop at the kerb on audio alone
        self._last_detected_for_s = 0.0
        self._unheard_since_s: float | None = None
        self._ev_standing_since_s: float | None = None
        # double-parked pass: the standing lead's track id, since when it stands, and, once
        # the pass is under way, the arc length (m) of the blocker's front
        self._blocker_id: int | None = None
        self._blocker_since_s: float | None = None
        self._passing_front_s: float | None = None

    def _audio_caution(self, siren: SirenEvidence, time_s: float) -> bool:
        """Update the audio-only caution latch and return whether it is on.

        On: the siren has been detected for `audio_min_detect_s` and is approaching (level
        rising). Off: lost or receding for `audio_release_s`, or heard for
        `audio_caution_max_s` without an EV ever being seen (then re-armed only once the
        siren has gone unheard for `audio_rearm_s`). Disarmed after a seen EV has passed,
        for the same reason.
        """
        cfg = self.config
        heard = siren.detected
        self._last_detected_for_s = siren.detected_for_s if heard else 0.0
        if heard:
            self._unheard_since_s = None
        elif self._unheard_since_s is None:
            self._unheard_since_s = time_s
        trend = siren.level_trend_db_per_s
        rising = siren.approaching is True or (
            trend is not None and trend >= cfg.audio_rising_db_per_s
        )
        quiet = not heard or siren.approaching is False
        if quiet:
            self._quiet_since_s = time_s if self._quiet_since_s is None else self._quiet_since_s
        else:
            self._quiet_since_s = None
        quiet_long = (
            self._quiet_since_s is not None and time_s - self._quiet_since_s >= cfg.audio_release_s
        )
        if not self._audio_armed:
            # the same siren drops out now and then as it fades: wait for real silence
            if (
                self._unheard_since_s is not None
                and time_s - self._unheard_since_s >= cfg.audio_rearm_s
            ):
                self._audio_armed = True
            return False
        if self._caution_since_s is None:
            if heard and siren.detected_for_s >= cfg.audio_min_detect_s and rising:
                self._caution_since_s = time_s
            return self._caution_since_s is not None
        if quiet_long:
            self._caution_since_s = None
        elif time_s - self._caution_since_s >= cfg.audio_caution_max_s:
            self._caution_since_s = None
            self._audio_armed = False
        return self._caution_since_s is not None

    def _audio_direction(self, siren: SirenEvidence, road_heading: float) -> str | None:
        """Where the siren is heard from relative to our road: ahead, behind or side."""
        if siren.bearing_map_rad is None:
            return None
        rel = abs(math.remainder(siren.bearing_map_rad - road_heading, 2 * math.pi))
        self._audio_rel_rad = rel
        if rel <= self.config.audio_ahead_sector_rad:
            return "ahead"
        if rel >= math.pi - self.config.audio_behind_sector_rad:
            return "behind"
        return "side"

    def _ev_threat(
        self,
        path: ReferencePath,
        scene: FrenetScene,
        pred: Predictions,
        lane_w: float,
        ego_speed: float,
    ) -> tuple[bool, bool, float]:
        """(an EV demands yielding now, an EV with lights is seen at all, seconds until the
        nearest threatening EV reaches us — inf if none)."""
        cfg = self.config
        ev = np.flatnonzero(pred.flashing_lights)
        if len(ev) == 0:
            return False, False, np.inf
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
            return False, True, np.inf
        # time to meet: along the road from the closing speed; for one about to enter our
        # road, when the prediction first puts it there
        v_s = scene.agent_v_s[ev]
        closing = np.where(rel_s[:, 0] < 0, v_s - ego_speed, ego_speed - v_s)
        t_along = np.abs(rel_s[:, 0]) / np.maximum(closing, 0.5)
        first_in = np.argmax(corridor, axis=1) * pred.dt_s
        t_meet = np.where(entering, first_in, t_along)
        return True, True, float(np.min(t_meet[threat]))

    def step(
        self,
        ego: VehicleState,
        path: ReferencePath,
        scene: FrenetScene,
        predictions: Predictions,
        signals: Mapping[str, str],
        stop_request_s: float | None,
        time_s: float,
        last_plan_ok: bool = True,
        siren: SirenEvidence | None = None,
    ) -> BehaviourTarget:
        """Update the state machine and return this tick's target. `siren` is what the
        microphones hear this tick (None: no microphones, camera-only as before)."""
        cfg, p = self.config, self.params
        s_ego, d_ego, v = scene.ego_s, scene.ego_d, ego.speed
        lane_w = float(path.lane_width_at(s_ego))
        ahead = s_ego + np.linspace(0.0, cfg.speed_preview_m, 9)
        speed_limit = float(np.min(path.speed_limit_at(ahead)))
        # slow for bends: lateral acceleration v²·κ within the comfortable limit, capping
        # today's speed only as far as braking comfortably to each bend in time needs (less
        # a second of travel: the jerk-limited speed profile lags the target)
        kappa = np.maximum(np.abs(path.curvature_at(ahead)), 1e-6)
        bend_v2 = cfg.max_lateral_accel_mps2 / kappa
        reach_m = np.maximum(ahead - (s_ego + p.rear_axle_to_front_m + v * 1.0), 0.0)
        bend_cap = float(np.min(np.sqrt(bend_v2 + 2.0 * cfg.comfortable_decel_mps2 * reach_m)))
        speed_limit = min(speed_limit, bend_cap)
        comfortable_stop_s = s_ego + v * v / (2 * cfg.comfortable_decel_mps2)
        front_s = s_ego + p.rear_axle_to_front_m
        stops: list[tuple[Behaviour, float]] = []
        offset = 0.0
        name: Behaviour | None = None

        # --- safe stop after repeated planning failures
        self._failures = 0 if last_plan_ok else self._failures + 1
        self._ok_streak = self._ok_streak + 1 if last_plan_ok else 0
        if self._failures >= cfg.safe_stop_after_failures and self._safe_stop_s is None:
            self._safe_stop_s = comfortable_stop_s
        if self._safe_stop_s is not None and self._ok_streak >= cfg.safe_stop_release_ticks:
            self._safe_stop_s = None
        if self._safe_stop_s is not None:
            stops.append((Behaviour.SAFE_STOP, self._safe_stop_s))

        # --- stop lines
        next_line = None
        for line in path.stop_lines:
            if line.s_m - cfg.stop_line_margin_m > front_s - 0.5:
                next_line = line
                break
        line_stop_s = None
        if next_line is not None:
            state = signals.get(next_line.signal_id, "g")
            dist = next_line.s_m - cfg.stop_line_margin_m - front_s
            need = v * v / (2 * max(dist, 0.1))
            red, yellow = state in ("r", "R", "u"), state in ("y", "Y")
            committed = self._committed_line == next_line.s_m
            if (red and (need <= cfg.red_max_decel_mps2 or committed)) or (
                yellow and (need <= cfg.yellow_max_decel_mps2 or committed)
            ):
                line_stop_s = next_line.s_m - cfg.stop_line_margin_m - p.rear_axle_to_front_m
                self._committed_line = next_line.s_m
                stops.append((Behaviour.STOP_AT_LINE, line_stop_s))
            else:
                self._committed_line = None

        # --- emergency vehicles: heard (audio caution) and seen (yield)
        caution = False
        if siren is not None:
            caution = self._audio_caution(siren, time_s)
            if siren.bearing_map_rad is not None:
                heading = float(path.heading_at(s_ego))
                self.audio_direction = self._audio_direction(siren, heading)
            elif not siren.detected:
                self.audio_direction = None
                self._audio_rel_rad = None
        if not caution:
            self._caution_hold_line = None
        threat, ev_seen, t_meet = self._ev_threat(path, scene, predictions, lane_w, v)
        # how long we have stood still while yielding or stopped on audio (the resume dwell)
        holding = self._yield_stop_s is not None or self._audio_stop_s is not None
        if not holding or v > cfg.ev_release_below_mps:
            self._ev_standing_since_s = None
        elif self._ev_standing_since_s is None:
            self._ev_standing_since_s = time_s
        standing_for = (
            time_s - self._ev_standing_since_s if self._ev_standing_since_s is not None else -1.0
        )
        settled = standing_for >= cfg.ev_resume_dwell_s or v >= cfg.ev_release_above_mps
        if threat:
            self._ev_last_seen_s = time_s
            # seen: the camera-based yield takes over from a stop on audio, keeping its
            # stopping point when that is nearer (no creeping forward once at the kerb)
            audio_stop, self._audio_stop_s = self._audio_stop_s, None
            if self._yield_stop_s is None:
                # Be standing a moment before it arrives: brake harder than comfortable if
                # it is close (up to ev_max_decel_mps2). With time to spare, also take the
                # room needed to reach the kerb; otherwise standing still in time comes first
                # and we get as near the kerb as the stopping distance allows.
                needed = v / max(t_meet - cfg.ev_stop_before_s, 0.5)
                decel = float(np.clip(needed, cfg.comfortable_decel_mps2, cfg.ev_max_decel_mps2))
                brake_m = v * v / (2 * decel)
                if needed <= cfg.comfortable_decel_mps2:
                    lateral = abs(curb_offset_m(path, s_ego, cfg, p) - d_ego)
                    reach_kerb = float(
                        np.clip(cfg.pull_over_m_per_m * lateral, 3.0, cfg.ev_max_pull_over_m)
                    )
                    brake_m = max(brake_m, reach_kerb)
                stop = s_ego + brake_m
                if line_stop_s is not None:
                    stop = min(stop, line_stop_s)
                for line in path.stop_lines:
                    # never come to rest inside an intersection: stop short of the line
                    line_rear = line.s_m - cfg.stop_line_margin_m - p.rear_axle_to_front_m
                    if s_ego - 0.5 < line_rear < stop + p.length_m:
                        stop = min(stop, line_rear)
                if audio_stop is not None:
                    stop = min(stop, audio_stop)
                self._yield_stop_s = max(stop, s_ego)
        elif self._yield_stop_s is not None:
            # Seen and no longer a threat: it has passed or is moving away. Not seen: it may
            # only be hidden for a moment, so wait before rejoining the lane.
            gone_for = time_s - (
                self._ev_last_seen_s if self._ev_last_seen_s is not None else time_s
            )
            # Finish a stop that is nearly complete before moving off again (a car that
            # stops, then goes, reads clearly to everyone around it): `settled`.
            if (ev_seen or gone_for >= cfg.ev_lost_resume_s) and settled:
                self._yield_stop_s = None
                self._merging = False
                if ev_seen:
                    # the EV we heard has been seen go by: its fading siren is no new threat
                    self._caution_since_s = None
                    self._audio_armed = False
                    caution = False
        if self._yield_stop_s is None and not threat:
            self._update_audio_stop(caution, settled, path, s_ego, d_ego, v)
        if self._yield_stop_s is not None:
            stops.append((Behaviour.YIELD_TO_EV, self._yield_stop_s))
            offset = curb_offset_m(path, s_ego, cfg, p)
        elif self._audio_stop_s is not None:
            # heard approaching long enough: stop at the kerb without waiting to see it
            stops.append((Behaviour.EV_CAUTION, self._audio_stop_s))
            offset = curb_offset_m(path, s_ego, cfg, p)
            caution = True
        elif caution:
            # heard, not seen: slow down gently and keep toward the kerb; a siren from a side
            # street may cross at the next junction, so hold before its line (comfortably)
            speed_limit = min(speed_limit, max(cfg.caution_speed_mps, v - cfg.caution_slowdown_mps))
            offset = cfg.caution_kerb_fraction * curb_offset_m(path, s_ego, cfg, p)
            if self.audio_direction == "side" and next_line is not None:
                line_rear = next_line.s_m - cfg.stop_line_margin_m - p.rear_axle_to_front_m
                dist = line_rear - s_ego
                need = v * v / (2 * max(dist, 0.1))
                # once holding for a line, keep to it (braking may end above the comfortable
                # rate); a line first seen too close for a comfortable stop is crossed
                held = self._caution_hold_line == next_line.s_m
                if held or (
                    dist <= cfg.caution_junction_hold_m and need <= cfg.comfortable_decel_mps2
                ):
                    self._caution_hold_line = next_line.s_m
                    stops.append((Behaviour.EV_CAUTION, line_rear))

        # --- requested curbside stop
        if stop_request_s is not None and self._yield_stop_s is None:
            stop_rear = stop_request_s - p.rear_axle_to_center_m
            if stop_rear - s_ego <= cfg.curb_approach_m and stop_rear > s_ego - 1.0:
                stops.append((Behaviour.CURBSIDE_STOP, stop_rear))
                offset = curb_offset_m(path, stop_request_s, cfg, p)
                self._merging = False

        # --- leaving the kerb: parked beside the lane with nothing holding us there
        at_curb = d_ego < -AT_CURB_OFFSET_M and v < 2.0 and not caution
        if (not stops and at_curb) or (self._merging and not stops and not caution):
            if not self._merging and self._gap_behind(scene, predictions, lane_w):
                self._merging = True
            if self._merging:
                name = Behaviour.LEAVE_CURB
                if d_ego > -0.3:
                    self._merging = False
            else:
                name = Behaviour.LEAVE_CURB
                offset = d_ego
                stops.append((Behaviour.LEAVE_CURB, s_ego))

        # --- a double-parked vehicle ahead: pass it through the next lane when the gap allows
        passing = False
        if (
            cfg.pass_blockers
            and name is None
            and not caution
            and self._yield_stop_s is None
            and self._safe_stop_s is None
            and all(b != Behaviour.CURBSIDE_STOP for b, _ in stops)
        ):
            pass_offset, wait_stop = self._pass_blocker(path, scene, predictions, lane_w, v, time_s)
            if pass_offset is not None:
                offset, passing = pass_offset, True
            if wait_stop is not None:
                # hold back from it: room to steer out once the gap comes
                stops.append((Behaviour.CAR_FOLLOW, wait_stop))
        else:
            self._reset_pass()

        priority = [
            Behaviour.SAFE_STOP,
            Behaviour.YIELD_TO_EV,
            Behaviour.STOP_AT_LINE,
            Behaviour.CURBSIDE_STOP,
            Behaviour.LEAVE_CURB,
            Behaviour.EV_CAUTION,
            Behaviour.PASS_BLOCKER,
        ]
        stop_s = min((s for _, s in stops), default=None)
        active = {b for b, _ in stops}
        if passing:
            active.add(Behaviour.PASS_BLOCKER)
        if caution and self._yield_stop_s is None:
            # name the tick after the siren rather than a red line or the traffic ahead (a
            # safe stop or a requested kerbside stop still take precedence)
            priority = [
                Behaviour.SAFE_STOP,
                Behaviour.CURBSIDE_STOP,
                Behaviour.EV_CAUTION,
                Behaviour.STOP_AT_LINE,
                Behaviour.LEAVE_CURB,
            ]
            active.add(Behaviour.EV_CAUTION)
        for b in priority:
            if b in active:
                name = b
                break
        if name is None:
            name = (
                Behaviour.CAR_FOLLOW
                if self._has_lead(scene, predictions)
                else (Behaviour.LANE_FOLLOW)
            )
        self.state = name
        return BehaviourTarget(name, offset, speed_limit, stop_s)

    def _update_audio_stop(
        self,
        caution: bool,
        settled: bool,
        path: ReferencePath,
        s_ego: float,
        d_ego: float,
        v: float,
    ) -> None:
        """Start or end the stop at the kerb on audio alone (module docstring)."""
        cfg, p = self.config, self.params
        if self._audio_stop_s is not None:
            if not caution and settled:
                self._audio_stop_s = None
            return
        if not caution or self._caution_since_s is None or self._audio_rel_rad is None:
            return
        # approaching for long enough (the caution itself needs a rising siren; here it must
        # not have turned receding since), from where it can reach us on our road
        if self._quiet_since_s is not None or self._last_detected_for_s < cfg.audio_stop_detect_s:
            return
        if self._audio_rel_rad > cfg.audio_stop_side_max_rad and self.audio_direction != "behind":
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
        self._audio_stop_s = stop

    def _reset_pass(self) -> None:
        self._blocker_id = None
        self._blocker_since_s = None
        self._passing_front_s = None

    def _pass_blocker(
        self,
        path: ReferencePath,
        scene: FrenetScene,
        pred: Predictions,
        lane_w: float,
        v: float,
        time_s: float,
    ) -> tuple[float | None, float | None]:
        """The double-parked pass (module docstring): (lateral offset to drive at, or None to
        keep our lane; rear-axle arc length to wait at behind the blocker, or None)."""
        cfg, p = self.config, self.params
        s_ego, d_ego = scene.ego_s, scene.ego_d
        front, rear = s_ego + p.rear_axle_to_front_m, s_ego - p.rear_overhang_m
        # the next lane's centre (SUMO gives the lanes of an edge one width)
        target_d = lane_w
        vehicle = np.array([k in VEHICLE_KINDS for k in pred.kinds], dtype=bool)
        if self._passing_front_s is not None:
            if rear > self._passing_front_s + cfg.pass_return_gap_m:
                self._reset_pass()  # clear of it: back to our lane
                return None, None
            if d_ego >= cfg.pass_abort_below_m or self._pass_gap_ok(
                scene, pred, vehicle, target_d, lane_w, v, self._passing_front_s
            ):
                return target_d, None
            # the gap closed before we were well over: back behind the blocker and wait
            self._passing_front_s = None
        if len(pred) == 0:
            self._reset_pass()
            return None, None
        a_s, a_d = scene.agent_s[:, 0], scene.agent_d[:, 0]
        half_len = 0.5 * pred.length
        rear_edge = a_s - half_len
        in_lane = vehicle & (np.abs(a_d) < 0.5 * lane_w)
        ahead = in_lane & (rear_edge > front - 0.5) & (rear_edge - front < cfg.follow_range_m)
        if not np.any(ahead):
            self._reset_pass()
            return None, None
        i = int(np.argmin(np.where(ahead, rear_edge, np.inf)))
        if float(pred.speed[i]) >= cfg.blocker_speed_mps:
            self._reset_pass()
            return None, None
        track = int(pred.track_ids[i])
        if track != self._blocker_id or self._blocker_since_s is None:
            self._blocker_id, self._blocker_since_s = track, time_s
        if time_s - self._blocker_since_s < cfg.blocker_wait_s:
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
        if self._pass_gap_ok(scene, pred, vehicle, target_d, lane_w, v, b_front):
            self._passing_front_s = b_front
            return target_d, None
        wait = float(rear_edge[i]) - cfg.pass_standoff_m - p.rear_axle_to_front_m
        return None, (wait if wait > s_ego - 0.5 else None)

    def _pass_gap_ok(
        self,
        scene: FrenetScene,
        pred: Predictions,
        vehicle: npt.NDArray[np.bool_],
        target_d: float,
        lane_w: float,
        v: float,
        blocker_front_s: float,
    ) -> bool:
        """The gap in the lane at `target_d` takes us: its follower keeps a time gap of
        `pass_follower_headway_s` and a time to reach our rear of `pass_follower_ttc_s` at
        its tracked speed, its leader is `pass_leader_headway_s` ahead of us, nobody in it
        comes the other way, and nothing stands in it before we are past the blocker."""
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

    def _has_lead(self, scene: FrenetScene, pred: Predictions) -> bool:
        if len(pred) == 0:
            return False
        rel = scene.agent_s[:, 0] - scene.ego_s
        lateral = (
            np.abs(scene.agent_d[:, 0] - scene.ego_d)
            < 0.5 * (self.params.width_m + pred.width) + 0.3
        )
        ahead = (rel > 0) & (rel < self.config.follow_range_m)
        return bool(np.any(lateral & ahead))

    def _gap_behind(self, scene: FrenetScene, pred: Predictions, lane_w: float) -> bool:
        """No traffic in the lane (d ≈ 0) behind us arriving within the merge gap."""
        if len(pred) == 0:
            return True
        cfg = self.config
        in_lane = np.abs(scene.agent_d[:, 0]) < 0.5 * lane_w + 0.5
        gap = scene.ego_s - scene.agent_s[:, 0] - 0.5 * pred.length
        behind = gap > -self.params.length_m
        closing = np.maximum(scene.agent_v_s, 0.1)
        too_close = (gap < cfg.merge_gap_min_m) | (gap / closing < cfg.merge_gap_time_s)
        return not bool(np.any(in_lane & behind & too_close))
