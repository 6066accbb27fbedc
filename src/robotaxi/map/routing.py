"""The routing graph: edges are nodes, turns are arcs, weights are travel times (s).

An arc u→v costs the time to drive all of edge v, so the shortest-path distance from edge a
to edge b is the time from the END of a to the END of b. Point-to-point ETAs correct for where
on a and b the points lie. Dijkstra runs in scipy (C) from many sources at once, so a dispatch
cost matrix (cars × requests) is a handful of array operations.

At city scale a full matrix costs one Dijkstra over the whole map per car (3.4 s for 1,000
cars on San Francisco). `pickup_candidates` instead searches backwards from each pick-up, only
as far as it must to find that pick-up's nearest cars, and returns those pairs as columns
(`PickupCandidates`); their ETAs equal `eta_matrix`'s. Those searches and `route`'s A* are
compiled (`robotaxi.map.searches`).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from robotaxi.core.errors import DispatchError, MapBuildError
from robotaxi.core.types import FloatArray, IntArray
from robotaxi.map import threads as map_threads
from robotaxi.map.hierarchy import ContractionHierarchy, HierarchyMetric, KeptSweeps
from robotaxi.map.model import RoadMap
from robotaxi.map.searches import (
    ball_pairs,
    bounded_search,
    extend_search,
    fastest_path,
    tree_times,
)

# origins per Dijkstra block in `eta_matrix`: bounds memory to ETA_BLOCK × edges floats
ETA_BLOCK = 128

# `pickup_candidates`: a pick-up's first search radius (s, at least FIRST_RADIUS_S) is the
# straight-line distance d to its k-th nearest car at a speed that grows with d (fitted on San
# Francisco: a little slower than most cars manage, since searching again costs more than
# searching a little too far); a search that finds m < k cars goes again, sqrt(k / m) × as far
# (cars per area), times a margin, within the bounds below
FIRST_RADIUS_S = 20.0
GUESS_SPEED_MPS = (6.0, 1.7, 150.0)  # v = 6 + 1.7 × log2(d / 150 m) m/s, within 5..20 m/s
REGROW_MARGIN = 1.2
REGROW_MIN, REGROW_MAX = 1.4, 3.0
# slack (s) on search limits: covers the 1 ms floor on arc weights (`RoutingGraph._build`)
LIMIT_SLACK_S = 2e-3
# Routes and ETAs are planned at most at the speed limit (× TOP_SPEED_FACTOR), whatever the
# world measures: SUMO's cars drive at their own speed factor (normal, mean 1, deviation 0.1),
# so a street with one fast car on it (meso: its own speed) reads faster than the limit.
# `RoutingGraph.route` searches with A* (`robotaxi.map.searches`): ALT_LANDMARKS landmark
# edges, spread over the map (farthest first), with each edge's time from and to them under
# those floors: built once per map (meso's measured times dipped below the tables' bounds ~200
# times a day when they were 0.9 × the lowest time seen; each rebuild ~0.15 s). Whole city, 400
# routes of 0.5–6 km: 0.17 ms a route at free flow with the floor at the limit, 0.46 ms at
# 1/1.2 of it, 1.97 ms for a scipy Dijkstra bounded by a guess of the route's time; with every
# street 1–3× slower than free flow (looser bounds) 0.95, 1.05–1.35 and 2.14 ms
TOP_SPEED_FACTOR = 1.0
ALT_LANDMARKS = 16
# `route` keeps at most this many answers per set of travel times (~100 B each plus the route)
ROUTE_CACHE_SIZE = 50_000
# `pickup_candidates` keeps each pick-up's backward search (its ball: the edges within its
# reach, their times and next edges toward the pick-up, 16 B an edge) until the travel times
# change: a trip waits for its car over several batches and is searched again in each (a
# closer car may take it over), and the car it gets drives the ball's way to it (`route`
# reads it off the ball instead of searching). At most BALL_CACHE_EDGES edges in all
# (~80 MB); when full, the kept balls are dropped.
BALL_CACHE_EDGES = 5_000_000
# a batch's missing pick-up searches are split between threads (`robotaxi.map.threads`) when
# each thread gets at least this many: the stress batches' 300 fresh searches gain (1,000 cars
# median 60 → 51 ms a batch), a run's few new riders a batch do not (searches of ~1 ms; one
# thread or two measured the same within this machine's noise)
MIN_THREAD_SEARCHES = 8
# `route_length_bound_m`: a route is no slower than the way through a landmark edge; the
# landmarks are the edges nearest the centres of a LANDMARK_GRID × LANDMARK_GRID split of the
# map (one Dijkstra to them and one from them per set of travel times, ~5 ms each on the city)
LANDMARK_GRID = 2
# `route_length_bound_m`'s tables of travel times kept after the times change (a trip
# requested under the old ones may still ask for its bound): those of the last few sets
KEPT_LANDMARK_TABLES = 4
# the bound's margin over rounding in the float sums it is compared with
BOUND_REL, BOUND_ABS_M = 1e-6, 1.0


@dataclass(frozen=True, eq=False)
class RouteWeights:
    """The travel times `RoutingGraph.route` answered under at one time (a handle for
    `route_under`): the graph of those times and the routes found on it."""

    graph: csr_matrix
    routes: dict[tuple[int, int], tuple[str, ...]]
    # the highest length / arc weight (m/s) of any edge under those times (the length bound's)
    top_speed_mps: float = float("inf")


@dataclass(frozen=True)
class PickupCandidates:
    """Pick-up ETAs (s) of the (origin, target) pairs a bounded search kept, as columns.

    `radius_s[t]`: every origin whose ETA (its delay included) to target t is at most this
    was found, with the ETA `RoutingGraph.eta_matrix` gives plus its delay. Kept per target:
    its `nearest` closest origins among those (all of them if `nearest` was None), and every
    origin restricted to it. Pairs above the maximum ETA are never kept. `bound_s[t]`: no
    origin left out reaches target t sooner (the k-th nearest's ETA, or the radius).
    Sorted by target, then ETA, then origin; K pairs.
    """

    origin: IntArray  # K, index into the origins
    target: IntArray  # K, index into the targets
    eta_s: FloatArray  # K
    radius_s: FloatArray  # T
    bound_s: FloatArray  # T
    n_origins: int
    n_targets: int

    def __len__(self) -> int:
        return len(self.eta_s)

    def dense(self) -> FloatArray:
        """origins × targets, inf where no pair was kept."""
        out = np.full((self.n_origins, self.n_targets), np.inf)
        out[self.origin, self.target] = self.eta_s
        return out


@dataclass(frozen=True, slots=True)
class _Ball:
    """A backward search from a pick-up edge: every edge within `reach_s` of it (sorted), the
    time from that edge's end to the pick-up edge's end, and the edge after it on the fastest
    way there (−1 for the pick-up edge itself)."""

    reach_s: float
    edges: npt.NDArray[np.int32]
    time_s: FloatArray
    ahead: npt.NDArray[np.int32]


def _scratch(n: int) -> tuple[FloatArray, IntArray, IntArray, IntArray]:
    """Scratch space of the compiled searches over n nodes (`robotaxi.map.searches`)."""
    ints = [np.zeros(n, dtype=np.int64) for _ in range(3)]
    return (np.zeros(n), ints[0], ints[1], ints[2])


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
            if not road_map.lanes[conn.to_lane].allows_robotaxi:
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
        # successors likewise, and every arc as one sorted key a × n + b
        order = np.argsort(self._src, kind="stable")
        self._succ_idx = self._dst[order]
        self._succ_ptr = np.searchsorted(self._src[order], np.arange(len(drivable) + 1))
        self._arc_keys = np.sort(self._src * len(drivable) + self._dst)
        # where each edge ends (m, map frame): straight-line guesses of search radii, landmarks
        self._end_xy = np.array(
            [road_map.lanes[road_map.edges[e].lane_ids[0]].centerline[-1] for e in drivable],
            dtype=float,
        ).reshape(-1, 2)
        self.travel_time = self.length / self.free_flow_speed
        # no travel time is taken below this (TOP_SPEED_FACTOR); A*'s landmark tables are
        # built under it (`_alt_tables`)
        self._floor = self.travel_time / TOP_SPEED_FACTOR
        # the compiled searches' scratch space (`robotaxi.map.searches`)
        self._scratch = _scratch(len(drivable))
        # each search's stamp (a number no earlier search on any scratch space had)
        self._stamp = 0
        # the pick-up searches' scratch spaces, one a thread (`_search_balls`; the first is
        # `_scratch`, the others made when first needed)
        self._scratches = [self._scratch]
        self._alt: tuple[FloatArray, FloatArray] | None = None
        # `route_length_bound_m`'s tables of earlier travel times: graph → (graph, tables)
        self._old_landmarks: dict[int, tuple[csr_matrix, tuple[FloatArray, FloatArray, float]]]
        self._old_landmarks = {}
        self._landmarks: tuple[FloatArray, FloatArray, float] | None = None
        self.alt_builds = 0
        self._hierarchy_used = False  # (`eta_matrix` by hierarchy since the times changed)
        # the dispatch batches' times from the hierarchy under the current travel times, kept
        # for the next batches (most of their riders and car places are the same)
        self._kept_sweeps: KeptSweeps | None = None
        # `_radius_guess`'s tree of the last cars asked for (their edges' places, the tree)
        self._guess_tree: tuple[bytes, cKDTree] | None = None
        self._graph = self._build()

    def prepare(self) -> None:
        """Do now what the first route and pick-up search would otherwise do: load the
        compiled searches (compiled once per checkout, ~4 s; cached by numba after) and build
        A*'s landmark tables (~0.15 s on the city) and the length bound's fixed trees
        (`_landmark_trees`). For a run's set-up."""
        a, b = int(self._src[0]), int(self._dst[0])
        self._fastest(self._graph, a, b)  # (the tables with it)
        self._tree_times()  # (the length bound's fixed trees with it)
        self._stamp += 2
        indptr, indices, weight = self._rev_csr
        found = bounded_search(indptr, indices, weight, a, 0.0, self._scratch, self._stamp - 1)
        at, time_s, ahead = found[0].astype(np.int32), found[1], found[2].astype(np.int32)
        extend_search(indptr, indices, weight, self._rev_longest, 1.0, self._scratch,
                      self._stamp, at, time_s, ahead, 0.0)  # fmt: skip
        ball_pairs(at, time_s, np.array([len(at)]), np.zeros(1), np.zeros(len(self.edge_ids), bool))

    def _build(self) -> csr_matrix:
        n = len(self.edge_ids)
        if self._landmarks is not None:  # the outgoing times' tables, for their trips
            old = self._old_landmarks
            old[id(self._graph)] = (self._graph, self._landmarks)
            while len(old) > KEPT_LANDMARK_TABLES:
                del old[next(iter(old))]
        # a zero weight would be read as "no arc" by scipy: floor at a millisecond
        self._weight = np.maximum(self.travel_time, 1e-3)
        weights = self._weight[self._dst]
        graph = csr_matrix((weights, (self._src, self._dst)), shape=(n, n))
        # arcs turned around: a Dijkstra on it from edge b gives the time from the end of every
        # edge to the end of b, for searches that start at a pick-up
        self._reverse = graph.T.tocsr()
        self._reverse.sort_indices()
        self._rev_csr = (
            self._reverse.indptr.astype(np.int64),
            self._reverse.indices.astype(np.int64),
            self._reverse.data,
        )
        # each node's longest arc in it (`extend_search`: which arcs may leave a ball)
        self._rev_longest = np.zeros(n)
        has_arcs = np.diff(self._reverse.indptr) > 0
        self._rev_longest[has_arcs] = np.maximum.reduceat(
            self._reverse.data, self._reverse.indptr[:-1][has_arcs]
        )
        # backward searches from pick-up edges: edge → `_Ball`
        self._balls: dict[int, _Ball] = {}
        self._ball_edges = 0
        # `route`'s answers for these travel times (a trip's legs are asked again and again:
        # the ride's length when it opens, its leg, its length at arrival)
        self._routes: dict[tuple[int, int], tuple[str, ...]] = {}
        self._landmarks = None
        self._hierarchy_metric: HierarchyMetric | None = None  # (set at its first use)
        self._tree_s: tuple[FloatArray, FloatArray] | None = None
        self._top_speed: float | None = None
        # the arrays A* reads
        self._csr = (graph.indptr.astype(np.int64), graph.indices.astype(np.int64), graph.data)
        return graph

    def update_travel_times(self, times_s: Mapping[str, float]) -> None:
        """Set current travel times (s) for some edges, e.g. measured by the world; none below
        the edge's length over its speed limit × TOP_SPEED_FACTOR."""
        if len(times_s) == len(self.edge_ids) and tuple(times_s) == self.edge_ids:
            # every edge, in the graph's order (as the world measures them): as one array
            new = np.fromiter(times_s.values(), dtype=float, count=len(times_s))
            ok = np.isfinite(new) & (new > 0)
            self.travel_time[ok] = new[ok]
        else:
            for edge_id, t in times_s.items():
                i = self.index.get(edge_id)
                if i is not None and np.isfinite(t) and t > 0:
                    self.travel_time[i] = t
        np.maximum(self.travel_time, self._floor, out=self.travel_time)
        self._graph = self._build()
        if self._hierarchy_used:  # it answered under the last times: likely to again, so
            self._hierarchy_used = False  # set it now rather than in the next dispatch batch,
            metric = self._customized()  # with the last batch's times swept again
            if self._kept_sweeps is not None:
                self._kept_sweeps.reset(metric, again=True)

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
        *,
        by: Literal["dijkstra", "hierarchy"] = "dijkstra",
    ) -> FloatArray:
        """Travel time (s) from each origin point (edge, m along it) to each destination point.

        `by`: one Dijkstra over the whole map per origin edge (scipy), or the map's contraction
        hierarchy (`robotaxi.map.hierarchy`: built at its first use, ~2 s on the city, and
        set to new travel times (~0.2 s) at its first use under them, or as they change if
        it answered under the last ones; then 656 origins × 300 destinations take ~25 ms
        against ~2.5 s, and ~12 ms when most of them were asked just before under the same
        times: `KeptSweeps`). The same times up to float rounding (~1e-12 s).
        """
        if not from_edges or not to_edges:
            return np.zeros((len(from_edges), len(to_edges)))
        fi = np.array([self.index[e] for e in from_edges], dtype=np.int64)
        ti = np.array([self.index[e] for e in to_edges], dtype=np.int64)
        unique_from, inverse = np.unique(fi, return_inverse=True)
        same = fi[:, None] == ti[None, :]
        # an origin needs its loop time when some destination lies on its own edge
        needs_loop = np.zeros(len(unique_from), dtype=bool)
        needs_loop[inverse[same.any(axis=1)]] = True
        if by == "hierarchy":
            to_dist, loop = self._hierarchy_times(unique_from, ti, needs_loop)
        elif by == "dijkstra":
            to_dist, loop = self._dijkstra_times(unique_from, ti, needs_loop)
        else:
            raise DispatchError(f"unknown ETA method {by!r}: use dijkstra or hierarchy")
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

    def _dijkstra_times(
        self, origins: IntArray, targets: IntArray, needs_loop: npt.NDArray[np.bool_]
    ) -> tuple[FloatArray, FloatArray]:
        """Time from the end of each origin edge to the end of each target edge (O × T), and
        each origin's loop time where needed (`_loop_time`), by Dijkstra rows."""
        # Dijkstra rows are as long as the whole map (29k edges for the city): keep only the
        # destination columns, a block of origins at a time, so memory stays U×T
        to_dist = np.empty((len(origins), len(targets)))
        loop = np.full(len(origins), np.inf)
        for start in range(0, len(origins), ETA_BLOCK):
            rows = slice(start, start + ETA_BLOCK)
            dist = np.atleast_2d(dijkstra(self._graph, directed=True, indices=origins[rows]))
            to_dist[rows] = dist[:, targets]
            if needs_loop[rows].any():
                loop[rows] = self._loop_time(dist, origins[rows], needs_loop[rows])
        return to_dist, loop

    def _hierarchy_times(
        self, origins: IntArray, targets: IntArray, needs_loop: npt.NDArray[np.bool_]
    ) -> tuple[FloatArray, FloatArray]:
        """`_dijkstra_times` from the contraction hierarchy."""
        hierarchy, metric = self.hierarchy, self._customized()
        self._hierarchy_used = True
        if self._kept_sweeps is None:
            self._kept_sweeps = KeptSweeps(hierarchy, metric)
        elif self._kept_sweeps.metric is not metric:  # new travel times: its table reused
            self._kept_sweeps.reset(metric)
        to_dist = self._kept_sweeps.many_to_many(origins, targets)
        loop = np.full(len(origins), np.inf)
        if needs_loop.any():  # an origin's loop: to the end of one of its predecessors
            looping = origins[needs_loop]
            ptr, pred = self._pred_ptr, self._pred_idx
            preds = np.unique(np.concatenate([pred[ptr[a] : ptr[a + 1]] for a in looping]))
            column = np.zeros(len(self.edge_ids), dtype=np.int64)
            column[preds] = np.arange(len(preds))
            rows = hierarchy.many_to_many(metric, looping, preds)
            loop[needs_loop] = self._loop_time(rows, looping, np.ones(len(looping), bool), column)
        return to_dist, loop

    def _customized(self) -> HierarchyMetric:
        """The hierarchy under the current travel times (customized at the first call)."""
        if self._hierarchy_metric is None:
            self._hierarchy_metric = self.hierarchy.customize(self._weight[self._dst])
        return self._hierarchy_metric

    @functools.cached_property
    def hierarchy(self) -> ContractionHierarchy:
        """The map's contraction hierarchy: its topology, built at the first use (~2 s on
        the city); `eta_matrix` sets the travel times in it."""
        return ContractionHierarchy(len(self.edge_ids), self._src, self._dst)

    def _loop_time(
        self,
        dist_rows: FloatArray,
        origins: IntArray,
        wanted: npt.NDArray[np.bool_],
        column: IntArray | None = None,
    ) -> FloatArray:
        """Time from the end of each wanted origin edge back to its own end (a loop); inf if
        there is none or it is not wanted. `dist_rows[k]`: origin k's times to every edge,
        or, with `column`, to edge e in column `column[e]` (its predecessors at least)."""
        out = np.full(len(origins), np.inf)
        for k in np.flatnonzero(wanted):
            a = origins[k]
            preds = self._pred_idx[self._pred_ptr[a] : self._pred_ptr[a + 1]]
            if len(preds):
                cols = preds if column is None else column[preds]
                out[k] = np.min(dist_rows[k, cols]) + self.travel_time[a]
        return out

    # --- bounded backward searches: pick-up candidates at city scale ----------------------

    def edge_indices(self, edges: Sequence[str] | IntArray) -> IntArray:
        """Each edge's place in `edge_ids`, from its id or (an integer array) the place."""
        if isinstance(edges, np.ndarray) and np.issubdtype(edges.dtype, np.integer):
            at = edges.astype(np.int64, copy=False)
            if at.size and (at.min() < 0 or at.max() >= len(self.edge_ids)):
                raise DispatchError(f"edge places must be 0..{len(self.edge_ids) - 1}")
            return at
        return np.fromiter(map(self.index.__getitem__, edges), dtype=np.int64, count=len(edges))

    def eta_to_targets(
        self,
        origin_edges: Sequence[str],
        origin_pos: FloatArray,
        target_edges: Sequence[str],
        target_pos: FloatArray,
        max_s: float,
    ) -> FloatArray:
        """`eta_matrix` where it is at most `max_s` (s), inf elsewhere (origins × targets).

        One backward search per target, bounded by `max_s`: far cheaper than `eta_matrix`
        when the bound is short or origins outnumber targets.
        """
        return self.pickup_candidates(
            origin_edges, origin_pos, target_edges, target_pos, max_s
        ).dense()

    def pickup_candidates(
        self,
        origin_edges: Sequence[str] | IntArray,
        origin_pos: FloatArray,
        target_edges: Sequence[str] | IntArray,
        target_pos: FloatArray,
        max_eta_s: float,
        *,
        origin_delay_s: FloatArray | None = None,
        nearest: int | None = None,
        only_target: IntArray | None = None,
        min_radius_s: FloatArray | float = 0.0,
        keep_nearest: int | None = None,
        first_radius_s: float = FIRST_RADIUS_S,
    ) -> PickupCandidates:
        """ETAs (s) from origins (cars: edge, m along it) to targets (pick-ups), for the pairs
        that a backward search from each target finds.

        An origin's ETA is `eta_matrix`'s plus its `origin_delay_s` (≥ 0, e.g. the rest of a
        drop-off). `only_target[c]` ≥ 0 lets origin c serve that one target only (−1: any).
        With `nearest` = k, a target's search stops at the first radius within which it has
        k origins and every origin restricted to it (the first is a guess from straight-line
        distances, at least `first_radius_s`, the target's `min_radius_s` and as far as a
        kept search from its edge reached (no search: on the city's evening most batches'
        riders were asked before, and a guess short of that reach took a round more for
        them); then farther,
        at most `max_eta_s`); it keeps its k nearest (`keep_nearest`, if more, of those its
        search found), those, and every origin within `min_radius_s`. With `nearest` None it
        searches to `max_eta_s` and keeps every pair within. Edges are ids or their places
        in `edge_ids` (`edge_indices`: a caller that asks again for the same cars).
        """
        fi = self.edge_indices(origin_edges)
        ti = self.edge_indices(target_edges)
        pts = _Points.make(self, fi, origin_pos, ti, target_pos, origin_delay_s, only_target)
        if not max_eta_s >= 0:
            raise DispatchError(f"maximum ETA must be ≥ 0 s, got {max_eta_s}")
        if nearest is not None and nearest < 1:
            raise DispatchError(f"nearest must be at least 1, got {nearest}")
        if not first_radius_s > 0:
            raise DispatchError(f"first search radius must be > 0 s, got {first_radius_s}")
        n_o, n_t = len(fi), len(ti)
        max_eta = float(max_eta_s)
        radius_out = np.full(n_t, max_eta)
        bound_out = np.full(n_t, max_eta)
        parts: list[tuple[IntArray, IntArray, FloatArray]] = []
        open_t = np.arange(n_t) if n_o else np.zeros(0, dtype=np.int64)
        floor = np.broadcast_to(np.asarray(min_radius_s, dtype=float), (n_t,))
        k = np.full(n_t, nearest or 0, dtype=np.int64)
        if nearest is None or not open_t.size:
            radius = np.full(n_t, max_eta)
        else:
            # from the origins any target may have: the others (cars on their way to a
            # pick-up, which may only keep theirs) are no target's k nearest but their own
            free = pts.only < 0
            guess = self._radius_guess(fi[free] if free.any() else fi, ti, nearest)
            # a pick-up searched before starts at least as far as that search reached: the
            # first round then asks for no search, and mostly needs no second
            balls = self._balls
            reach = np.fromiter(
                (b.reach_s if (b := balls.get(e)) is not None else 0.0 for e in ti.tolist()),
                dtype=float, count=n_t,
            ) - pts.rest_t - LIMIT_SLACK_S  # fmt: skip
            radius = np.clip(np.maximum(np.maximum(guess, floor), reach), first_radius_s, max_eta)
        while open_t.size:
            o, t, eta, cert = self._pairs_within(pts, open_t, radius[open_t], max_eta)
            if nearest is None:
                done = np.ones(len(open_t), dtype=bool)
            else:
                found = np.bincount(t, minlength=n_t)[open_t]
                restricted = pts.only[o] >= 0
                found_own = np.bincount(t[restricted], minlength=n_t)[open_t]
                done = (found >= k[open_t]) & (found_own >= pts.restricted_count[open_t])
                done |= radius[open_t] >= max_eta
            is_done = np.zeros(n_t, dtype=bool)
            is_done[open_t[done]] = True
            sel = is_done[t]
            o, t, eta = o[sel], t[sel], eta[sel]
            kth = np.full(n_t, np.inf)
            if nearest is not None:
                order = np.lexsort((o, eta, t))
                o, t, eta = o[order], t[order], eta[order]
                rank = np.arange(len(t)) - np.searchsorted(t, t, side="left")
                kept = np.maximum(k[t], keep_nearest or 0)
                at_k = rank == kept - 1
                kth[t[at_k]] = eta[at_k]
                keep = (rank < kept) | (pts.only[o] == t) | (eta <= floor[t])
                o, t, eta = o[keep], t[keep], eta[keep]
            parts.append((o, t, eta))
            finished = open_t[done]
            radius_out[finished] = cert[done]
            # a pair left out is beyond the k-th nearest and beyond the floor, or the radius
            bound_out[finished] = np.minimum(cert[done], np.maximum(kth[finished], floor[finished]))
            open_t = open_t[~done]
            if open_t.size and nearest is not None:
                short = np.maximum(found[~done], 0.5)
                want = k[open_t] / short
                grow = np.clip(REGROW_MARGIN * np.sqrt(want), REGROW_MIN, REGROW_MAX)
                radius[open_t] = np.minimum(cert[~done] * grow, max_eta)
        if parts:
            o = np.concatenate([x[0] for x in parts])
            t = np.concatenate([x[1] for x in parts])
            eta = np.concatenate([x[2] for x in parts])
            order = np.lexsort((o, eta, t))
            o, t, eta = o[order], t[order], eta[order]
        else:
            o, t, eta = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return PickupCandidates(o, t, eta, radius_out, bound_out, n_o, n_t)

    def _radius_guess(self, fi: IntArray, ti: IntArray, nearest: int) -> FloatArray:
        """A first search radius (s) per target, from the straight-line distance to its k-th
        nearest origin (GUESS_SPEED_MPS). Only a start: a target short of origins searches
        again, farther."""
        k = min(nearest, len(fi))
        key = fi.tobytes()  # (the same cars again: a batch's widening asks for them twice)
        if self._guess_tree is None or self._guess_tree[0] != key:
            self._guess_tree = (key, cKDTree(self._end_xy[fi]))
        tree = self._guess_tree[1]
        dist, _ = tree.query(self._end_xy[ti], k=[k])
        dist = np.asarray(dist, dtype=float).reshape(-1)
        base, per_doubling, at_m = GUESS_SPEED_MPS
        speed = base + per_doubling * np.log2(np.maximum(dist, 1.0) / at_m)
        return dist / np.clip(speed, 5.0, 20.0)

    def _pairs_within(
        self, pts: _Points, open_t: IntArray, radius: FloatArray, max_eta_s: float
    ) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
        """Every (origin, target) pair of the open targets whose ETA is within the target's
        certified radius (≥ its `radius`, ≤ `max_eta_s`): (origin, target, ETA, certified
        radius per open target)."""
        n = len(self.edge_ids)
        edges, inv = np.unique(pts.ti[open_t], return_inverse=True)
        rest_t = pts.rest_t[open_t]
        limit = np.zeros(len(edges))
        np.maximum.at(limit, inv, radius + rest_t)
        u, x, d = self._reverse_balls(edges, limit + LIMIT_SLACK_S, pts.wanted)
        # an open target's own radius: its edge was searched as far as `limit` (at least its
        # radius), and it lies rest_t before that edge's end
        cert = np.minimum(limit[inv] - rest_t, max_eta_s)

        # origins on other edges: time to the end of their edge, on to the end of the target's
        # edge (d), back to the target's point
        other = pts.has_origin[x] & (x != edges[u])
        u_o, x_o, d_o = u[other], x[other], d[other]
        rep, origin = _expand(pts.o_ptr, x_o, pts.o_order)
        u_o, d_o = u_o[rep], d_o[rep]
        t_order = np.argsort(inv, kind="stable")
        t_ptr = np.zeros(len(edges) + 1, dtype=np.int64)
        np.cumsum(np.bincount(inv, minlength=len(edges)), out=t_ptr[1:])
        rep, k = _expand(t_ptr, u_o, t_order)
        o_far = origin[rep]
        k_far = k
        eta_far = pts.rest_o[o_far] + d_o[rep] - rest_t[k_far] + pts.delay[o_far]

        # origins on the target's own edge: straight ahead, or once around the block (the
        # shortest loop leaves by a successor s and comes back: w(s) + d(s), less the edge's
        # own arc weight, plus its travel time, as `_loop_time` counts it)
        succ = pts.target_succ[x] & (x != edges[u])
        key = edges[u[succ]] * n + x[succ]
        pos = np.searchsorted(self._arc_keys, key)
        is_arc = self._arc_keys[np.minimum(pos, len(self._arc_keys) - 1)] == key
        loop = np.full(len(edges), np.inf)
        w = self._weight
        np.minimum.at(loop, u[succ][is_arc], w[x[succ][is_arc]] + d[succ][is_arc])
        loop = loop - w[edges] + self.travel_time[edges]
        k_near, o_near = _expand(pts.o_ptr, pts.ti[open_t], pts.o_order)
        t_near = open_t[k_near]
        ahead = (pts.q[t_near] - pts.p[o_near]) / pts.speed_o[o_near]
        around = pts.rest_o[o_near] + loop[inv[k_near]] - pts.rest_t[t_near]
        eta_near = np.where(ahead >= 0, ahead, around) + pts.delay[o_near]

        o = np.concatenate([o_far, o_near])
        k = np.concatenate([k_far, k_near])
        eta = np.concatenate([eta_far, eta_near])
        keep = (eta <= cert[k]) & ((pts.only[o] < 0) | (pts.only[o] == open_t[k]))
        return o[keep], open_t[k[keep]], eta[keep], cert

    def _reverse_balls(
        self, edges: IntArray, limit: FloatArray, wanted: npt.NDArray[np.bool_]
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """Backward search from each edge to `limit[i]` s: (i, edge x, time from the end of x
        to the end of edges[i]) for every wanted x within it (exact). A search kept from an
        earlier batch that reached as far serves; one that reached less far is taken on from
        where it stopped (`extend_search`), the others are searched (compiled:
        `bounded_search`), and all are kept. (Searching a little farther than asked, for the
        next batch's radius, measured slower: 1.25× as far cost 27 % more CPU a batch.)"""
        balls = self._balls
        self._search_balls(edges, limit)
        if not len(edges):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        # every ball's edges and times side by side, then one compiled filter (a filter per
        # ball cost ~20 µs of overhead each: 300 pick-ups a batch; numpy's masks and
        # gathers over them all, ~1.5 ms a batch of the city's evening)
        kept = [balls[edge] for edge in edges.tolist()]
        sizes = np.fromiter((len(b.edges) for b in kept), dtype=np.int64, count=len(kept))
        at = np.concatenate([b.edges for b in kept])
        time_s = np.concatenate([b.time_s for b in kept])
        return ball_pairs(at, time_s, sizes, limit, wanted)

    def _search_balls(self, edges: IntArray, limit: FloatArray) -> None:
        """Search (and keep) each edge's ball that is missing or reaches less far than asked
        (an edge asked twice: as far as the farther; a ball that reaches less far is taken on
        from where it stopped). The searches are split between threads
        (`robotaxi.map.threads`), each with scratch space of its own: each search is exact
        and alone, so the balls are the same on one thread or two."""
        balls = self._balls
        if self._ball_edges > BALL_CACHE_EDGES:
            balls.clear()
            self._ball_edges = 0
        todo: dict[int, float] = {}
        for edge, reach in zip(edges.tolist(), limit.tolist(), strict=True):
            ball = balls.get(edge)
            if (ball is None or ball.reach_s < reach) and todo.get(edge, -1.0) < reach:
                todo[edge] = reach
        if not todo:
            return
        # the farthest first, dealt out in turn: the threads' shares come out about even;
        # each search a stamp of its own
        work = sorted(todo.items(), key=lambda item: (-item[1], item[0]))
        stamped = [
            (edge, reach, self._stamp + 1 + j, balls.get(edge))
            for j, (edge, reach) in enumerate(work)
        ]
        self._stamp += len(work)
        threads = min(map_threads.threads(), len(work) // MIN_THREAD_SEARCHES) or 1
        while len(self._scratches) < threads:
            self._scratches.append(_scratch(len(self.edge_ids)))
        shares = [(stamped[k::threads], self._scratches[k]) for k in range(threads)]
        for (share, _), found in zip(
            shares, map_threads.run_split(self._search_share, shares), strict=True
        ):
            for (edge, reach, _, old), (at, time_s, ahead) in zip(share, found, strict=True):
                balls[edge] = _Ball(reach, at.astype(np.int32), time_s, ahead.astype(np.int32))
                self._ball_edges += len(at) - (0 if old is None else len(old.edges))

    def _search_share(
        self,
        piece: tuple[
            list[tuple[int, float, int, _Ball | None]],
            tuple[FloatArray, IntArray, IntArray, IntArray],
        ],
    ) -> list[tuple[IntArray, FloatArray, IntArray]]:
        """`bounded_search` from each (edge, reach, stamp, kept ball) of a share, on its
        scratch space; a kept ball is taken on from where it stopped (`extend_search`)."""
        share, scratch = piece
        indptr, indices, weight = self._rev_csr
        longest = self._rev_longest
        found = []
        for edge, reach, stamp, old in share:
            if old is None:
                found.append(bounded_search(indptr, indices, weight, edge, reach, scratch, stamp))
            else:
                kept = (old.edges, old.time_s, old.ahead, old.reach_s)
                found.append(
                    extend_search(indptr, indices, weight, longest, reach, scratch, stamp, *kept)
                )
        return found

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

    def route(
        self, from_edge: str, to_edge: str, *, avoid: Collection[str] = ()
    ) -> tuple[str, ...]:
        """Fastest edge sequence from `from_edge` to `to_edge`, both included; () if unreachable.
        A route never enters an edge of `avoid` (e.g. a street reported blocked); it may start
        or end on one."""
        a, b = self.index[from_edge], self.index[to_edge]
        if a == b:
            return (from_edge,)
        graph = self._graph
        banned = [self.index[e] for e in avoid if e in self.index]
        if not banned:
            known = self._routes.get((a, b))
            if known is None:
                if len(self._routes) >= ROUTE_CACHE_SIZE:
                    self._routes.clear()
                known = self._routes[(a, b)] = self._from_ball(a, b) or self._fastest(graph, a, b)
            return known
        graph = graph.copy()
        graph.data[np.isin(graph.indices, banned) & (graph.indices != b)] = 0.0
        graph.eliminate_zeros()  # a zero weight is no arc
        return self._fastest(graph, a, b)

    def weights(self) -> RouteWeights:
        """The current travel times, for `route_under` after they have changed."""
        return RouteWeights(self._graph, self._routes, self._top_speed_mps())

    def route_under(self, weights: RouteWeights, from_edge: str, to_edge: str) -> tuple[str, ...]:
        """`route(from_edge, to_edge)` as it was under `weights` (`weights()` then): the same
        edges, whatever the travel times are now."""
        if weights.graph is self._graph:
            return self.route(from_edge, to_edge)
        a, b = self.index[from_edge], self.index[to_edge]
        if a == b:
            return (from_edge,)
        known = weights.routes.get((a, b))
        return self._fastest(weights.graph, a, b) if known is None else known

    def route_length_bound_m(
        self, from_edge: str, to_edge: str, weights: RouteWeights | None = None
    ) -> float:
        """An upper bound (m) on the summed length of the edges of `route(from_edge, to_edge)`
        under the current travel times, or those of `weights` (`weights()` then) (inf if none
        is known), without searching: that route is no slower than the way through any
        landmark edge, and drives no edge faster than the edge's length over its travel time."""
        a, b = self.index[from_edge], self.index[to_edge]
        if a == b:
            return float(self.length[a])
        to_landmark, from_landmark, top_speed = self._landmark_tables(weights)
        time_s = float(np.min(to_landmark[:, a] + from_landmark[:, b]))
        return self._length_bound(a, time_s, top_speed)

    def route_length_upper_m(self, from_edge: str, to_edge: str) -> float:
        """At least `route_length_bound_m(from_edge, to_edge)` under the current travel
        times, cheaper: the way to and from each landmark is a fixed one (the fastest at the
        speed limits), costed at the current times, no shorter than the fastest way there
        the bound takes. No search, and no tables built per set of travel times."""
        a, b = self.index[from_edge], self.index[to_edge]
        if a == b:
            return float(self.length[a])
        to_tree, from_tree = self._tree_times()
        time_s = float(np.min(to_tree[:, a] + from_tree[:, b]))
        return self._length_bound(a, time_s, self._top_speed_mps())

    def _length_bound(self, a: int, time_s: float, top_speed: float) -> float:
        """The length bound (m) of a route from edge `a` that takes at most `time_s` (from
        the end of `a`): rising with `time_s`, so a longer time gives a bound no shorter."""
        if not np.isfinite(time_s):
            return float("inf")
        return float(self.length[a]) + time_s * top_speed * (1.0 + BOUND_REL) + BOUND_ABS_M

    def _top_speed_mps(self) -> float:
        """The highest length / arc weight (m/s) of any edge under the current times."""
        if self._top_speed is None:
            self._top_speed = float(np.max(self.length / self._weight))
        return self._top_speed

    def _landmark_tables(
        self, weights: RouteWeights | None = None
    ) -> tuple[FloatArray, FloatArray, float]:
        """L×E: time (s) from the end of every edge to the end of each landmark, and from the
        end of each landmark to the end of every edge; the highest length / arc weight (m/s)
        of any edge. Built on first use per set of travel times (the current ones, or those
        of `weights`)."""
        if weights is not None and weights.graph is not self._graph:
            kept = self._old_landmarks.get(id(weights.graph))
            if kept is not None and kept[0] is weights.graph:
                return kept[1]
            tables = self._tables_on(weights.graph, weights.graph.T.tocsr(), weights.top_speed_mps)
            self._old_landmarks[id(weights.graph)] = (weights.graph, tables)
            while len(self._old_landmarks) > KEPT_LANDMARK_TABLES:
                del self._old_landmarks[next(iter(self._old_landmarks))]
            return tables
        if self._landmarks is None:
            self._landmarks = self._tables_on(self._graph, self._reverse, self._top_speed_mps())
        return self._landmarks

    def _tables_on(
        self, graph: csr_matrix, reverse: csr_matrix, top_speed: float
    ) -> tuple[FloatArray, FloatArray, float]:
        landmarks = self._landmark_edges
        to_landmark = np.atleast_2d(dijkstra(reverse, directed=True, indices=landmarks))
        from_landmark = np.atleast_2d(dijkstra(graph, directed=True, indices=landmarks))
        return (to_landmark, from_landmark, top_speed)

    def _tree_times(self) -> tuple[FloatArray, FloatArray]:
        """L×E: time (s) under the current travel times from the end of every edge to the end
        of each landmark along `_landmark_trees`' fixed way, and from each landmark's end to
        every edge's end likewise (inf: no way): each at least `_landmark_tables`' (the
        fastest way's) time, as each sum is taken in the order a search takes it."""
        if self._tree_s is None:
            w = self._weight
            (to_order, to_next), (from_order, from_prev) = self._landmark_trees
            self._tree_s = (
                tree_times(to_order, to_next, w, False),
                tree_times(from_order, from_prev, w, True),
            )
        return self._tree_s

    @functools.cached_property
    def _landmark_trees(self) -> tuple[tuple[IntArray, IntArray], tuple[IntArray, IntArray]]:
        """The fixed ways of `_tree_times`, L of them each way: the fastest at the speed
        limits (the floors on travel times) to each landmark edge and from it, as each edge's
        next edge toward the landmark / previous edge from it (−9999 at the landmark and
        where there is no way), and the edges in the order their search settled them (the
        landmark first, unreachable edges left out)."""
        lower = np.maximum(self._floor, 1e-3)[self._dst]  # as `_build` floors weights
        n = len(self.edge_ids)
        forward = csr_matrix((lower, (self._src, self._dst)), shape=(n, n))
        marks = self._landmark_edges
        out = []
        for graph in (forward.T.tocsr(), forward):
            dist, parent = dijkstra(graph, directed=True, indices=marks, return_predecessors=True)
            dist, parent = np.atleast_2d(dist), np.atleast_2d(parent).astype(np.int64)
            order = np.full(dist.shape, -1, dtype=np.int64)
            for k in range(len(marks)):
                reached = np.flatnonzero(np.isfinite(dist[k]))
                settled = reached[np.argsort(dist[k][reached], kind="stable")]
                order[k, : len(settled)] = settled
            out.append((order, parent))
        return out[0], out[1]

    @functools.cached_property
    def _landmark_edges(self) -> IntArray:
        """The landmarks of `_landmark_tables`: where the map is, not its travel times."""
        lo, hi = self._end_xy.min(axis=0), self._end_xy.max(axis=0)
        steps = (np.arange(LANDMARK_GRID) + 0.5) / LANDMARK_GRID
        centres = np.array([lo + (hi - lo) * (fx, fy) for fx in steps for fy in steps])
        _, near = cKDTree(self._end_xy).query(centres)
        return np.unique(np.asarray(near, dtype=np.int64))

    def _from_ball(self, a: int, b: int) -> tuple[str, ...]:
        """The fastest route from edge index `a` to `b` read off `b`'s kept pick-up search, if
        it reached `a`; else ()."""
        ball = self._balls.get(b)
        if ball is None:
            return ()
        k = int(np.searchsorted(ball.edges, a))
        if k == len(ball.edges) or ball.edges[k] != a:
            return ()
        path, edges, ahead = [a], ball.edges, ball.ahead
        while path[-1] != b:
            path.append(int(ahead[int(np.searchsorted(edges, path[-1]))]))
        return tuple(self.edge_ids[i] for i in path)

    def _fastest(self, graph: csr_matrix, a: int, b: int) -> tuple[str, ...]:
        """`route` on `graph` (the current one, another set of travel times or one with arcs
        removed: none below the floors) from edge `a` to `b`."""
        if graph is self._graph:
            indptr, indices, weight = self._csr
        else:
            indptr, indices = graph.indptr.astype(np.int64), graph.indices.astype(np.int64)
            weight = graph.data
        h_from, h_to = self._alt_tables()
        self._stamp += 1
        path = fastest_path(indptr, indices, weight, a, b, h_from, h_to, self._scratch, self._stamp)
        return tuple(self.edge_ids[i] for i in path.tolist())

    def _alt_tables(self) -> tuple[FloatArray, FloatArray]:
        """E × L: lower bounds on the time (s) from each of A*'s landmarks to the end of
        every edge, and from the end of every edge to each landmark (inf: none), under the
        floors on travel times: built once. (An edge's row holds its times to and from every
        landmark side by side: A* reads them together.)"""
        if self._alt is None:
            lower = np.maximum(self._floor, 1e-3)[self._dst]  # as `_build` floors weights
            n = len(self.edge_ids)
            forward = csr_matrix((lower, (self._src, self._dst)), shape=(n, n))
            marks = self._alt_landmarks
            h_from = np.atleast_2d(dijkstra(forward, directed=True, indices=marks))
            h_to = np.atleast_2d(dijkstra(forward.T.tocsr(), directed=True, indices=marks))
            self._alt = (np.ascontiguousarray(h_from.T), np.ascontiguousarray(h_to.T))
            self.alt_builds += 1
        return self._alt

    @functools.cached_property
    def _alt_landmarks(self) -> IntArray:
        """A*'s landmark edges, ALT_LANDMARKS of them: starting from the map's centre, each
        time the edge farthest (straight line) from those chosen, the centre left out (they
        lie on the map's rim, where they bound the most routes)."""
        xy = self._end_xy
        gap = np.hypot(*(xy - xy.mean(axis=0)).T)
        chosen: list[int] = []
        for _ in range(min(ALT_LANDMARKS, len(xy))):
            chosen.append(int(np.argmax(gap)))
            gap = np.minimum(gap, np.hypot(*(xy - xy[chosen[-1]]).T))
        return np.unique(np.asarray(chosen, dtype=np.int64))


def _expand(ptr: IntArray, keys: IntArray, order: IntArray | None) -> tuple[IntArray, IntArray]:
    """Flatten the CSR rows `keys` of `ptr`: (which key, item) for every item of those rows;
    items are positions, or `order[position]` when `order` is given."""
    start = ptr[keys]
    count = ptr[keys + 1] - start
    rep = np.repeat(np.arange(len(keys)), count)
    pos = np.repeat(start - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
    return rep, (pos if order is None else order[pos])


@dataclass(frozen=True)
class _Points:
    """One candidate search's origins and targets, with what the searches need of them."""

    ti: IntArray  # T, target edges
    p: FloatArray  # C, origin position along its edge (m)
    q: FloatArray  # T, target position along its edge (m)
    rest_o: FloatArray  # C, s from the origin to the end of its edge
    rest_t: FloatArray  # T, s from the target to the end of its edge
    speed_o: FloatArray  # C, m/s on the origin's edge
    delay: FloatArray  # C, s added to every ETA of the origin
    only: IntArray  # C, the one target the origin may serve, −1 for any
    restricted_count: IntArray  # T, origins restricted to each target
    o_order: IntArray  # C, origins sorted by edge ...
    o_ptr: IntArray  # E + 1, ... each edge's slice of them
    has_origin: npt.NDArray[np.bool_]  # E
    target_succ: npt.NDArray[np.bool_]  # E, successor of some target edge
    wanted: npt.NDArray[np.bool_]  # E, edges the searches must report

    @staticmethod
    def make(
        graph: RoutingGraph,
        fi: IntArray,
        origin_pos: FloatArray,
        ti: IntArray,
        target_pos: FloatArray,
        delay_s: FloatArray | None,
        only_target: IntArray | None,
    ) -> _Points:
        n = len(graph.edge_ids)
        p = np.asarray(origin_pos, dtype=float).reshape(-1)
        q = np.asarray(target_pos, dtype=float).reshape(-1)
        if len(p) != len(fi) or len(q) != len(ti):
            raise DispatchError(
                f"positions do not match edges: {len(p)} for {len(fi)} origins, "
                f"{len(q)} for {len(ti)} targets"
            )
        delay = np.zeros(len(fi)) if delay_s is None else np.asarray(delay_s, dtype=float)
        if delay.shape != fi.shape or not np.all(np.isfinite(delay)) or np.any(delay < 0):
            raise DispatchError("origin delays must be one finite value ≥ 0 s per origin")
        if only_target is None:
            only = np.full(len(fi), -1, dtype=np.int64)
        else:
            only = np.asarray(only_target, dtype=np.int64)
            if only.shape != fi.shape or np.any(only >= len(ti)) or np.any(only < -1):
                raise DispatchError("only_target must be a target index or −1 per origin")
        speed_o = graph.length[fi] / graph.travel_time[fi]
        speed_t = graph.length[ti] / graph.travel_time[ti]
        o_order = np.argsort(fi, kind="stable")
        o_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(fi, minlength=n), out=o_ptr[1:])
        has_origin = o_ptr[1:] > o_ptr[:-1]
        target_succ = np.zeros(n, dtype=bool)
        target_succ[_expand(graph._succ_ptr, np.unique(ti), graph._succ_idx)[1]] = True
        return _Points(
            ti=ti,
            p=p,
            q=q,
            rest_o=np.clip(graph.length[fi] - p, 0, None) / speed_o,
            rest_t=np.clip(graph.length[ti] - q, 0, None) / speed_t,
            speed_o=speed_o,
            delay=delay,
            only=only,
            restricted_count=np.bincount(only[only >= 0], minlength=len(ti)),
            o_order=o_order,
            o_ptr=o_ptr,
            has_origin=has_origin,
            target_succ=target_succ,
            wanted=has_origin | target_succ,
        )
