"""Dispatch: batch equals the brute-force optimum; no car is ever assigned twice."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from robotaxi.core import DispatchError
from robotaxi.fleet.dispatch import BatchPolicy, NearestPolicy, make_policy


def brute_force(eta: np.ndarray, max_eta: float) -> tuple[int, float]:
    """Best (most pairs, then least total ETA) matching by enumerating every one."""
    cars, reqs = eta.shape
    best = (0, 0.0)
    for k in range(1, min(cars, reqs) + 1):
        for chosen_cars in itertools.permutations(range(cars), k):
            for chosen_reqs in itertools.combinations(range(reqs), k):
                costs = [eta[c, r] for c, r in zip(chosen_cars, chosen_reqs, strict=True)]
                if all(x <= max_eta for x in costs):
                    total = float(sum(costs))
                    if k > best[0] or (k == best[0] and total < best[1]):
                        best = (k, total)
    return best


@pytest.mark.parametrize("seed", range(40))
def test_batch_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cars, reqs = rng.integers(1, 5), rng.integers(1, 5)
    eta = rng.uniform(10, 600, size=(cars, reqs))
    eta[rng.random(eta.shape) < 0.15] = np.inf  # some cars cannot reach some riders
    max_eta = 450.0
    pairs = BatchPolicy().assign(eta, max_eta)
    k, total = brute_force(eta, max_eta)
    assert len(pairs) == k
    assert sum(eta[c, r] for c, r in pairs) == pytest.approx(total)
    assert len({c for c, _ in pairs}) == len(pairs)  # no car twice
    assert len({r for _, r in pairs}) == len(pairs)  # no rider twice
    assert all(eta[c, r] <= max_eta for c, r in pairs)


@pytest.mark.parametrize("policy", [NearestPolicy(), BatchPolicy()])
@pytest.mark.parametrize("seed", range(10))
def test_no_car_is_assigned_twice(policy, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    eta = rng.uniform(0, 900, size=(6, 15))  # more riders than cars
    pairs = policy.assign(eta, 900.0)
    cars = [c for c, _ in pairs]
    assert len(cars) == len(set(cars)) == 6


def test_nearest_serves_riders_in_arrival_order() -> None:
    # one car; the first rider gets it although the second is closer
    eta = np.array([[300.0, 10.0]])
    assert NearestPolicy().assign(eta, 900.0) == [(0, 0)]
    assert BatchPolicy().assign(eta, 900.0) == [(0, 1)]


def test_batch_beats_greedy_on_the_textbook_case() -> None:
    eta = np.array([[10.0, 20.0], [15.0, 100.0]])
    greedy = NearestPolicy().assign(eta, 900.0)
    batch = BatchPolicy().assign(eta, 900.0)
    assert sum(eta[c, r] for c, r in greedy) == 110.0
    assert sum(eta[c, r] for c, r in batch) == 35.0


def test_max_eta_leaves_far_riders_unassigned() -> None:
    eta = np.array([[100.0, 2000.0]])
    for policy in (NearestPolicy(), BatchPolicy()):
        assert policy.assign(eta, 900.0) == [(0, 0)]
        assert policy.assign(np.array([[1000.0]]), 900.0) == []


def test_bad_input_is_a_named_error() -> None:
    with pytest.raises(DispatchError):
        make_policy("fastest")
    with pytest.raises(DispatchError):
        BatchPolicy().assign(np.array([1.0, 2.0]), 10.0)
    with pytest.raises(DispatchError):
        NearestPolicy().assign(np.array([[np.nan]]), 10.0)
