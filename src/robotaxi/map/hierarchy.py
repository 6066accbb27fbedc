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
        s = self.rank[np.asarray(sources, dtype=np.int64)]
        t = self.rank[np.asarray(targets, dtype=np.int64)]
        out = np.full((len(s), len(t)), np.inf)
        if not len(s) or not len(t):
            return out
        above_s = _ancestors(self.parent, np.unique(s))
        above_t = _ancestors(self.parent, np.unique(t))
        nodes = np.union1d(above_s, above_t)  # ascending rank
        local = np.full(self.n, -1, dtype=np.int64)
        local[nodes] = np.arange(len(nodes))
        sweep = local[above_s][::-1].copy()  # the sources' ancestors, top down
        up, down = metric.up, metric.down

        def sweep_block(block: IntArray) -> FloatArray:
            times = np.empty((len(nodes), len(block)))
            _rphast(
                up.ptr,
                up.head,
                up.weight,
                down.ptr,
                down.head,
                down.weight,
                self.parent,
                nodes,
                local,
                sweep,
                block,
                times,
            )
            return times[local[s]]

        threads = min(map_threads.threads(), len(t) // MIN_THREAD_TARGETS) or 1
        size = min(TARGET_BLOCK, -(-len(t) // threads))
        blocks = [t[start : start + size] for start in range(0, len(t), size)]
        parts = map_threads.run_split(sweep_block, blocks)
        for start, part in zip(range(0, len(t), size), parts, strict=True):
            out[:, start : start + part.shape[1]] = part
        return out


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
def _rphast(
    up_ptr: IntArray,
    up_head: IntArray,
    up_w: FloatArray,
    down_ptr: IntArray,
    down_head: IntArray,
    down_w: FloatArray,
    parent: IntArray,
    nodes: IntArray,
    local: IntArray,
    sweep: IntArray,
    targets: IntArray,
    d: FloatArray,
) -> None:
    """d (len(nodes) × len(targets), filled here): each listed node's time to each target
    (exact for the nodes of `sweep`, the sources' ancestors given top down by local index)."""
    k_n = targets.shape[0]
    d[:] = np.inf
    # a target's path up the elimination tree, and its times there (each node's upward arcs
    # lead to nodes further up the same path: a small contiguous array, not d's column)
    pos = np.full(parent.shape[0], -1, np.int64)
    path = np.empty(parent.shape[0], np.int64)
    near = np.empty(parent.shape[0], d.dtype)
    for k in range(k_n):
        x = targets[k]
        m = 0
        while x >= 0:
            pos[x] = m
            path[m] = x
            near[m] = np.inf
            m += 1
            x = parent[x]
        near[0] = 0
        for p in range(m):  # down-only times: from the target up its path
            dx = near[p]
            if dx < np.inf:
                x = path[p]
                for a in range(down_ptr[x], down_ptr[x + 1]):
                    q = pos[down_head[a]]
                    c = dx + d.dtype.type(down_w[a])
                    if c < near[q]:
                        near[q] = c
        for p in range(m):
            d[local[path[p]], k] = near[p]
            pos[path[p]] = -1
    for i in sweep:
        v = nodes[i]
        row = d[i]
        for a in range(up_ptr[v], up_ptr[v + 1]):
            w = up_w[a]
            above = d[local[up_head[a]]]
            for k in range(k_n):  # (a select, not a branch: the loop vectorizes)
                c = w + above[k]
                r = row[k]
                row[k] = c if c < r else r
