"""Lane-level route on the map → the planner's `ReferencePath`.

A route is a sequence of edges. On each edge the car follows the lane it entered on and
moves, over the middle of the edge, to the lane from which the turn onto the next edge
leaves (a lane change written into the reference line); through junctions it follows
SUMO's internal lanes. Stop lines sit at the end of every lane whose turn is signalised;
their `signal_id` is "<tls id>:<link index>", the key of `SumoWorld.signal_states`. A
`LaneSwitch` instead moves the car, on one edge (the first by default), from its lane to
another one at a given stretch and keeps it there to the edge's end (remote assistance: "this
lane is closed").
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from robotaxi.autonomy.planning.reference import ReferencePath, StopLine
from robotaxi.core import ScenarioError
from robotaxi.core.types import FloatArray
from robotaxi.map import Lane, RoadMap
from robotaxi.map.model import Connection

POINT_SPACING_M = 2.0
# San Francisco's streets have a parking lane (about 2.4 m) beside the rightmost travel lane;
# SUMO's networks do not model it, so the kerb is taken to lie this far right of the lane
# edge wherever stopping at the curb is allowed (not on fast arterials).
CURB_SHOULDER_M = 2.2
MAX_SHOULDER_SPEED_MPS = 17.0
JUNCTION_MARGIN_M = 1.5


@dataclass(frozen=True)
class LaneRoute:
    """The reference path and the lanes it was built from (in order), for the world's hints."""

    path: ReferencePath
    lane_ids: tuple[str, ...]
    lane_start_s: FloatArray  # arc length where each lane of `lane_ids` begins


@dataclass(frozen=True, slots=True)
class LaneSwitch:
    """On the route's edge `edge_index` (0: the first): leave the lane it enters that edge in
    for the edge's lane of index `to_lane` between `from_m` and `to_m` (m along the edge),
    keep to it to the edge's end, and turn onto the next edge from it (an operator said the
    entry lane is closed ahead). The route up to there is the same as without it."""

    to_lane: int
    from_m: float
    to_m: float
    edge_index: int = 0


# A closed lane is left over the room to the standing obstacle ahead in it plus
# `SWITCH_EXTRA_M`, within these bounds (m), plus a second of the car's speed: short, as a
# driver steers out from behind a standing car (over the next lane's line before its front
# reaches the obstacle), and no shorter than the car can steer.
SWITCH_EXTRA_M = 2.0
SWITCH_MIN_M = 6.0
SWITCH_MAX_M = 16.0
# the gap check sees the lane it moves into this far back before its street begins (m)
SWITCH_LOOK_BACK_M = 80.0


def closed_lane_switch(
    to_lane: int,
    rear_m: float,
    room_m: float,
    speed_mps: float,
    lane_length_m: float,
    edge_index: int = 0,
) -> LaneSwitch:
    """Leave a closed lane for lane `to_lane` of the same edge now: from the car's rear axle
    at `rear_m` (m along the edge), over the room `room_m` (m) to the standing obstacle ahead
    (see `SWITCH_EXTRA_M`), at `speed_mps`, ending 0.5 m before the edge's end at the latest."""
    over_m = min(max(room_m + SWITCH_EXTRA_M, SWITCH_MIN_M), SWITCH_MAX_M) + speed_mps
    end_m = min(rear_m + over_m, lane_length_m - 0.5)
    return LaneSwitch(to_lane, min(rear_m, end_m - 4.0), end_m, edge_index)


def lane_centre_path(lane: Lane, look_back_m: float = SWITCH_LOOK_BACK_M) -> ReferencePath:
    """`lane`'s centre line as a path, run on straight back `look_back_m` before its start
    (so that a lane change's gap check sees who comes up behind from the street before)."""
    xy = np.asarray(lane.centerline, dtype=float)
    back = xy[0] - xy[1]
    back = back / max(float(np.hypot(*back)), 1e-9)
    line = np.vstack([xy[0] + back * look_back_m, xy])
    return ReferencePath(
        line, np.asarray(lane.width), np.asarray(lane.speed_limit),
        np.asarray(lane.width / 2), np.asarray(lane.width / 2),
    )  # fmt: skip


