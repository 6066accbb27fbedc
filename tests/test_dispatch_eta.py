"""The pick-up ETA dispatch assigns on is the time the car then takes (issue 11, item 8), and
the fleet's KPIs per district: a service on FakeWorld (cars drive the routing graph at its
edge speeds), with the bounded candidate search `FleetManager` dispatches with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakecity import mini_service
from robotaxi.config import load_config
from robotaxi.fleet.dispatch import (
    ETA_OFFSET_BOUNDS_S,
    ETA_SCALE_BOUNDS,
    BatchPolicy,
    PickupEtaModel,
)
from robotaxi.fleet.kpis import by_district, pickup_eta_errors_s, trip_kpis
from robotaxi.metrics.fleet_kpis import fleet_kpis
from robotaxi.sim.runner import ServiceHistory


def _run(tmp_path: Path, fleet: int, policy: str = "batch") -> ServiceHistory:
    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": fleet, "hours": 1.0, "seed": 3,
            "demand.requests_per_hour": 200.0, "world.emergency_per_hour": 0.0,
            "dispatch.policy": policy,
        }
    )  # fmt: skip
    return mini_service(config, tmp_path, background=False).run()


def test_cars_reach_riders_in_the_time_dispatch_assigned_them_on(tmp_path: Path) -> None:
    for policy in ("batch", "nearest"):
        history = _run(tmp_path / policy, 10, policy)
        errors = np.array(pickup_eta_errors_s(history.trips.values()))
        assert len(errors) >= 100  # most rides: not vacuous
        # FakeWorld drives the graph's travel times: what is left is the step (1 s) and the
        # reassignments' rounding; a car that set off from its drop-off curb counts too
        assert abs(float(np.median(errors))) <= 1.0
        assert float(np.percentile(np.abs(errors), 95)) <= 3.0
        kpis = fleet_kpis(history)
        assert kpis["pickup_eta_error_abs_p95_s"] <= 3.0


def test_kpis_per_district_add_up_to_the_whole(tmp_path: Path) -> None:
    history = _run(tmp_path, 6)
    rows = fleet_kpis(history)["by_district"]
    whole = trip_kpis(history.trips.values())
    assert len(rows) >= 2  # hot spots and the uniform background
    assert sum(r["requests"] for r in rows) == whole["requests"]
    assert sum(r["served"] for r in rows) == whole["served"]
    assert [r["requests"] for r in rows] == sorted((r["requests"] for r in rows), reverse=True)
    # a zone → district table groups zones; a zone it does not name stays its own district
    zones = {r["district"] for r in rows}
    merged = by_district(history.trips.values(), {z: "all" for z in zones if z != "uniform"})
    assert {r["district"] for r in merged} == {"all", "uniform"} & (zones | {"all"})
    assert sum(r["requests"] for r in merged) == whole["requests"]


def test_the_eta_model_learns_how_much_longer_cars_take_than_the_graph_says() -> None:
    model = PickupEtaModel(min_samples=30, refit_every=10)
    rng = np.random.default_rng(4)
    assert model.expected_s(100.0, 20.0) == 120.0  # the graph's time until it has learnt
    for route in rng.uniform(30.0, 600.0, 200):
        model.observe(float(route), 1.3 * float(route) + 25.0 + float(rng.normal(0.0, 5.0)))
    assert model.scale == pytest.approx(1.3, abs=0.02)
    assert model.offset_s == pytest.approx(25.0, abs=3.0)
    assert model.expected_s(100.0, 20.0) == pytest.approx(130.0 + 25.0 + 20.0, abs=4.0)
    assert model.to_route_s(model.expected_s(200.0)) == pytest.approx(200.0)
    # never faster than the graph, never more than its bounds; junk is ignored
    fast = PickupEtaModel(min_samples=5, refit_every=5)
    for route in (100.0, 200.0, 300.0, 400.0, 500.0, float("nan")):
        fast.observe(route, 0.5 * route)
    assert fast.scale == ETA_SCALE_BOUNDS[0] and fast.offset_s == ETA_OFFSET_BOUNDS_S[0]
    assert len(fast.samples) == 5


def test_the_batch_optimum_is_the_same_in_route_seconds_and_in_eta_seconds() -> None:
    rng = np.random.default_rng(8)
    route = rng.uniform(20.0, 900.0, (30, 12))
    delay = rng.uniform(0.0, 120.0, 30)
    model = PickupEtaModel(scale=1.4, offset_s=30.0)
    eta = model.scale * route + model.offset_s + delay[:, None]
    cut = 800.0
    policy = BatchPolicy()
    in_eta = policy.assign(eta, cut)
    in_route = policy.assign(route + (delay / model.scale)[:, None], model.to_route_s(cut))
    assert sorted(in_eta) == sorted(in_route) and len(in_eta) == 12
