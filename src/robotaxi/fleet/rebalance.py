"""Rebalancing: where idle cars should wait, from the demand expected an hour ahead.

Demand zones are pooled into square cells (default 1 km): per-zone targets for a few dozen
cars over a hundred-odd zones are all below one car, and rounding them makes cars shuttle
between zones for nothing. Per cell, the idle cars wanted are the requests it expects within
the cover time (`cover_h`; the fleet's horizon, an hour by default); when the idle cars are
fewer than that in all, they are split in proportion to the expected requests. Idle cars
beyond what the city expects stay where they are: at night a fleet of a thousand cars with
a few hundred requests an hour would otherwise be spread over the city all night long, empty
(the linear rebalancing target of MATSim's DRT module has the same shape: a share of the
expected demand, not of the idle fleet). A cell gives cars away only when it holds at least
one more than it wants, and receives only where it lacks at least one. The moves are an
optimal assignment (scipy's linear_sum_assignment) of surplus cars to missing places by
distance; of those, a round makes at most `max_moves`, the shortest first (the rest wait for
the next round, when the cars and the demand may have changed: a round that moved every
surplus car at once sent a hundred cars across the city together).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from robotaxi.core.types import FloatArray


def pool_into_cells(
    zone_xy: FloatArray, rate: FloatArray, cell_m: float
) -> tuple[FloatArray, FloatArray]:
    """Cells (rate-weighted centres K×2, total rate K) from zone centres and rates."""
    keep = rate > 0
    zone_xy, rate = zone_xy[keep], rate[keep]
    if len(rate) == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.float64)
    cell = np.floor(zone_xy / cell_m).astype(np.int64)
    _, label = np.unique(cell, axis=0, return_inverse=True)
    label = label.ravel()
    total = np.bincount(label, weights=rate).astype(np.float64)
    cx = np.bincount(label, weights=rate * zone_xy[:, 0]) / total
    cy = np.bincount(label, weights=rate * zone_xy[:, 1]) / total
    return np.column_stack([cx, cy]), total


def rebalance_moves(
    car_xy: FloatArray,
    cell_xy: FloatArray,
    cell_rate: FloatArray,
    min_move_m: float = 300.0,
    *,
    cover_h: float | None = None,
    max_moves: int | None = None,
) -> list[tuple[int, int]]:
    """(car index, cell index) moves that bring idle cars in line with expected demand
    (`cell_rate`: requests per hour). With `cover_h`, a cell wants at most the requests it
    expects within that many hours; without, every idle car is placed. With `max_moves`, at
    most that many of them, the shortest first."""
    n = len(car_xy)
    if n == 0 or len(cell_rate) == 0 or cell_rate.sum() <= 0:
        return []
    want = cell_rate / cell_rate.sum() * n
    if cover_h is not None:
        want = np.minimum(want, cell_rate * cover_h)
    dist = np.hypot(*(car_xy[:, None, :] - cell_xy[None, :, :]).transpose(2, 0, 1))
    home = dist.argmin(axis=1)
    have = np.bincount(home, minlength=len(cell_rate)).astype(float)
    eps = 1e-6  # targets are sums of floats: 0.9999999 cars is one car
    missing = np.floor(want - have + eps).astype(int)  # whole cars a cell lacks
    slots = np.repeat(np.arange(len(cell_rate)), np.clip(missing, 0, None))
    spare = np.floor(have - want + eps).astype(int)  # whole cars a cell can give
    movable: list[int] = []
    for cell in np.flatnonzero(spare > 0):
        cars_here = np.flatnonzero(home == cell)
        # give away the cars farthest from the cell's centre first
        order = cars_here[np.argsort(-dist[cars_here, cell])]
        movable.extend(int(k) for k in order[: spare[cell]])
    if len(slots) == 0 or not movable:
        return []
    cost = dist[np.ix_(np.asarray(movable, dtype=np.int64), slots)]
    rows, cols = linear_sum_assignment(cost)
    far = cost[rows, cols] >= min_move_m
    rows, cols = rows[far], cols[far]
    if max_moves is not None:
        shortest = np.sort(np.argsort(cost[rows, cols], kind="stable")[: max(max_moves, 0)])
        rows, cols = rows[shortest], cols[shortest]
    return [(movable[r], int(slots[c])) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]
