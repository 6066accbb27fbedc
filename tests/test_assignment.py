"""The dense assignment from prices (`robotaxi.fleet.assignment`): SciPy's optimum from any
prices, a batch solved from the last one's prices, and bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from robotaxi.core import DispatchError
from robotaxi.fleet.assignment import assign_priced


def optimum(cost: np.ndarray) -> float:
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum())


@pytest.mark.parametrize("seed", range(40))
def test_any_prices_give_scipys_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(1, 30))
    cols = int(rng.integers(rows, 45))
    cost = rng.uniform(0.0, 600.0, (rows, cols))
    if seed % 3 == 0:  # many ties: whole seconds, and a few rows alike
        cost = np.round(cost / 60.0) * 60.0
        cost[: rows // 2] = cost[0]
    for prices in (None, np.zeros(cols), -rng.exponential(100.0, cols), rng.normal(0, 1e4, cols)):
        car_of, after = assign_priced(cost, prices)
        assert len(set(car_of.tolist())) == rows  # every row its own column
        assert cost[np.arange(rows), car_of].sum() == pytest.approx(optimum(cost), abs=1e-6)
        assert after.shape == (cols,) and after.max() == 0.0
        # the prices at the optimum are its duals: each row's column is its cheapest at them
        reduced = cost - after[None, :]
        chosen = reduced[np.arange(rows), car_of]
        assert np.all(chosen <= reduced.min(axis=1) + 1e-6)


def test_a_batch_after_the_last_one_starts_from_its_prices() -> None:
    """Batch after batch, the riders change a little and the cars move: each solved from the
    last one's prices has SciPy's optimum, and the same answer on a second run."""
    rng = np.random.default_rng(5)
    cars, riders = 120, 50
    car_xy = rng.uniform(0, 3000, (cars, 2))
    rider_xy = rng.uniform(0, 3000, (riders, 2))
    runs = []
    for _ in range(2):
        prices, answers = np.zeros(cars), []
        xy, rxy = car_xy.copy(), rider_xy.copy()
        step = np.random.default_rng(9)
        for _batch in range(6):
            cost = np.abs(rxy[:, None, :] - xy[None, :, :]).sum(axis=2) / 8.0
            car_of, prices = assign_priced(cost, prices)
            assert cost[np.arange(riders), car_of].sum() == pytest.approx(optimum(cost))
            answers.append(car_of)
            xy += step.normal(0, 60, xy.shape)  # 15 s of driving
            rxy[step.integers(0, riders, 3)] = step.uniform(0, 3000, (3, 2))  # new riders
        runs.append(answers)
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))


def test_no_rows_need_no_columns() -> None:
    car_of, prices = assign_priced(np.zeros((0, 3)), np.array([-1.0, -3.0, 0.5]))
    assert car_of.shape == (0,) and prices.max() == 0.0


@pytest.mark.parametrize(
    ("cost", "prices", "message"),
    [
        (np.ones((3, 2)), None, "rows ≤ columns"),
        (np.array([[1.0, np.inf]]), None, "finite"),
        (np.ones((1, 2)), np.zeros(3), "prices must be 2"),
        (np.ones((1, 2)), np.array([0.0, np.nan]), "prices must be 2"),
    ],
)
def test_bad_input_is_refused(cost: np.ndarray, prices, message: str) -> None:
    with pytest.raises(DispatchError, match=message):
        assign_priced(cost, prices)
