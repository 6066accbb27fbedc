"""Walking along the streets: how far a rider walks to a kerb spot, and the way to draw.

The rider app offers kerb spots near the rider; a walk measured as the crow flies cuts through
buildings and across blocks. `WalkingGraph` walks the city's streets instead: every street
that is not a freeway (its OSM class is not `motorway` or `trunk`, nor their links) is
walkable both ways along its kerb-side lane, and at a junction a walker crosses straight from
the end of one street to the start of another (as at a crosswalk). A point meets the streets
at its nearest walkable street; a spot on the same street, or across it, is walked to
directly. The walks come from one Dijkstra (scipy), bounded by the longest walk asked for,
from both ends of the point's street.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
import shapely.ops
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from robotaxi.core.errors import RobotaxiError
from robotaxi.core.types import FloatArray
from robotaxi.map.model import Edge, RoadMap

NOT_WALKABLE = ("highway.motorway", "highway.trunk")  # and their `_link` classes
MAX_WALK_M = 2_000.0


class NoWalkableStreetError(RobotaxiError):
    """The map has no street a person may walk along."""


@dataclass(frozen=True)
class Walk:
    """A walk from a point to a kerb spot along the streets."""

    length_m: float  # from the point (its way onto the street included) to the kerb spot
    path_xy: FloatArray  # N×2 (map m), from the point to the kerb spot


@dataclass(frozen=True)
class _Search:
    """One point's walks: where it meets the streets and the Dijkstra from there."""

    xy: tuple[float, float]
    edge: int  # the street it meets
    s: float  # m along that street's line
    off_m: float  # from the point to the street
    dist: FloatArray  # 2 × nodes: from the street's start / end node
    pred: npt.NDArray[np.int32]


def walkable(edge: Edge) -> bool:
    """A street people may walk along: a normal edge that is not a freeway."""
    return not edge.internal and not edge.road_class.startswith(NOT_WALKABLE)


