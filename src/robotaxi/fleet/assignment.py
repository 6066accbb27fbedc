"""The dense assignment of a saturated dispatch batch, started from the last batch's prices.

A saturated batch (more riders than cars near them) is solved on the full cars × requests
matrix: with ~650 cars and 300 riders on the city, SciPy's `linear_sum_assignment` (the
shortest augmenting path method of Crouse, "On implementing 2D rectangular assignment
algorithms", IEEE TAES 2016) takes 10–50 ms, one augmenting path per rider, each through many
riders who want the same cars.

The next batch, 15 s later, has mostly the same riders and the same cars a few hundred metres
on. `assign_priced` runs the same method with a price per car kept from the last batch's
optimum (its column dual): each rider starts at its cheapest car at those prices (row
reduction), and only the riders that collide there search for an augmenting path, from duals
that are already close to the new optimum. Any prices give the optimum (the duals stay
feasible and the pairs tight throughout); good ones make it cheaper.

The problem is made square (the method needs any column dual to be allowed): one row of zero
cost for each car more than riders, so that a car left free is matched to such a row; every
full matching takes as many of them, so the optimum over the real rows is unchanged.
"""

from __future__ import annotations

import numba
import numpy as np

from robotaxi.core import DispatchError
from robotaxi.core.types import FloatArray, IntArray


def assign_priced(
    cost: FloatArray, prices: FloatArray | None = None
) -> tuple[IntArray, FloatArray]:
    """The minimum-cost assignment of every row of `cost` (R × C, R ≤ C, finite) to its own
    column, and the columns' prices at that optimum (C, the largest 0, for the next call):
    (each row's column, prices). `prices` (C): where to start (default all 0)."""
    cost = np.ascontiguousarray(cost, dtype=float)
    if cost.ndim != 2 or cost.shape[0] > cost.shape[1]:
        raise DispatchError(f"assignment needs rows ≤ columns, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise DispatchError("assignment costs must be finite: give unreachable pairs a high cost")
    rows, cols = cost.shape
    start = np.zeros(cols) if prices is None else np.array(prices, dtype=float)
    if start.shape != (cols,) or not np.isfinite(start).all():
        raise DispatchError(f"prices must be {cols} finite numbers, got shape {start.shape}")
    if rows == 0:
        return np.zeros(0, dtype=np.int64), start - (start.max() if cols else 0.0)
    col_of, v = _solve(cost, start)
    # a car left free (matched to a zero row) has the highest price; set them equal exactly,
    # so the next call's zero rows start on them
    free = np.ones(cols, dtype=bool)
    free[col_of[:rows]] = False
    top = v.max()
    v[free] = top
    return col_of[:rows].copy(), v - top


@numba.njit(cache=True, nogil=True)
def _solve(cost: FloatArray, v: FloatArray) -> tuple[IntArray, FloatArray]:
    """Shortest augmenting paths (Crouse 2016) on the square problem: rows ≥ R are zero
    rows. `v`: the columns' starting duals (changed in place, returned)."""
    n_real, n = cost.shape
    u = np.empty(n)
    col_of = np.full(n, -1, np.int64)
    row_of = np.full(n, -1, np.int64)
    top = -np.inf
    for j in range(n):
        top = max(top, v[j])
    # row reduction: each real row at its cheapest column at these prices, taken if free
    for i in range(n_real):
        best, at = np.inf, -1
        for j in range(n):
            r = cost[i, j] - v[j]
            if r < best:
                best, at = r, j
        u[i] = best
        if row_of[at] == -1:
            row_of[at], col_of[i] = i, at
    # the zero rows: tight on the free columns at the highest price
    i = n_real
    for j in range(n):
        if i < n and row_of[j] == -1 and v[j] == top:
            row_of[j], col_of[i] = i, j
            i += 1
    for k in range(n_real, n):
        u[k] = -top
    reach = np.empty(n)
    pred = np.empty(n, np.int64)
    left = np.empty(n, np.int64)
    seen_row = np.zeros(n, np.bool_)
    seen_col = np.zeros(n, np.bool_)
    for start in range(n):
        if col_of[start] != -1:
            continue
        reach[:] = np.inf
        seen_row[:] = False
        seen_col[:] = False
        for k in range(n):
            left[k] = n - 1 - k
        n_left = n
        low, i, sink = 0.0, start, -1
        while sink == -1:  # Dijkstra over the columns on reduced costs
            seen_row[i] = True
            best, at = np.inf, -1
            real = i < n_real
            for k in range(n_left):
                j = left[k]
                c = cost[i, j] if real else 0.0
                r = low + c - u[i] - v[j]
                if r < reach[j]:
                    pred[j], reach[j] = i, r
                if reach[j] < best or (reach[j] == best and row_of[j] == -1):
                    best, at = reach[j], k
            low = best
            j = left[at]
            seen_col[j] = True
            n_left -= 1
            left[at] = left[n_left]
            if row_of[j] == -1:
                sink = j
            else:
                i = row_of[j]
        u[start] += low
        for k in range(n):
            if seen_row[k] and k != start:
                u[k] += low - reach[col_of[k]]
        for j in range(n):
            if seen_col[j]:
                v[j] -= low - reach[j]
        j = sink
        while True:  # flip the path
            i = pred[j]
            row_of[j] = i
            col_of[i], j = j, col_of[i]
            if i == start:
                break
    return col_of, v
