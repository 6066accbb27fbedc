"""Our own immutable road-map types, loaded from a SUMO `.net.xml`.

Lanes carry centerlines (N×2, metres, map frame), widths, speed limits and successors;
edges group lanes and carry their OSM road class; `RoutingGraph` (routing.py) answers travel
times between edges; curb spots are the places on the rightmost lane where a car may stop
for a rider or pull over; signalised junctions say which traffic light controls them.
"""

from __future__ import annotations

import functools
import gc
import math
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from robotaxi.core.errors import MapBuildError
from robotaxi.core.types import FloatArray
from robotaxi.map.build import BuiltNetwork
from robotaxi.map.projection import Projection

# Lanes faster than this are arterial/highway ramps where stopping at the curb is not allowed.
# The SUMO vehicle class robotaxis drive as: a taxi may use streets closed to private cars
# (car-free Market Street, `map.restrictions`) and is allowed wherever a passenger car is.
ROBOTAXI_VCLASS = "taxi"
MAX_CURB_SPEED_MPS = 17.0
CURB_SPACING_M = 30.0
CURB_END_CLEARANCE_M = 10.0  # keep stops clear of junctions and crosswalks
MIN_CURB_LANE_M = 25.0


@dataclass(frozen=True, slots=True)
class Lane:
    lane_id: str
    edge_id: str
    index: int  # 0 = rightmost
    centerline: FloatArray  # N×2
    width: float
    speed_limit: float
    length: float
    allows_robotaxi: bool
    successors: tuple[str, ...] = ()
    internal: bool = False


@dataclass(frozen=True, slots=True)
class Edge:
    edge_id: str
    from_node: str
    to_node: str
    name: str
    lane_ids: tuple[str, ...]
    length: float
    speed_limit: float
    internal: bool = False
    # netconvert's edge type: the OSM road class, e.g. "highway.primary"; "" when the source
    # had none (the grid city, MATSim networks)
    road_class: str = ""

    @property
    def free_flow_s(self) -> float:
        return self.length / max(self.speed_limit, 0.1)


@dataclass(frozen=True, slots=True)
class SignalJunction:
    """A junction controlled by a traffic light: where it is and which light runs it."""

    junction_id: str
    tls_id: str  # SUMO's traffic-light id (joined signals share one)
    x: float  # m, map frame
    y: float


@dataclass(frozen=True, slots=True)
class Connection:
    from_lane: str
    to_lane: str
    via_lane: str
    direction: str  # s, l, r, t, L, R
    tls_id: str
    link_index: int


@dataclass(frozen=True, slots=True)
class CurbSpots:
    """Curb spots as columns: where a car may stop on the rightmost lane (pick-up, pull-over)."""

    edge_ids: tuple[str, ...]
    lane_ids: tuple[str, ...]
    lane_index: npt.NDArray[np.int64]
    pos: FloatArray  # m along the lane
    xy: FloatArray  # K×2, the curb point (lane centre moved half a lane to the right)
    tree: cKDTree = field(repr=False)

    def __len__(self) -> int:
        return len(self.edge_ids)

    def nearest(self, xy: FloatArray) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """Index of the nearest curb spot for each point (M×2) and the walking distance (m)."""
        dist, idx = self.tree.query(np.atleast_2d(xy))
        return np.asarray(idx, dtype=np.int64), np.asarray(dist, dtype=np.float64)


