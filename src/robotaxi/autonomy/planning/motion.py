"""Motion planning in the style of PDM-Closed (Dauner et al., 2023).

Candidates are lateral offsets from the reference path × IDM speed profiles toward the
behaviour's target speed (fractions of it, plus a comfortable-stop profile). Every candidate
is simulated in closed loop — the pure-pursuit law of `control` steering toward its offset
path; the improved IDM (IIDM, Treiber & Kesting 2013: it follows at the desired gap s*, where plain
IDM lags well behind a leader below the desired speed; behind a standing leader plain IDM,
which stops well short of it), blended with the
constant-acceleration heuristic as in the ACC model (Kesting et al., 2010) so a car cutting
in at our speed is not met with full braking, setting its
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
)
from robotaxi.autonomy.planning.behaviour import Behaviour, BehaviourTarget, FrenetScene
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import Predictions
from robotaxi.autonomy.vehicle import IPACE, N_COLUMNS, VehicleParams, VehicleState, _advance
from robotaxi.core.geometry import boxes_overlap
from robotaxi.core.types import FloatArray, TrajectoryColumn

C = TrajectoryColumn
# the order of the trajectory columns C.X … C.STEER in a roll-out's rows of states (x, y,
# heading, speed, steering angle, acceleration)
_ROWS = [0, 1, 2, 3, 5, 4]

# candidate set
LATERAL_DELTAS_M = (0.0, -0.5, 0.5, -1.0, 1.0)
# 0.0 is the "stop comfortably" profile
SPEED_FRACTIONS = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)

# IDM parameters (Treiber et al.), for the ego's speed profiles
IDM_ACCEL_MPS2 = 1.5
# through the oncoming lane round a standing vehicle, get it over with (within nuPlan's
# comfort limit of 2.4 m/s²; the behaviour layer times the pass with it)
PASS_ACCEL_MPS2 = 2.0
IDM_DECEL_MPS2 = 2.5
IDM_TIME_HEADWAY_S = 1.5
# IIDM follows a leader moving faster than this (m/s); behind a slower one, plain IDM
IIDM_MOVING_MPS = 0.5
IDM_MIN_GAP_M = 2.0
# the ACC model's coolness factor (Kesting et al. 2010)
ACC_COOLNESS = 0.99
# stop points: braking starts once it takes this deceleration; closer than STOP_SNAP_M, stop
STOP_TRIGGER_DECEL_MPS2 = 1.5
STOP_SNAP_M = 0.5
# agents ahead of our front about to enter a candidate's corridor within this time already
# lead it
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


@dataclass(frozen=True)
class _Leaders:
    """The IDM leaders of a roll-out's B candidates over its T = N+1 steps.

    Leaders driving our way: `edge` T×B×M, the arc length (m) of the rear edge from which
    each of the M agents leads the candidate at each step (inf where it does not), their
    `speed` M (m/s), and `neg_half_len` 1×M (m): a gap at or below it is an agent already
    beside or behind our front (with no agent near any corridor, M is 1, at infinity).
    `steps` T says at which steps any agent, driving or standing, may lead.

    Standing leaders (crossing, oncoming, stopped; see `MotionPlanner._standing_gaps`) as
    the E finite entries of their B×S×T rear-edge table, in the table's order: rear edge
    `entry_edge` (m), and T×E tables of the time (s) from each step until the entry
    (`entry_t`; NaN for entries before the step) and the same with inf where the entry
    falls within CONFLICT_AFTER_S of the end of the horizon (`entry_t_early`). Runs of
    entries with the same candidate and rear edge (a standing agent's, step after step)
    are timed once: run `entry_run` of each entry, of candidate `run_row` and rear edge
    `run_edge`. The entries of one (candidate, agent) pair start at `group_start`; the
    pair's gap is at `group_flat` in the flattened B×M gap table, of candidate
    `group_row`.
    """

    edge: FloatArray
    speed: FloatArray
    neg_half_len: FloatArray
    steps: list[bool]
    entry_edge: FloatArray
    entry_t: FloatArray
    entry_t_early: FloatArray
    entry_run: npt.NDArray[np.intp]
    run_row: npt.NDArray[np.intp]
    run_edge: FloatArray
    group_start: npt.NDArray[np.intp]
    group_row: npt.NDArray[np.intp]
    group_flat: npt.NDArray[np.intp]


def _no_leaders(n: int, b: int) -> _Leaders:
    """No agent can lead any of the B candidates over N steps: a single column at
    infinity."""
    none, no_entry = np.zeros(0, dtype=np.intp), np.zeros((n + 1, 0))
    return _Leaders(
        np.full((n + 1, b, 1), np.inf),
        np.zeros(1),
        np.zeros((1, 1)),
        [False] * (n + 1),
        np.zeros(0),
        no_entry,
        no_entry,
        none,
        none,
        np.zeros(0),
        none,
        none,
        none,
    )


def _b_wide(b: int, *values: float) -> FloatArray:
    """`values` as rows of b copies each (len(values)×b): numpy takes an array operand
    faster than a Python float."""
    return np.repeat(np.array(values, dtype=np.float64)[:, None], b, axis=1)


def _forward_min(values: FloatArray, reach: int) -> FloatArray:
    """The minimum of `values` over each sample and the `reach` after it along the last
    axis (fewer near the end), by doubling windows: log₂(reach) array minima, not reach."""
    t = values.shape[-1]
    window = np.full((*values.shape[:-1], t + reach), np.inf)
    window[..., :t] = values
    span = 1
    while 2 * span <= reach + 1:
        # the minimum over `2·span` samples from each (fewer left: the last are not needed)
        window = np.minimum(window[..., :-span], window[..., span:])
        span *= 2
    # windows of `span` from here and from reach + 1 − span on cover reach + 1 samples
    shift = reach + 1 - span
    return np.minimum(window[..., :t], window[..., shift : shift + t])


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
        if target.borrow_oncoming:
            left += float(path.oncoming_room_at(scene.ego_s))
        lo, hi = -right + 0.5 * p.width_m, left - 0.5 * p.width_m
        offsets = np.clip(
            target.lateral_offset_m + np.asarray(self.lateral_deltas_m), lo, max(lo, hi)
        )
        if target.borrow_oncoming:
            # out in the oncoming lane, going back to ours must stay a choice
            offsets = np.append(offsets, 0.0)
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
        (s, d) of their rear axles, B×(N+1) each.

        Each of the N steps is some 80–100 array operations on arrays of only B (≈ 30)
        values, so it is the fixed cost of an operation that counts: they write into
        buffers allocated once (`out=`), take their constants as B-wide arrays (faster for
        numpy than a Python float), avoid broadcasting and masked (`where=`) operations
        where they can, and the pure-pursuit law (`control.pure_pursuit_steer`,
        `steer_rate_toward`) and the vehicle model (`vehicle._advance`) are inlined. Every
        value is computed with the same floating-point operations, in the same order, as
        the plain formulation (calling those functions on fresh arrays), so the roll-outs
        are the same bit for bit.
        """
        p, dt, n, gains = self.params, self.dt_s, self.n_steps, self.gains
        b = len(lateral_offsets_m)
        v0 = np.maximum(speed_fractions * target.target_speed_mps, 0.5)
        # Per-candidate stop points: the behaviour's, and for the "stop" speed profile
        # (fraction 0) a comfortable stop from the current speed — the candidate that waits,
        # e.g. before crossing an oncoming lane, instead of creeping into the conflict.
        stop_s = np.full(b, np.inf if target.stop_s_m is None else target.stop_s_m)
        comfortable_stop = scene.ego_s + ego.speed**2 / (2 * IDM_DECEL_MPS2) + STOP_SNAP_M
        stop_s = np.where(speed_fractions <= 0.0, np.minimum(stop_s, comfortable_stop), stop_s)
        leaders = self._leaders(scene, predictions, lateral_offsets_m)
        # The states of every step, (N+1)×6×B, in rows x, y, heading, speed, steering angle,
        # applied acceleration (speed and steering angle side by side: they advance together).
        states = np.empty((n + 1, 6, b))
        states[0] = np.array([ego.x, ego.y, ego.heading, ego.speed, ego.steer_rad, ego.accel])[
            :, None
        ]
        # per step: [x; y], heading, speed, steering angle, [speed; steering angle], accel
        columns = states[:, :2], states[:, 2], states[:, 3], states[:, 4], states[:, 3:5]
        rows = list(zip(*columns, states[:, 5], strict=True))
        # Frenet coordinates, integrated (cheaper than projecting every state):
        # ṡ = v·cos(e)/(1 − κ·d), ḋ = v·sin(e). `s` shares a buffer with the pure-pursuit
        # look-ahead point, so that one look-up gives the path's heading at both.
        ahead_and_s = np.empty(2 * b)
        s_ahead, s = ahead_and_s[:b], ahead_and_s[b:]
        s.fill(scene.ego_s)
        d = np.full(b, scene.ego_d)
        path_s, path_x, path_y = path.s, path.xy[:, 0].copy(), path.xy[:, 1].copy()
        path_heading, path_curvature = path._vertex_heading, path._curvature
        # On a straight path (one heading, not −0, and no curvature) the look-ups of the
        # heading return it exactly, and the curvature term of ṡ is exactly 1: skip them.
        heading_0 = path_heading[0]
        straight = bool(
            np.all(path_heading == heading_0)
            and (heading_0 != 0.0 or not np.signbit(heading_0))
            and not np.any(path_curvature)
        )

        # constants
        zero, half, one, two, minus_two, tenth, step_dt = _b_wide(
            b, 0.0, 0.5, 1.0, 2.0, -2.0, 0.1, dt
        )
        accel = PASS_ACCEL_MPS2 if target.borrow_oncoming else IDM_ACCEL_MPS2
        idm_accel, idm_decel, idm_max_decel, idm_headway, idm_min_gap = _b_wide(
            b,
            accel,
            IDM_DECEL_MPS2,
            -IDM_DECEL_MPS2,
            IDM_TIME_HEADWAY_S if target.headway_s is None else target.headway_s,
            IDM_MIN_GAP_M,
        )
        idm_brake, cool, not_cool, front = _b_wide(
            b,
            2 * np.sqrt(accel * IDM_DECEL_MPS2),
            ACC_COOLNESS,
            1.0 - ACC_COOLNESS,
            p.rear_axle_to_front_m,
        )
        stop_gap_floor, stop_trigger, stop_snap, jerk_free_brake = _b_wide(
            b, -0.05, -STOP_TRIGGER_DECEL_MPS2, -STOP_SNAP_M, -JERK_FREE_BRAKE_MPS2
        )
        # the jerk limits on top of the last acceleration: −J·dt, +J·dt, +J_release·dt
        jerk_steps = _b_wide(
            b, -ROLLOUT_JERK_MPS3 * dt, ROLLOUT_JERK_MPS3 * dt, ROLLOUT_RELEASE_JERK_MPS3 * dt
        )
        lookahead_time, min_lookahead, max_lookahead, min_target_distance = _b_wide(
            b, gains.lookahead_time_s, gains.min_lookahead_m, gains.max_lookahead_m, 1e-6
        )
        steer_gain, steer_tau, min_steer, max_steer, wheelbase = _b_wide(
            b,
            2.0 * p.wheelbase_m,
            max(dt, gains.steer_time_constant_s),
            -p.max_steer_rad,
            p.max_steer_rad,
            p.wheelbase_m,
        )
        # limits of the command [acceleration; steering rate] and of [speed; steering angle]
        command_min = _b_wide(b, -p.max_brake_mps2, -p.max_steer_rate_rad_s)
        command_max = _b_wide(b, p.max_accel_mps2, p.max_steer_rate_rad_s)
        speed_steer_min = _b_wide(b, 0.0, -p.max_steer_rad)
        speed_steer_max = _b_wide(b, p.max_speed_mps, p.max_steer_rad)
        lateral = np.repeat(np.asarray(lateral_offsets_m, dtype=np.float64)[None], 2, axis=0)
        if straight:
            heading_ahead = heading_at_s = np.full(b, heading_0)
            aim_sin_cos = lateral * np.array([np.sin(heading_ahead), np.cos(heading_ahead)])

        # work buffers
        free, gap_floor, dv, s_star, cah, s_front, past_stop, neg_needed = np.empty((8, b))
        lookahead, aim, distance, mean_speed, dpsi, sinc, chord, ds = np.empty((8, b))
        frenet_denom, work, z_below, plain = np.empty((4, b))
        command, increment, target_xy, step_xy = np.empty((4, 2, b))
        if not straight:
            aim_sin_cos = np.empty((2, b))
        accel, rate = command
        target_x, target_y = target_xy
        aim_sin, aim_cos = aim_sin_cos
        step_x, step_y = step_xy
        accel_limits = np.empty((3, b))
        lowest, highest, highest_easing = accel_limits
        over, braking, easing, not_emergency, below_v0, close_in, standing_lead = np.empty(
            (7, b), dtype=bool
        )
        # the angles Δψ/2, heading at mid-step and heading error, their sines, and the
        # cosines of the last two
        angles, sines = np.empty((2, 3, b))
        half_dpsi, mid_heading, heading_err = angles
        sin_half, sin_mid, sin_err = sines
        cosines = np.empty((2, b))
        cos_mid, cos_err = cosines
        # the IDM leader: a gap table B×M (one column: the gap itself)
        n_lead = leaders.edge.shape[2]
        lead_gap = np.empty((b, n_lead))
        lead_gap_flat = lead_gap.reshape(-1)
        lead_blocked = np.empty((b, n_lead), dtype=bool)
        lead_j, lead_flat = np.empty((2, b), dtype=np.intp)
        lead_row_start = np.arange(b) * n_lead
        gap, lead_speed = lead_gap_flat, np.full(b, leaders.speed[0])
        edge_1 = leaders.edge[:, :, 0].copy()
        neg_half_len = np.repeat(leaders.neg_half_len, b, axis=0)  # B×M, as the gaps
        s_front_col = s_front[:, None]
        one_leader = n_lead == 1
        has_standing = len(leaders.entry_edge) > 0
        # the functions of the step loop, as locals (some 3,500 calls per roll-out)
        add, subtract, multiply, divide = np.add, np.subtract, np.multiply, np.divide
        power, square, maximum, minimum = np.power, np.square, np.maximum, np.minimum
        copyto, putmask, interp, count_nonzero = np.copyto, np.putmask, np.interp, np.count_nonzero
        less, less_equal, greater = np.less, np.less_equal, np.greater
        greater_equal, not_equal, logical_or = np.greater_equal, np.not_equal, np.logical_or
        sin, cos, tan, tanh = np.sin, np.cos, np.tan, np.tanh
        arctan, arctan2, hypot = np.arctan, np.arctan2, np.hypot

        for k in range(n):
            x_y, h, v, st, v_st, a_prev = rows[k]
            x_y_new, h_new, v_new, st_new, v_st_new, a_new = rows[k + 1]
            leading = leaders.steps[k]
            # --- IDM, toward the speed profile's desired speed v0: the free term; above v0,
            # slow down no harder than comfortable (as in the "improved IDM")
            free_term = free if leading else accel
            divide(v, v0, out=free_term)
            power(free_term, 4, out=free_term)
            subtract(one, free_term, out=free_term)
            multiply(idm_accel, free_term, out=free_term)
            maximum(free_term, idm_max_decel, out=free_term)
            if leading:
                # the leader: the nearest one ahead in the candidate's corridor
                add(s, front, out=s_front)
                if one_leader:
                    subtract(edge_1[k], s_front, out=gap)
                else:
                    subtract(leaders.edge[k], s_front_col, out=lead_gap)
                if has_standing:
                    self._standing_gaps(leaders, k, s_front, v, lead_gap_flat)
                if one_leader:
                    less_equal(gap, neg_half_len[:, 0], out=over)
                    putmask(gap, over, np.inf)  # already beside or behind our front
                else:
                    less_equal(lead_gap, neg_half_len, out=lead_blocked)
                    putmask(lead_gap, lead_blocked, np.inf)
                    lead_gap.argmin(axis=1, out=lead_j)
                    add(lead_row_start, lead_j, out=lead_flat)
                    gap = lead_gap_flat[lead_flat]
                    lead_speed = leaders.speed[lead_j]
                subtract(v, lead_speed, out=dv)
                # the interaction term (s*/gap)², s* = s0 + max(0, v·T + v·Δv/(2√(ab)));
                # with no leader gap = inf, and the term is exactly 0
                multiply(v, dv, out=work)
                divide(work, idm_brake, out=work)
                multiply(v, idm_headway, out=s_star)
                add(s_star, work, out=s_star)
                maximum(zero, s_star, out=s_star)
                add(idm_min_gap, s_star, out=s_star)
                maximum(gap, tenth, out=gap_floor)
                divide(s_star, gap_floor, out=s_star)
                square(s_star, out=s_star)  # z² = (s*/gap)²
                # plain IDM, kept for a leader that stands (below)
                multiply(idm_accel, s_star, out=plain)
                subtract(free, plain, out=plain)
                # The improved IDM (Treiber & Kesting 2013, §11.3.7): plain IDM adds the
                # free-road term to the interaction term, so below the desired speed it
                # follows at a gap well above s* (at 0.9·v0 some 1.5·s*) and lags a leader
                # that pulls away. IIDM keeps s* itself: a·(1 − z²) at z ≥ 1 (less the
                # slowing above v0), free·(1 − z^(2a/free)) at z < 1 below v0, free above.
                greater(free, zero, out=below_v0)
                copyto(work, free)
                putmask(work, ~below_v0, one)
                divide(idm_accel, work, out=work)
                minimum(s_star, one, out=z_below)  # (z ≥ 1 is set below; no overflow)
                power(z_below, work, out=work)
                putmask(work, ~below_v0, zero)
                subtract(one, work, out=work)
                multiply(free, work, out=accel)  # z < 1
                greater_equal(s_star, one, out=close_in)
                if count_nonzero(close_in):
                    subtract(one, s_star, out=work)
                    multiply(idm_accel, work, out=work)
                    minimum(free, zero, out=s_star)
                    add(s_star, work, out=work)
                    copyto(accel, work, where=close_in)
                # Behind a leader that stands, plain IDM: it starts braking far back and
                # stops the car well short of it (leaving room to steer round, e.g. a
                # double-parked car); IIDM would creep on at the desired speed to s* first
                less(lead_speed, IIDM_MOVING_MPS, out=standing_lead)
                copyto(accel, plain, where=standing_lead)
                # IDM overreacts to a gap that is small but not closing (a car cutting in
                # ahead at our speed: it would brake at full force and stop the car for
                # nothing, in front of whoever follows). The ACC model (Kesting, Treiber &
                # Helbing 2010) blends it with the constant-acceleration heuristic — the
                # braking that keeps the gap from closing, −(v − v_lead)²/(2·gap) — so the
                # car brakes about IDM_DECEL more than the situation needs, never a standing
                # obstacle's full IDM force.
                maximum(dv, zero, out=cah)
                square(cah, out=cah)
                multiply(minus_two, gap_floor, out=work)
                divide(cah, work, out=cah)
                less(accel, cah, out=over)
                if count_nonzero(over):
                    # a ← (1 − c)·a + c·(cah + b·tanh((a − cah)/b)) where a < cah
                    subtract(accel, cah, out=work)
                    divide(work, idm_decel, out=work)
                    tanh(work, out=work)
                    multiply(idm_decel, work, out=work)
                    add(cah, work, out=work)
                    multiply(cool, work, out=work)
                    multiply(not_cool, accel, out=cah)
                    add(cah, work, out=work)
                    copyto(accel, work, where=over)
            else:
                # No leader: the same formulas with gap = inf reduce exactly to these — the
                # interaction term is 0 and cah is −0, so the blend applies where a < 0.
                less(accel, zero, out=over)
                if count_nonzero(over):
                    divide(accel, idm_decel, out=work)
                    tanh(work, out=work)
                    multiply(idm_decel, work, out=work)
                    multiply(cool, work, out=work)
                    multiply(not_cool, accel, out=cah)
                    add(cah, work, out=work)
                    copyto(accel, work, where=over)
            # Stop points: brake at the constant deceleration that ends exactly there, once
            # that deceleration reaches STOP_TRIGGER_DECEL_MPS2 (IDM would only creep up to a
            # standing obstacle, slowly, and stop short of it). Computed negated, which is
            # exact: −needed = v²/(2·min(s − stop, −0.05)).
            subtract(s, stop_s, out=past_stop)
            minimum(past_stop, stop_gap_floor, out=work)
            multiply(two, work, out=work)
            multiply(v, v, out=neg_needed)
            divide(neg_needed, work, out=neg_needed)
            less_equal(neg_needed, stop_trigger, out=braking)
            greater(past_stop, stop_snap, out=over)
            logical_or(braking, over, out=braking)
            minimum(accel, neg_needed, out=work)
            copyto(accel, work, where=braking)
            # Jerk-limited: the acceleration moves from the last one by at most
            # ROLLOUT_JERK_MPS3, so braking and pulling away set in smoothly — unless the
            # profile asks for harder braking than JERK_FREE_BRAKE_MPS2, an emergency. A
            # brake no longer needed is let off faster (ROLLOUT_RELEASE_JERK_MPS3): holding
            # it on would stop the car for nothing, in front of whoever follows.
            add(a_prev, jerk_steps, out=accel_limits)
            less(a_prev, zero, out=easing)
            copyto(highest, highest_easing, where=easing)
            greater_equal(accel, jerk_free_brake, out=not_emergency)
            maximum(accel, lowest, out=lowest)
            minimum(lowest, highest, out=lowest)
            copyto(accel, lowest, where=not_emergency)
            # --- pure pursuit toward the candidate's offset path, as `control`: its point at
            # s + look-ahead (the polyline's own piecewise-linear geometry)
            multiply(lookahead_time, v, out=lookahead)
            maximum(lookahead, min_lookahead, out=lookahead)
            minimum(lookahead, max_lookahead, out=lookahead)
            add(s, lookahead, out=s_ahead)
            if not straight:
                path_heading_at = interp(ahead_and_s, path_s, path_heading)
                heading_ahead, heading_at_s = path_heading_at[:b], path_heading_at[b:]
                sin(heading_ahead, out=aim_sin)
                cos(heading_ahead, out=aim_cos)
                multiply(lateral, aim_sin_cos, out=aim_sin_cos)
            subtract(interp(s_ahead, path_s, path_x), aim_sin, out=target_x)
            add(interp(s_ahead, path_s, path_y), aim_cos, out=target_y)
            subtract(target_xy, x_y, out=target_xy)  # the target relative to the car
            hypot(target_x, target_y, out=distance)
            maximum(distance, min_target_distance, out=distance)
            arctan2(target_y, target_x, out=aim)
            subtract(aim, h, out=aim)  # its bearing
            sin(aim, out=aim)
            multiply(steer_gain, aim, out=aim)
            divide(aim, distance, out=aim)
            arctan(aim, out=aim)
            maximum(aim, min_steer, out=aim)
            minimum(aim, max_steer, out=aim)  # the steering angle wanted
            subtract(aim, st, out=rate)
            divide(rate, steer_tau, out=rate)
            # --- the kinematic bicycle model, as `vehicle._advance` (but for its clamp of
            # the steering rate, which is already within the same limit)
            maximum(command, command_min, out=command)
            minimum(command, command_max, out=command)
            multiply(command, step_dt, out=increment)
            add(v_st, increment, out=increment)
            maximum(increment, speed_steer_min, out=increment)  # the car does not reverse
            minimum(increment, speed_steer_max, out=v_st_new)
            subtract(v_new, v, out=a_new)
            divide(a_new, step_dt, out=a_new)
            add(v, v_new, out=mean_speed)
            multiply(half, mean_speed, out=mean_speed)
            tan(st_new, out=dpsi)
            multiply(mean_speed, dpsi, out=dpsi)
            divide(dpsi, wheelbase, out=dpsi)  # yaw rate
            multiply(dpsi, step_dt, out=dpsi)
            multiply(half, dpsi, out=half_dpsi)
            add(h, half_dpsi, out=mid_heading)
            add(h, dpsi, out=h_new)
            subtract(h_new, heading_at_s, out=heading_err)  # against the path at the old s
            sin(angles, out=sines)
            cos(angles[1:], out=cosines)
            # the chord of the arc driven: distance·sin(Δψ/2)/(Δψ/2), 1 at Δψ = 0
            not_equal(half_dpsi, zero, out=over)
            sinc.fill(1.0)
            divide(sin_half, half_dpsi, out=sinc, where=over)
            multiply(mean_speed, step_dt, out=ds)  # the distance driven
            multiply(ds, sinc, out=chord)
            multiply(chord, cos_mid, out=step_x)
            multiply(chord, sin_mid, out=step_y)
            add(x_y, step_xy, out=x_y_new)
            # --- Frenet coordinates
            multiply(ds, cos_err, out=work)
            if not straight:
                multiply(interp(s, path_s, path_curvature), d, out=frenet_denom)
                subtract(one, frenet_denom, out=frenet_denom)
                maximum(frenet_denom, tenth, out=frenet_denom)
                divide(work, frenet_denom, out=work)
            add(s, work, out=s)
            multiply(ds, sin_err, out=work)
            add(d, work, out=d)

        out = np.empty((b, n + 1, N_COLUMNS))
        out[:, :, C.X : C.STEER + 1] = states[:, _ROWS].transpose(2, 0, 1)
        out[:, 0] = ego.as_row()
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

    def _leaders(
        self, scene: FrenetScene, predictions: Predictions, lateral_offsets_m: FloatArray
    ) -> _Leaders:
        """The IDM leaders of B candidates with these lateral offsets (m)."""
        p, dt, n = self.params, self.dt_s, self.n_steps
        b = len(lateral_offsets_m)
        half_w = 0.5 * p.width_m
        m = len(predictions)
        has_pred = m > 0 and predictions.xy.shape[1] >= n + 1
        if has_pred:
            # Only agents that can ever share a candidate's corridor ahead can lead it.
            reach = half_w + 0.5 * float(predictions.width.max()) + COLLISION_MARGIN_M + 0.5
            d_lo = min(float(lateral_offsets_m.min()), scene.ego_d) - reach
            d_hi = max(float(lateral_offsets_m.max()), scene.ego_d) + reach
            a_s_all, a_d_all = scene.agent_s[:, : n + 1], scene.agent_d[:, : n + 1]
            relevant = np.any(
                (a_d_all >= d_lo) & (a_d_all <= d_hi) & (a_s_all > scene.ego_s - 10.0), axis=1
            )
            # A road user behind us in our own lane follows us: a prediction that carries
            # it on at its speed runs it through our car, and that is no car cutting in
            # ahead to brake for (braking for it is what gets us run into).
            follower = (a_s_all[:, 0] < scene.ego_s) & (
                np.abs(a_d_all[:, 0] - scene.ego_d) < 0.5 * p.width_m
            )
            relevant &= ~follower
            has_pred = bool(np.any(relevant))
        if not has_pred:
            return _no_leaders(n, b)
        lead_s, lead_d = a_s_all[relevant], a_d_all[relevant]
        corridor_half_w = half_w + 0.5 * predictions.width[relevant] + COLLISION_MARGIN_M
        half_len = 0.5 * predictions.length[relevant]
        speed_all = predictions.speed[relevant]
        v_along = scene.agent_v_s[relevant]
        # An agent crossing or coming toward us leads as a standing obstacle where it will
        # cross; one driving our way leads at its speed along the path.
        agent_speed = np.where(v_along > 0.7 * speed_all, v_along, 0.0)
        # Occupancy of each candidate offset's corridor (O×M×T rear edges, inf where the
        # agent is outside it).
        offsets = np.unique(lateral_offsets_m)
        which = np.searchsorted(offsets, lateral_offsets_m)
        inside = np.abs(lead_d[None] - offsets[:, None, None]) < corridor_half_w[None, :, None]
        rear_edge = np.where(inside, lead_s[None] - half_len[None, :, None], np.inf)
        # One driving our way leads from the nearest place it occupies during
        # [k, k + CONFLICT_LOOKAHEAD_S] (a car cutting in leads before it is in).
        ahead_edge = _forward_min(rear_edge, round(CONFLICT_LOOKAHEAD_S / dt))
        # ... but one that is not yet ahead of our front would first have to overtake us:
        # it leads only once it is ahead (its prediction, carried on at its speed through
        # where we will be, is no car cutting in now)
        overtaking = lead_s[:, 0] < scene.ego_s + p.rear_axle_to_front_m
        ahead_edge[:, overtaking] = rear_edge[:, overtaking]
        # Standing leaders (crossing, oncoming, stopped) are timed at each step; only the
        # finite entries of their table can lead.
        standing = np.flatnonzero(agent_speed == 0.0)
        ahead_edge[:, standing] = np.inf
        standing_edge = rear_edge[:, standing][which]  # B×S×T
        row, agent, step = np.nonzero(np.isfinite(standing_edge))
        new_group = np.ones(len(row), dtype=bool)
        new_group[1:] = (row[1:] != row[:-1]) | (agent[1:] != agent[:-1])
        group_start = np.flatnonzero(new_group)
        group_row = row[group_start]
        # Agents that lead no candidate at any step are left out (in order: ties between
        # the others go as before; where none leads, the gap is inf either way).
        leads_some = np.asarray(np.isfinite(ahead_edge).any(axis=(0, 2)))
        leads_some[standing[agent]] = True
        if not leads_some.any():
            return _no_leaders(n, b)
        column = np.cumsum(leads_some) - 1
        agent_speed, half_len = agent_speed[leads_some], half_len[leads_some]
        # the rear edges by step, candidate and agent (T×B×M)
        edge = np.ascontiguousarray(ahead_edge[:, leads_some].transpose(2, 0, 1))[:, which]
        # the time from step k to step t, (t − k)·dt, NaN before k (T×T)
        steps_ahead = np.arange(n + 1)[None, :] - np.arange(n + 1)[:, None]
        time_ahead = np.where(steps_ahead >= 0, steps_ahead * dt, np.nan)
        # min(t, t_rest) − CONFLICT_AFTER_S ≤ time ahead ⟺ t − CONFLICT_AFTER_S ≤ time
        # ahead or t_rest − CONFLICT_AFTER_S ≤ time ahead (exactly: rounding is monotonic);
        # the latter is known now
        t_rest = ((n - np.arange(n + 1)) * dt)[:, None]
        time_ahead_early = np.where(time_ahead >= t_rest - CONFLICT_AFTER_S, np.inf, time_ahead)
        entry_edge = standing_edge[row, agent, step]
        new_run = np.ones(len(row), dtype=bool)
        new_run[1:] = (row[1:] != row[:-1]) | (entry_edge[1:] != entry_edge[:-1])
        run_start = np.flatnonzero(new_run)
        leads = np.asarray(np.isfinite(edge).any(axis=(1, 2)))
        if len(step):
            leads[: step.max() + 1] = True
        return _Leaders(
            edge,
            agent_speed,
            -half_len[None, :],
            leads.tolist(),
            entry_edge,
            time_ahead[:, step],
            time_ahead_early[:, step],
            np.cumsum(new_run) - 1,
            row[run_start],
            entry_edge[run_start],
            group_start,
            group_row,
            group_row * len(agent_speed) + column[standing[agent[group_start]]],
        )

    @staticmethod
    def _standing_gaps(
        leaders: _Leaders, k: int, s_front: FloatArray, v: FloatArray, gap_flat: FloatArray
    ) -> None:
        """Write into `gap_flat` (the flattened B×M gap table, m) the gaps at step `k` to
        the standing leaders, from the candidates' fronts `s_front` (m) at speeds `v` (m/s).

        A standing leader blocks where it is around the time we would get there: no
        sooner than at IDM's full acceleration, no later than at the present speed (capped
        by the horizon), widened by CONFLICT_AFTER_S before and CONFLICT_LOOKAHEAD_S after.
        So the car brakes early for a pedestrian who will be on the crossing when it
        arrives, and not for cross traffic that will have cleared it; standing still, any
        later occupancy holds it. (Only the table's finite entries are computed: the
        others block nowhere.)
        """
        row, edge, run = leaders.run_row, leaders.run_edge, leaders.entry_run
        to_edge = np.maximum(edge - s_front[row], 0.0)
        vv = v[row]
        t_early = (np.sqrt(vv * vv + 2 * IDM_ACCEL_MPS2 * to_edge) - vv) / IDM_ACCEL_MPS2
        t_late = to_edge / np.maximum(vv, 0.1)
        met = (leaders.entry_t_early[k] >= (t_early - CONFLICT_AFTER_S)[run]) & (
            leaders.entry_t[k] <= (t_late + CONFLICT_LOOKAHEAD_S)[run]
        )
        nearest = np.minimum.reduceat(
            np.where(met, leaders.entry_edge, np.inf), leaders.group_start
        )
        gap_flat[leaders.group_flat] = nearest - s_front[leaders.group_row]

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
        # the columns as contiguous B×T arrays
        x, y, h, v, a = candidates.transpose(2, 0, 1)[[C.X, C.Y, C.HEADING, C.SPEED, C.ACCEL]]
        cos_h, sin_h = np.cos(h), np.sin(h)
        off = p.rear_axle_to_center_m
        ego_c = np.stack([x + off * cos_h, y + off * sin_h], axis=-1)
        path_h = path.heading_at(s_hist)
        head_err = (h - path_h + np.pi) % (2 * np.pi) - np.pi
        # Lateral offsets of the footprint's four corners, B×T each; only the smallest and
        # the largest of them count below (a max of differences is a difference of extremes,
        # exactly: rounding is monotonic).
        sin_err, cos_err = np.sin(head_err), np.cos(head_err)
        along = (p.rear_axle_to_front_m * sin_err, -p.rear_overhang_m * sin_err)
        across = (-0.5 * p.width_m * cos_err, 0.5 * p.width_m * cos_err)
        corner_d = [d_hist + (f + s) for f in along for s in across]
        lowest_d = np.minimum(np.minimum(corner_d[0], corner_d[1]), np.minimum(*corner_d[2:]))
        highest_d = np.maximum(np.maximum(corner_d[0], corner_d[1]), np.maximum(*corner_d[2:]))
        half_lane = 0.5 * path.lane_width_at(s_hist)
        in_lane = np.maximum(np.abs(lowest_d), np.abs(highest_d)) <= half_lane + IN_LANE_TOLERANCE_M
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
            a_vel = np.diff(a_c, axis=1) / dt
            a_vel = np.concatenate([a_vel, a_vel[:, -1:]], axis=1)
            # (every other step)
            moving = v[:, 1::2] > 0.5
            ego_c_odd, v_odd = ego_c[:, 1::2], v[:, 1::2, None]
            heading_odd = np.stack([cos_h[:, 1::2], sin_h[:, 1::2]], axis=-1)
            a_c_odd, a_vel_odd = a_c[:, 1::2], a_vel[:, 1::2]
            for probe in TTC_PROBES_S:
                hits = _at_fault_hits(
                    ego_c_odd + probe * v_odd * heading_odd,
                    h[:, 1::2],
                    p,
                    a_c_odd + probe * a_vel_odd,
                    a_h[:, 1::2],
                    a_len,
                    a_wid,
                    head_err[:, 1::2],
                    0.0,
                )
                ttc_ok &= ~np.any(hits & moving, axis=1)
        else:
            no_collision = np.ones(b, dtype=bool)
            ttc_ok = np.ones(b, dtype=bool)
            rear_score = np.ones(b)
        right = path.right_room_at(s_hist)
        left = path.left_room_at(s_hist)
        if target.borrow_oncoming:
            left = left + path.oncoming_room_at(s_hist)
        # How far the footprint pokes out of the drivable area; a candidate is compliant if
        # it stays within tolerance or at least never makes the present excess worse (the
        # car may already stand a little over the kerb line and must be able to leave).
        excess = np.maximum(-right - lowest_d, highest_d - left).clip(min=0.0)
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
        # letting off the brake (the roll-out does it fast on purpose,
        # ROLLOUT_RELEASE_JERK_MPS3) is no discomfort: held against a candidate, it would
        # make every profile that stops braking score worse than one that brakes on
        releasing = (jerk > 0.0) & (a[:, 1:-1] < 0.0)
        lat_acc = v[:, 1:] * yaw_rate
        comfortable = (
            np.all((a[:, 1:] <= COMFORT_MAX_ACCEL) & (a[:, 1:] >= COMFORT_MIN_ACCEL), axis=1)
            & np.all(np.abs(lat_acc) <= COMFORT_MAX_LAT_ACCEL, axis=1)
            & np.all((np.abs(jerk) <= COMFORT_MAX_JERK) | releasing, axis=1)
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
