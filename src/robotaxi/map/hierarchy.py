"""A customizable contraction hierarchy (CCH) of the routing graph: many-to-many travel times.

Dispatch wants, for a batch of waiting riders, the time from every free car to every pick-up.
Backward searches from each pick-up (`RoutingGraph.pickup_candidates`) cost in proportion to
the area each must cover; when riders outnumber the cars near them (a saturated batch) the
searches widen to most of the city. A contraction hierarchy answers the whole matrix at once
at a cost that does not grow with the distance.

The hierarchy (Dibbelt, Strasser and Wagner, "Customizable Contraction Hierarchies", JEA 2016):
- *topology*, once per map: a nested-dissection order of the nodes (METIS, through pymetis) and
  the chordal supergraph that eliminating the nodes in that order leaves; each node's upward
  neighbours are its ancestors in the elimination tree;
- *customization*, once per set of travel times: every arc of the supergraph gets, in each
  direction, the time of the fastest way between its ends through lower nodes only (the
  original arc's time, then each lower triangle in order of its lowest node), ~50 ms on the
  city;
- *many-to-many* (RPHAST, Delling, Goldberg and Werneck, "Faster batched shortest paths in
  road networks", ATMOS 2011): for each target, the times from its ancestors down to it (one
  walk up its elimination-tree path), then one sweep over the ancestors of every source from
  the top down, each node's time the least over its upward arcs of the arc's time plus the
  time from its head. Every fastest way in a customized hierarchy goes up then down, so the
  sweep gives every source's time to every target. The targets are swept side by side (a
  node's row of times is contiguous), so the inner loop is a vector min.

`KeptSweeps` keeps what a many-to-many swept under one metric: each swept node's times to each
target. Dispatch asks again every 15 s with most of the same riders and cars a little farther
on, so a batch sweeps only its new targets (over the kept nodes) and its cars' new ancestors
(over the kept targets): on the city ~13 new riders and ~250 new nodes a batch against ~300 ×
~8,800 in a whole sweep.

Times equal a Dijkstra's on the same weights up to float rounding (the sums are taken in
another order: ~1e-12 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt
import pymetis

from robotaxi.core.types import FloatArray, IntArray
from robotaxi.map import threads as map_threads

# targets swept side by side (a node's row of times is contiguous): blocks of 8 to 300 measured
# on the city, 656 sources × 300 targets: one block of 300 fastest (~35 ms; 64: ~50 ms)
TARGET_BLOCK = 300
# the targets split between threads (`robotaxi.map.threads`; each column is computed alone):
# the city's 656 × 300 on this 2-core machine, median 52 → 33 ms for the whole ETA matrix.
# Fewer than MIN_THREAD_TARGETS targets a thread are not worth handing to a thread.
MIN_THREAD_TARGETS = 32
# `KeptSweeps`: room for this many times the targets of the call that first needs more; when
# full, it starts again. The city's dispatch under one set of travel times (20 batches of 300
# riders, ~650 cars) asks ~560 targets and sweeps ~12,000 of the 29,108 nodes (~55 MB kept).
KEPT_TARGETS_PER_CALL = 2
METIS_SEED = 7


class ContractionHierarchy:
    """The topology of a CCH over a directed graph of `n` nodes with arcs src[m] → dst[m]
    (no duplicates, no loops). `customize` gives its arcs times; `many_to_many` reads them.
    Nodes are kept by rank (their place in the elimination order) inside."""

    def __init__(self, n: int, src: IntArray, dst: IntArray) -> None:
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        self.n = n
        self.rank = _nested_dissection(n, src, dst)
        up_ptr, up_head, parent = _eliminate(n, self.rank[src], self.rank[dst])
        self.up_ptr, self.up_head, self.parent = up_ptr, up_head, parent
        self._owner = np.repeat(np.arange(n), np.diff(up_ptr))  # each arc's lower node
        # each original arc's place among the hierarchy's arcs, and whether it runs upward
        lo = np.minimum(self.rank[src], self.rank[dst])
        hi = np.maximum(self.rank[src], self.rank[dst])
        self._arc = _find_arcs(up_ptr, up_head, lo, hi)
        self._upward = self.rank[src] < self.rank[dst]

    @property
    def arcs(self) -> int:
        return len(self.up_head)

    def customize(self, arc_weight: FloatArray) -> HierarchyMetric:
        """The hierarchy under these times of the original arcs (in the order they were
        given): basic then perfect customization, keeping each arc only in the directions
        where it is itself a fastest way between its ends (~40 %)."""
        fw = np.full(self.arcs, np.inf)
        bw = np.full(self.arcs, np.inf)
        w = np.asarray(arc_weight, dtype=float)
        up = self._upward
        fw[self._arc[up]] = w[up]
        bw[self._arc[~up]] = w[~up]
        _customize(self.up_ptr, self.up_head, fw, bw)
        basic_fw, basic_bw = fw.copy(), bw.copy()
        _perfect(self.up_ptr, self.up_head, fw, bw)
        # an arc some way through a higher node beats is on no fastest up-down way
        return HierarchyMetric(
            self._part(np.isfinite(fw) & (fw >= basic_fw), fw),
            self._part(np.isfinite(bw) & (bw >= basic_bw), bw),
        )

    def _part(self, keep: npt.NDArray[np.bool_], weight: FloatArray) -> _Arcs:
        counts = np.bincount(self._owner[keep], minlength=self.n)
        ptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        return _Arcs(ptr, self.up_head[keep], weight[keep])

    def many_to_many(
        self, metric: HierarchyMetric, sources: IntArray, targets: IntArray
    ) -> FloatArray:
        """S × T: the fastest time from each source node to each target node under `metric`
        (`customize`'s), inf where there is no way."""
        return KeptSweeps(self, metric).many_to_many(sources, targets)


class KeptSweeps:
    """`ContractionHierarchy.many_to_many` under one metric that keeps what it swept: each
    swept node's time to each target asked so far (a table, node × target). Dispatch asks
    again every batch with most of the last batch's targets (riders wait over several) and
    cars near where they were (their nodes' ancestors mostly swept already): a batch then
    sweeps its new targets over the kept nodes and the kept targets over its new nodes only.
    Every entry is computed as a sweep of that call alone would compute it (the same mins in
    the same order): the same times, bit for bit, whatever was asked before. The table is
    dropped when it has no room for a call's new targets (KEPT_TARGETS_PER_CALL)."""

    def __init__(self, hierarchy: ContractionHierarchy, metric: HierarchyMetric) -> None:
        self.hierarchy = hierarchy
        self._table = np.empty((0, 0))
        self._last: tuple[IntArray, IntArray] | None = None  # the last call's (sources, targets)
        self.reset(metric)

    def reset(self, metric: HierarchyMetric, *, again: bool = False) -> None:
        """From now on, times under `metric`: nothing kept, or (`again`) the last call's
        sources and targets swept under it now (new travel times: the next batch's riders
        and cars are mostly the last one's)."""
        last = self._last
        self.metric = metric
        self._clear()
        if again and last is not None:
            self.many_to_many(*last)

    def _clear(self) -> None:
        n = self.hierarchy.n
        self._row = np.full(n, -1, dtype=np.int64)  # node (rank) → its row, −1: not swept
        self._col = np.full(n, -1, dtype=np.int64)  # target node (rank) → its column
        self._nodes = np.zeros(0, dtype=np.int64)  # row → node (rank)
        self._targets = np.zeros(0, dtype=np.int64)  # column → target node (rank)
        # each column's target's path up the elimination tree (CSR by column): its nodes and
        # their down-only times to the target, where a sweep starts from
        self._path_ptr = np.zeros(1, dtype=np.int64)
        self._path_node = np.zeros(0, dtype=np.int64)
        self._path_near = np.zeros(0)

    @property
    def cells(self) -> int:
        """Entries kept (swept nodes × targets)."""
        return len(self._nodes) * len(self._targets)

    def many_to_many(self, sources: IntArray, targets: IntArray) -> FloatArray:
        """S × T: the fastest time from each source node to each target node, inf where
        there is no way."""
        h = self.hierarchy
        s = h.rank[np.asarray(sources, dtype=np.int64)]
        t = h.rank[np.asarray(targets, dtype=np.int64)]
        if not len(s) or not len(t):
            return np.full((len(s), len(t)), np.inf)
        self._last = (np.asarray(sources, dtype=np.int64), np.asarray(targets, dtype=np.int64))
        above_s = _ancestors(h.parent, np.unique(s))
        new_t = np.unique(t[self._col[t] < 0])
        new_n = above_s[self._row[above_s] < 0]
        if len(self._targets) + len(new_t) > self._table.shape[1]:  # start again
            self._clear()
            new_t, new_n = np.unique(t), above_s
        old_cols = len(self._targets)
        self._add(new_n, new_t)
        if len(new_n) and old_cols:  # the kept targets over the new nodes
            self._sweep(new_n[::-1].copy(), 0, old_cols)
        if len(new_t):  # the new targets over every swept node
            self._sweep(np.sort(self._nodes)[::-1].copy(), old_cols, len(self._targets))
        return self._table[np.ix_(self._row[s], self._col[t])]

    def _add(self, nodes: IntArray, targets: IntArray) -> None:
        """Rows for `nodes`, columns for `targets`. The table has a row for every node of
        the hierarchy and KEPT_TARGETS_PER_CALL × a call's targets columns (made at the first
        call that needs more, then kept: only the entries swept take memory)."""
        cols = len(self._targets) + len(targets)
        if cols > self._table.shape[1]:
            self._table = np.empty((self.hierarchy.n, KEPT_TARGETS_PER_CALL * cols))
        self._row[nodes] = np.arange(len(self._nodes), len(self._nodes) + len(nodes))
        self._col[targets] = np.arange(len(self._targets), cols)
        self._nodes = np.concatenate([self._nodes, nodes])
        self._targets = np.concatenate([self._targets, targets])
        down = self.metric.down
        ptr, node, near = _target_paths(
            self.hierarchy.parent, down.ptr, down.head, down.weight, targets
        )
        self._path_ptr = np.concatenate([self._path_ptr, self._path_ptr[-1] + ptr[1:]])
        self._path_node = np.concatenate([self._path_node, node])
        self._path_near = np.concatenate([self._path_near, near])

    def _sweep(self, sweep: IntArray, first: int, last: int) -> None:
        """Columns first..last−1 of the rows of `sweep` (nodes top down), split between
        threads by column."""
        up, row, table = self.metric.up, self._row, self._table
        swept = np.zeros(self.hierarchy.n, dtype=np.bool_)
        swept[sweep] = True
        paths = (self._path_ptr, self._path_node, self._path_near)

        def sweep_block(block: tuple[int, int]) -> None:
            _rphast(up.ptr, up.head, up.weight, row, sweep, swept, *paths, *block, table)

        count = last - first
        threads = min(map_threads.threads(), count // MIN_THREAD_TARGETS) or 1
        size = min(TARGET_BLOCK, -(-count // threads))
        blocks = [(a, min(a + size, last)) for a in range(first, last, size)]
        map_threads.run_split(sweep_block, blocks)


@dataclass(frozen=True, slots=True)
class _Arcs:
    """Upward arcs of the hierarchy kept in one direction (CSR by lower node, ranks), with
    their times: lower → upper (`up`) or upper → lower (`down`)."""

    ptr: IntArray
    head: IntArray
    weight: FloatArray


@dataclass(frozen=True, slots=True)
class HierarchyMetric:
    """A customized hierarchy: the arcs a fastest way may use going up, and coming down."""

    up: _Arcs
    down: _Arcs


def _nested_dissection(n: int, src: IntArray, dst: IntArray) -> IntArray:
    """Each node's rank in a METIS nested-dissection order of the undirected graph."""
    a = np.concatenate([src, dst])
    b = np.concatenate([dst, src])
    key = np.unique(a * n + b)
    a, b = key // n, key % n
    xadj = np.searchsorted(a, np.arange(n + 1))
    graph = pymetis.CSRAdjacency(xadj.tolist(), b.tolist())
    # METIS's own random choices from a fixed seed: the same order, hence the same float sums
    # (ties in dispatch), on every run
    _perm, iperm = pymetis.nested_dissection(graph, options=pymetis.Options(seed=METIS_SEED))
    return np.asarray(iperm, dtype=np.int64)


def _eliminate(n: int, a: IntArray, b: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Eliminate nodes 0..n−1 (ranks) in order from the undirected graph a–b: each node's
    upward neighbours in the chordal supergraph (CSR, heads ascending) and its parent in the
    elimination tree (its lowest upward neighbour; −1 for a root)."""
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    keep = lo != hi
    order = np.lexsort((hi[keep], lo[keep]))
    lo, hi = lo[keep][order], hi[keep][order]
    ptr = np.searchsorted(lo, np.arange(n + 1))
    up: list[set[int]] = [set(hi[ptr[v] : ptr[v + 1]].tolist()) for v in range(n)]
    parent = np.full(n, -1, dtype=np.int64)
    heads: list[list[int]] = []
    for v in range(n):
        mine = up[v]
        if mine:
            p = min(mine)
            parent[v] = p
            up[p] |= mine
            up[p].discard(p)
        heads.append(sorted(mine))
        up[v] = set()  # (done with: free it)
    counts = np.array([len(h) for h in heads], dtype=np.int64)
    up_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=up_ptr[1:])
    up_head = np.fromiter((x for h in heads for x in h), dtype=np.int64, count=int(up_ptr[-1]))
    return up_ptr, up_head, parent


@numba.njit(cache=True)
def _find_arcs(up_ptr: IntArray, up_head: IntArray, lo: IntArray, hi: IntArray) -> IntArray:
    """The hierarchy arc lo → hi of each pair (it exists: every original edge is kept)."""
    out = np.empty(len(lo), np.int64)
    for m in range(len(lo)):
        a0, a1 = up_ptr[lo[m]], up_ptr[lo[m] + 1]
        out[m] = a0 + np.searchsorted(up_head[a0:a1], hi[m])
    return out


@numba.njit(cache=True)
def _ancestors(parent: IntArray, start: IntArray) -> IntArray:
    """Every node on the elimination-tree paths from `start` to the roots, ascending."""
    mark = np.zeros(parent.shape[0], np.bool_)
    for v in start:
        while v >= 0 and not mark[v]:
            mark[v] = True
            v = parent[v]
    return np.flatnonzero(mark)


@numba.njit(cache=True, nogil=True)
def _customize(up_ptr: IntArray, up_head: IntArray, fw: FloatArray, bw: FloatArray) -> None:
    """Basic customization: for each node x from the lowest, each pair of its upward arcs
    x–u, x–w (u < w) offers u → x → w and w → x → u to the arc u–w."""
    n = up_ptr.shape[0] - 1
    for x in range(n):
        a1 = up_ptr[x + 1]
        for i in range(up_ptr[x], a1):
            u = up_head[i]
            to_x = bw[i]  # u → x
            from_x = fw[i]  # x → u
            p = up_ptr[u]
            for j in range(i + 1, a1):
                w = up_head[j]
                while up_head[p] < w:  # u–w exists (chordal): the merge finds it
                    p += 1
                fw[p] = min(fw[p], to_x + fw[j])  # u → x → w
                bw[p] = min(bw[p], bw[j] + from_x)  # w → x → u


@numba.njit(cache=True, nogil=True)
def _perfect(up_ptr: IntArray, up_head: IntArray, fw: FloatArray, bw: FloatArray) -> None:
    """Perfect customization (after `_customize`): each arc x–y (x < y) gets the fastest
    time between its ends through any nodes. Nodes from the highest down, so the arcs above
    x are final: a fastest way from x to y leaves x by an upward arc to some a (through lower
    nodes only: that arc's time) and goes on a → y, an arc (x's upward neighbours are a
    clique). Each triangle x, a, y (a < y) offers a to the arc x–y and y to the arc x–a."""
    n = up_ptr.shape[0] - 1
    for x in range(n - 1, -1, -1):
        a1 = up_ptr[x + 1]
        for j in range(up_ptr[x], a1):
            a = up_head[j]
            q = up_ptr[a]
            for i in range(j + 1, a1):
                y = up_head[i]
                while up_head[q] < y:
                    q += 1
                fw[i] = min(fw[i], fw[j] + fw[q])  # x → a → y
                bw[i] = min(bw[i], bw[q] + bw[j])  # y → a → x
                fw[j] = min(fw[j], fw[i] + bw[q])  # x → y → a
                bw[j] = min(bw[j], fw[q] + bw[i])  # a → y → x


@numba.njit(cache=True, nogil=True)
def _target_paths(
    parent: IntArray, down_ptr: IntArray, down_head: IntArray, down_w: FloatArray,
    targets: IntArray,
) -> tuple[IntArray, IntArray, FloatArray]:  # fmt: skip
    """Each target's path up the elimination tree and the down-only times from its nodes to
    the target (CSR by target: pointers, nodes, times). Each node's downward arcs into the
    path lead to nodes further down the same path: a small contiguous array per target."""
    n, k_n = parent.shape[0], targets.shape[0]
    ptr = np.zeros(k_n + 1, np.int64)
    for k in range(k_n):
        m, x = 0, targets[k]
        while x >= 0:
            m += 1
            x = parent[x]
        ptr[k + 1] = ptr[k] + m
    nodes = np.empty(ptr[k_n], np.int64)
    near = np.empty(ptr[k_n])
    pos = np.full(n, -1, np.int64)
    for k in range(k_n):
        base, m, x = ptr[k], 0, targets[k]
        while x >= 0:
            pos[x] = m
            nodes[base + m] = x
            near[base + m] = np.inf
            m += 1
            x = parent[x]
        near[base] = 0.0
        for p in range(m):  # from the target up its path
            dx = near[base + p]
            if dx < np.inf:
                x = nodes[base + p]
                for a in range(down_ptr[x], down_ptr[x + 1]):
                    q = pos[down_head[a]]
                    c = dx + down_w[a]
                    if c < near[base + q]:
                        near[base + q] = c
        for p in range(m):
            pos[nodes[base + p]] = -1
    return ptr, nodes, near


@numba.njit(cache=True, nogil=True)
def _rphast(
    up_ptr: IntArray,
    up_head: IntArray,
    up_w: FloatArray,
    row: IntArray,
    sweep: IntArray,
    swept: npt.NDArray[np.bool_],
    path_ptr: IntArray,
    path_node: IntArray,
    path_near: FloatArray,
    first: int,
    last: int,
    d: FloatArray,
) -> None:
    """Columns first..last−1 of d (node rows × targets) at the rows of `sweep` (nodes by
    rank, top down, marked in `swept`; `row`: each node's row): each node's time to each
    column's target, from the column's path (`_target_paths`) and the rows of the node's
    upward neighbours, each swept before it or holding its times to these targets."""
    k_n = last - first
    for v in sweep:
        d[row[v], first:last] = np.inf
    for k in range(first, last):  # a node on the target's path starts from its down-only time
        for p in range(path_ptr[k], path_ptr[k + 1]):
            x = path_node[p]
            if swept[x]:
                d[row[x], k] = path_near[p]
    for v in sweep:
        here = d[row[v], first:last]
        for a in range(up_ptr[v], up_ptr[v + 1]):
            w = up_w[a]
            above = d[row[up_head[a]], first:last]
            for k in range(k_n):  # (a select, not a branch: the loop vectorizes)
                c = w + above[k]
                r = here[k]
                here[k] = c if c < r else r