@dataclass(frozen=True)
class RoadMap:
    """A loaded road network. Immutable; built once per run and shared read-only."""

    name: str
    net_file: Path
    edges: Mapping[str, Edge]
    lanes: Mapping[str, Lane]
    connections: tuple[Connection, ...]
    curbs: CurbSpots
    projection: Projection
    bounds: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax (m)
    traffic_lights: tuple[str, ...]
    # edges in the largest strongly connected part: every one reachable from every other
    main_component: frozenset[str] = frozenset()
    # junctions of a traffic-light type, sorted by id
    signal_junctions: tuple[SignalJunction, ...] = ()
    # traffic lights with emergency pre-emption (`map.signals`); None: every signal has it
    preemption_signals: frozenset[str] | None = None
    # edges whose centre line to the other direction is solid: no crossing it to pass on a
    # car's own decision. From SUMO's lane-change permission `changeLeft` of an edge's
    # leftmost lane (when it leaves robotaxis out), or marked by a scenario
    solid_centre_lines: frozenset[str] = frozenset()

    @property
    def drivable_edges(self) -> list[Edge]:
        """Edges robotaxis can drive and route on: their lanes, in the main component."""
        return [
            e
            for e in self.edges.values()
            if not e.internal and e.edge_id in self.main_component and self.robotaxi_lanes(e)
        ]

    def robotaxi_lanes(self, edge: Edge) -> list[Lane]:
        """The lanes of an edge that robotaxis (SUMO class `ROBOTAXI_VCLASS`) may use."""
        return [self.lanes[lid] for lid in edge.lane_ids if self.lanes[lid].allows_robotaxi]

    def curb_lane(self, edge_id: str) -> Lane:
        """The rightmost lane of an edge that robotaxis may use."""
        lanes = self.robotaxi_lanes(self.edges[edge_id])
        if not lanes:
            raise MapBuildError(f"edge {edge_id} has no lane robotaxis may use")
        return min(lanes, key=lambda lane: lane.index)

    @property
    def area_km2(self) -> float:
        xmin, ymin, xmax, ymax = self.bounds
        return (xmax - xmin) * (ymax - ymin) / 1e6

    @property
    def road_km(self) -> float:
        return sum(e.length for e in self.drivable_edges) / 1000

    def road_class_km(self) -> dict[str, float]:
        """km of drivable road per OSM road class ("" for edges without one), largest first."""
        km: dict[str, float] = defaultdict(float)
        for edge in self.drivable_edges:
            km[edge.road_class] += edge.length / 1000
        return dict(sorted(km.items(), key=lambda kv: -kv[1]))

    def inside(self, x: FloatArray, y: FloatArray, max_walk_m: float = 250.0) -> npt.NDArray:
        """True where a point is within walking distance of a curb spot (the service area)."""
        dist, _ = self.curbs.tree.query(np.column_stack([x, y]), distance_upper_bound=max_walk_m)
        return np.isfinite(dist)


def sumo_shape(text: str) -> FloatArray:
    """A SUMO shape "x,y x,y …" (or "x,y,z …") as a read-only N×2 array."""
    points = text.split()
    flat = np.array(text.replace(",", " ").split(), dtype=float)
    pts = flat.reshape(len(points), -1)[:, :2] if points else np.zeros((0, 2))
    pts.setflags(write=False)
    return pts


def allows_vclass(lane: ET.Element, vclass: str) -> bool:
    """Whether SUMO vehicle class `vclass` may use a SUMO `<lane>` (its allow / disallow lists)."""
    allow = lane.get("allow")
    if allow is not None:
        return vclass in allow.split() or allow == "all"
    disallow = lane.get("disallow", "")
    return vclass not in disallow.split() and disallow != "all"


def may_change_left(lane: ET.Element, vclass: str) -> bool:
    """Whether SUMO vehicle class `vclass` may change left from a SUMO `<lane>` (its
    `changeLeft` list: every class when absent)."""
    allowed = lane.get("changeLeft")
    return allowed is None or allowed == "all" or vclass in allowed.split()


def load_map(built: BuiltNetwork) -> RoadMap:
    """Read a SUMO network into our types (≈1 s for sf-mission's 25k lanes; the whole city,
    131k lanes with those inside junctions, in ≈5–6 s and ≈220 MB).

    A RoadMap is immutable, so the last `MAPS_KEPT` maps read are kept and handed out again
    while their file is unchanged (same path, size and modification time): a process that
    drives many scenarios on one city reads it once."""
    try:
        stat = built.net_file.stat()
    except OSError:
        return _read_map(built)  # says which file it could not read
    return _load_map_kept(
        built.net_file, (stat.st_size, stat.st_mtime_ns), built.name, built.crs, built.offset
    )


