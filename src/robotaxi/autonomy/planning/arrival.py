"""Arriving at a goal region inside its time window: the speeds between which the car neither
passes through the region before the window opens nor reaches it after it closes.

A goal that must be reached within a time window (a CommonRoad planning problem's goal
region, a pick-up slot) is missed as surely by arriving early and driving on as by arriving
late. `arrival_speed_bounds` turns the window into bounds on the target speed: at most the
speed that puts the car's centre `EARLY_AIM_FRACTION` of the way through the region when the
window opens (still inside it, however long it is), at least the speed that puts it
`LATE_AIM_FRACTION` of the way in when the window closes. The planner keeps its own target speed
(speed limits, bends, traffic) whenever that lies between the two, so the car only deviates
from the pace of traffic where the window asks for it; leaders, stops and every safety check
of the motion planner still apply on top. Nor does it slow for the window below the pace of
a car close behind in its lane (`follower_pace`): braking for nothing in front of someone is
how a car gets run into.

A region narrower than the lane and off its centre (a spot to be at, like a kerbside stop)
is also aimed at sideways: `region_aim_offset` moves the car over within its lane, no further
than it takes for its centre to pass inside the region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robotaxi.autonomy.planning.behaviour.scene import FrenetScene
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import Predictions
from robotaxi.autonomy.vehicle import IPACE, VehicleParams
from robotaxi.core.types import FloatArray

# goal-region points further than this from the route (m) do not bound the region along it
# (a region drawn over several lanes: only the stretch beside the route counts)
REGION_LATERAL_REACH_M = 6.0
# how far through the region (a fraction of its length along the route) the car may be at
# the latest when the window opens, and must be at the least when it closes
EARLY_AIM_FRACTION = 0.75
LATE_AIM_FRACTION = 0.25
# the car holds back for a window only once the point it may reach by the window's opening is
# this many seconds ahead at its own target speed
EARLY_LOOKAHEAD_S = 4.0
# below this much time left to the window's edge (s) the bound is not imposed: a division by
# nearly nothing, and too late for the speed to change where the car is anyway
MIN_TIME_LEFT_S = 0.3
# the car aims its centre at the goal region's middle (within its lane) from this many
# seconds of travel (at least this many metres) before the region: time for a gentle drift
ALIGN_AHEAD_S = 3.0
ALIGN_AHEAD_M = 15.0
# ... at least this far inside the region's sides (m): no further from the lane centre
# than that takes
ALIGN_INSIDE_M = 0.4
# ... keeping its own sides this far inside the lane's edges (m)
ALIGN_LANE_MARGIN_M = 0.15
# a car behind in our lane closer than this many seconds of its speed plus metres sets the
# least pace the window may slow us to
FOLLOWER_GUARD_S = 2.0
FOLLOWER_GUARD_M = 5.0
# likewise a car ahead in our lane closer than this many seconds of our speed plus metres
# (we keep up with it: it gets to the region first in any case)
LEADER_GUARD_S = 2.0
LEADER_GUARD_M = 5.0


@dataclass(frozen=True)
class GoalWindow:
    """A goal region and when the car must be in it: the region's outline (K×2 map points of
    its polygons, m) and the window from `open_s` to `close_s` (simulation time, s)."""

    outline_xy: FloatArray
    open_s: float
    close_s: float


def region_span(path: ReferencePath, window: GoalWindow) -> tuple[float, float] | None:
    """The goal region's extent along `path` (arc lengths of its first and last points near
    the route, m), or None where no point of it lies within `REGION_LATERAL_REACH_M` of the
    route."""
    xy = np.asarray(window.outline_xy, dtype=np.float64)
    if xy.size == 0:
        return None
    s, d = path.project(xy[:, 0], xy[:, 1])
    near = np.abs(d) <= REGION_LATERAL_REACH_M
    if not np.any(near):
        return None
    return float(np.min(s[near])), float(np.max(s[near]))


def region_lateral_extent(path: ReferencePath, window: GoalWindow) -> tuple[float, float] | None:
    """The lateral extent (least and greatest offset from `path`, m, left positive) of the
    goal region's stretch beside the route (its points within `REGION_LATERAL_REACH_M`),
    or None where no point of it lies that near."""
    xy = np.asarray(window.outline_xy, dtype=np.float64)
    if xy.size == 0:
        return None
    _, d = path.project(xy[:, 0], xy[:, 1])
    near = np.abs(d) <= REGION_LATERAL_REACH_M
    if not np.any(near):
        return None
    return float(np.min(d[near])), float(np.max(d[near]))


def region_aim_offset(
    span_s: tuple[float, float],
    extent_d: tuple[float, float],
    centre_s: float,
    speed_mps: float,
    lane_width_m: float,
    params: VehicleParams = IPACE,
) -> float | None:
    """The lateral offset (m) to drive at so that the car's centre, at arc length
    `centre_s` (m) and `speed_mps`, passes through the goal region (lateral extent
    `extent_d`, m): the offset nearest the lane centre that is `ALIGN_INSIDE_M` inside the
    region (its middle, if it is narrower than that), as far as the car stays in its lane
    (`ALIGN_LANE_MARGIN_M` inside its edges); None before the region is `ALIGN_AHEAD_S`
    (at least `ALIGN_AHEAD_M`) ahead and once the car's centre is past it. A goal region
    is a place to be, like a kerbside stop, not only a stretch of road: one narrower than
    the lane and off its centre is missed by a car that keeps to the centre line."""
    reach = max(ALIGN_AHEAD_M, ALIGN_AHEAD_S * max(speed_mps, 0.0))
    if centre_s > span_s[1] or span_s[0] - centre_s > reach:
        return None
    lo, hi = extent_d[0] + ALIGN_INSIDE_M, extent_d[1] - ALIGN_INSIDE_M
    aim = 0.5 * (lo + hi) if lo > hi else min(max(0.0, lo), hi)
    room = max(0.5 * lane_width_m - 0.5 * params.width_m - ALIGN_LANE_MARGIN_M, 0.0)
    return float(np.clip(aim, -room, room))


def arrival_speed_bounds(
    span_s: tuple[float, float],
    centre_s: float,
    time_s: float,
    window: GoalWindow,
    speed_mps: float = float("inf"),
) -> tuple[float, float]:
    """(least, greatest) target speed (m/s) for the car's centre at arc length `centre_s` (m)
    at `time_s` (s) to be inside the region `span_s` within the window: the greatest brings
    it `EARLY_AIM_FRACTION` of the way through the region as the window opens (no further),
    the least `LATE_AIM_FRACTION` of the way in as it closes (no less far). Either bound is
    0 / inf where it does not apply: the window already open or the region left behind (no
    greatest), the point to reach already passed or the window over (no least). The
    greatest also waits until that point is within `EARLY_LOOKAHEAD_S` at `speed_mps` (the
    car's own target speed, m/s): traffic may yet slow a car that is early far out, and one
    that slows for a window long before anyone else does is in everyone's way."""
    length = span_s[1] - span_s[0]
    lo, hi = 0.0, float("inf")
    if time_s > window.close_s:
        return lo, hi
    to_open = window.open_s - time_s
    early_to_go = span_s[0] + EARLY_AIM_FRACTION * length - centre_s
    near = early_to_go <= EARLY_LOOKAHEAD_S * speed_mps
    if to_open >= MIN_TIME_LEFT_S and centre_s < span_s[1] and near:
        # past that point but still inside: wait there (no faster than 0)
        hi = max(early_to_go, 0.0) / to_open
    to_close = window.close_s - time_s
    late_to_go = span_s[0] + LATE_AIM_FRACTION * length - centre_s
    if to_close >= MIN_TIME_LEFT_S and late_to_go > 0.0:
        lo = late_to_go / to_close
    return lo, max(hi, lo)


def follower_pace(
    scene: FrenetScene,
    predictions: Predictions,
    lane_width_m: float,
    params: VehicleParams = IPACE,
) -> float | None:
    """The speed (m/s) of the fastest road user close behind the car in its lane (within
    `FOLLOWER_GUARD_S` of its speed plus `FOLLOWER_GUARD_M` of our rear), or None."""
    if len(predictions) == 0:
        return None
    a_s, a_d, v_s = scene.agent_s[:, 0], scene.agent_d[:, 0], scene.agent_v_s
    gap = scene.ego_s - params.rear_overhang_m - (a_s + 0.5 * predictions.length)
    close = (
        (np.abs(a_d - scene.ego_d) < 0.5 * lane_width_m)
        & (gap > -0.5)
        & (v_s > 0.0)
        & (gap < FOLLOWER_GUARD_S * v_s + FOLLOWER_GUARD_M)
    )
    if not np.any(close):
        return None
    return float(np.max(v_s[close]))


def leader_pace(
    scene: FrenetScene,
    predictions: Predictions,
    lane_width_m: float,
    speed_mps: float,
    params: VehicleParams = IPACE,
) -> float | None:
    """The speed (m/s) of the nearest road user close ahead of the car in its lane (within
    `LEADER_GUARD_S` of our speed `speed_mps` plus `LEADER_GUARD_M` of our front), or None:
    falling back behind it to time the arrival only opens a gap, as it gets to the region
    first and sets when we can."""
    if len(predictions) == 0:
        return None
    a_s, a_d, v_s = scene.agent_s[:, 0], scene.agent_d[:, 0], scene.agent_v_s
    gap = (a_s - 0.5 * predictions.length) - (scene.ego_s + params.rear_axle_to_front_m)
    close = (
        (np.abs(a_d - scene.ego_d) < 0.5 * lane_width_m)
        & (gap > -0.5)
        & (v_s > 0.0)
        & (gap < LEADER_GUARD_S * max(speed_mps, 0.0) + LEADER_GUARD_M)
    )
    if not np.any(close):
        return None
    return float(v_s[close][np.argmin(gap[close])])
