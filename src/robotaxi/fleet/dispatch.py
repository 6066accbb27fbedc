"""Dispatch policies: which car picks up which rider. Pure functions of their pick-up ETAs.

Both policies take pick-up ETAs (s) — a cars × requests matrix (inf where a car cannot reach a
request), or the sparse `PickupCandidates` of a bounded search — and return (car index,
request index) pairs; neither assigns a car twice.
- `nearest`: requests in arrival order, each takes the closest still-free car (greedy).
- `batch`: one optimal assignment: the most pairs within the maximum pick-up ETA, and of those
  the least total ETA (scipy's linear_sum_assignment; on candidates, its sparse matching).

At city scale `assign_nearby` replaces the full matrix: each request's few nearest cars from
bounded backward searches (`RoutingGraph.pickup_candidates`), the policy over those pairs, and
a check of how much a car left out could still improve the answer (if more than MAX_GAP of
the total ETA, the requests it could improve search further). A saturated batch (more riders
than cars near them) takes the full matrix from the map's contraction hierarchy instead, and
the batch policy solves it from each car's price at the last batch's optimum
(`robotaxi.fleet.assignment`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from robotaxi.core import DispatchError
from robotaxi.core.types import FloatArray, IntArray
from robotaxi.fleet.assignment import assign_priced
from robotaxi.map.routing import PickupCandidates, RoutingGraph

Assignment = list[tuple[int, int]]
# (car indices, request indices, pick-up ETAs s) of K pairs -> K bools: may that car take it?
PairFilter = Callable[[IntArray, IntArray, FloatArray], npt.NDArray[np.bool_]]

# `assign_nearby`: each request's search stops once it has found its this many nearest cars …
NEAREST_CARS = 4
# … and keeps up to this many of the cars it found (searches share their limit with nearby
# ones): more candidates cost little and leave fewer requests short of them
KEEP_CARS = 16
# at most this many assignments per batch: the first, then one per widening of the requests
# the policy finds short of candidates
MAX_ROUNDS = 5
# a request short of candidates searches as far as its marginal cost × this, plus a second, but
# at most twice as far as before plus this (s)
FARTHER_MARGIN = 1.1
FARTHER_MIN_S = 30.0
# widening stops once the policy proves its answer takes at most this fraction more total
# ETA than the full matrix's, with as many riders served (`CandidateCheck.gap`)
MAX_GAP = 0.01
# a batch whose first assignment leaves at least this many requests short of candidates is
# saturated (more riders than cars near them): their searches would widen round after round
# to most of the city (a recorded evening with 1,000 cars: ~200 requests, 4 rounds, ~55,000
# pairs, 0.5–1.5 s), so every car's ETA to every request comes from the map's contraction
# hierarchy instead (656 × 300 in ~25 ms, ~12 ms with the last batch's sweep kept) and the full
# matrix is solved (~25 ms; ~13 ms from the last batch's prices): its optimum
SATURATED_SHORT = 32
# … when there are at most this many cars per request: the full matrix costs in proportion to
# the cars (the hierarchy's sweep and the assignment), the widening less the more cars there
# are near each rider (a recorded evening with 3,000 cars, 2,660 in a batch: the full matrix
# ~130 ms a batch against ~45 ms for two rounds of searches)
SATURATED_CARS_PER_REQUEST = 4.0


class DispatchPolicy(Protocol):
    name: str

    def assign(self, eta_s: FloatArray, max_eta_s: float) -> Assignment: ...

    def assign_candidates(self, candidates: PickupCandidates, max_eta_s: float) -> Assignment:
        """`assign` over the candidate pairs (every other pair counts as unreachable)."""
        ...

    def short_of_candidates(
        self, candidates: PickupCandidates, pairs: Assignment, max_eta_s: float
    ) -> tuple[IntArray, FloatArray]:
        """Requests for which a car left out of the candidates could change the answer
        `assign_candidates` gave (`pairs`), and how far (s of ETA) each should look for
        cars; none: it is the full matrix's answer."""
        ...

    def check_candidates(
        self, candidates: PickupCandidates, pairs: Assignment, max_eta_s: float
    ) -> CandidateCheck:
        """`short_of_candidates`, and at most how far `pairs` may be from the full matrix's
        answer."""
        ...


