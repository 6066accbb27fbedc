"""Rebalancing moves idle cars toward expected demand, a share of them a round, and leaves a
balanced fleet alone."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fakecity import mini_service
from robotaxi.config import load_config
from robotaxi.core import TripState
from robotaxi.fleet.manager import VehicleStatus
from robotaxi.fleet.rebalance import pool_into_cells, rebalance_moves
from robotaxi.sim.simulation import Callback, Simulation, Tick


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


def test_a_round_makes_at_most_its_share_of_moves_the_shortest_first() -> None:
    # 20 idle cars bunched at one end, spread out along the road; demand at the other end
    cells = np.array([[0.0, 0.0], [5000.0, 0.0]])
    rate = np.array([0.0, 100.0]) + 1e-9
    cars = np.array([[100.0 * k, 0.0] for k in range(20)])
    every = rebalance_moves(cars, cells, rate, cover_h=1.0)
    assert len(every) == 20
    some = rebalance_moves(cars, cells, rate, cover_h=1.0, max_moves=5)
    assert sorted(car for car, _ in some) == [15, 16, 17, 18, 19]  # the nearest to the demand
    assert set(some) <= set(every)
    assert rebalance_moves(cars, cells, rate, cover_h=1.0, max_moves=0) == []


class _Rounds(Callback):
    """Per tick: the cars that began a rebalancing leg, the idle cars left, riders without a
    car."""

    name = "rebalancing-rounds"

    def __init__(self) -> None:
        self.before: set[str] = set()
        self.rounds: list[tuple[int, int, int]] = []

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        assert sim.fleet is not None
        cars = sim.fleet.vehicles.values()
        moving = {v.vehicle_id for v in cars if v.status == VehicleStatus.REBALANCING}
        new = len(moving - self.before)
        self.before = moving
        idle = sum(1 for v in cars if v.status == VehicleStatus.IDLE)
        unassigned = sum(1 for t in sim.fleet.trips.values() if t.state == TripState.REQUESTED)
        if new:
            self.rounds.append((new, idle, unassigned))


def test_rounds_move_a_share_of_the_idle_cars_even_while_a_rider_waits(tmp_path: Path) -> None:
    # a rider the batch cannot serve yet no longer stops every idle car from moving (rounds
    # used to run only in ticks with no rider waiting: a lottery at city scale)
    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": 40, "hours": 1.0, "seed": 4, "world.step_s": 2.0,
            "demand.requests_per_hour": 120.0, "world.emergency_per_hour": 0.0,
            "dispatch.rebalance_interval_s": 60.0, "dispatch.rebalance_max_share": 0.1,
            # cells of a few blocks (the grid is small), and pick-ups beyond 25 s left waiting
            "dispatch.rebalance_cell_m": 250.0, "dispatch.max_pickup_eta_s": 25.0,
        }
    )  # fmt: skip
    rounds = _Rounds()
    mini_service(config, tmp_path, callbacks=[rounds]).run()
    assert len(rounds.rounds) >= 5
    for new, idle_left, _ in rounds.rounds:
        assert new <= math.ceil(0.1 * (new + idle_left)), (new, idle_left)
    assert any(unassigned for _, _, unassigned in rounds.rounds), rounds.rounds