class WalkingGraph:
    """The walkable streets of a map. Graph nodes are street ends: 2k is where street k
    starts, 2k+1 where it ends; arcs run along each street and across each junction."""

    def __init__(self, road_map: RoadMap) -> None:
        self.map = road_map
        edges = [e for e in road_map.edges.values() if walkable(e)]
        if not edges:
            raise NoWalkableStreetError(f"{road_map.name} has no street to walk along")
        self._edge = {e.edge_id: k for k, e in enumerate(edges)}
        # the kerb-side lane's centre line stands for the street
        self._lines = [
            shapely.LineString(np.asarray(road_map.lanes[e.lane_ids[0]].centerline, dtype=float))
            for e in edges
        ]
        self._length = shapely.length(np.array(self._lines, dtype=object)).astype(float)
        self._tree = shapely.STRtree(self._lines)
        self._reverse = np.full(len(edges), -1, dtype=np.int64)  # the other carriageway
        by_pair = {(e.from_node, e.to_node): k for k, e in enumerate(edges)}
        for k, e in enumerate(edges):
            self._reverse[k] = by_pair.get((e.to_node, e.from_node), -1)
        ends_xy = np.array([shapely.get_coordinates(line)[[0, -1]] for line in self._lines])
        self._end_xy = ends_xy.reshape(-1, 2)  # node 2k, 2k+1
        at_junction: dict[str, list[int]] = defaultdict(list)
        for k, e in enumerate(edges):
            at_junction[e.from_node].append(2 * k)
            at_junction[e.to_node].append(2 * k + 1)
        src = [2 * np.arange(len(edges)), 2 * np.arange(len(edges)) + 1]
        dst = [src[1], src[0]]
        weight = [self._length, self._length]
        cross = np.array(
            [pair for ends in at_junction.values() for pair in itertools.permutations(ends, 2)],
            dtype=np.int64,
        ).reshape(-1, 2)
        src.append(cross[:, 0])
        dst.append(cross[:, 1])
        weight.append(np.hypot(*(self._end_xy[cross[:, 0]] - self._end_xy[cross[:, 1]]).T))
        n = 2 * len(edges)
        self._graph = csr_matrix(
            (np.maximum(np.concatenate(weight), 1e-3),  # scipy reads 0 as no arc
             (np.concatenate(src), np.concatenate(dst))),
            shape=(n, n),
        )  # fmt: skip

    # --- the walks --------------------------------------------------------------------------

    def distances(
        self, xy: tuple[float, float], curb_ids: Sequence[int], max_m: float = MAX_WALK_M
    ) -> FloatArray:
        """Walking distance (m) from `xy` to each kerb spot (an index of `map.curbs`) along
        the streets; inf for a spot farther than `max_m` that way or on a freeway."""
        search = self._search(xy, max_m)
        out = np.array([self._best(search, c)[0] for c in curb_ids], dtype=float)
        out[out > max_m] = np.inf
        return out

    def walks(
        self, xy: tuple[float, float], curb_ids: Sequence[int], max_m: float = MAX_WALK_M
    ) -> list[Walk | None]:
        """The walk from `xy` to each kerb spot, with its way to draw; None where
        `distances` is inf."""
        search = self._search(xy, max_m)
        out: list[Walk | None] = []
        for c in curb_ids:
            length, how = self._best(search, c)
            out.append(None if length > max_m else Walk(length, self._path(search, c, how)))
        return out

    def _search(self, xy: tuple[float, float], max_m: float) -> _Search:
        point = shapely.Point(xy)
        k = int(self._tree.nearest(point))
        line = self._lines[k]
        s = float(line.project(point))
        off = float(point.distance(line.interpolate(s)))
        dist, pred = dijkstra(
            self._graph, directed=True, indices=[2 * k, 2 * k + 1], return_predecessors=True,
            limit=max_m,
        )  # fmt: skip
        return _Search(xy, k, s, off, dist, pred)

    def _spot(self, c: int) -> tuple[int, float, FloatArray] | None:
        """A kerb spot's street, m along its line, and the spot (map m)."""
        curbs = self.map.curbs
        k = self._edge.get(curbs.edge_ids[c])
        if k is None:
            return None
        spot = np.asarray(curbs.xy[c], dtype=float)
        return k, float(self._lines[k].project(shapely.Point(spot))), spot

    def _best(self, search: _Search, c: int) -> tuple[float, tuple[int, int]]:
        """The shortest walk to spot `c` (m) and how: (-1, -1) along the point's own street
        (or across it), else (i, j): out at end i of the point's street (0 start, 1 end), in
        at end j of the spot's."""
        found = self._spot(c)
        if found is None:
            return np.inf, (-1, -1)
        k, s, spot = found
        k0, length = search.edge, self._length
        kerb = float(np.hypot(*(np.asarray(self._lines[k].interpolate(s).coords[0]) - spot)))
        best, how = np.inf, (-1, -1)
        if k == k0:
            best = abs(search.s - s)
        elif self._reverse[k0] == k:  # across the street, then along its other side
            foot = self._lines[k0].interpolate(search.s)
            here = float(self._lines[k].project(foot))
            best = abs(here - s) + float(self._lines[k].distance(foot))
        out_m = (search.s, length[k0] - search.s)
        in_m = (s, length[k] - s)
        for i, j in itertools.product(range(2), range(2)):
            total = out_m[i] + search.dist[i, 2 * k + j] + in_m[j]
            if total < best:
                best, how = float(total), (i, j)
        return best + search.off_m + kerb, how

    def _path(self, search: _Search, c: int, how: tuple[int, int]) -> FloatArray:
        found = self._spot(c)
        assert found is not None  # `_best` found a walk
        k, s, spot = found
        k0, (i, j) = search.edge, how
        start = np.array([search.xy])
        if i < 0:
            here = float(self._lines[k].project(self._lines[k0].interpolate(search.s)))
            return np.vstack([start, self._piece(k0, search.s, search.s), self._piece(k, here, s),
                              spot[None]])  # fmt: skip
        out = self._piece(k0, search.s, 0.0 if i == 0 else float(self._length[k0]))
        nodes = [2 * k + j]
        while nodes[-1] != 2 * k0 + i:
            nodes.append(int(search.pred[i, nodes[-1]]))
        nodes.reverse()
        between = [self._end_xy[nodes[0]][None]]
        for u, v in itertools.pairwise(nodes):
            if u // 2 == v // 2:  # along street u // 2
                between.append(self._piece(u // 2, self._s_of(u), self._s_of(v)))
            else:  # across a junction
                between.append(self._end_xy[v][None])
        last = self._piece(k, self._s_of(2 * k + j), s)
        return np.vstack([start, out, *between, last, spot[None]])

    def _s_of(self, node: int) -> float:
        return 0.0 if node % 2 == 0 else float(self._length[node // 2])

    def _piece(self, k: int, s_from: float, s_to: float) -> FloatArray:
        """Street k's line from `s_from` to `s_to` (m along it; backwards if smaller)."""
        if abs(s_to - s_from) < 1e-6:
            p = self._lines[k].interpolate(s_from)
            return np.array([[p.x, p.y]])
        part = shapely.ops.substring(self._lines[k], s_from, s_to)
        return np.asarray(shapely.get_coordinates(part), dtype=float)
