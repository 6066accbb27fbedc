"""Dispatch policies: which car picks up which rider. Pure functions of a cost matrix.

Both policies take a cars × requests matrix of pick-up ETAs (s; inf where a car cannot reach
a request) and return (car index, request index) pairs; neither assigns a car twice.
- `nearest`: requests in arrival order, each takes the closest still-free car (greedy).
- `batch`: one optimal assignment minimising the total ETA (scipy's linear_sum_assignment),
  leaving out pairs above the maximum pick-up ETA.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from robotaxi.core import DispatchError
from robotaxi.core.types import FloatArray

Assignment = list[tuple[int, int]]


class DispatchPolicy(Protocol):
    name: str

    def assign(self, eta_s: FloatArray, max_eta_s: float) -> Assignment: ...


def _check(eta_s: FloatArray) -> FloatArray:
    eta = np.asarray(eta_s, dtype=float)
    if eta.ndim != 2:
        raise DispatchError(f"ETA matrix must be cars × requests, got shape {eta.shape}")
    if np.isnan(eta).any():
        raise DispatchError("ETA matrix has NaN entries: use inf for unreachable pairs")
    return eta


class NearestPolicy:
    """Greedy: the oldest waiting request gets the closest free car, and so on."""

    name = "nearest"

    def assign(self, eta_s: FloatArray, max_eta_s: float) -> Assignment:
        eta = _check(eta_s).copy()
        pairs: Assignment = []
        for r in range(eta.shape[1]):  # columns are in request arrival order
            if eta.shape[0] == 0:
                break
            c = int(np.argmin(eta[:, r]))
            if eta[c, r] <= max_eta_s:
                pairs.append((c, r))
                eta[c, :] = np.inf  # that car is taken
        return pairs


class BatchPolicy:
    """Optimal assignment minimising total pick-up ETA within the maximum ETA."""

    name = "batch"

    def assign(self, eta_s: FloatArray, max_eta_s: float) -> Assignment:
        eta = _check(eta_s)
        if eta.size == 0:
            return []
        feasible = eta <= max_eta_s
        # Infeasible pairs get a cost above any sum of feasible ones, so the solver uses them
        # only when it must (a rectangular problem always matches min(C, R) pairs); they are
        # dropped afterwards. Among maximum-cardinality feasible matchings this is optimal.
        big = (np.where(feasible, eta, 0.0).sum() + 1.0) * 2.0
        cost = np.where(feasible, eta, big)
        rows, cols = linear_sum_assignment(cost)
        return [(int(c), int(r)) for c, r in zip(rows, cols, strict=True) if feasible[c, r]]


def make_policy(name: Literal["nearest", "batch"] | str) -> DispatchPolicy:
    if name == "nearest":
        return NearestPolicy()
    if name == "batch":
        return BatchPolicy()
    raise DispatchError(f"unknown dispatch policy {name!r}: use nearest or batch")
