"""Oncoming traffic we cannot see: before an unprotected left turn, cars may come through the
oncoming lanes hidden behind a vehicle that stands there (a truck waiting to turn left
opposite, a bus). What we cannot see we assume is there: phantom cars at the speed limit all
along the hidden stretch of each oncoming lane, added to the predictions, so that the motion
planner waits for them as for real ones until the view clears.

Geometry: the oncoming lanes run beside our approach lane, left of its `left_room_m`, for
`oncoming_room_m` (the path's map attributes at the stop line), straight on past the junction
along our approach heading. Sight lines run from the cameras (the footprint centre) and are
blocked by the footprints of the tracked vehicles (the predictions at time 0); static
obstacles the car does not know of (buildings) are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import VEHICLE_KINDS, Predictions
from robotaxi.autonomy.vehicle import VehicleParams, VehicleState
from robotaxi.core.geometry import box_corners
from robotaxi.core.types import AgentKind, FloatArray


@dataclass(frozen=True)
class HiddenTrafficConfig:
    """Where to look for hidden oncoming traffic (m, rad)."""

    # a stop line this near ahead (our front to the line) is the turn's junction
    line_ahead_m: float = 60.0
    # … or this far behind us (we wait inside the junction)
    line_behind_m: float = 30.0
    # the path turns left by at least this much within `turn_probe_m` past the line
    min_turn_rad: float = math.radians(45.0)
    turn_probe_m: float = 35.0
    # the oncoming lanes are watched from this far past the line (across the junction) …
    watch_from_m: float = 12.0
    # … to this far, in steps of
    watch_to_m: float = 100.0
    watch_step_m: float = 4.0
    # only what a vehicle at least this long hides counts (cars queued opposite hide little
    # and are themselves seen coming)
    min_occluder_length_m: float = 6.0
    phantom_spacing_m: float = 12.0
    phantom_length_m: float = 4.5
    phantom_width_m: float = 1.8


# a vehicle slower than this (standing, or just pulling away into its turn) holds up whoever
# is behind it in its lane: they cannot come through at speed (m/s)
HOLDS_UP_MPS = 3.0
# signal states under which we may turn across oncoming traffic that has right of way:
# a permissive green, and the yellow after it (oncoming cars may still come through; once
# it is red they stop, and a car waiting in the junction clears it)
PERMISSIVE = ("g", "y")


def _approach_heading(path: ReferencePath, line_s: float) -> float:
    """Heading of the approach to a stop line (rad): the chord of the last 20 m before it
    (the path may already bend toward the turn at the line)."""
    x0, y0 = (float(v) for v in path.pose_at(max(line_s - 21.0, 0.0), 0.0)[:2])
    x1, y1 = (float(v) for v in path.pose_at(line_s - 1.0, 0.0)[:2])
    return math.atan2(y1 - y0, x1 - x0)


def _left_turn_line(
    path: ReferencePath, s_front: float, signals: Mapping[str, str], cfg: HiddenTrafficConfig
) -> float | None:
    """Arc length of the stop line of an unprotected left turn near us, or None."""
    for line in path.stop_lines:
        if not (-cfg.line_behind_m <= line.s_m - s_front <= cfg.line_ahead_m):
            continue
        if signals.get(line.signal_id, "g") not in PERMISSIVE:
            continue
        end = min(line.s_m + cfg.turn_probe_m, path.length_m)
        h0 = _approach_heading(path, line.s_m)
        h1 = float(path.heading_at(end))
        turn = (h1 - h0 + math.pi) % (2 * math.pi) - math.pi
        if turn >= cfg.min_turn_rad:
            return line.s_m
    return None


def _sight_blocked(
    origin: FloatArray, targets: FloatArray, boxes: FloatArray
) -> np.ndarray[tuple[int], np.dtype[np.bool_]]:
    """For each target point (S×2), whether a box (B×4×2) edge crosses the sight line."""
    if len(boxes) == 0:
        return np.zeros(len(targets), dtype=bool)
    e0 = boxes.reshape(-1, 2)
    e1 = np.roll(boxes, -1, axis=1).reshape(-1, 2)

    def orient(ax: FloatArray, ay: FloatArray, bx: FloatArray, by: FloatArray,
               cx: FloatArray, cy: FloatArray) -> FloatArray:  # fmt: skip
        return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)

    ox, oy = origin[0], origin[1]
    px, py = targets[:, None, 0], targets[:, None, 1]
    ax, ay, bx, by = e0[None, :, 0], e0[None, :, 1], e1[None, :, 0], e1[None, :, 1]
    d1 = orient(ox, oy, px, py, ax, ay)
    d2 = orient(ox, oy, px, py, bx, by)
    d3 = orient(ax, ay, bx, by, ox, oy)
    d4 = orient(ax, ay, bx, by, px, py)
    return np.asarray(np.any((d1 * d2 < 0) & (d3 * d4 < 0), axis=1))


def hidden_oncoming(
    path: ReferencePath,
    ego: VehicleState,
    ego_s: float,
    predictions: Predictions,
    signals: Mapping[str, str],
    params: VehicleParams,
    config: HiddenTrafficConfig | None = None,
) -> Predictions | None:
    """Phantom oncoming cars (predictions over the same horizon) where a standing-by vehicle
    hides the oncoming lanes of an unprotected left turn near us; None when there is none."""
    cfg = config if config is not None else HiddenTrafficConfig()
    if len(predictions) == 0:
        return None
    line_s = _left_turn_line(path, ego_s + params.rear_axle_to_front_m, signals, cfg)
    if line_s is None:
        return None
    big = (predictions.length >= cfg.min_occluder_length_m) & np.array(
        [k in VEHICLE_KINDS or k == AgentKind.UNKNOWN for k in predictions.kinds], dtype=bool
    )
    if not np.any(big):
        return None
    lane_w = float(path.lane_width_at(line_s))
    left = float(path.left_room_at(line_s - 1.0))
    oncoming = float(path.oncoming_room_at(line_s - 1.0))
    n_lanes = round(oncoming / max(lane_w, 0.1))
    if n_lanes == 0:
        return None
    x0, y0, _ = (float(v) for v in path.pose_at(line_s - 1.0, 0.0))
    h0 = _approach_heading(path, line_s)
    along = np.array([math.cos(h0), math.sin(h0)])
    normal = np.array([-math.sin(h0), math.cos(h0)])
    u = np.arange(cfg.watch_from_m, cfg.watch_to_m + 1e-9, cfg.watch_step_m)
    d = left + (np.arange(n_lanes) + 0.5) * lane_w
    # samples K×U×2: lane k, distance u past the line
    pts = (
        np.array([x0, y0])[None, None, :]
        + u[None, :, None] * along[None, None, :]
        + d[:, None, None] * normal[None, None, :]
    )
    boxes = box_corners(
        predictions.xy[big, 0, 0],
        predictions.xy[big, 0, 1],
        predictions.heading[big, 0],
        predictions.length[big],
        predictions.width[big],
    )
    cam = np.array(
        [
            ego.x + params.rear_axle_to_center_m * math.cos(ego.heading),
            ego.y + params.rear_axle_to_center_m * math.sin(ego.heading),
        ]
    )
    blocked = _sight_blocked(cam, pts.reshape(-1, 2), boxes).reshape(n_lanes, len(u))
    # nobody comes at speed through a slow vehicle in their lane: behind it they are held up
    rel = predictions.xy[big, 0] - np.array([x0, y0])
    occ_u, occ_d = rel @ along, rel @ normal
    standing = predictions.speed[big] < HOLDS_UP_MPS
    for ou, od, half, still in zip(
        occ_u, occ_d, 0.5 * predictions.length[big], standing, strict=True
    ):
        if still:
            in_lane = np.abs(d - od) < 0.5 * lane_w
            blocked[np.ix_(in_lane, u >= ou - half)] = False
    if not np.any(blocked):
        return None
    speed = float(path.speed_limit_at(line_s))
    n_t = predictions.xy.shape[1]
    t = np.arange(n_t) * predictions.dt_s
    xy, ids = [], []
    # a stream of them through the whole hidden stretch (one every `phantom_spacing_m`):
    # one that would pass before we get there is followed by the next
    stride = max(1, round(cfg.phantom_spacing_m / cfg.watch_step_m))
    for k in range(n_lanes):
        for j in np.flatnonzero(blocked[k])[::stride]:
            start = pts[k, j] + 0.5 * cfg.phantom_length_m * along
            xy.append(start[None, :] - (speed * t)[:, None] * along[None, :])
            ids.append(-1 - k * len(u) - int(j))
    m = len(ids)
    return Predictions(
        track_ids=np.asarray(ids, dtype=np.int64),
        kinds=(AgentKind.CAR,) * m,
        flashing_lights=np.zeros(m, dtype=bool),
        xy=np.asarray(xy),
        heading=np.full((m, n_t), h0 + math.pi),
        speed=np.full(m, speed),
        length=np.full(m, cfg.phantom_length_m),
        width=np.full(m, cfg.phantom_width_m),
        on_lane=np.ones(m, dtype=bool),
        dt_s=predictions.dt_s,
    )


def with_phantoms(predictions: Predictions, phantoms: Predictions) -> Predictions:
    """The predictions and the phantoms, as one set."""
    return Predictions(
        track_ids=np.concatenate([predictions.track_ids, phantoms.track_ids]),
        kinds=(*predictions.kinds, *phantoms.kinds),
        flashing_lights=np.concatenate([predictions.flashing_lights, phantoms.flashing_lights]),
        xy=np.concatenate([predictions.xy, phantoms.xy]),
        heading=np.concatenate([predictions.heading, phantoms.heading]),
        speed=np.concatenate([predictions.speed, phantoms.speed]),
        length=np.concatenate([predictions.length, phantoms.length]),
        width=np.concatenate([predictions.width, phantoms.width]),
        on_lane=np.concatenate([predictions.on_lane, phantoms.on_lane]),
        dt_s=predictions.dt_s,
    )


def hidden_lane_yield_s(
    path: ReferencePath,
    ego_s: float,
    phantoms: Predictions,
    lane_width_m: float,
    params: VehicleParams,
    reach_m: float = 60.0,
) -> float | None:
    """Where to wait (rear-axle arc length, m) so that our footprint stays 1 m short of the
    oncoming lanes the phantoms come down: a hidden lane is treated as a yield line, so the
    car draws up to it smoothly instead of meeting each phantom at the last moment. None if
    our front is already past that point."""
    if len(phantoms) == 0:
        return None
    s = np.linspace(ego_s, min(ego_s + reach_m, path.length_m), 121)
    xy = np.stack(path.pose_at(s, 0.0)[:2], axis=1)
    heading = phantoms.heading[:, 0]
    normal = np.stack([-np.sin(heading), np.cos(heading)], axis=1)
    # lateral distance of each path point from each phantom's lane centre line
    rel = xy[:, None, :] - phantoms.xy[None, :, 0, :]
    dist = np.abs(np.einsum("smk,mk->sm", rel, normal))
    inside = np.any(dist < 0.5 * lane_width_m + 0.5 * params.width_m, axis=1)
    if not np.any(inside):
        return None
    enter_s = float(s[int(np.argmax(inside))])
    stop = enter_s - params.rear_axle_to_front_m - 1.0
    return stop if stop > ego_s - 0.5 else None
