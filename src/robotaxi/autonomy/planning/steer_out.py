"""How far behind a standing obstacle the car must stand to steer out round it (it cannot
back up).

From standing straight behind an obstacle, the car pulls away at `pull_out_speed_mps` and
turns its wheels toward the free side at its full steering rate (`VehicleParams.
max_steer_rate_rad_s`, up to full lock) — the kinematic bicycle model of `vehicle`. The
front corner on the obstacle's side must move sideways past the obstacle's near edge (plus
`lateral_margin_m`) before it reaches the obstacle's rear: the forward distance that corner
covers until then, plus `margin_m` for the planner's tracking, is the room the car needs
(bumper to bumper). For the I-PACE, 2 m/s and the default margins: ~4.9 m behind a car in
the middle of its lane, ~5.2 m behind road works that fill a 3.5 m lane, ~3.8 m behind a
car parked half on the kerb.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.vehicle import VehicleParams, _advance
from robotaxi.core.types import FloatArray, Track

PULL_OUT_SPEED_MPS = 2.0  # the speed the motion planner reaches pulling out from a stand
LATERAL_MARGIN_M = 0.5  # the car's side passes the obstacle's edge by this much, m
# for the planner's tracking of its path (pure pursuit cuts the turn), m: measured in closed
# loop, the car needs 5.0 m to steer round works 3.1 m wide in a 3.5 m lane (from 4.8 m it
# touches them), where the bicycle model alone says 3.9 m
MARGIN_M = 1.3
# the table of forward distance by sideways move: every 0.1 m up to 8 m
_SHIFT_STEP_M = 0.1
_SHIFT_MAX_M = 8.0
_DT_S = 0.01


@functools.lru_cache(maxsize=8)
def _corner_table(params: VehicleParams, speed_mps: float) -> tuple[FloatArray, FloatArray]:
    """(sideways move of the front corner on the turn's outer side, m; forward distance it
    has covered, m), from standing straight, steering at the full rate at `speed_mps`."""
    x = y = heading = steer = 0.0
    front, half_w = params.rear_axle_to_front_m, 0.5 * params.width_m
    shifts, forward = [0.0], [0.0]
    zero = np.zeros(1)
    for _ in range(200_000):
        nx, ny, nh, _v, ns, _a = _advance(
            np.array([x]), np.array([y]), np.array([heading]), np.array([speed_mps]),
            np.array([steer]), zero, np.array([params.max_steer_rate_rad_s]), _DT_S, params,
        )  # fmt: skip
        x, y, heading, steer = float(nx[0]), float(ny[0]), float(nh[0]), float(ns[0])
        # the front corner on the side away from the turn (the one that clears the obstacle)
        cx = x + front * math.cos(heading) + half_w * math.sin(heading)
        cy = y + front * math.sin(heading) - half_w * math.cos(heading)
        shifts.append(cy + half_w)
        forward.append(cx - front)
        if shifts[-1] >= _SHIFT_MAX_M or heading > 0.5 * math.pi:
            break
    grid = np.arange(0.0, _SHIFT_MAX_M + 1e-9, _SHIFT_STEP_M)
    # the sideways move grows monotonically until the car has turned a quarter circle
    return grid, np.interp(grid, np.maximum.accumulate(shifts), forward)


def steer_out_gap_m(
    params: VehicleParams,
    lateral_shift_m: float | FloatArray,
    *,
    pull_out_speed_mps: float = PULL_OUT_SPEED_MPS,
    lateral_margin_m: float = LATERAL_MARGIN_M,
    margin_m: float = MARGIN_M,
) -> FloatArray:
    """The least room (m, bumper to bumper) behind a standing obstacle from which the car
    can steer out round it, when its side must move `lateral_shift_m` (m) sideways to clear
    the obstacle's near edge (module docstring)."""
    grid, forward = _corner_table(params, pull_out_speed_mps)
    shift = np.clip(np.asarray(lateral_shift_m, dtype=np.float64) + lateral_margin_m, 0.0, None)
    return np.interp(shift, grid, forward) + margin_m


def clearing_shift_m(
    params: VehicleParams,
    ego_d_m: float,
    obstacle_d_m: float | FloatArray,
    obstacle_width_m: float | FloatArray,
) -> FloatArray:
    """How far (m) the car, centred `ego_d_m` left of the path, must move left to have its
    right side at the left edge of obstacles centred `obstacle_d_m` left of the path
    (`obstacle_width_m` wide); 0 for one already clear of its path."""
    left_edge = np.asarray(obstacle_d_m) + 0.5 * np.asarray(obstacle_width_m)
    return np.maximum(left_edge - (ego_d_m - 0.5 * params.width_m), 0.0)


def room_to_steer_out(
    path: ReferencePath,
    s_front_m: float,
    tracks: Sequence[Track],
    params: VehicleParams,
    *,
    d_ego_m: float = 0.0,
    standing_below_mps: float = 0.5,
) -> tuple[float, float]:
    """(room, needed), m: bumper to bumper, the room from the car's front (at arc length
    `s_front_m` of `path`, `d_ego_m` left of it) to the nearest tracked road user standing
    (slower than `standing_below_mps`) in its lane ahead, and the least room from which the
    car can steer out round that one (`steer_out_gap_m`, to whichever side needs less);
    (inf, 0) when none stands there."""
    if not tracks:
        return math.inf, 0.0
    xy = np.array([(t.x, t.y) for t in tracks])
    s, d = path.project(xy[:, 0], xy[:, 1], (s_front_m - 10.0, s_front_m + 60.0))
    s, d = np.atleast_1d(s), np.atleast_1d(d)
    length = np.array([t.length for t in tracks])
    width = np.array([t.width for t in tracks])
    rear = s - 0.5 * length
    standing = np.array([t.speed < standing_below_mps for t in tracks])
    in_lane = np.abs(d) < 0.5 * np.atleast_1d(path.lane_width_at(s))
    ahead = standing & in_lane & (rear > s_front_m - 0.5)
    if not np.any(ahead):
        return math.inf, 0.0
    i = int(np.argmin(np.where(ahead, rear, np.inf)))
    left = float(clearing_shift_m(params, d_ego_m, d[i : i + 1], width[i : i + 1])[0])
    right = max(d_ego_m + 0.5 * params.width_m - (float(d[i]) - 0.5 * float(width[i])), 0.0)
    return float(rear[i] - s_front_m), float(steer_out_gap_m(params, min(left, right)))