# a few: the grid city, a district and the whole city (≈220 MB) can be in use in one process
MAPS_KEPT = 3


@functools.lru_cache(maxsize=MAPS_KEPT)
def _load_map_kept(
    net_file: Path,
    _version: tuple[int, int],
    name: str,
    crs: str,
    offset: tuple[float, float],
) -> RoadMap:
    return _read_map(BuiltNetwork(name=name, net_file=net_file, crs=crs, offset=offset, source=""))


def _read_map(built: BuiltNetwork) -> RoadMap:
    # Millions of small objects and none of them cyclic: the cyclic collector would only walk
    # them again and again (≈20 % of the load time on the whole city).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _load_map(built)
    finally:
        if was_enabled:
            gc.enable()


def _load_map(built: BuiltNetwork) -> RoadMap:
    """Stream the file: each top-level element is dropped once read, so memory stays flat."""
    edges: dict[str, Edge] = {}
    # lane attributes until the connections (after all edges in the file) give successors
    lane_args: dict[str, _LaneArgs] = {}
    successors: dict[str, list[str]] = {}
    connections: list[Connection] = []
    bounds = (0.0, 0.0, 0.0, 0.0)
    tls: list[str] = []
    signal_xy: dict[str, tuple[float, float]] = {}
    solid: set[str] = set()
    try:
        parser = ET.iterparse(built.net_file, events=("start", "end"))
        _event, root = next(parser)
        depth = 1
        for event, elem in parser:
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth != 1:
                continue  # a child (lane, request, phase): read with its parent
            tag = elem.tag
            if tag == "edge":
                _read_edge(elem, edges, lane_args, solid)
            elif tag == "connection":
                _read_connection(elem, successors, connections)
            elif tag == "junction":
                if elem.get("type", "").startswith("traffic_light"):
                    signal_xy[elem.get("id", "")] = (
                        float(elem.get("x", "0")),
                        float(elem.get("y", "0")),
                    )
            elif tag == "tlLogic":
                tls.append(elem.get("id", ""))
            elif tag == "location":
                bounds = tuple(float(v) for v in elem.get("convBoundary", "0,0,0,0").split(","))  # type: ignore[assignment]
            root.clear()  # keep memory flat: nothing read is needed as XML again
    except (ET.ParseError, OSError, StopIteration) as exc:
        raise MapBuildError(
            f"cannot read network {built.net_file}: {exc or 'empty file'}; delete the cache"
        ) from None
    if not edges:
        raise MapBuildError(f"network {built.net_file} has no roads: check the input file")
    lanes = {
        lid: Lane(
            lane_id=lid,
            edge_id=a.edge_id,
            index=a.lane_index,
            centerline=a.centerline,
            width=a.width,
            speed_limit=a.speed_limit,
            length=a.length,
            allows_robotaxi=a.allows_robotaxi,
            successors=tuple(successors.get(lid, ())),
            internal=a.internal,
        )
        for lid, a in lane_args.items()
    }
    main = _main_component(edges, lanes, connections)
    tls_ids = tuple(sorted(set(tls)))
    return RoadMap(
        name=built.name,
        net_file=built.net_file,
        edges=edges,
        lanes=lanes,
        connections=tuple(connections),
        curbs=_curb_spots(edges, lanes, main),
        projection=Projection(built.crs, built.offset),
        bounds=bounds,
        traffic_lights=tls_ids,
        main_component=main,
        signal_junctions=_signal_junctions(signal_xy, edges, connections, set(tls_ids)),
        solid_centre_lines=frozenset(solid),
    )


