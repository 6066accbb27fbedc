"""Whether the gap in the target lane takes us: the check before a lane change the route needs.

A lane change is begun only into a gap that both its new neighbours can live with. The
road users in the target lane are read from the car's own predictions, projected onto the
target lane's centre line, with their tracked speeds along that lane; gaps are bumper to
bumper, now and as they will be `horizon_s` on at today's speeds (the change under way).
The follower (the nearest behind us in the target lane) must stay at least `min_gap_m` plus
`follower_headway_s` of its speed behind our rear, and, if it comes faster, must not need
to brake harder than `follower_brake_mps2` to keep `min_gap_m` — the safety criterion of
MOBIL (Kesting, Treiber, Helbing 2007). The leader (the nearest ahead) must stay
`min_gap_m` plus `leader_headway_s` of our speed ahead of our front, and we must not need to
brake harder than `own_brake_mps2` behind it — neither to keep the gap from closing nor in
our own car following (the motion planner's ACC model, `follow_accel`, which brakes for a
leader that is too close even while it pulls away), at the shorter time headway the car keeps
for a while after a lane change (`merge_headway`: it closes back to its usual gap gently, as
a driver does who took a gap a human takes). Anyone beside us in the target lane closes the
gap outright.

While a lane change waits for its gap, `yield_speed` says how fast to go to let the road user
that closes it go by: a little slower than it, where it is no faster than we are (a car
sitting beside us or in the blind spot, a slower one just ahead); a faster one goes by on its
own, and one behind us that is clearly slower drops back on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from robotaxi.autonomy.planning.motion import (
    ACC_COOLNESS,
    IDM_ACCEL_MPS2,
    IDM_DECEL_MPS2,
    IDM_MIN_GAP_M,
    IDM_TIME_HEADWAY_S,
)
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import Predictions
from robotaxi.autonomy.vehicle import IPACE, VehicleParams, VehicleState
from robotaxi.core.types import AgentKind, FloatArray

# road users whose gap a lane change respects (pedestrians keep off a lane we move into)
_GAP_KINDS = (AgentKind.CAR, AgentKind.ROBOTAXI, AgentKind.UNKNOWN, AgentKind.EMERGENCY)
# a road user counts as in the target lane with its centre within half the lane's width of the
# lane's centre line plus this (m)
LANE_SLACK_M = 0.3
# only road users this far along the target lane either side of us matter (m)
REACH_M = 120.0
# waiting for a gap, we go this much slower than the road user that closes it (m/s)
YIELD_MARGIN_MPS = 2.0
# ... unless it is this much faster than we are already (m/s)
YIELD_FASTER_MPS = 0.5
# ... or it is behind us and this much slower (m/s): it drops back on its own
YIELD_SLOWER_MPS = 1.0
# right after a lane change our car following keeps this time headway (s) for
# `MERGE_HOLD_S` (s: the change itself), then goes back to its usual one over
# `MERGE_RELAX_S` (s)
MERGE_HEADWAY_S = 0.8
MERGE_HOLD_S = 5.0
MERGE_RELAX_S = 5.0


@dataclass(frozen=True)
class GapRule:
    """The acceptable gap for a lane change (module docstring); times in s, distances in m,
    decelerations in m/s²."""

    min_gap_m: float = 2.0
    follower_headway_s: float = 0.5
    follower_brake_mps2: float = 2.0
    leader_headway_s: float = 0.3
    own_brake_mps2: float = 1.5
    horizon_s: float = 2.0
    # the time headway (s) our car following keeps right after the change (`merge_headway`)
    merge_headway_s: float = MERGE_HEADWAY_S


def merge_headway(since_taken_s: float) -> float:
    """The time headway (s) our car following keeps `since_taken_s` s after a lane change
    took its gap: `MERGE_HEADWAY_S` through the change, then back to the usual
    `IDM_TIME_HEADWAY_S` evenly over `MERGE_RELAX_S` — as a driver who merged into a gap a
    little short closes back to the usual gap gently instead of braking at once (headway
    relaxation, as in LMRS: Schakel, Knoop, van Arem 2012)."""
    relaxed = min(max((since_taken_s - MERGE_HOLD_S) / MERGE_RELAX_S, 0.0), 1.0)
    return MERGE_HEADWAY_S + (IDM_TIME_HEADWAY_S - MERGE_HEADWAY_S) * relaxed


def follow_accel(
    v_mps: float,
    lead_speed_mps: FloatArray,
    gap_m: FloatArray,
    headway_s: float = IDM_TIME_HEADWAY_S,
) -> FloatArray:
    """The acceleration (m/s²) of the motion planner's car-following model (the improved
    IDM blended with the constant-acceleration heuristic, the ACC model; `planning.motion`)
    at speed `v_mps` behind leaders at `gap_m` (bumper to bumper) driving `lead_speed_mps`,
    keeping a time headway of `headway_s`, cruising at its desired speed (the free-road term
    0: IIDM brakes only below the desired gap s*, by a·(1 − (s*/gap)²))."""
    gap = np.maximum(np.asarray(gap_m, dtype=np.float64), 0.1)
    dv = v_mps - np.asarray(lead_speed_mps, dtype=np.float64)
    brake = 2.0 * np.sqrt(IDM_ACCEL_MPS2 * IDM_DECEL_MPS2)
    s_star = IDM_MIN_GAP_M + np.maximum(0.0, v_mps * headway_s + v_mps * dv / brake)
    idm = np.minimum(IDM_ACCEL_MPS2 * (1.0 - (s_star / gap) ** 2), 0.0)
    cah = -(np.maximum(dv, 0.0) ** 2) / (2.0 * gap)
    blended = (1.0 - ACC_COOLNESS) * idm + ACC_COOLNESS * (
        cah + IDM_DECEL_MPS2 * np.tanh((idm - cah) / IDM_DECEL_MPS2)
    )
    return np.where(idm < cah, blended, idm)


def _blockers(
    ego: VehicleState,
    predictions: Predictions,
    target_lane: ReferencePath,
    params: VehicleParams,
    rule: GapRule,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per road user: whether it closes the gap, its arc length and speed along the target
    lane (m, m/s); and the car's rear-axle arc length on it (m)."""
    es, _ = target_lane.project(ego.x, ego.y)
    s_ego = float(es)
    v = max(ego.speed, 0.0)
    window = (s_ego - REACH_M, s_ego + REACH_M)
    a_s, a_d = target_lane.project(predictions.xy[:, 0, 0], predictions.xy[:, 0, 1], window)
    a_s, a_d = np.atleast_1d(a_s), np.atleast_1d(a_d)
    lane_heading = target_lane.heading_at(a_s)
    v_s = predictions.speed * np.cos(predictions.heading[:, 0] - lane_heading)
    half_len = 0.5 * predictions.length
    lane_w = target_lane.lane_width_at(a_s)
    relevant = (
        np.array([k in _GAP_KINDS for k in predictions.kinds], dtype=bool)
        & (np.abs(a_d) < 0.5 * lane_w + LANE_SLACK_M)
        & (np.abs(a_s - s_ego) < REACH_M)
        & (v_s > -1.0)  # coming the other way: not a lane of ours
    )
    our_front = s_ego + params.rear_axle_to_front_m
    our_rear = s_ego - params.rear_overhang_m
    behind = a_s < s_ego + params.rear_axle_to_center_m
    v_f = np.maximum(v_s, 0.0)
    # behind us: the gap from its front to our rear, and the braking it needs for us
    gap_back = our_rear - (a_s + half_len)
    follower_bad = _unsafe_gap(
        gap_back, v_f, v, rule.follower_headway_s, rule.follower_brake_mps2, rule
    )
    # ahead of us: the gap from our front to its rear, and the braking we need for it
    gap_ahead = (a_s - half_len) - our_front
    leader_bad = _unsafe_gap(
        gap_ahead, v, v_f, rule.leader_headway_s, rule.own_brake_mps2, rule
    ) | (
        # our own car following (the motion planner's ACC model, at the headway it keeps
        # right after a change, `merge_headway`) must not brake hard behind it once we are
        # in: braking for nothing right after cutting in is how a car gets run into by the
        # follower it just accepted
        follow_accel(v, v_f, gap_ahead, rule.merge_headway_s) < -rule.own_brake_mps2
    )
    bad = relevant & np.where(behind, follower_bad, leader_bad)
    return bad, a_s, v_f, s_ego


