"""Compiled graph searches (numba) on a CSR graph, with scratch space kept between calls.

`fastest_path`: point-to-point fastest routes by A* with landmark lower bounds (ALT).
`RoutingGraph.route` asks for one route at a time, tens of thousands a day on the whole city.
scipy's Dijkstra has no target to stop at, so a search bounded by a guess of the route's time
settles every edge within that time of the start: a disc around it. A* settles mostly the
edges toward the target: with each edge's time from and to a few landmark edges,
time(v → b) ≥ max over landmarks L of time(L → b) − time(L → v) and time(v → L) − time(b → L)
(the triangle inequality), a lower bound on what is left (Goldberg and Harrelson, "Computing
the shortest path: A* search meets graph theory", SODA 2005). The landmarks' times are taken
under lower-bound arc weights (every arc's weight at least those), so the bound stays a lower
bound, and consistent (h(u) − h(v) ≤ the lower weight of arc u → v ≤ its weight), so the first
time A* takes the target off its heap its time is the fastest.

`bounded_search`: Dijkstra from one node up to a time limit, the nodes it settles, their times
and predecessors: the backward searches from pick-ups; `extend_search` takes one of them on
to a farther limit (a pick-up whose nearest cars have moved away). scipy's Dijkstra
initialises an array of the whole graph per source, which on the whole city costs more than
a short search; here the scratch arrays are marked with a new stamp per search instead of
cleared. `ball_pairs`: the searches' wanted nodes, filtered in one compiled pass.

Scratch space (`scratch`: `dist`, `pred`, `seen`, `place`, n each): `seen[v]` == `stamp`
marks v reached in this search, −`stamp` settled (`stamp` > 0, new for every call).
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from robotaxi.core.types import BoolArray, FloatArray, IntArray


@numba.njit(cache=True, nogil=True, inline="always")
def _bound(
    from_b: FloatArray, to_b: FloatArray, h_from: FloatArray, h_to: FloatArray, v: int
) -> float:
    """A*'s lower bound on the time from node v to the target b: `from_b` / `to_b` are b's
    rows of `h_from` / `h_to` (n × L: a node's landmark times side by side, one cache line
    or two a node rather than one per landmark)."""
    best = 0.0
    for k in range(from_b.shape[0]):
        x = from_b[k] - h_from[v, k]
        if x > best:
            best = x
        y = h_to[v, k] - to_b[k]
        if y > best:
            best = y
    return best


@numba.njit(cache=True, nogil=True, inline="always")
def _sift_up(heap: IntArray, place: IntArray, key: FloatArray, i: int, v: int) -> None:
    """Put node v at heap place i or above, by `key[v]`."""
    k = key[v]
    while i > 0:
        p = (i - 1) // 2
        if key[heap[p]] <= k:
            break
        heap[i] = heap[p]
        place[heap[i]] = i
        i = p
    heap[i] = v
    place[v] = i


@numba.njit(cache=True, nogil=True, inline="always")
def _take(heap: IntArray, place: IntArray, key: FloatArray, size: int) -> int:
    """Take the node of least key off the heap of `size` (≥ 1) nodes (size − 1 are left)."""
    u = heap[0]
    size -= 1
    if size > 0:  # the last node sifts down from the top
        last = heap[size]
        k = key[last]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= size:
                break
            if c + 1 < size and key[heap[c + 1]] < key[heap[c]]:
                c += 1
            if key[heap[c]] >= k:
                break
            heap[i] = heap[c]
            place[heap[i]] = i
            i = c
        heap[i] = last
        place[last] = i
    return u


@numba.njit(cache=True, nogil=True, inline="always")
def _room(heap: IntArray, size: int) -> IntArray:
    """The heap's array, doubled if `size` nodes fill it."""
    if size < heap.shape[0]:
        return heap
    grown = np.empty(2 * size, np.int64)
    grown[:size] = heap
    return grown


@numba.njit(cache=True, nogil=True, inline="always")
def _push(
    heap_f: FloatArray, heap_v: IntArray, size: int, f: float, v: int
) -> tuple[FloatArray, IntArray]:
    """Put (f, v) on the binary min-heap of `size` items; the heap's arrays, grown if full."""
    if size == heap_f.shape[0]:
        grown_f = np.empty(2 * size, np.float64)
        grown_v = np.empty(2 * size, np.int64)
        grown_f[:size] = heap_f
        grown_v[:size] = heap_v
        heap_f, heap_v = grown_f, grown_v
    i = size
    while i > 0:  # sift up
        p = (i - 1) // 2
        if heap_f[p] <= f:
            break
        heap_f[i] = heap_f[p]
        heap_v[i] = heap_v[p]
        i = p
    heap_f[i] = f
    heap_v[i] = v
    return heap_f, heap_v


@numba.njit(cache=True, nogil=True, inline="always")
def _pop(heap_f: FloatArray, heap_v: IntArray, size: int) -> int:
    """Take the smallest item off the heap of `size` (≥ 1) items (size − 1 are left): its node."""
    u = heap_v[0]
    size -= 1
    if size > 0:  # the last item sifts down from the top
        last_f, last_v = heap_f[size], heap_v[size]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= size:
                break
            if c + 1 < size and heap_f[c + 1] < heap_f[c]:
                c += 1
            if heap_f[c] >= last_f:
                break
            heap_f[i] = heap_f[c]
            heap_v[i] = heap_v[c]
            i = c
        heap_f[i] = last_f
        heap_v[i] = last_v
    return u