class _LaneArgs(NamedTuple):
    """A lane as read, waiting for its successors (connections come after all edges)."""

    edge_id: str
    lane_index: int
    centerline: FloatArray
    width: float
    speed_limit: float
    length: float
    allows_robotaxi: bool
    internal: bool


def _read_edge(
    elem: ET.Element,
    edges: dict[str, Edge],
    lane_args: dict[str, _LaneArgs],
    solid_centre_lines: set[str],
) -> None:
    function = elem.get("function")
    if function in ("walkingarea", "crossing"):
        return
    edge_id = elem.get("id", "")
    internal = function == "internal"
    lane_ids: list[str] = []
    lengths: list[float] = []
    speeds: list[float] = []
    for lane in elem.iter("lane"):
        lane_id = lane.get("id", "")
        length = float(lane.get("length", "0"))
        speed = float(lane.get("speed", "13.89"))
        lane_args[lane_id] = _LaneArgs(
            edge_id,
            int(lane.get("index", "0")),
            sumo_shape(lane.get("shape", "")),
            float(lane.get("width", "3.2")),
            speed,
            length,
            allows_vclass(lane, ROBOTAXI_VCLASS),
            internal,
        )
        lane_ids.append(lane_id)
        lengths.append(length)
        speeds.append(speed)
    if not lane_ids:
        return
    if not internal and not may_change_left(lane, ROBOTAXI_VCLASS):  # the leftmost lane
        solid_centre_lines.add(edge_id)
    edges[edge_id] = Edge(
        edge_id=edge_id,
        from_node=elem.get("from", ""),
        to_node=elem.get("to", ""),
        name=elem.get("name", ""),
        lane_ids=tuple(lane_ids),
        length=lengths[0],
        speed_limit=max(speeds),
        internal=internal,
        road_class=elem.get("type", ""),
    )


def _read_connection(
    elem: ET.Element, successors: dict[str, list[str]], connections: list[Connection]
) -> None:
    from_edge, to_edge = elem.get("from", ""), elem.get("to", "")
    from_lane = f"{from_edge}_{elem.get('fromLane', '0')}"
    to_lane = f"{to_edge}_{elem.get('toLane', '0')}"
    via = elem.get("via", "")
    if from_edge.startswith(":"):
        # inside a junction: the next piece of the turn (an internal lane's successor)
        successors.setdefault(from_lane, []).append(via or to_lane)
        return
    successors.setdefault(from_lane, []).append(to_lane)
    connections.append(
        Connection(
            from_lane=from_lane,
            to_lane=to_lane,
            via_lane=via,
            direction=elem.get("dir", "s"),
            tls_id=elem.get("tl", ""),
            link_index=int(elem.get("linkIndex", "-1")),
        )
    )


def _signal_junctions(
    signal_xy: Mapping[str, tuple[float, float]],
    edges: Mapping[str, Edge],
    connections: list[Connection],
    tls_ids: set[str],
) -> tuple[SignalJunction, ...]:
    """Each traffic-light junction with the light that controls the turns through it."""
    tls_at: dict[str, str] = {}
    for conn in connections:
        if conn.tls_id:
            edge = edges.get(conn.from_lane.rpartition("_")[0])
            if edge is not None:
                tls_at.setdefault(edge.to_node, conn.tls_id)
    out = []
    for junction_id in sorted(signal_xy):
        # a signal junction through which no turn is controlled keeps its own id if a
        # light of that id exists, and is otherwise not a working signal
        tls_id = tls_at.get(junction_id, junction_id if junction_id in tls_ids else "")
        if tls_id:
            x, y = signal_xy[junction_id]
            out.append(SignalJunction(junction_id, tls_id, x, y))
    return tuple(out)


