"""The routing graph: edges are nodes, turns are arcs, weights are travel times (s).

An arc u→v costs the time to drive all of edge v, so the shortest-path distance from edge a
to edge b is the time from the END of a to the END of b. Point-to-point ETAs correct for where
on a and b the points lie. Dijkstra runs in scipy (C) from many sources at once, so a dispatch
cost matrix (cars × requests) is a handful of array operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from robotaxi.core.errors import MapBuildError
from robotaxi.core.types import FloatArray
from robotaxi.map.model import RoadMap

IntArray = npt.NDArray[np.int64]

# origins per Dijkstra block in `eta_matrix`: bounds memory to ETA_BLOCK × edges floats
ETA_BLOCK = 128


class RoutingGraph:
    """Travel-time graph over the drivable edges of a RoadMap. Not thread-safe; cheap to copy."""

    def __init__(self, road_map: RoadMap) -> None:
        drivable = sorted(e.edge_id for e in road_map.drivable_edges)
        self.edge_ids: tuple[str, ...] = tuple(drivable)
        self.index: dict[str, int] = {e: i for i, e in enumerate(drivable)}
        self.length = np.array([road_map.edges[e].length for e in drivable], dtype=float)
        self.free_flow_speed = np.array(
            [max(road_map.edges[e].speed_limit, 0.5) for e in drivable], dtype=float
        )
        src: list[int] = []
        dst: list[int] = []
        seen: set[tuple[int, int]] = set()
        for conn in road_map.connections:
            a = self.index.get(road_map.lanes[conn.from_lane].edge_id)
            b = self.index.get(road_map.lanes[conn.to_lane].edge_id)
            if a is None or b is None or a == b or (a, b) in seen:
                continue
            if not road_map.lanes[conn.to_lane].allows_passenger:
                continue
            seen.add((a, b))
            src.append(a)
            dst.append(b)
        if not src:
            raise MapBuildError(f"map {road_map.name} has no turns between drivable roads")
        self._src = np.asarray(src, dtype=np.int64)
        self._dst = np.asarray(dst, dtype=np.int64)
        # predecessors of each edge, CSR-style: _pred_idx[_pred_ptr[b]:_pred_ptr[b + 1]]
        order = np.argsort(self._dst, kind="stable")
        self._pred_idx = self._src[order]
        self._pred_ptr = np.searchsorted(self._dst[order], np.arange(len(drivable) + 1))
        self.travel_time = self.length / self.free_flow_speed
        self._graph = self._build()

    def _build(self) -> csr_matrix:
        n = len(self.edge_ids)
        # a zero weight would be read as "no arc" by scipy: floor at a millisecond
        weights = np.maximum(self.travel_time[self._dst], 1e-3)
        return csr_matrix((weights, (self._src, self._dst)), shape=(n, n))

    def update_travel_times(self, times_s: Mapping[str, float]) -> None:
        """Set current travel times (s) for some edges, e.g. measured by the world."""
        for edge_id, t in times_s.items():
            i = self.index.get(edge_id)
            if i is not None and np.isfinite(t) and t > 0:
                self.travel_time[i] = t
        self._graph = self._build()

    def edge_time_from_ends(self, sources: Sequence[str]) -> FloatArray:
        """S×E: time from the end of each source edge to the end of every edge (inf if none)."""
        idx = [self.index[e] for e in sources]
        return np.atleast_2d(dijkstra(self._graph, directed=True, indices=idx))

    def eta_matrix(
        self,
        from_edges: Sequence[str],
        from_pos: FloatArray,
        to_edges: Sequence[str],
        to_pos: FloatArray,
    ) -> FloatArray:
        """Travel time (s) from each origin point (edge, m along it) to each destination point."""
        if not from_edges or not to_edges:
            return np.zeros((len(from_edges), len(to_edges)))
        fi = np.array([self.index[e] for e in from_edges], dtype=np.int64)
        ti = np.array([self.index[e] for e in to_edges], dtype=np.int64)
        unique_from, inverse = np.unique(fi, return_inverse=True)
        same = fi[:, None] == ti[None, :]
        # an origin needs its loop time when some destination lies on its own edge
        needs_loop = np.zeros(len(unique_from), dtype=bool)
        needs_loop[inverse[same.any(axis=1)]] = True
        # Dijkstra rows are as long as the whole map (29k edges for the city): keep only the
        # destination columns, a block of origins at a time, so memory stays U×T
        to_dist = np.empty((len(unique_from), len(ti)))
        loop = np.full(len(unique_from), np.inf)
        for start in range(0, len(unique_from), ETA_BLOCK):
            rows = slice(start, start + ETA_BLOCK)
            dist = np.atleast_2d(dijkstra(self._graph, directed=True, indices=unique_from[rows]))
            to_dist[rows] = dist[:, ti]
            if needs_loop[rows].any():
                loop[rows] = self._loop_time(dist, unique_from[rows], needs_loop[rows])
        speed_from = self.length[fi] / self.travel_time[fi]
        speed_to = self.length[ti] / self.travel_time[ti]
        rest_of_origin = np.clip(self.length[fi] - np.asarray(from_pos), 0, None) / speed_from
        rest_of_target = np.clip(self.length[ti] - np.asarray(to_pos), 0, None) / speed_to
        eta = rest_of_origin[:, None] + to_dist[inverse] - rest_of_target[None, :]
        # same edge: straight ahead if the target is ahead, else once around the block
        if same.any():
            ahead = (np.asarray(to_pos)[None, :] - np.asarray(from_pos)[:, None]) / speed_from[
                :, None
            ]
            around = rest_of_origin[:, None] + loop[inverse][:, None] - rest_of_target[None, :]
            eta = np.where(same, np.where(ahead >= 0, ahead, around), eta)
        return eta

    def _loop_time(
        self, dist_rows: FloatArray, origins: IntArray, wanted: npt.NDArray[np.bool_]
    ) -> FloatArray:
        """Time from the end of each wanted origin edge back to its own end (a loop); inf if
        there is none or it is not wanted."""
        out = np.full(len(origins), np.inf)
        for k in np.flatnonzero(wanted):
            a = origins[k]
            preds = self._pred_idx[self._pred_ptr[a] : self._pred_ptr[a + 1]]
            if len(preds):
                out[k] = np.min(dist_rows[k, preds]) + self.travel_time[a]
        return out

    def routes_from(self, from_edge: str, to_edges: Sequence[str]) -> list[tuple[str, ...]]:
        """Fastest routes from one edge to each of many (one Dijkstra); () where unreachable."""
        a = self.index[from_edge]
        _, pred = dijkstra(self._graph, directed=True, indices=a, return_predecessors=True)
        return [self._path(pred, a, self.index[e]) for e in to_edges]

    def route_around(self, edge: str) -> tuple[str, ...]:
        """The fastest loop that leaves `edge` and comes back onto it, (edge, …, edge); () if
        there is none: how a car reaches a spot behind it on its own street."""
        a = self.index[edge]
        succ = self._dst[self._src == a]
        if not len(succ):
            return ()
        dist, pred = dijkstra(self._graph, directed=True, indices=succ, return_predecessors=True)
        dist = np.atleast_2d(dist)
        pred = np.atleast_2d(pred)
        k = int(np.argmin(dist[:, a] + self.travel_time[succ]))
        if not np.isfinite(dist[k, a]):
            return ()
        return (edge, *self._path(pred[k], int(succ[k]), a))

    def _path(self, pred: npt.NDArray[np.int32], a: int, b: int) -> tuple[str, ...]:
        if a == b:
            return (self.edge_ids[a],)
        if pred[b] < 0:
            return ()
        path = [b]
        while path[-1] != a:
            path.append(int(pred[path[-1]]))
        return tuple(self.edge_ids[i] for i in reversed(path))

    def route(self, from_edge: str, to_edge: str) -> tuple[str, ...]:
        """Fastest edge sequence from `from_edge` to `to_edge`, both included; () if unreachable."""
        a, b = self.index[from_edge], self.index[to_edge]
        if a == b:
            return (from_edge,)
        _, pred = dijkstra(self._graph, directed=True, indices=a, return_predecessors=True)
        return self._path(pred, a, b)