@numba.njit(cache=True, nogil=True)
def fastest_path(
    indptr: IntArray,
    indices: IntArray,
    weight: FloatArray,
    a: int,
    b: int,
    h_from: FloatArray,
    h_to: FloatArray,
    scratch: tuple[FloatArray, IntArray, IntArray, IntArray],
    stamp: int,
) -> IntArray:
    """Nodes of a fastest path a → b on the CSR graph (indptr, indices, weight), a and b
    included; empty if b cannot be reached. `h_from` / `h_to` (n × L): lower-bound times
    from / to each landmark (inf where none). Its heap keeps a node again when it is reached
    sooner (the older entry is passed over): A*'s heap stays small, and moving nodes within
    it (as `bounded_search` does) measured slower here."""
    dist, pred, seen, _ = scratch
    from_b, to_b = h_from[b].copy(), h_to[b].copy()
    heap_f = np.empty(256, np.float64)
    heap_v = np.empty(256, np.int64)
    dist[a] = 0.0
    pred[a] = -1
    seen[a] = stamp
    heap_f[0] = _bound(from_b, to_b, h_from, h_to, a)
    heap_v[0] = a
    size = 1
    done = -stamp
    found = False
    while size > 0:
        u = _pop(heap_f, heap_v, size)
        size -= 1
        if seen[u] == done:
            continue  # an older, longer entry
        seen[u] = done
        if u == b:
            found = True
            break
        du = dist[u]
        for k in range(indptr[u], indptr[u + 1]):
            v = indices[k]
            if seen[v] == done:
                continue
            d = du + weight[k]
            if seen[v] == stamp and d >= dist[v]:
                continue
            dist[v] = d
            pred[v] = u
            seen[v] = stamp
            heap_f, heap_v = _push(
                heap_f, heap_v, size, d + _bound(from_b, to_b, h_from, h_to, v), v
            )
            size += 1
    if not found:
        return np.empty(0, np.int64)
    hops = 1
    v = b
    while v != a:
        v = pred[v]
        hops += 1
    path = np.empty(hops, np.int64)
    v = b
    for i in range(hops - 1, -1, -1):
        path[i] = v
        v = pred[v]
    return path


@numba.njit(cache=True, nogil=True)
def bounded_search(
    indptr: IntArray,
    indices: IntArray,
    weight: FloatArray,
    a: int,
    limit: float,
    scratch: tuple[FloatArray, IntArray, IntArray, IntArray],
    stamp: int,
) -> tuple[IntArray, FloatArray, IntArray]:
    """Dijkstra from node `a` on the CSR graph (indptr, indices, weight), as far as `limit`:
    every node within it (sorted), its time from `a`, and its predecessor on a fastest path
    (−1 for `a`). Its heap holds each reached node once (`place[v]`: its place there) and
    moves it up when it is reached sooner: a heap of lazy duplicates grew large on long
    searches; this one measured ~30 % faster on searches of the whole city."""
    dist, pred, seen, place = scratch
    heap = np.empty(1024, np.int64)
    dist[a] = 0.0
    pred[a] = -1
    seen[a] = stamp
    _sift_up(heap, place, dist, 0, a)
    out, count = _settle(indptr, indices, weight, limit, scratch, stamp, heap, 1)
    return _settled(scratch, stamp, out, count, out[:0])


@numba.njit(cache=True, nogil=True)
def extend_search(
    indptr: IntArray,
    indices: IntArray,
    weight: FloatArray,
    longest: FloatArray,
    limit: float,
    scratch: tuple[FloatArray, IntArray, IntArray, IntArray],
    stamp: int,
    nodes: npt.NDArray[np.int32],
    times: FloatArray,
    preds: npt.NDArray[np.int32],
    reach: float,
) -> tuple[IntArray, FloatArray, IntArray]:
    """`bounded_search` to `limit`, resumed from an earlier one from the same node under
    the same weights (`nodes`, `times`, `preds`: its answer as far as `reach` < `limit`):
    its nodes stand settled, the arcs out of them that may leave `reach` are relaxed
    (`longest[u]`: the weight of u's longest arc; an arc that ends within `reach` ends at a
    settled node), and the search goes on from there. Those nodes are exactly every node
    within `reach`, so what follows is what the search from scratch does past it: the same
    nodes and the same times (a predecessor may differ only between two ways of exactly the
    same time), for the work of the ring between the two limits."""
    dist, pred, seen, _ = scratch
    done = -stamp
    for i in range(nodes.shape[0]):
        u = nodes[i]
        dist[u] = times[i]
        pred[u] = preds[i]
        seen[u] = done
    heap = np.empty(1024, np.int64)
    size = 0
    for i in range(nodes.shape[0]):
        u = nodes[i]
        if dist[u] + longest[u] > reach:
            heap, size = _relax(indptr, indices, weight, limit, scratch, stamp, heap, size, u)
    out, count = _settle(indptr, indices, weight, limit, scratch, stamp, heap, size)
    return _settled(scratch, stamp, out, count, nodes)