def _resample(line: FloatArray, spacing: float = POINT_SPACING_M) -> FloatArray:
    seg = np.hypot(*np.diff(line, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 1e-6:
        return line[:1]
    n = max(2, int(np.ceil(s[-1] / spacing)) + 1)
    t = np.linspace(0.0, s[-1], n)
    return np.column_stack([np.interp(t, s, line[:, 0]), np.interp(t, s, line[:, 1])])


def _blend(first: FloatArray, second: FloatArray) -> FloatArray:
    """Move from lane `first` to the parallel lane `second` over the middle of the edge."""
    a, b = _resample(first), _resample(second)
    n = min(len(a), len(b))
    a, b = (
        a[np.linspace(0, len(a) - 1, n).astype(int)],
        b[np.linspace(0, len(b) - 1, n).astype(int)],
    )
    u = np.linspace(0.0, 1.0, n)
    w = np.clip((u - 0.3) / 0.4, 0.0, 1.0)
    w = w * w * (3 - 2 * w)  # smoothstep: no lateral jerk at either end
    return a * (1 - w)[:, None] + b * w[:, None]


def _switch(first: FloatArray, second: FloatArray, from_m: float, to_m: float) -> FloatArray:
    """Follow lane `first` to `from_m` (m along it), move to the parallel lane `second` by
    `to_m`, and follow that one on."""
    a = _resample(first)
    s_a = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(a, axis=0).T))])
    b = _resample(second)
    s_b = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(b, axis=0).T))])
    # the point of `second` at the same share of its length as each point of `first`
    u = s_a / max(s_a[-1], 1e-6) * s_b[-1]
    beside = np.column_stack([np.interp(u, s_b, b[:, 0]), np.interp(u, s_b, b[:, 1])])
    w = np.clip((s_a - from_m) / max(to_m - from_m, 1e-6), 0.0, 1.0)
    w = w * w * (3 - 2 * w)  # smoothstep: no lateral jerk at either end
    return a * (1 - w)[:, None] + beside * w[:, None]


def _connection(
    road_map: RoadMap, from_edge: str, to_edge: str, from_index: int | None = None
) -> Connection:
    """The connection the route turns by: from lane `from_index` of `from_edge` when given."""
    options = [
        c
        for c in road_map.connections
        if road_map.lanes[c.from_lane].edge_id == from_edge
        and road_map.lanes[c.to_lane].edge_id == to_edge
        and road_map.lanes[c.from_lane].allows_robotaxi
        and (from_index is None or road_map.lanes[c.from_lane].index == from_index)
    ]
    if not options:
        if from_index is not None:
            raise ScenarioError(f"lane {from_index} of {from_edge} does not lead to {to_edge}")
        raise ScenarioError(
            f"route turns from {from_edge} to {to_edge}, which the map does not allow"
        )
    # left turns from the leftmost lane, everything else from the rightmost
    left = options[0].direction in ("l", "L", "t")
    return max(options, key=lambda c: road_map.lanes[c.from_lane].index * (1 if left else -1))