@dataclass(frozen=True)
class CandidateCheck:
    """How an answer over candidates compares with the full matrix's: the requests a car
    left out could improve, how far (s) each should search, and `gap`: at most how much more
    total ETA the answer takes than the full matrix's, as a fraction of the latter (0: it is
    the full answer; inf: unknown, or the full answer might serve more riders)."""

    short: IntArray
    radius_s: FloatArray
    gap: float


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

    def assign_candidates(self, candidates: PickupCandidates, max_eta_s: float) -> Assignment:
        """`assign` on the candidate pairs only (the others count as unreachable)."""
        taken: set[int] = set()
        pairs: Assignment = []
        # candidates come sorted by request, then ETA, then car: argmin's choice
        starts = np.searchsorted(candidates.target, np.arange(candidates.n_targets + 1))
        origin, eta = candidates.origin.tolist(), candidates.eta_s.tolist()
        for r in range(candidates.n_targets):
            for k in range(int(starts[r]), int(starts[r + 1])):
                if eta[k] > max_eta_s:
                    break
                if origin[k] not in taken:
                    taken.add(origin[k])
                    pairs.append((origin[k], r))
                    break
        return pairs

    def short_of_candidates(
        self, candidates: PickupCandidates, pairs: Assignment, max_eta_s: float
    ) -> tuple[IntArray, FloatArray]:
        """A request that took a car beyond its bound might have had a car left out: it looks
        as far as the car it took. One that took none looks twice as far as before."""
        taken_eta = np.full(candidates.n_targets, np.inf)
        taken_eta[[r for _, r in pairs]] = _pair_eta(candidates, pairs)
        short = np.flatnonzero((taken_eta > candidates.bound_s) & (candidates.bound_s < max_eta_s))
        return short, _look_farther(candidates, short, taken_eta[short], max_eta_s)

    def check_candidates(
        self, candidates: PickupCandidates, pairs: Assignment, max_eta_s: float
    ) -> CandidateCheck:
        """`short_of_candidates`; a greedy answer that may differ has no bound (gap inf)."""
        short, radius = self.short_of_candidates(candidates, pairs, max_eta_s)
        return CandidateCheck(short, radius, np.inf if short.size else 0.0)


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

    def assign_priced(
        self, eta_s: FloatArray, max_eta_s: float, car_prices: FloatArray
    ) -> tuple[Assignment, FloatArray | None]:
        """`assign`'s optimum, solved from a price per car (the last batch's: see
        `robotaxi.fleet.assignment`), and the cars' prices at it for the next batch (None:
        solved without, when there are fewer cars than requests or no finite cut-off)."""
        eta = _check(eta_s)
        n_cars, n_req = eta.shape
        feasible = eta <= max_eta_s
        if not (np.isfinite(max_eta_s) and 0 < n_req <= n_cars) or (eta[feasible] < 0).any():
            return self.assign(eta, max_eta_s), None
        # a pair out of reach costs more than any set of pairs within it (a full matching
        # takes as few of them as it can), the same for every batch of as many requests
        out_of_reach = n_req * max(max_eta_s, 1.0) + 1.0
        cost = np.where(feasible, eta, out_of_reach).T
        car_of, prices = assign_priced(cost, np.asarray(car_prices, dtype=float))
        pairs = [(int(c), r) for r, c in enumerate(car_of.tolist()) if feasible[c, r]]
        return sorted(pairs), prices

    def assign_candidates(self, candidates: PickupCandidates, max_eta_s: float) -> Assignment:
        """`assign` on the candidate pairs only (the others count as unreachable), as a sparse
        matching: requests × (their candidate cars + one stand-in "no car" each)."""
        return _matching(candidates, max_eta_s)[0]

    def short_of_candidates(
        self, candidates: PickupCandidates, pairs: Assignment, max_eta_s: float
    ) -> tuple[IntArray, FloatArray]:
        """Requests whose marginal cost exceeds their bound; each should look as far as its
        marginal cost (see `marginal_costs`). None: it is the full matrix's optimum."""
        check = self.check_candidates(candidates, pairs, max_eta_s)
        return check.short, check.radius_s

    def check_candidates(
        self, candidates: PickupCandidates, pairs: Assignment, max_eta_s: float
    ) -> CandidateCheck:
        """`short_of_candidates`, and a bound on the gap to the full matrix's optimum.

        The bound: relax the full matrix so that every car left out of request r's
        candidates reaches it in exactly `bound_s[r]` (no sooner than it truly does) and may
        serve any number of requests: one private "car beyond the search" per request. The
        relaxed optimum (a matching like `assign_candidates`') is at most the full one. While
        `pairs` cost less than a rider left without a car more than it, the full optimum
        serves no more riders than `pairs`, and its total ETA is at least the relaxed one's.
        """
        marginal = self.marginal_costs(candidates, pairs, max_eta_s)
        short = np.flatnonzero(marginal > candidates.bound_s + 1e-9)
        radius = _look_farther(candidates, short, marginal[short], max_eta_s)
        if not short.size:
            return CandidateCheck(short, radius, 0.0)
        if not np.isfinite(max_eta_s):
            return CandidateCheck(short, radius, np.inf)
        n_req = candidates.n_targets
        stand_in = _stand_in_s(candidates, max_eta_s)
        unserved = n_req - len(pairs)
        upper = stand_in * unserved + (float(np.sum(_pair_eta(candidates, pairs))) if pairs else 0)
        beyond = np.where(candidates.bound_s < max_eta_s, candidates.bound_s, np.inf)
        lower = _matching(candidates, max_eta_s, beyond)[1]
        if upper - lower >= n_req * max(max_eta_s, 1.0):
            return CandidateCheck(short, radius, np.inf)  # it might serve more riders
        eta_lower = lower - stand_in * unserved
        gap = max(upper - lower, 0.0) / eta_lower if eta_lower > 0 else np.inf
        return CandidateCheck(short, radius, gap)

    def marginal_costs(
        self, candidates: PickupCandidates, pairs: Assignment, max_eta_s: float
    ) -> FloatArray:
        """Each request's marginal cost (s) in the optimum `pairs` over the candidates: the
        cheapest way to give it a car from that solution; −inf for a request searched as far
        as the maximum ETA (no car left out could serve it).

        With the assignment as a min-cost flow, that is the shortest path to the request in
        the residual graph from the source (every car's potential is then ≥ 0). A car left
        out reaches request r in at least `bound_s[r]`, so if no request's marginal cost
        exceeds its bound, no such car can improve the assignment: it is the full matrix's
        optimum. A request left without a car always exceeds it (its marginal cost is at
        least the stand-in's).
        """
        n_req = candidates.n_targets
        keep = candidates.eta_s <= max_eta_s
        origin, target = candidates.origin[keep], candidates.target[keep]
        eta = candidates.eta_s[keep]
        searched_out = candidates.bound_s >= max_eta_s
        if not len(eta):
            return np.where(searched_out, -np.inf, np.inf)
        cars, col = np.unique(origin, return_inverse=True)
        match_of = np.full(len(cars), -1, dtype=np.int64)  # each car's request
        served = np.zeros(n_req, dtype=bool)
        if pairs:
            pc, pr = np.array(pairs, dtype=np.int64).T
            match_of[np.searchsorted(cars, pc)] = pr
            served[pr] = True
        in_match = match_of[col] == target
        match_cost = np.zeros(len(cars))
        match_cost[col[in_match]] = eta[in_match]
        matched = match_of >= 0
        free = ~in_match
        # Bellman-Ford on the residual graph, whose only negative arcs lead from a request
        # back to its car: free cars sit at 0, a matched car at its request's potential
        # less its ETA, a request at the cheapest car potential + ETA over its unmatched
        # candidates, or the stand-in's cost while a real car serves it
        base = np.where(served, _stand_in_s(candidates, max_eta_s), np.inf)
        car_pot = np.where(matched, np.inf, 0.0)
        req_pot = base
        for _ in range(len(cars) + n_req + 1):
            req_pot = base.copy()
            np.minimum.at(req_pot, target[free], car_pot[col[free]] + eta[free])
            new = np.where(matched, req_pot[np.maximum(match_of, 0)] - match_cost, 0.0)
            if np.all((new >= car_pot - 1e-9) | (new == car_pot)):
                break
            car_pot = np.minimum(car_pot, new)
        return np.where(searched_out, -np.inf, req_pot)