@numba.njit(cache=True, nogil=True, inline="always")
def _settle(
    indptr: IntArray,
    indices: IntArray,
    weight: FloatArray,
    limit: float,
    scratch: tuple[FloatArray, IntArray, IntArray, IntArray],
    stamp: int,
    heap: IntArray,
    size: int,
) -> tuple[IntArray, int]:
    """Dijkstra's loop from a heap of `size` reached nodes, as far as `limit`: the nodes it
    settles, in order (the first `count` of `out`)."""
    dist, _, seen, place = scratch
    out = np.empty(1024, np.int64)
    count = 0
    done = -stamp
    while size > 0:
        u = _take(heap, place, dist, size)
        size -= 1
        seen[u] = done
        out = _room(out, count)
        out[count] = u
        count += 1
        heap, size = _relax(indptr, indices, weight, limit, scratch, stamp, heap, size, u)
    return out, count


@numba.njit(cache=True, nogil=True, inline="always")
def _relax(
    indptr: IntArray,
    indices: IntArray,
    weight: FloatArray,
    limit: float,
    scratch: tuple[FloatArray, IntArray, IntArray, IntArray],
    stamp: int,
    heap: IntArray,
    size: int,
    u: int,
) -> tuple[IntArray, int]:
    """Relax the arcs out of settled node u, as far as `limit`: a node reached for the first
    time goes on the heap, one reached sooner moves up. The heap (grown if full) and its
    size."""
    dist, pred, seen, place = scratch
    done = -stamp
    du = dist[u]
    for k in range(indptr[u], indptr[u + 1]):
        v = indices[k]
        if seen[v] == done:
            continue
        d = du + weight[k]
        if d > limit:
            continue
        if seen[v] == stamp:  # in the heap: moves up if reached sooner
            if d >= dist[v]:
                continue
            i = place[v]
        else:
            heap = _room(heap, size)
            i = size
            size += 1
            seen[v] = stamp
        dist[v] = d
        pred[v] = u
        _sift_up(heap, place, dist, i, v)
    return heap, size


@numba.njit(cache=True, nogil=True, inline="always")
def _settled(
    scratch: tuple[FloatArray, IntArray, IntArray, IntArray],
    stamp: int,
    out: IntArray,
    count: int,
    before: npt.NDArray[np.integer],
) -> tuple[IntArray, FloatArray, IntArray]:
    """Every node settled under `stamp` (`before`, then the `count` of `out`), sorted, with
    its time and predecessor."""
    dist, pred, seen, _ = scratch
    total = count + before.shape[0]
    if 8 * total > dist.shape[0]:  # (most of the graph: a scan costs less than a sort)
        nodes = np.flatnonzero(seen == -stamp)
    else:
        nodes = np.empty(total, np.int64)
        nodes[: before.shape[0]] = before
        nodes[before.shape[0] :] = out[:count]
        nodes.sort()
    return nodes, dist[nodes], pred[nodes]


@numba.njit(cache=True, nogil=True)
def tree_times(order: IntArray, parent: IntArray, weight: FloatArray, own: bool) -> FloatArray:
    """L × n: time along fixed trees (one per row, rooted at the row's first node of
    `order`), each node's time its parent's plus an edge weight: the parent's `weight` (a
    tree of ways *to* the root, `own` False) or the node's own (ways *from* it, `own` True).
    `order[k]`: tree k's nodes, parents before children (−1 after the last); `parent[k, v]`:
    v's parent in it. Nodes not in a tree: inf."""
    rows, n = parent.shape
    out = np.full((rows, n), np.inf)
    for k in range(rows):
        root = order[k, 0]
        if root < 0:
            continue
        out[k, root] = 0.0
        for i in range(1, order.shape[1]):
            v = order[k, i]
            if v < 0:
                break
            p = parent[k, v]
            out[k, v] = out[k, p] + (weight[v] if own else weight[p])
    return out


@numba.njit(cache=True, nogil=True)
def ball_pairs(
    edges: npt.NDArray[np.integer],
    times: FloatArray,
    sizes: IntArray,
    limit: FloatArray,
    wanted: BoolArray,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Searches' answers side by side (`edges`, `times`: search i's `sizes[i]` nodes, one
    search after the other) filtered in one pass: (i, node, time) for every node of search i
    that is `wanted` and within `limit[i]`."""
    total = edges.shape[0]
    out_i = np.empty(total, np.int64)
    out_v = np.empty(total, np.int64)
    out_t = np.empty(total, np.float64)
    count, at = 0, 0
    for i in range(sizes.shape[0]):
        cap = limit[i]
        for j in range(at, at + sizes[i]):
            v = edges[j]
            if wanted[v] and times[j] <= cap:
                out_i[count] = i
                out_v[count] = v
                out_t[count] = times[j]
                count += 1
        at += sizes[i]
    return out_i[:count].copy(), out_v[:count].copy(), out_t[:count].copy()