def lane_change_gap_ok(
    ego: VehicleState,
    predictions: Predictions,
    target_lane: ReferencePath,
    params: VehicleParams = IPACE,
    rule: GapRule | None = None,
) -> bool:
    """Whether the gap in `target_lane` (its centre line as a path) beside the car takes it
    now (module docstring). `ego` is the car at its rear axle."""
    if len(predictions) == 0:
        return True
    bad, _, _, _ = _blockers(ego, predictions, target_lane, params, rule or GapRule())
    return not bool(np.any(bad))


def yield_speed(
    ego: VehicleState,
    predictions: Predictions,
    target_lane: ReferencePath,
    params: VehicleParams = IPACE,
    rule: GapRule | None = None,
) -> float | None:
    """The speed (m/s) to let the nearest road user that closes the gap in `target_lane` go
    by (module docstring), or None: the gap is there, or its closer comes by on its own."""
    if len(predictions) == 0:
        return None
    bad, a_s, v_f, s_ego = _blockers(ego, predictions, target_lane, params, rule or GapRule())
    if not np.any(bad):
        return None
    i = int(np.argmin(np.where(bad, np.abs(a_s - s_ego), np.inf)))
    if v_f[i] > ego.speed + YIELD_FASTER_MPS:
        return None  # faster than we are: it goes by on its own
    if a_s[i] < s_ego + params.rear_axle_to_center_m and v_f[i] < ego.speed - YIELD_SLOWER_MPS:
        # behind us and slower: it drops back while we keep our pace (braking to below
        # its speed to let it by would be braking for nothing, in front of our follower)
        return None
    return max(float(v_f[i]) - YIELD_MARGIN_MPS, 0.0)


def _unsafe_gap(
    gap_m: FloatArray,
    v_rear: FloatArray | float,
    v_front: FloatArray | float,
    headway_s: float,
    brake_mps2: float,
    rule: GapRule,
) -> npt.NDArray[np.bool_]:
    """Whether a gap (m) between a rear and a front car is too small: now, or `rule.horizon_s`
    later at constant speeds (less than the minimum gap plus `headway_s` of the rear car's
    speed), or the rear car must brake harder than `brake_mps2` to keep the minimum gap."""
    closing = np.maximum(v_rear - v_front, 0.0)
    room = np.maximum(gap_m - rule.min_gap_m, 0.05)
    later = gap_m - (v_rear - v_front) * rule.horizon_s
    return np.asarray(
        (gap_m < rule.min_gap_m)
        | (later < rule.min_gap_m + v_rear * headway_s)
        | (closing**2 / (2.0 * room) > brake_mps2)
    )