def _matching(
    candidates: PickupCandidates, max_eta_s: float, beyond_s: FloatArray | None = None
) -> tuple[Assignment, float]:
    """The optimal matching of requests to their candidate cars (within the maximum ETA) or
    a stand-in "no car" each, and optionally to a private car `beyond_s[r]` away (inf: none):
    its real pairs, and its total cost (s; a stand-in costs `_stand_in_s`).

    Every request can take its stand-in, so a full matching exists; a stand-in costs more
    than any set of real pairs, so the most real pairs are matched, and of those the
    cheapest. Costs are shifted by 1 s (each request is matched once, so the optimum is
    unchanged): a zero would not be an arc."""
    keep = candidates.eta_s <= max_eta_s
    origin, target = candidates.origin[keep], candidates.target[keep]
    eta = candidates.eta_s[keep]
    n_req = candidates.n_targets
    stand_in = _stand_in_s(candidates, max_eta_s)
    if not len(eta) and beyond_s is None:
        return [], stand_in * n_req
    cars, col = np.unique(origin, return_inverse=True)
    reqs = np.arange(n_req)
    rows = [target, reqs]
    cols = [col, len(cars) + reqs]
    costs = [eta + 1.0, np.full(n_req, stand_in + 1.0)]
    if beyond_s is not None:
        has = np.isfinite(beyond_s)
        rows.append(reqs[has])
        cols.append(len(cars) + n_req + reqs[has])
        costs.append(beyond_s[has] + 1.0)
    data = np.concatenate(costs)
    graph = csr_matrix(
        (data, (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_req, len(cars) + n_req * (1 if beyond_s is None else 2)),
    )
    req, matched = min_weight_full_bipartite_matching(graph)
    total = float(np.asarray(graph[req, matched]).sum()) - n_req
    real = matched < len(cars)
    pairs = sorted((int(cars[c]), int(r)) for r, c in zip(req[real], matched[real], strict=True))
    return pairs, total


def _stand_in_s(candidates: PickupCandidates, max_eta_s: float) -> float:
    """The cost (s) of leaving a request without a car: above any set of real pairs within the
    maximum ETA, candidates or not (what makes the most riders served come first)."""
    cap = max_eta_s if np.isfinite(max_eta_s) else float(np.max(candidates.eta_s, initial=0.0))
    return 2.0 * candidates.n_targets * max(cap, 1.0) + 1.0


def _look_farther(
    candidates: PickupCandidates, requests: IntArray, needed_s: FloatArray, max_eta_s: float
) -> FloatArray:
    """How far (s) `requests` should search next: as far as `needed_s` (a little more), but
    at most twice as far as before plus FARTHER_MIN_S (a far need usually shrinks once
    nearby requests have more cars), and at most the maximum ETA."""
    bound = candidates.bound_s[requests]
    radius = np.minimum(needed_s * FARTHER_MARGIN + 1.0, 2.0 * bound + FARTHER_MIN_S)
    return np.minimum(np.maximum(radius, bound), max_eta_s)


def _pair_eta(candidates: PickupCandidates, pairs: Assignment) -> FloatArray:
    """The candidate ETA (s) of each (car, request) pair."""
    key = candidates.origin * candidates.n_targets + candidates.target
    order = np.argsort(key)
    wanted = np.array([c * candidates.n_targets + r for c, r in pairs], dtype=np.int64)
    return np.asarray(candidates.eta_s[order[np.searchsorted(key[order], wanted)]], dtype=float)


# `PickupEtaModel`: the fit's bounds (a route time never counts for less than it is; a car
# starts and stops for at most this long more), and how much it learns from
ETA_SCALE_BOUNDS = (1.0, 3.0)
ETA_OFFSET_BOUNDS_S = (0.0, 180.0)


@dataclass
class PickupEtaModel:
    """Pick-up ETAs as the cars then drive them: `scale` × the route's time on the routing
    graph + `offset_s` (s). The graph knows each street's current speed but not the time a
    car takes to pull out of a curb, to turn, to wait at signals and to pull in at the
    pick-up; the model learns those from the pick-ups so far (least squares over the last
    `window` arrivals: route time → time taken less the car's own delay, refitted every
    `refit_every` arrivals once there are `min_samples`), within ETA_SCALE_BOUNDS and
    ETA_OFFSET_BOUNDS_S. Until then it is the graph's time (scale 1, offset 0).

    An affine map with a positive scale keeps the batch's optimum (for a given number of
    pairs, the total ETA is scale × the route total + a constant): dispatch solves in route
    seconds with the cut-off and delays mapped by `to_route_s`, and reports `expected_s`."""

    window: int = 400
    min_samples: int = 30
    refit_every: int = 25
    scale: float = 1.0
    offset_s: float = 0.0
    samples: deque[tuple[float, float]] = field(default_factory=deque, repr=False)
    _since_fit: int = field(default=0, repr=False)

    def expected_s(self, route_s: float, delay_s: float = 0.0) -> float:
        """The pick-up ETA (s) of a route taking `route_s` on the graph for a car that can
        only set off after `delay_s` (e.g. the rest of a drop-off)."""
        return self.scale * route_s + self.offset_s + delay_s

    def to_route_s(self, eta_s: float) -> float:
        """The route seconds that correspond to `eta_s` of ETA (the cut-off, in the units
        dispatch solves in); a delay maps by dividing by `scale` alone."""
        return (eta_s - self.offset_s) / self.scale

    def observe(self, route_s: float, taken_s: float) -> None:
        """A car reached its rider `taken_s` after setting off (its delay removed) on a
        route the graph timed at `route_s`."""
        if not (np.isfinite(route_s) and np.isfinite(taken_s)):
            return
        self.samples.append((route_s, taken_s))
        while len(self.samples) > self.window:
            self.samples.popleft()
        self._since_fit += 1
        if len(self.samples) >= self.min_samples and self._since_fit >= self.refit_every:
            self._fit()

    def _fit(self) -> None:
        self._since_fit = 0
        route, taken = np.array(self.samples, dtype=float).T
        lo, hi = ETA_SCALE_BOUNDS
        if np.ptp(route) > 1.0:
            scale = float(np.clip(np.polyfit(route, taken, 1)[0], lo, hi))
        else:  # all alike: an offset only
            scale = 1.0
        self.scale = scale
        self.offset_s = float(np.clip(np.mean(taken - scale * route), *ETA_OFFSET_BOUNDS_S))


def make_policy(name: Literal["nearest", "batch"] | str) -> DispatchPolicy:
    if name == "nearest":
        return NearestPolicy()
    if name == "batch":
        return BatchPolicy()
    raise DispatchError(f"unknown dispatch policy {name!r}: use nearest or batch")


@dataclass(frozen=True)
class NearbyAssignment:
    """What `assign_nearby` decided: (car, request) pairs, the pick-up ETA (s, delay
    included) each was assigned on, and how it got there. `complete`: no car left out of the
    candidates could have changed the answer (it is the full matrix's). `gap_bound`: the
    pairs take at most this fraction more total ETA than the full matrix's answer, which
    serves no more riders (0 when complete; inf: no such bound)."""

    pairs: Assignment
    eta_s: FloatArray  # per pair
    candidates: int  # (car, request) pairs in the last assignment
    rounds: int  # assignments solved
    complete: bool
    gap_bound: float = 0.0
    # more riders than cars near them (`SATURATED_SHORT`): the next batch may start from the
    # full matrix (`assign_nearby`'s `saturated`)
    saturated: bool = False
    # solved on the full matrix from prices: each car's price at this optimum (by its key),
    # where the next full-matrix batch starts from (`assign_nearby`'s `car_prices`)
    car_prices: Mapping[Hashable, float] | None = None


def assign_nearby(
    policy: DispatchPolicy,
    graph: RoutingGraph,
    car_edges: Sequence[str],
    car_pos: FloatArray,
    request_edges: Sequence[str],
    request_pos: FloatArray,
    max_eta_s: float,
    *,
    car_delay_s: FloatArray | None = None,
    only_request: IntArray | None = None,
    pair_ok: PairFilter | None = None,
    nearest: int | None = None,
    saturated: bool = False,
    car_keys: Sequence[Hashable] | None = None,
    car_prices: Mapping[Hashable, float] | None = None,
) -> NearbyAssignment:
    """Assign cars (edge, m along it) to pick-ups (edge, m) over each pick-up's nearest cars
    by ETA (`RoutingGraph.pickup_candidates`) instead of a full cars × requests matrix.

    `car_delay_s` (≥ 0) is added to a car's ETAs (e.g. the rest of its drop-off);
    `only_request[c]` ≥ 0 lets car c serve that one request only (−1: any), and that pair is
    always a candidate. `pair_ok(cars, requests, eta_s)` may rule pairs out (e.g. a battery
    that could not finish the trip): such a pair is never assigned, as if unreachable.
    Each request starts with `nearest` (default NEAREST_CARS) cars; the
    requests `policy.check_candidates` names then take every car within the ETA it names,
    and the assignment is solved again, until the check proves the answer within MAX_GAP of
    the full matrix's total ETA with as many riders served (`gap_bound`; `complete` if none
    is named: it is the full matrix's answer) or after MAX_ROUNDS assignments.

    A saturated batch (the first assignment leaves SATURATED_SHORT requests short, with at
    most SATURATED_CARS_PER_REQUEST cars a request) is solved on the full matrix instead,
    from the map's contraction hierarchy; `saturated` (the last batch was: riders wait over
    several) starts there. The answer says whether this batch was: its optimum leaves
    SATURATED_SHORT riders without one of their NEAREST_CARS cars. With `car_keys` (one per
    car, e.g. its id) the batch policy solves the full matrix from `car_prices` (a full-matrix
    answer's `car_prices`, by key; a car without one starts at 0): the same optimum, found
    faster when the prices are the last batch's (~2× on the city's saturated batches; prices
    from cars that have since moved far make it slower than none).
    """
    k_first = NEAREST_CARS if nearest is None else nearest
    only = (
        np.full(len(car_edges), -1, dtype=np.int64)
        if only_request is None
        else np.asarray(only_request, dtype=np.int64)
    )
    full_ok = len(car_edges) <= SATURATED_CARS_PER_REQUEST * len(request_edges)

    if car_keys is not None and len(car_keys) != len(car_edges):
        raise DispatchError(f"{len(car_keys)} car keys for {len(car_edges)} cars")

    def on_full_matrix(rounds: int) -> NearbyAssignment:
        eta = graph.eta_matrix(car_edges, car_pos, request_edges, request_pos, by="hierarchy")
        start = None
        if car_keys is not None and isinstance(policy, BatchPolicy):
            known = car_prices or {}
            start = np.array([known.get(k, 0.0) for k in car_keys], dtype=float)
        decided, prices = _assign_all(
            policy, eta, max_eta_s, car_delay_s, only, pair_ok, k_first, rounds, start
        )
        if prices is None or car_keys is None:
            return decided
        return replace(decided, car_prices=dict(zip(car_keys, prices.tolist(), strict=True)))

    if saturated and full_ok:
        return on_full_matrix(1)
    car_at = graph.edge_indices(car_edges)  # (looked up once: the widening asks again)
    cands = graph.pickup_candidates(
        car_at,
        car_pos,
        request_edges,
        request_pos,
        max_eta_s,
        origin_delay_s=car_delay_s,
        nearest=k_first,
        only_target=only,
        keep_nearest=KEEP_CARS,
    )
    cands = _allowed(cands, pair_ok)
    rounds = 0
    while True:
        pairs = policy.assign_candidates(cands, max_eta_s)
        rounds += 1
        check = policy.check_candidates(cands, pairs, max_eta_s)
        short, radius, gap = check.short, check.radius_s, check.gap
        if gap <= MAX_GAP or rounds >= MAX_ROUNDS:
            break
        if rounds == 1 and len(short) >= SATURATED_SHORT and full_ok:
            return on_full_matrix(2)
        cands = _widen(graph, cands, short, radius, k_first, only, car_at, car_pos,
                       request_edges, request_pos, max_eta_s, car_delay_s)  # fmt: skip
        cands = _allowed(cands, pair_ok)
    return NearbyAssignment(pairs, _pair_eta(cands, pairs), len(cands), rounds, not short.size, gap)


def _assign_all(
    policy: DispatchPolicy,
    eta_s: FloatArray,
    max_eta_s: float,
    car_delay_s: FloatArray | None,
    only: IntArray,
    pair_ok: PairFilter | None,
    nearest: int,
    rounds: int,
    car_prices: FloatArray | None = None,
) -> tuple[NearbyAssignment, FloatArray | None]:
    """`assign_nearby`'s answer from the full cars × requests ETA matrix (delays not yet
    added): the policy's assignment over every pair (complete), and whether the batch is
    saturated (its answer leaves SATURATED_SHORT riders without one of their `nearest`).
    With `car_prices` (per car) a `BatchPolicy` solves from them; then also the cars'
    prices at its optimum (per car; else None)."""
    eta = eta_s if car_delay_s is None else eta_s + np.asarray(car_delay_s, dtype=float)[:, None]
    mine = np.flatnonzero(only >= 0)
    if mine.size:  # a car restricted to one request reaches no other
        own = eta[mine, only[mine]]
        eta[mine] = np.inf
        eta[mine, only[mine]] = own
    car, request = np.nonzero(eta <= max_eta_s)
    if pair_ok is not None and car.size:
        ok = np.asarray(pair_ok(car, request, eta[car, request]), dtype=bool)
        if ok.shape != car.shape:
            raise DispatchError(f"pair_ok must give one bool per pair, got shape {ok.shape}")
        eta[car[~ok], request[~ok]] = np.inf
    eta[eta > max_eta_s] = np.inf
    prices = None
    if car_prices is not None and isinstance(policy, BatchPolicy):
        pairs, prices = policy.assign_priced(eta, max_eta_s, car_prices)
    else:
        pairs = policy.assign(eta, max_eta_s)
    pair_eta = np.array([eta[c, r] for c, r in pairs], dtype=float)
    # the k-th nearest car's ETA per request: a rider served by a farther car, or none, was
    # short of its nearest
    n_cars, n_req = eta.shape
    kth = np.full(n_req, np.inf)
    if n_cars:
        k = min(nearest, n_cars)
        kth = np.partition(eta, k - 1, axis=0)[k - 1]
    got = np.full(n_req, np.inf)
    if pairs:
        got[[r for _, r in pairs]] = pair_eta
    short = int(np.sum(got > kth))
    decided = NearbyAssignment(
        pairs, pair_eta, int(car.size), rounds, True, 0.0, short >= SATURATED_SHORT
    )
    return decided, prices


def _allowed(cands: PickupCandidates, pair_ok: PairFilter | None) -> PickupCandidates:
    """`cands` without the pairs `pair_ok` rules out (the bounds stay true: a pair ruled out
    is one the full matrix would not have either)."""
    if pair_ok is None or not len(cands):
        return cands
    ok = np.asarray(pair_ok(cands.origin, cands.target, cands.eta_s), dtype=bool)
    if ok.shape != cands.eta_s.shape:
        raise DispatchError(f"pair_ok must give one bool per pair, got shape {ok.shape}")
    return replace(cands, origin=cands.origin[ok], target=cands.target[ok], eta_s=cands.eta_s[ok])


def _widen(
    graph: RoutingGraph,
    cands: PickupCandidates,
    requests: IntArray,
    radius_s: FloatArray,
    nearest: int,
    only: IntArray,
    car_at: IntArray,
    car_pos: FloatArray,
    request_edges: Sequence[str],
    request_pos: FloatArray,
    max_eta_s: float,
    car_delay_s: FloatArray | None,
) -> PickupCandidates:
    """`cands` with the candidates of `requests` searched again: every car within `radius_s`
    and their `nearest` cars."""
    # cars restricted to a request outside this search take no part in it
    cars = np.flatnonzero((only < 0) | np.isin(only, requests))
    local = np.full(cands.n_targets, -1, dtype=np.int64)
    local[requests] = np.arange(len(requests))
    sub_only = np.where(only[cars] >= 0, local[np.maximum(only[cars], 0)], -1)
    more = graph.pickup_candidates(
        car_at[cars],
        np.asarray(car_pos, dtype=float)[cars],
        [request_edges[r] for r in requests.tolist()],
        np.asarray(request_pos, dtype=float)[requests],
        max_eta_s,
        origin_delay_s=None if car_delay_s is None else np.asarray(car_delay_s)[cars],
        nearest=nearest,
        only_target=sub_only,
        min_radius_s=radius_s,
        keep_nearest=KEEP_CARS,
    )
    keep = ~np.isin(cands.target, requests)
    origin = np.concatenate([cands.origin[keep], cars[more.origin]])
    target = np.concatenate([cands.target[keep], requests[more.target]])
    eta = np.concatenate([cands.eta_s[keep], more.eta_s])
    order = np.lexsort((origin, eta, target))
    radius, bound = cands.radius_s.copy(), cands.bound_s.copy()
    radius[requests], bound[requests] = more.radius_s, more.bound_s
    return PickupCandidates(
        origin[order], target[order], eta[order], radius, bound, cands.n_origins, cands.n_targets
    )
