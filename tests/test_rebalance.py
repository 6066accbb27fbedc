"""Rebalancing moves idle cars toward expected demand, and leaves a balanced fleet alone."""

from __future__ import annotations

import numpy as np

from robotaxi.fleet.rebalance import pool_into_cells, rebalance_moves


def test_zones_pool_into_rate_weighted_cells() -> None:
    zones = np.array([[100.0, 100.0], [300.0, 100.0], [1500.0, 200.0]])
    rate = np.array([1.0, 3.0, 2.0])
    xy, total = pool_into_cells(zones, rate, 1000.0)
    order = np.argsort(xy[:, 0])
    np.testing.assert_allclose(total[order], [4.0, 2.0])
    np.testing.assert_allclose(xy[order][0], [250.0, 100.0])  # (1·100 + 3·300) / 4


def test_cars_bunched_far_from_demand_are_sent_to_it() -> None:
    cells = np.array([[0.0, 0.0], [3000.0, 0.0]])
    rate = np.array([0.0, 10.0]) + 1e-9
    cars = np.array([[10.0 * k, 0.0] for k in range(4)])
    moves = rebalance_moves(cars, cells, rate)
    assert len(moves) == 4 and all(cell == 1 for _, cell in moves)
    assert sorted(car for car, _ in moves) == [0, 1, 2, 3]


def test_a_balanced_fleet_stays_put() -> None:
    cells = np.array([[0.0, 0.0], [3000.0, 0.0], [0.0, 3000.0]])
    rate = np.array([2.0, 1.0, 1.0])
    cars = np.array([[0.0, 10.0], [10.0, 0.0], [3000.0, 10.0], [10.0, 3000.0]])
    assert rebalance_moves(cars, cells, rate) == []


def test_fractional_targets_do_not_shuttle_cars() -> None:
    rng = np.random.default_rng(0)
    cells = rng.uniform(0, 5000, size=(40, 2))
    rate = rng.uniform(0.5, 1.5, size=40)  # every cell wants well under one of 10 cars
    cars = cells[:10] + 5.0  # one car in each of ten cells
    assert rebalance_moves(cars, cells, rate) == []


def test_moves_minimise_total_distance() -> None:
    cells = np.array([[0.0, 0.0], [1000.0, 0.0], [0.0, 1000.0]])
    rate = np.array([0.0, 1.0, 1.0]) + 1e-9
    cars = np.array([[0.0, 100.0], [100.0, 0.0]])  # one nearer each target
    moves = dict(rebalance_moves(cars, cells, rate, min_move_m=0.0))
    assert moves == {0: 2, 1: 1}


def test_idle_cars_beyond_the_expected_demand_stay_where_they_are() -> None:
    # night: 100 idle cars where 1 request an hour is expected, none where 3 are
    cells = np.array([[0.0, 0.0], [3000.0, 0.0]])
    rate = np.array([1.0, 3.0])
    cars = np.array([[float(k), 0.0] for k in range(100)])
    covered = rebalance_moves(cars, cells, rate, cover_h=1.0)
    assert len(covered) == 3 and all(cell == 1 for _, cell in covered)
    # placing every idle car instead sends three quarters of the fleet across town
    assert len(rebalance_moves(cars, cells, rate)) == 75


def test_a_busy_fleet_is_split_by_demand_as_before() -> None:
    # fewer idle cars than expected requests: the cover changes nothing
    cells = np.array([[0.0, 0.0], [3000.0, 0.0]])
    rate = np.array([40.0, 120.0])
    cars = np.array([[float(k), 0.0] for k in range(20)])
    assert rebalance_moves(cars, cells, rate, cover_h=1.0) == rebalance_moves(cars, cells, rate)
    assert len(rebalance_moves(cars, cells, rate, cover_h=1.0)) == 15
