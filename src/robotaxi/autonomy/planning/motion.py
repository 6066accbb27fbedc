"""Motion planning in the style of PDM-Closed (Dauner et al., 2023).

Candidates are lateral offsets from the reference path × IDM speed profiles toward the
behaviour's target speed (fractions of it, plus a comfortable-stop profile). Every candidate
is simulated in closed loop — the pure-pursuit law of `control` steering toward its offset
path, IDM setting its acceleration against the leaders in its corridor (predicted agents,
including those about to cross it within `CONFLICT_LOOKAHEAD_S`), a constant-deceleration
stop at the behaviour's stop point — through the kinematic bicycle model, all B candidates
at once as B×N arrays. The roll-outs (B×(N+1)×k, columns `TrajectoryColumn`) are then
scored as in nuPlan:

    score = Π multipliers × Σ wᵢ·sᵢ / Σ wᵢ

multipliers: no at-fault collision with the predictions, drivable area (footprint within
the kerbs), driving direction, stop-point compliance; weighted terms: progress, time to
collision, speed limit, comfort, and closeness to the behaviour's lateral offset. The best
candidate is kept; if none scores above zero, an emergency-brake roll-out is returned and
the plan is marked failed (the behaviour layer turns repeated failures into a safe stop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from robotaxi.autonomy.control import (
    DEFAULT_GAINS,
    ControllerGains,
    lookahead_distance,
    pure_pursuit_steer,
    steer_rate_toward,
)
from robotaxi.autonomy.planning.behaviour import BehaviourTarget, FrenetScene
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
# stop points: braking starts once it takes this deceleration; closer than STOP_SNAP_M, stop
STOP_TRIGGER_DECEL_MPS2 = 1.5
STOP_SNAP_M = 0.5
# agents about to enter a candidate's corridor within this time already lead it
CONFLICT_LOOKAHEAD_S = 2.0

# roll-outs are projected onto the path every this many steps, interpolated in between
ROLLOUT_PROJECTION_STRIDE = 2

# scoring: multipliers are 0/1; weights of the weighted average (nuPlan's values where they
# exist: progress 5, TTC 5, speed limit 4, comfort 2)
WEIGHT_PROGRESS = 5.0
WEIGHT_TTC = 5.0
WEIGHT_SPEED_LIMIT = 4.0
WEIGHT_COMFORT = 2.0
WEIGHT_LATERAL_TARGET = 3.0
TTC_THRESHOLD_S = 0.95
TTC_PROBES_S = (0.5, 0.95)
MIN_PROGRESS_FOR_RATIO_M = 1.0
SPEED_LIMIT_TOLERANCE_MPS = 2.0
LATERAL_TARGET_SCALE_M = 1.0
DRIVABLE_TOLERANCE_M = 0.1
STOP_OVERSHOOT_TOLERANCE_M = 0.5
COLLISION_MARGIN_M = 0.2
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
) -> npt.NDArray[np.bool_]:
    """B×K booleans: at step k the ego box (B×K) first touches some agent (M×K) and is to
    blame.

    Blame is decided at the first contact of each candidate–agent pair: an agent whose
    centre is then behind the ego's centre while the ego keeps to the lane direction ran
    into us (rear-ended, as in nuPlan) — even if its constant-velocity prediction later
    drives on through our footprint.
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
    rel_x = dx[bi, mi, ki] * np.cos(h) + dy[bi, mi, ki] * np.sin(h)
    rear_ended = (rel_x < -0.25 * params.length_m) & (np.abs(ego_heading_err[bi, ki]) < 0.15)
    hits[bi[~rear_ended], ki[~rear_ended]] = True
    return hits


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
        # per-candidate multipliers of the last scoring, for diagnostics and rendering
        self.last_multipliers: dict[str, npt.NDArray[np.bool_]] = {}

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
            # Occupancy of each candidate offset's corridor, looked ahead: at step k an agent
            # leads from the nearest place it occupies during [k, k + CONFLICT_LOOKAHEAD_S],
            # so the car waits before a crossing instead of creeping into it.
            offsets, which = np.unique(lateral_offsets_m, return_inverse=True)
            inside = np.abs(lead_d[None] - offsets[:, None, None]) < corridor_half_w[None, :, None]
            rear_edge = np.where(inside, lead_s[None] - half_len[None, :, None], np.inf)
            ahead_edge = rear_edge.copy()
            for w in range(1, round(CONFLICT_LOOKAHEAD_S / dt) + 1):
                ahead_edge[..., :-w] = np.minimum(ahead_edge[..., :-w], rear_edge[..., w:])
            agent_edge = ahead_edge[which].transpose(2, 0, 1)  # T×B×M
            lead_edge = agent_edge
            lead_speed = agent_speed
            lead_half_len = half_len[None, :]
        lead_edge = np.ascontiguousarray(lead_edge)
        rows = np.arange(b)
        idm_brake = 2 * np.sqrt(IDM_ACCEL_MPS2 * IDM_DECEL_MPS2)
        hist: list[tuple[FloatArray, ...]] = []
        for k in range(n):
            # --- IDM leader: the nearest leader ahead in the candidate's corridor
            g = lead_edge[k] - (s + front)[:, None]
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
            # Stop points: brake at the constant deceleration that ends exactly there, once
            # that deceleration reaches STOP_TRIGGER_DECEL_MPS2 (IDM would only creep up to a
            # standing obstacle, slowly, and stop short of it).
            to_stop = stop_s - s
            needed = v * v / (2.0 * np.maximum(to_stop, 0.05))
            braking = (needed >= STOP_TRIGGER_DECEL_MPS2) | (to_stop < STOP_SNAP_M)
            accel = np.where(braking, np.minimum(accel, -needed), accel)
            # --- pure pursuit toward the candidate's offset path
            ld = lookahead_distance(v, self.gains)
            tx, ty, _ = path.pose_at(s + ld, lateral_offsets_m)
            steer_des = pure_pursuit_steer(x, y, h, tx, ty, p)
            rate = steer_rate_toward(st, steer_des, dt, self.gains, p)
            x, y, h, v_new, st, a_applied = _advance(x, y, h, v, st, accel, rate, dt, p)
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
    ) -> FloatArray:
        """Scores (B) of roll-outs B×(N+1)×k; see the module docstring."""
        p, dt = self.params, self.dt_s
        b, t, _ = candidates.shape
        x, y, h = candidates[..., C.X], candidates[..., C.Y], candidates[..., C.HEADING]
        v, a = candidates[..., C.SPEED], candidates[..., C.ACCEL]
        off = p.rear_axle_to_center_m
        ego_c = np.stack([x + off * np.cos(h), y + off * np.sin(h)], axis=-1)
        path_h = path.heading_at(s_hist)
        head_err = (h - path_h + np.pi) % (2 * np.pi) - np.pi

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
            )
            no_collision = ~np.any(hits, axis=1)
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
        lx = np.array([p.rear_axle_to_front_m, -p.rear_overhang_m])
        corner_d = d_hist[..., None, None] + (
            lx[:, None] * np.sin(head_err)[..., None, None]
            + np.array([-0.5, 0.5]) * p.width_m * np.cos(head_err)[..., None, None]
        )
        corner_d = corner_d.reshape(b, t, 4)
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
        lateral_score = np.clip(
            1.0 - np.abs(d_hist[:, -1] - target.lateral_offset_m) / LATERAL_TARGET_SCALE_M,
            0.0,
            1.0,
        )
        weighted = (
            WEIGHT_PROGRESS * progress_score
            + WEIGHT_TTC * ttc_ok
            + WEIGHT_SPEED_LIMIT * speed_score
            + WEIGHT_COMFORT * comfortable
            + WEIGHT_LATERAL_TARGET * lateral_score
        ) / (
            WEIGHT_PROGRESS
            + WEIGHT_TTC
            + WEIGHT_SPEED_LIMIT
            + WEIGHT_COMFORT
            + WEIGHT_LATERAL_TARGET
        )
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
        lat, frac = self.candidate_grid(path, scene, target)
        cand, s_hist, d_hist = self.rollout(ego, path, scene, predictions, target, lat, frac)
        scores = self.score(cand, s_hist, d_hist, path, predictions, target)
        best = int(np.argmax(scores))
        if scores[best] > 0.0:
            return MotionPlan(cand[best], cand, scores, best, True, lat, frac)
        brake, _, _ = self.emergency_brake(ego, path, scene)
        return MotionPlan(brake[0], cand, scores, -1, False, lat, frac)