def reference_path(
    road_map: RoadMap,
    edges: Sequence[str],
    *,
    start_lane: int | None = None,
    end_lane: int | None = None,
    switch: LaneSwitch | None = None,
) -> LaneRoute:
    """Build the reference line along `edges` (each turn must be a connection of the map);
    with `switch`, the car moves to another lane of one edge (`LaneSwitch`)."""
    if not edges:
        raise ScenarioError("a route needs at least one edge")
    if switch is not None and not 0 <= switch.edge_index < len(edges):
        raise ScenarioError(f"lane switch on edge {switch.edge_index}: the route has {len(edges)}")
    switch_at, switch_to = (-1, None) if switch is None else (switch.edge_index, switch.to_lane)
    for e in edges:
        if e not in road_map.edges:
            raise ScenarioError(f"route edge {e!r} is not in map {road_map.name}")
    pieces: list[tuple[FloatArray, Lane, Lane | None]] = []  # (points, lane, turn-from lane)
    stop_lines: list[tuple[int, str]] = []  # (piece index whose end is the line, signal id)
    conns = [
        _connection(road_map, a, b, switch_to if k == switch_at else None)
        for k, (a, b) in enumerate(itertools.pairwise(edges))
    ]
    lanes_of = [road_map.robotaxi_lanes(road_map.edges[e]) for e in edges]
    entry_lane = (
        _lane_index(lanes_of[0], start_lane)
        if start_lane is not None
        else (
            road_map.lanes[conns[0].from_lane] if conns else min(lanes_of[0], key=lambda x: x.index)
        )
    )
    for k in range(len(edges)):
        if k < len(conns):
            exit_lane = road_map.lanes[conns[k].from_lane]
        elif switch is not None and k == switch_at:
            exit_lane = _lane_index(lanes_of[k], switch.to_lane)
        elif end_lane is not None:
            exit_lane = _lane_index(lanes_of[k], end_lane)
        else:
            exit_lane = entry_lane
        if exit_lane.lane_id == entry_lane.lane_id:
            line = _resample(entry_lane.centerline)
        elif switch is not None and k == switch_at:
            line = _switch(entry_lane.centerline, exit_lane.centerline, switch.from_m, switch.to_m)
        else:
            line = _blend(entry_lane.centerline, exit_lane.centerline)
        pieces.append((line, exit_lane, entry_lane))
        if k < len(conns):
            conn = conns[k]
            if conn.tls_id:
                stop_lines.append((len(pieces) - 1, f"{conn.tls_id}:{conn.link_index}"))
            via = conn.via_lane
            while via and road_map.lanes[via].internal:
                lane = road_map.lanes[via]
                pieces.append((_resample(lane.centerline), lane, None))
                via = lane.successors[0] if lane.successors else ""
            entry_lane = road_map.lanes[conn.to_lane]
    xy_parts: list[FloatArray] = []
    width: list[FloatArray] = []
    speed: list[FloatArray] = []
    right: list[FloatArray] = []
    left: list[FloatArray] = []
    oncoming: list[FloatArray] = []
    solid: list[FloatArray] = []
    lane_ids: list[str] = []
    piece_end_index: list[int] = []
    count = 0
    for points, lane, _entry in pieces:
        pts = points
        if xy_parts and len(pts) and np.hypot(*(pts[0] - xy_parts[-1][-1])) < 0.05:
            pts = pts[1:]
        if len(pts) == 0:
            piece_end_index.append(count - 1)
            lane_ids.append(lane.lane_id)
            continue
        xy_parts.append(pts)
        n = len(pts)
        siblings = [] if lane.internal else road_map.robotaxi_lanes(road_map.edges[lane.edge_id])
        right_extra = sum(x.width for x in siblings if x.index < lane.index)
        if not lane.internal and lane.speed_limit <= MAX_SHOULDER_SPEED_MPS:
            right_extra += CURB_SHOULDER_M
        left_extra = sum(x.width for x in siblings if x.index > lane.index)
        if lane.internal:
            # inside the junction the whole box is drivable, not just the turn's lane
            right_extra = left_extra = JUNCTION_MARGIN_M
        width.append(np.full(n, lane.width))
        speed.append(np.full(n, lane.speed_limit))
        right.append(np.full(n, lane.width / 2 + right_extra))
        left.append(np.full(n, lane.width / 2 + left_extra))
        oncoming_w = _oncoming_width(road_map, lane, siblings)
        oncoming.append(np.full(n, oncoming_w))
        marked = oncoming_w > 0 and lane.edge_id in road_map.solid_centre_lines
        solid.append(np.full(n, 1.0 if marked else 0.0))
        lane_ids.append(lane.lane_id)
        count += n
        piece_end_index.append(count - 1)
    xy = np.concatenate(xy_parts)
    keep = np.concatenate([[True], np.hypot(*np.diff(xy, axis=0).T) > 1e-6])
    path = ReferencePath(
        xy=xy[keep],
        lane_width_m=np.concatenate(width)[keep],
        speed_limit_mps=np.concatenate(speed)[keep],
        right_room_m=np.concatenate(right)[keep],
        left_room_m=np.concatenate(left)[keep],
        oncoming_room_m=np.concatenate(oncoming)[keep],
        solid_centre_line=np.concatenate(solid)[keep],
    )
    kept_index = np.cumsum(keep) - 1
    starts = [0.0] + [float(path.s[kept_index[i]]) for i in piece_end_index[:-1]]
    lines = tuple(
        StopLine(s_m=float(path.s[kept_index[piece_end_index[i]]]), signal_id=sid)
        for i, sid in stop_lines
    )
    path = ReferencePath(
        xy=path.xy,
        lane_width_m=path.lane_width_m,
        speed_limit_mps=path.speed_limit_mps,
        right_room_m=path.right_room_m,
        left_room_m=path.left_room_m,
        stop_lines=lines,
        oncoming_room_m=path.oncoming_room_m,
        solid_centre_line=path.solid_centre_line,
    )
    return LaneRoute(path=path, lane_ids=tuple(lane_ids), lane_start_s=np.asarray(starts))


def _oncoming_width(road_map: RoadMap, lane: Lane, siblings: Sequence[Lane]) -> float:
    """Width of the lanes of the same street's other direction (the edge back between the
    same two junctions) beside the leftmost lane of an edge; 0 inside junctions, on one-way
    streets, and beside lanes with a same-direction lane to their left."""
    if lane.internal or any(x.index > lane.index for x in siblings):
        return 0.0
    edge = road_map.edges[lane.edge_id]
    for other in road_map.edges.values():
        if other.from_node == edge.to_node and other.to_node == edge.from_node:
            return float(sum(x.width for x in road_map.robotaxi_lanes(other)))
    return 0.0


def _lane_index(lanes: Sequence[Lane], index: int) -> Lane:
    for lane in lanes:
        if lane.index == index:
            return lane
    raise ScenarioError(
        f"lane index {index} does not exist here (lanes {[x.index for x in lanes]})"
    )