def _main_component(
    edges: Mapping[str, Edge], lanes: Mapping[str, Lane], connections: list[Connection]
) -> frozenset[str]:
    """Edges of the largest strongly connected component of the robotaxis' turn graph."""
    ids = sorted(e.edge_id for e in edges.values() if not e.internal)
    index = {e: i for i, e in enumerate(ids)}
    pairs = {
        (index[lanes[c.from_lane].edge_id], index[lanes[c.to_lane].edge_id])
        for c in connections
        if lanes[c.from_lane].edge_id in index
        and lanes[c.to_lane].edge_id in index
        and lanes[c.to_lane].allows_robotaxi
        and lanes[c.from_lane].allows_robotaxi
    }
    if not pairs:
        return frozenset()
    src, dst = (np.array(v) for v in zip(*pairs, strict=True))
    graph = csr_matrix((np.ones(len(src)), (src, dst)), shape=(len(ids), len(ids)))
    _, label = connected_components(graph, directed=True, connection="strong")
    biggest = np.bincount(label).argmax()
    return frozenset(ids[i] for i in np.flatnonzero(label == biggest))


def point_along(polyline: FloatArray, s: float) -> tuple[float, float, float]:
    """(x, y, heading) at arc length s along a polyline (clamped to its ends)."""
    seg = np.diff(polyline, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    s = min(max(s, 0.0), float(cum[-1]))
    i = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1))
    frac = (s - cum[i]) / seg_len[i] if seg_len[i] > 0 else 0.0
    x, y = polyline[i] + frac * seg[i]
    return float(x), float(y), math.atan2(seg[i, 1], seg[i, 0])


def points_along(polyline: FloatArray, s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """`point_along` for many arc lengths at once: x, y and heading arrays like `s`."""
    seg = np.diff(polyline, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    s = np.clip(np.asarray(s, dtype=float), 0.0, cum[-1])
    i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(seg_len[i] > 0, (s - cum[i]) / seg_len[i], 0.0)
    xy = polyline[i] + frac[:, None] * seg[i]
    return xy[:, 0], xy[:, 1], np.arctan2(seg[i, 1], seg[i, 0])


def _curb_spots(
    edges: Mapping[str, Edge], lanes: Mapping[str, Lane], main: frozenset[str]
) -> CurbSpots:
    edge_ids: list[str] = []
    lane_ids: list[str] = []
    lane_index: list[int] = []
    pos: list[FloatArray] = []
    xy: list[FloatArray] = []
    for edge in edges.values():
        if edge.internal or edge.edge_id not in main:
            continue
        candidates = [lanes[lid] for lid in edge.lane_ids if lanes[lid].allows_robotaxi]
        if not candidates:
            continue
        lane = min(candidates, key=lambda ln: ln.index)
        if lane.speed_limit > MAX_CURB_SPEED_MPS or lane.length < MIN_CURB_LANE_M:
            continue
        usable = lane.length - 2 * CURB_END_CLEARANCE_M
        count = max(1, int(usable // CURB_SPACING_M) + 1)
        s = CURB_END_CLEARANCE_M + usable * (np.arange(count) + 0.5) / count
        x, y, heading = points_along(lane.centerline, s)
        half = lane.width / 2
        edge_ids.extend([edge.edge_id] * count)
        lane_ids.extend([lane.lane_id] * count)
        lane_index.extend([lane.index] * count)
        pos.append(s)
        # the curb is to the right of the driving direction
        xy.append(np.column_stack([x + half * np.sin(heading), y - half * np.cos(heading)]))
    if not xy:
        raise MapBuildError("the network has no curb where a car may stop: is it a road network?")
    xy_arr = np.concatenate(xy)
    columns = (np.asarray(lane_index, dtype=np.int64), np.concatenate(pos), xy_arr)
    for column in columns:
        column.setflags(write=False)  # a map is shared read-only (`load_map` keeps it)
    return CurbSpots(
        edge_ids=tuple(edge_ids),
        lane_ids=tuple(lane_ids),
        lane_index=columns[0],
        pos=columns[1],
        xy=xy_arr,
        tree=cKDTree(xy_arr),
    )
