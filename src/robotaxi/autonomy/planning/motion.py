"""Motion planning in the style of PDM-Closed (Dauner et al., 2023).

Candidates are lateral offsets from the reference path × IDM speed profiles toward the
behaviour's target speed (fractions of it, plus a comfortable-stop profile). Every candidate
is simulated in closed loop — the pure-pursuit law of `control` steering toward its offset
path; IDM, blended with the constant-acceleration heuristic as in the ACC model (Kesting et
al., 2010) so a car cutting in at our speed is not met with full braking, setting its
acceleration against the leaders in its corridor (predicted agents: one driving our way,
also if about to enter the corridor within `CONFLICT_LOOKAHEAD_S`; one crossing, oncoming
or stopped where it will be around the time we could get there); a constant-deceleration
stop at the behaviour's stop point; the acceleration jerk-limited (`ROLLOUT_JERK_MPS3`)
except in an emergency — through the kinematic bicycle model, all B candidates at once as
B×N arrays. Stops other than at stop lines are moved on to where a comfortable jerk-limited
stop can end (`soft_stop_target`). The roll-outs (B×(N+1)×k, columns `TrajectoryColumn`)
are then scored as in nuPlan:

    score = Π multipliers × Σ wᵢ·sᵢ / Σ wᵢ

multipliers: no at-fault collision with the predictions (nuPlan's blame rules: being run
into from behind, while standing, or from the side while keeping our lane is not at fault),
drivable area (footprint within the kerbs), driving direction, stop-point compliance;
weighted terms: progress, time to collision, speed limit, comfort, closeness to the
behaviour's lateral offset, and not being run into by a follower's prediction. The best
candidate is kept. If none scores above zero, the roll-out (an emergency-brake one
included) whose first at-fault contact comes latest is kept; the plan is marked failed (the
behaviour layer turns repeated failures into a safe stop) only if that contact is sooner
than `EMERGENCY_HORIZON_S`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from robotaxi.autonomy.control import (
    DEFAULT_GAINS,
    ControllerGains,
    lookahead_distance,
    pure_pursuit_steer,
    steer_rate_toward,
)
from robotaxi.autonomy.planning.behaviour import Behaviour, BehaviourTarget, FrenetScene
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import Predictions
from robotaxi.autonomy.vehicle import IPACE, N_COLUMNS, VehicleParams, VehicleState, _advance
from robotaxi.core.geometry import boxes_overlap
from robotaxi.core.types import FloatArray, TrajectoryColumn

C = TrajectoryColumn

# candidate set
LATERAL_DELTAS_M = (0.0, -0.5, 0.5, -1.0, 1.0)
# 0.0 is the "stop comfortably" profile
SPEED_FRACTIONS = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)

# IDM parameters (Treiber et al.), for the ego's speed profiles
IDM_ACCEL_MPS2 = 1.5
IDM_DECEL_MPS2 = 2.5
IDM_TIME_HEADWAY_S = 1.5
IDM_MIN_GAP_M = 2.0
# the ACC model's coolness factor (Kesting et al. 2010)
ACC_COOLNESS = 0.99
# stop points: braking starts once it takes this deceleration; closer than STOP_SNAP_M, stop
STOP_TRIGGER_DECEL_MPS2 = 1.5
STOP_SNAP_M = 0.5
# agents about to enter a candidate's corridor within this time already lead it
CONFLICT_LOOKAHEAD_S = 2.0
# a standing leader (crossing, oncoming, stopped) that leaves our corridor this long before
# we could get there does not lead (s)
CONFLICT_AFTER_S = 1.0

# Speed profiles are jerk-limited to this (m/s³; nuPlan's comfort limit is 4.13), unless
# they need to brake harder than JERK_FREE_BRAKE_MPS2 (m/s²): then it is an emergency.
ROLLOUT_JERK_MPS3 = 3.5
ROLLOUT_RELEASE_JERK_MPS3 = 10.0
JERK_FREE_BRAKE_MPS2 = 6.5
# Stops the behaviour asks for (except at stop lines, which are law) are moved on, if need
# be, to where a jerk-limited stop at SOFT_STOP_DECEL_MPS2 from the present state ends:
# braking for a kerbside or yield stop never has to be abrupt.
SOFT_STOP_DECEL_MPS2 = 3.0

# roll-outs are projected onto the path every this many steps, interpolated in between
ROLLOUT_PROJECTION_STRIDE = 4

# scoring: multipliers are 0/1; weights of the weighted average (nuPlan's values where they
# exist: progress 5, TTC 5, speed limit 4, comfort 2)
WEIGHT_PROGRESS = 5.0
WEIGHT_TTC = 5.0
WEIGHT_SPEED_LIMIT = 4.0
WEIGHT_COMFORT = 2.0
WEIGHT_LATERAL_TARGET = 3.0
# not being run into from behind by a follower's prediction (ours, not nuPlan's)
WEIGHT_REAR_CLEAR = 2.0
TTC_THRESHOLD_S = 0.95
TTC_PROBES_S = (0.5, 0.95)
MIN_PROGRESS_FOR_RATIO_M = 1.0
SPEED_LIMIT_TOLERANCE_MPS = 2.0
LATERAL_TARGET_SCALE_M = 1.0
DRIVABLE_TOLERANCE_M = 0.1
STOP_OVERSHOOT_TOLERANCE_M = 0.5
COLLISION_MARGIN_M = 0.2
# below this speed a contact is the other road user's doing (nuPlan's "stopped ego")
STOPPED_EGO_MPS = 0.05
# the footprint may poke this far over the lane's edge and still count as in its lane (m)
IN_LANE_TOLERANCE_M = 0.3
# When no candidate is free of at-fault contacts, the fallback keeps the roll-out whose
# first contact comes latest (the emergency brake among them). It is a real emergency — the
# plan fails and the behaviour layer stops the car — only if that contact is sooner than
# this; a predicted contact further ahead is driven on and replanned at the next tick (a
# constant-velocity prediction that far out is often cross traffic that will have cleared).
EMERGENCY_HORIZON_S = 2.0
# comfort limits, nuPlan's: longitudinal accel in [-4.05, 2.40] m/s², |lateral accel| 4.89,
# |jerk| 4.13 m/s³, |yaw rate| 0.95 rad/s
COMFORT_MAX_ACCEL = 2.40
COMFORT_MIN_ACCEL = -4.05
COMFORT_MAX_LAT_ACCEL = 4.89
COMFORT_MAX_JERK = 4.13
COMFORT_MAX_YAW_RATE = 0.95


@dataclass(frozen=True)
class MotionPlan:
    """The chosen roll-out `trajectory` ((N+1)×k), all `candidates` (B×(N+1)×k) with their
    `scores` (B), the chosen index, and `ok` (False: emergency-brake fallback)."""

    trajectory: FloatArray
    candidates: FloatArray
    scores: FloatArray
    chosen: int
    ok: bool
    lateral_offsets_m: FloatArray
    speed_fractions: FloatArray


def _at_fault_hits(
    ego_c: FloatArray,
    ego_h: FloatArray,
    params: VehicleParams,
    agent_c: FloatArray,
    agent_h: FloatArray,
    agent_l: FloatArray,
    agent_w: FloatArray,
    ego_heading_err: FloatArray,
    margin: float,
    ego_speed: FloatArray | None = None,
    ego_in_lane: npt.NDArray[np.bool_] | None = None,
    struck_out: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.bool_]:
    """B×K booleans: at step k the ego box (B×K) first touches some agent (M×K) and is to
    blame.

    Blame is decided at the first contact of each candidate–agent pair, with nuPlan's
    at-fault rules (even if the agent's constant-velocity prediction later drives on through
    our footprint):

    - rear: the agent's centre is behind the ego's centre (more than a quarter length)
      while the ego keeps to the lane direction — it ran into us;
    - stopped ego (`ego_speed` below `STOPPED_EGO_MPS`): it ran into a standing car;
    - lateral: the boxes touch side by side (they overlap less across than along the
      ego's axis), the agent is not ahead of the ego's centre and the ego keeps inside its
      lane (`ego_in_lane`) — it drove into our side, e.g. cutting in from the next lane.

    Every other first contact (front, or lateral while we straddle lanes) is ours. If
    given, `struck_out` (B×K) is set where a rear contact begins.
    """
    b, k = ego_h.shape
    m = agent_h.shape[0]
    if m == 0:
        return np.zeros((b, k), dtype=bool)
    reach = 0.5 * np.hypot(params.length_m, params.width_m) + 0.5 * np.hypot(agent_l, agent_w)
    dx = agent_c[None, :, :, 0] - ego_c[:, None, :, 0]
    dy = agent_c[None, :, :, 1] - ego_c[:, None, :, 1]
    near = dx * dx + dy * dy < (reach[None, :, None] + margin) ** 2
    bi, mi, ki = np.nonzero(near)
    hits = np.zeros((b, k), dtype=bool)
    if len(bi) == 0:
        return hits
    overlap = boxes_overlap(
        ego_c[bi, ki],
        ego_h[bi, ki],
        params.length_m + 2 * margin,
        params.width_m + 2 * margin,
        agent_c[mi, ki],
        agent_h[mi, ki],
        agent_l[mi],
        agent_w[mi],
    )
    bi, mi, ki = bi[overlap], mi[overlap], ki[overlap]
    if len(bi) == 0:
        return hits
    # first contact of each (candidate, agent) pair: np.nonzero lists k fastest-varying
    # last, so order by pair then step and keep the first row of each pair
    order = np.lexsort((ki, mi, bi))
    bi, mi, ki = bi[order], mi[order], ki[order]
    first = np.ones(len(bi), dtype=bool)
    first[1:] = (bi[1:] != bi[:-1]) | (mi[1:] != mi[:-1])
    bi, mi, ki = bi[first], mi[first], ki[first]
    h = ego_h[bi, ki]
    ddx, ddy = dx[bi, mi, ki], dy[bi, mi, ki]
    rel_x = ddx * np.cos(h) + ddy * np.sin(h)
    keeps_direction = np.abs(ego_heading_err[bi, ki]) < 0.15
    not_ours = (rel_x < -0.25 * params.length_m) & keeps_direction
    if struck_out is not None:
        struck_out[bi[not_ours], ki[not_ours]] = True
    if ego_speed is not None:
        not_ours |= ego_speed[bi, ki] < STOPPED_EGO_MPS
    if ego_in_lane is not None:
        # overlap depth along and across the ego's axis, as if the boxes were aligned: the
        # smaller one is the side that touched
        rel_y = -ddx * np.sin(h) + ddy * np.cos(h)
        depth_x = 0.5 * (params.length_m + agent_l[mi]) - np.abs(rel_x)
        depth_y = 0.5 * (params.width_m + agent_w[mi]) - np.abs(rel_y)
        side_on = (depth_y < depth_x) & (rel_x <= 0.0)
        not_ours |= side_on & keeps_direction & ego_in_lane[bi, ki]
    hits[bi[~not_ours], ki[~not_ours]] = True
    return hits


def jerk_limited_stop_distance_m(
    speed_mps: float, accel_mps2: float, jerk_mps3: float, decel_mps2: float
) -> float:
    """Distance (m) to stand still from `speed_mps` and `accel_mps2` when the deceleration
    ramps at `jerk_mps3` to `decel_mps2` and is then held (closed form); braking harder
    than that already is eased to `decel_mps2` at once."""
    if speed_mps <= 0.0:
        return 0.0
    a0 = max(accel_mps2, -decel_mps2)
    t1 = max(a0 + decel_mps2, 0.0) / jerk_mps3
    # the speed may run out during the ramp: v + a0·t − J·t²/2 = 0
    disc = a0 * a0 + 2.0 * jerk_mps3 * speed_mps
    t_zero = (a0 + np.sqrt(disc)) / jerk_mps3
    if t_zero <= t1:
        t = t_zero
        return float(speed_mps * t + 0.5 * a0 * t * t - jerk_mps3 * t**3 / 6.0)
    v1 = speed_mps + a0 * t1 - 0.5 * jerk_mps3 * t1 * t1
    d1 = speed_mps * t1 + 0.5 * a0 * t1 * t1 - jerk_mps3 * t1**3 / 6.0
    return float(d1 + v1 * v1 / (2.0 * decel_mps2))


def soft_stop_target(
    ego: VehicleState, scene: FrenetScene, target: BehaviourTarget
) -> BehaviourTarget:
    """`target` with its stop moved on to where a comfortable jerk-limited stop can end, if
    it is nearer (see `SOFT_STOP_DECEL_MPS2`); stop-line stops are kept."""
    if target.stop_s_m is None or target.behaviour == Behaviour.STOP_AT_LINE:
        return target
    reach = scene.ego_s + jerk_limited_stop_distance_m(
        ego.speed, ego.accel, ROLLOUT_JERK_MPS3, SOFT_STOP_DECEL_MPS2
    )
    if target.stop_s_m >= reach:
        return target
    return replace(target, stop_s_m=reach)


class MotionPlanner:
    """PDM-Closed-style planner (module docstring). Stateless between ticks."""

    def __init__(
        self,
        params: VehicleParams = IPACE,
        horizon_s: float = 4.0,
        dt_s: float = 0.1,
        lateral_deltas_m: tuple[float, ...] = LATERAL_DELTAS_M,
        speed_fractions: tuple[float, ...] = SPEED_FRACTIONS,
        gains: ControllerGains = DEFAULT_GAINS,
    ) -> None:
        self.params = params
        self.horizon_s = horizon_s
        self.dt_s = dt_s
        self.n_steps = round(horizon_s / dt_s)
        self.lateral_deltas_m = lateral_deltas_m
        self.speed_fractions = speed_fractions
        self.gains = gains
        # per-candidate multipliers of the last scoring, for diagnostics and rendering, and
        # the time (s) of each candidate's first at-fault contact (inf: none)
        self.last_multipliers: dict[str, npt.NDArray[np.bool_]] = {}
        self.last_first_hit_s: FloatArray = np.zeros(0)
        self.last_weighted: FloatArray = np.zeros(0)

    def candidate_grid(
        self, path: ReferencePath, scene: FrenetScene, target: BehaviourTarget
    ) -> tuple[FloatArray, FloatArray]:
        """Lateral offsets (m) and speed fractions of the B candidates, flat arrays."""
        p = self.params
        right = float(path.right_room_at(scene.ego_s))
        left = float(path.left_room_at(scene.ego_s))
        lo, hi = -right + 0.5 * p.width_m, left - 0.5 * p.width_m
        offsets = np.clip(
            target.lateral_offset_m + np.asarray(self.lateral_deltas_m), lo, max(lo, hi)
        )
        offsets = np.unique(np.round(offsets, 3))
        # the behaviour's own target first, so ties go to it
        order = np.argsort(np.abs(offsets - target.lateral_offset_m), kind="stable")
        offsets = offsets[order]
        lat, frac = np.meshgrid(offsets, np.asarray(self.speed_fractions), indexing="ij")
        return lat.ravel(), frac.ravel()

    def rollout(
        self,
        ego: VehicleState,
        path: ReferencePath,
        scene: FrenetScene,
        predictions: Predictions,
        target: BehaviourTarget,
        lateral_offsets_m: FloatArray,
        speed_fractions: FloatArray,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Closed-loop roll-out of B candidates: returns states B×(N+1)×k and the Frenet
        (s, d) of their rear axles, B×(N+1) each."""
        p, dt, n = self.params, self.dt_s, self.n_steps
        b = len(lateral_offsets_m)
        out = np.empty((b, n + 1, N_COLUMNS))
        out[:, 0] = ego.as_row()
        x = np.full(b, ego.x)
        a_prev = np.full(b, ego.accel)
        y = np.full(b, ego.y)
        h = np.full(b, ego.heading)
        v = np.full(b, ego.speed)
        st = np.full(b, ego.steer_rad)
        s = np.full(b, scene.ego_s)
        d = np.full(b, scene.ego_d)
        v0 = np.maximum(speed_fractions * target.target_speed_mps, 0.5)
        m = len(predictions)
        has_pred = m > 0 and predictions.xy.shape[1] >= n + 1
        # Per-candidate stop points: the behaviour's, and for the "stop" speed profile
        # (fraction 0) a comfortable stop from the current speed — the candidate that waits,
        # e.g. before crossing an oncoming lane, instead of creeping into the conflict.
        stop_s = np.full(b, np.inf if target.stop_s_m is None else target.stop_s_m)
        comfortable_stop = scene.ego_s + ego.speed**2 / (2 * IDM_DECEL_MPS2) + STOP_SNAP_M
        stop_s = np.where(speed_fractions <= 0.0, np.minimum(stop_s, comfortable_stop), stop_s)
        front = p.rear_axle_to_front_m
        half_w = 0.5 * p.width_m
        # IDM leaders, as a table of "rear edges" (m of arc length) per step, candidate and
        # agent (T×B×M, contiguous per step); with no agent, a single column at infinity.
        lead_edge = np.full((n + 1, b, 1), np.inf)
        lead_speed = np.zeros(1)
        lead_half_len = np.zeros((1, 1))
        standing = np.zeros(0, dtype=np.intp)
        standing_edge = np.zeros((b, 0, n + 1))
        if has_pred:
            # Only agents that can ever share a candidate's corridor ahead can lead it.
            reach = half_w + 0.5 * float(predictions.width.max()) + COLLISION_MARGIN_M + 0.5
            d_lo = min(float(lateral_offsets_m.min()), scene.ego_d) - reach
            d_hi = max(float(lateral_offsets_m.max()), scene.ego_d) + reach
            a_s_all, a_d_all = scene.agent_s[:, : n + 1], scene.agent_d[:, : n + 1]
            relevant = np.any(
                (a_d_all >= d_lo) & (a_d_all <= d_hi) & (a_s_all > scene.ego_s - 10.0), axis=1
            )
            has_pred = bool(np.any(relevant))
        if has_pred:
            lead_s, lead_d = a_s_all[relevant], a_d_all[relevant]
            corridor_half_w = half_w + 0.5 * predictions.width[relevant] + COLLISION_MARGIN_M
            half_len = 0.5 * predictions.length[relevant]
            speed_all = predictions.speed[relevant]
            v_along = scene.agent_v_s[relevant]
            # An agent crossing or coming toward us leads as a standing obstacle where it
            # will cross; one driving our way leads at its speed along the path.
            agent_speed = np.where(v_along > 0.7 * speed_all, v_along, 0.0)
            # Occupancy of each candidate offset's corridor (O×M×T rear edges, inf where the
            # agent is outside it).
            offsets, which = np.unique(lateral_offsets_m, return_inverse=True)
            inside = np.abs(lead_d[None] - offsets[:, None, None]) < corridor_half_w[None, :, None]
            rear_edge = np.where(inside, lead_s[None] - half_len[None, :, None], np.inf)
            # One driving our way leads from the nearest place it occupies during
            # [k, k + CONFLICT_LOOKAHEAD_S] (a car cutting in leads before it is in).
            ahead_edge = rear_edge.copy()
            for w in range(1, round(CONFLICT_LOOKAHEAD_S / dt) + 1):
                ahead_edge[..., :-w] = np.minimum(ahead_edge[..., :-w], rear_edge[..., w:])
            # Standing leaders (crossing, oncoming, stopped) are timed in the loop below.
            standing = np.flatnonzero(agent_speed == 0.0)
            ahead_edge[:, standing] = np.inf
            standing_edge = np.ascontiguousarray(rear_edge[which][:, standing])  # B×S×T
            agent_edge = ahead_edge[which].transpose(2, 0, 1)  # T×B×M
            lead_edge = agent_edge
            lead_speed = agent_speed
            lead_half_len = half_len[None, :]
        lead_edge = np.ascontiguousarray(lead_edge)
        rows = np.arange(b)
        idm_brake = 2 * np.sqrt(IDM_ACCEL_MPS2 * IDM_DECEL_MPS2)
        hist: list[tuple[FloatArray, ...]] = []
        step_t = np.arange(n + 1) * dt
        jerk_step, release_step = ROLLOUT_JERK_MPS3 * dt, ROLLOUT_RELEASE_JERK_MPS3 * dt
        path_x, path_y = np.ascontiguousarray(path.xy[:, 0]), np.ascontiguousarray(path.xy[:, 1])
        for k in range(n):
            # --- IDM leader: the nearest leader ahead in the candidate's corridor
            g = lead_edge[k] - (s + front)[:, None]
            if len(standing):
                # A standing leader blocks where it is around the time we would get there:
                # no sooner than at IDM's full acceleration, no later than at the present
                # speed (capped by the horizon), widened by CONFLICT_AFTER_S before and
                # CONFLICT_LOOKAHEAD_S after. So the car brakes early for a pedestrian who
                # will be on the crossing when it arrives, and not for cross traffic that
                # will have cleared it; standing still, any later occupancy holds it.
                edge = standing_edge[:, :, k:]
                to_edge = np.maximum(edge - (s + front)[:, None, None], 0.0)
                vv = v[:, None, None]
                t_early = (np.sqrt(vv * vv + 2 * IDM_ACCEL_MPS2 * to_edge) - vv) / IDM_ACCEL_MPS2
                t_late = to_edge / np.maximum(vv, 0.1)
                tj = step_t[: n + 1 - k]
                t_rest = (n - k) * dt
                met = (tj >= np.minimum(t_early, t_rest) - CONFLICT_AFTER_S) & (
                    tj <= t_late + CONFLICT_LOOKAHEAD_S
                )
                g[:, standing] = np.min(np.where(met, edge, np.inf), axis=2) - (s + front)[:, None]
            g[g <= -lead_half_len] = np.inf  # already beside or behind our front
            j = np.argmin(g, axis=1)
            gap = g[rows, j]
            dv = v - lead_speed[j]
            brake_term = v * dv / idm_brake
            s_star = IDM_MIN_GAP_M + np.maximum(0.0, v * IDM_TIME_HEADWAY_S + brake_term)
            # no leader: gap = inf, and the interaction term is exactly 0
            interaction = (s_star / np.maximum(gap, 0.1)) ** 2
            # above the desired speed, slow down no harder than comfortable (as in the
            # "improved IDM"); the interaction term still brakes as hard as needed
            free = np.maximum(IDM_ACCEL_MPS2 * (1.0 - (v / v0) ** 4), -IDM_DECEL_MPS2)
            accel = free - IDM_ACCEL_MPS2 * interaction
            # IDM overreacts to a gap that is small but not closing (a car cutting in ahead
            # at our speed: it would brake at full force and stop the car for nothing, in
            # front of whoever follows). The ACC model (Kesting, Treiber & Helbing 2010)
            # blends it with the constant-acceleration heuristic — the braking that keeps
            # the gap from closing, −(v − v_lead)²/(2·gap) — so the car brakes about IDM_DECEL
            # more than the situation needs, never a standing obstacle's full IDM force.
            closing = np.maximum(dv, 0.0)
            cah = closing * closing / (-2.0 * np.maximum(gap, 0.1))
            over = accel < cah
            if over.any():
                blended = (1.0 - ACC_COOLNESS) * accel + ACC_COOLNESS * (
                    cah + IDM_DECEL_MPS2 * np.tanh((accel - cah) / IDM_DECEL_MPS2)
                )
                accel = np.where(over, blended, accel)
            # Stop points: brake at the constant deceleration that ends exactly there, once
            # that deceleration reaches STOP_TRIGGER_DECEL_MPS2 (IDM would only creep up to a
            # standing obstacle, slowly, and stop short of it).
            to_stop = stop_s - s
            needed = v * v / (2.0 * np.maximum(to_stop, 0.05))
            braking = (needed >= STOP_TRIGGER_DECEL_MPS2) | (to_stop < STOP_SNAP_M)
            accel = np.where(braking, np.minimum(accel, -needed), accel)
            # Jerk-limited: the acceleration moves from the last one by at most
            # ROLLOUT_JERK_MPS3, so braking and pulling away set in smoothly — unless the
            # profile asks for harder braking than JERK_FREE_BRAKE_MPS2, an emergency. A
            # brake no longer needed is let off faster (ROLLOUT_RELEASE_JERK_MPS3): holding
            # it on would stop the car for nothing, in front of whoever follows.
            rise = np.where(a_prev < 0.0, release_step, jerk_step)
            limited = np.minimum(np.maximum(accel, a_prev - jerk_step), a_prev + rise)
            accel = np.where(accel < -JERK_FREE_BRAKE_MPS2, accel, limited)
            # --- pure pursuit toward the candidate's offset path
            # (the path's pose at s + look-ahead, by interpolation: the polyline's own
            # piecewise-linear geometry, in fewer array operations than `pose_at`)
            s_ahead = s + lookahead_distance(v, self.gains)
            th = path.heading_at(s_ahead)
            tx = np.interp(s_ahead, path.s, path_x) - lateral_offsets_m * np.sin(th)
            ty = np.interp(s_ahead, path.s, path_y) + lateral_offsets_m * np.cos(th)
            steer_des = pure_pursuit_steer(x, y, h, tx, ty, p)
            rate = steer_rate_toward(st, steer_des, dt, self.gains, p)
            x, y, h, v_new, st, a_applied = _advance(x, y, h, v, st, accel, rate, dt, p)
            a_prev = a_applied
            # Frenet kinematics, integrated (cheaper than projecting every state):
            # ṡ = v·cos(e)/(1 − κ·d), ḋ = v·sin(e)
            err = h - path.heading_at(s)
            ds = 0.5 * (v + v_new) * dt
            s = s + ds * np.cos(err) / np.maximum(1.0 - path.curvature_at(s) * d, 0.1)
            d = d + ds * np.sin(err)
            v = v_new
            hist.append((x, y, h, v, a_applied, st))
        cols = (C.X, C.Y, C.HEADING, C.SPEED, C.ACCEL, C.STEER)
        for col, series in zip(cols, zip(*hist, strict=True), strict=True):
            out[:, 1:, col] = np.stack(series, axis=1)
        out[:, 1:, C.T] = np.arange(1, n + 1) * dt
        # The integrated Frenet coordinates drift on curved roads (no curvature term); the
        # scores need exact ones, so project the roll-outs (sub-sampled), near the ego.
        s_exact, d_exact = path.project_series(
            out[..., C.X],
            out[..., C.Y],
            ROLLOUT_PROJECTION_STRIDE,
            (scene.ego_s - 10.0, scene.ego_s + 200.0),
        )
        return out, s_exact, d_exact

    def emergency_brake(
        self, ego: VehicleState, path: ReferencePath, scene: FrenetScene
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Full braking, wheel held: states 1×(N+1)×k and Frenet (s, d) 1×(N+1)."""
        p, dt, n = self.params, self.dt_s, self.n_steps
        out = np.empty((1, n + 1, N_COLUMNS))
        out[:, 0] = ego.as_row()
        x, y, h = np.array([ego.x]), np.array([ego.y]), np.array([ego.heading])
        v, st = np.array([ego.speed]), np.array([ego.steer_rad])
        for k in range(n):
            x, y, h, v, st, a = _advance(
                x, y, h, v, st, np.array([-p.max_brake_mps2]), np.zeros(1), dt, p
            )
            out[0, k + 1] = [(k + 1) * dt, x[0], y[0], h[0], v[0], a[0], st[0]]
        s, d = path.project(
            out[0, :, C.X], out[0, :, C.Y], s_window=(scene.ego_s - 20.0, scene.ego_s + 100.0)
        )
        return out, s[None], d[None]

    def score(
        self,
        candidates: FloatArray,
        s_hist: FloatArray,
        d_hist: FloatArray,
        path: ReferencePath,
        predictions: Predictions,
        target: BehaviourTarget,
        lateral_offsets_m: FloatArray | None = None,
    ) -> FloatArray:
        """Scores (B) of roll-outs B×(N+1)×k; see the module docstring. With the candidates'
        `lateral_offsets_m`, the lateral term also weighs how far each aims from the
        behaviour's offset, so that when the roll-outs end alike (as in a stop) the choice
        does not flip between neighbouring offsets from tick to tick."""
        p, dt = self.params, self.dt_s
        b, t, _ = candidates.shape
        x, y, h = candidates[..., C.X], candidates[..., C.Y], candidates[..., C.HEADING]
        v, a = candidates[..., C.SPEED], candidates[..., C.ACCEL]
        off = p.rear_axle_to_center_m
        ego_c = np.stack([x + off * np.cos(h), y + off * np.sin(h)], axis=-1)
        path_h = path.heading_at(s_hist)
        head_err = (h - path_h + np.pi) % (2 * np.pi) - np.pi
        # lateral offsets of the footprint's four corners (B×T×4)
        lx = np.array([p.rear_axle_to_front_m, -p.rear_overhang_m])
        corner_d = d_hist[..., None, None] + (
            lx[:, None] * np.sin(head_err)[..., None, None]
            + np.array([-0.5, 0.5]) * p.width_m * np.cos(head_err)[..., None, None]
        )
        corner_d = corner_d.reshape(b, t, 4)
        half_lane = 0.5 * path.lane_width_at(s_hist)
        in_lane = np.max(np.abs(corner_d), axis=2) <= half_lane + IN_LANE_TOLERANCE_M
        first_hit_s = np.full(b, np.inf)

        # --- multipliers
        m = len(predictions)
        if m and predictions.xy.shape[1] >= t:
            # Agents that never come within reach of any candidate (plus the TTC look-ahead)
            # cannot collide with one; leaving them out keeps the pairwise tests small.
            reach = (
                float(np.max(np.hypot(x - x[:, :1], y - y[:, :1])))
                + float(v.max()) * max(TTC_PROBES_S)
                + np.hypot(p.length_m, p.width_m)
                + np.hypot(predictions.length, predictions.width)
            )
            gap0 = np.hypot(
                predictions.xy[:, :t, 0] - ego_c[0, 0, 0], predictions.xy[:, :t, 1] - ego_c[0, 0, 1]
            )
            speed_a = predictions.speed * max(TTC_PROBES_S)
            near = np.any(gap0 <= (reach + speed_a)[:, None], axis=1)
            a_c = predictions.xy[near, :t]
            a_h = predictions.heading[near, :t]
            a_len, a_wid = predictions.length[near], predictions.width[near]
            a_xy_full = predictions.xy[near, :t]
            # the present (column 0) cannot be changed by any candidate
            struck = np.zeros((b, t - 1), dtype=bool)
            hits = _at_fault_hits(
                ego_c[:, 1:],
                h[:, 1:],
                p,
                a_c[:, 1:],
                a_h[:, 1:],
                a_len,
                a_wid,
                head_err[:, 1:],
                0.0,
                v[:, 1:],
                in_lane[:, 1:],
                struck,
            )
            no_collision = ~np.any(hits, axis=1)
            # A follower predicted to run into us: not our fault, but braking that invites
            # it is worse than driving on, the sooner the worse.
            was_struck = np.any(struck, axis=1)
            rear_score = np.where(was_struck, (np.argmax(struck, axis=1) + 1) / (t - 1), 1.0)
            first_hit_s = np.where(no_collision, np.inf, (np.argmax(hits, axis=1) + 1) * dt)
            # TTC: ego and agents carried on at their current velocity for a short while
            ttc_ok = np.ones(b, dtype=bool)
            a_vel = np.diff(a_xy_full, axis=1) / dt
            a_vel = np.concatenate([a_vel, a_vel[:, -1:]], axis=1)
            moving = v > 0.5
            for probe in TTC_PROBES_S:
                e_c = ego_c + probe * v[..., None] * np.stack([np.cos(h), np.sin(h)], axis=-1)
                hits = _at_fault_hits(
                    e_c[:, 1::2],
                    h[:, 1::2],
                    p,
                    (a_c + probe * a_vel)[:, 1::2],
                    a_h[:, 1::2],
                    a_len,
                    a_wid,
                    head_err[:, 1::2],
                    0.0,
                )
                ttc_ok &= ~np.any(hits & moving[:, 1::2], axis=1)
        else:
            no_collision = np.ones(b, dtype=bool)
            ttc_ok = np.ones(b, dtype=bool)
            rear_score = np.ones(b)
        right = path.right_room_at(s_hist)[..., None]
        left = path.left_room_at(s_hist)[..., None]
        # How far the footprint pokes out of the drivable area; a candidate is compliant if
        # it stays within tolerance or at least never makes the present excess worse (the
        # car may already stand a little over the kerb line and must be able to leave).
        excess = np.maximum(
            np.max(-right - corner_d, axis=2), np.max(corner_d - left, axis=2)
        ).clip(min=0.0)
        drivable = np.max(excess, axis=1) <= np.maximum(DRIVABLE_TOLERANCE_M, excess[:, 0] + 0.02)
        direction_ok = np.all(np.abs(head_err) < 0.5 * np.pi, axis=1)
        if target.stop_s_m is not None:
            stop_ok = (
                s_hist.max(axis=1)
                <= max(target.stop_s_m, s_hist[0, 0]) + STOP_OVERSHOOT_TOLERANCE_M
            )
        else:
            stop_ok = np.ones(b, dtype=bool)
        multiplier = (no_collision & drivable & direction_ok & stop_ok).astype(np.float64)
        self.last_multipliers = {
            "no_at_fault_collision": no_collision,
            "drivable_area": drivable,
            "driving_direction": direction_ok,
            "stop_point": stop_ok,
        }
        self.last_first_hit_s = first_hit_s

        # --- weighted terms
        progress = s_hist[:, -1] - s_hist[:, 0]
        best_progress = np.max(np.where(multiplier > 0, progress, -np.inf), initial=-np.inf)
        if best_progress > MIN_PROGRESS_FOR_RATIO_M:
            progress_score = np.clip(progress / best_progress, 0.0, 1.0)
        else:
            progress_score = np.ones(b)
        limit = path.speed_limit_at(s_hist)
        over = np.max(np.maximum(v - limit, 0.0), axis=1)
        speed_score = np.clip(1.0 - over / SPEED_LIMIT_TOLERANCE_MPS, 0.0, 1.0)
        yaw_rate = np.diff(h, axis=1) / dt
        jerk = np.diff(a[:, 1:], axis=1) / dt
        lat_acc = v[:, 1:] * yaw_rate
        comfortable = (
            np.all((a[:, 1:] <= COMFORT_MAX_ACCEL) & (a[:, 1:] >= COMFORT_MIN_ACCEL), axis=1)
            & np.all(np.abs(lat_acc) <= COMFORT_MAX_LAT_ACCEL, axis=1)
            & np.all(np.abs(jerk) <= COMFORT_MAX_JERK, axis=1)
            & np.all(np.abs(yaw_rate) <= COMFORT_MAX_YAW_RATE, axis=1)
        )
        lateral_err = np.abs(d_hist[:, -1] - target.lateral_offset_m)
        if lateral_offsets_m is not None:
            aim_err = np.abs(lateral_offsets_m - target.lateral_offset_m)
            lateral_err = 0.5 * (lateral_err + aim_err)
        lateral_score = np.clip(1.0 - lateral_err / LATERAL_TARGET_SCALE_M, 0.0, 1.0)
        weighted = (
            WEIGHT_PROGRESS * progress_score
            + WEIGHT_TTC * ttc_ok
            + WEIGHT_SPEED_LIMIT * speed_score
            + WEIGHT_COMFORT * comfortable
            + WEIGHT_LATERAL_TARGET * lateral_score
            + WEIGHT_REAR_CLEAR * rear_score
        ) / (
            WEIGHT_PROGRESS
            + WEIGHT_TTC
            + WEIGHT_SPEED_LIMIT
            + WEIGHT_COMFORT
            + WEIGHT_LATERAL_TARGET
            + WEIGHT_REAR_CLEAR
        )
        self.last_weighted = weighted
        return multiplier * weighted

    def plan(
        self,
        ego: VehicleState,
        path: ReferencePath,
        scene: FrenetScene,
        predictions: Predictions,
        target: BehaviourTarget,
    ) -> MotionPlan:
        """Roll out, score and choose (module docstring)."""
        if len(predictions) and (
            predictions.xy.shape[1] < self.n_steps + 1 or abs(predictions.dt_s - self.dt_s) > 1e-9
        ):
            raise ValueError(
                f"predictions must cover {self.n_steps} steps of {self.dt_s} s, got "
                f"{predictions.xy.shape[1] - 1} of {predictions.dt_s} s"
            )
        target = soft_stop_target(ego, scene, target)
        lat, frac = self.candidate_grid(path, scene, target)
        cand, s_hist, d_hist = self.rollout(ego, path, scene, predictions, target, lat, frac)
        scores = self.score(cand, s_hist, d_hist, path, predictions, target, lat)
        best = int(np.argmax(scores))
        if scores[best] > 0.0:
            return MotionPlan(cand[best], cand, scores, best, True, lat, frac)
        return self._fallback(ego, path, scene, predictions, target, cand, scores, lat, frac)

    def _fallback(
        self,
        ego: VehicleState,
        path: ReferencePath,
        scene: FrenetScene,
        predictions: Predictions,
        target: BehaviourTarget,
        cand: FloatArray,
        scores: FloatArray,
        lat: FloatArray,
        frac: FloatArray,
    ) -> MotionPlan:
        """No candidate scores above zero: keep the roll-out (emergency brake included) whose
        first at-fault contact is latest, among those that break no other rule; see
        `EMERGENCY_HORIZON_S` for when that is a failed plan."""
        mult = self.last_multipliers
        first_hit = self.last_first_hit_s
        other_ok = mult["drivable_area"] & mult["driving_direction"] & mult["stop_point"]
        valid = other_ok & np.isfinite(first_hit)
        brake, bs, bd = self.emergency_brake(ego, path, scene)
        if not np.any(valid):
            return MotionPlan(brake[0], cand, scores, -1, False, lat, frac)
        # the terms the candidates would score without the collision multiplier
        unpenalised = self.last_weighted
        saved = self.last_multipliers, self.last_first_hit_s, self.last_weighted
        self.score(brake, bs, bd, path, predictions, target)
        brake_hit = float(self.last_first_hit_s[0])
        self.last_multipliers, self.last_first_hit_s, self.last_weighted = saved
        latest = float(np.max(np.where(valid, first_hit, -np.inf)))
        if brake_hit >= latest:
            return MotionPlan(brake[0], cand, scores, -1, False, lat, frac)
        # among the latest-colliding candidates, the one that would score best without the
        # collision multiplier
        pick = np.flatnonzero(valid & (first_hit >= latest - 1e-9))
        chosen = int(pick[np.argmax(unpenalised[pick])])
        ok = latest >= EMERGENCY_HORIZON_S
        return MotionPlan(cand[chosen], cand, scores, chosen, ok, lat, frac)
