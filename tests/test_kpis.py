"""The fleet KPIs, defined once (`fleet.kpis`): known answers on hand-built trips, and the
live service (`robotaxi serve`) and `robotaxi simulate`'s report giving the same values
from the same record. Runs without SUMO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakecity import mini_city
from robotaxi.config import load_config
from robotaxi.core import EvApproach, RideRequest, TimePoint, TripState
from robotaxi.core.stats import percentile
from robotaxi.fleet.demand import DemandSample
from robotaxi.fleet.manager import YieldRecord
from robotaxi.fleet.trips import Trip, new_trip
from robotaxi.metrics import (
    ev_yield_kpis,
    first_time,
    in_vehicle_times_s,
    pickup_waits_s,
    trip_kpis,
    vehicle_kpis,
)
from robotaxi.metrics.fleet_kpis import fleet_kpis
from robotaxi.sim.live import LiveService
from robotaxi.sim.runner import ServiceHistory, VehicleSummary
from robotaxi.world.fake import FakeWorld

S = TripState


def _trip(
    rid: str, steps: list[tuple[TripState, float]], *, cause: str = "", **data: float
) -> Trip:
    """A trip requested at the first step's time (s), then through `steps`; `cause` goes on
    the last step, `data` on the arrival at the destination."""
    (first, t0), rest = steps[0], steps[1:]
    assert first == S.REQUESTED
    trip = new_trip(RideRequest(rid, f"rider-{rid}", "Ann", TimePoint.from_s(t0), 0, 0, 900, 0))
    for i, (state, t) in enumerate(rest):
        trip.transition(
            state, TimePoint.from_s(t), vehicle_id="taxi000",
            cause=cause if i == len(rest) - 1 else "",
            data=data if state == S.ARRIVED_AT_DESTINATION else None,
        )  # fmt: skip
    return trip


def _trips() -> list[Trip]:
    def ride_at(t: float) -> list[tuple[TripState, float]]:
        """Boarded at `t`, "Start ride" 10 s later, driving 10 s after that."""
        return [(S.BOARDED, t), (S.STARTED, t + 10.0), (S.DRIVING, t + 20.0)]

    completed = _trip(
        "a",
        [(S.REQUESTED, 0), (S.ASSIGNED, 5), (S.EN_ROUTE, 5), (S.ARRIVED, 100),
         *ride_at(120),  # "Start ride" at 130
         (S.ARRIVED_AT_DESTINATION, 390), (S.COMPLETED, 400)],
        ride_m=1200.0, direct_m=1000.0,
    )  # fmt: skip
    completed.pickup_walk_m, completed.dropoff_walk_m = 30.0, 20.0
    # the rider never came down: the car waited at the curb, then gave up
    no_show = _trip(
        "b",
        [(S.REQUESTED, 10), (S.ASSIGNED, 20), (S.EN_ROUTE, 20), (S.ARRIVED, 310),
         (S.CANCELLED, 500)],
        cause="patience",
    )  # fmt: skip
    # reassigned on the way (first assigned at 60), then the rider stopped the ride early
    pulled_over = _trip(
        "c",
        [(S.REQUESTED, 50), (S.ASSIGNED, 60), (S.EN_ROUTE, 60), (S.ASSIGNED, 80),
         (S.EN_ROUTE, 80), (S.ARRIVED, 250), *ride_at(260), (S.PULLED_OVER, 400),
         (S.COMPLETED, 410)],
    )  # fmt: skip
    pulled_over.pickup_walk_m, pulled_over.dropoff_walk_m = 500.0, 500.0
    cancelled_early = _trip("d", [(S.REQUESTED, 100), (S.CANCELLED, 150)], cause="rider")
    on_its_way = _trip("e", [(S.REQUESTED, 200), (S.ASSIGNED, 210), (S.EN_ROUTE, 210)])
    return [completed, no_show, pulled_over, cancelled_early, on_its_way]


def test_percentile_interpolates_between_ranks_and_has_none_of_nothing() -> None:
    assert percentile([], 50) is None and percentile(np.zeros(0), 95) is None
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5  # the mean of the middle two
    assert percentile([100.0, 200.0, 300.0], 95) == pytest.approx(290.0)
    assert percentile(np.array([7.0]), 99) == 7.0


def test_the_pickup_wait_runs_from_the_request_to_the_cars_first_arrival() -> None:
    trips = _trips()
    # a, b (cancelled at the curb after the car arrived) and c; not d (no car came) nor e
    assert pickup_waits_s(trips) == [100.0, 300.0, 200.0]
    assert first_time(trips[2], S.ASSIGNED) == TimePoint.from_s(60)  # not the reassignment
    # the ride: "Start ride" to the arrival at the destination; a pulled-over ride has none
    assert in_vehicle_times_s(trips) == [260.0]


def test_trip_kpis_of_hand_built_trips() -> None:
    assert trip_kpis(_trips()) == {
        "requests": 5,
        "served": 2,  # a and c (pulled over on request, then completed)
        "served_pct": 40.0,
        "cancelled_pct": 40.0,
        "cancelled_by_cause": {"patience": 1, "rider": 1},
        "unfinished": 1,
        "wait_mean_s": 200.0,
        "wait_p50_s": 200.0,
        "wait_p95_s": 290.0,
        "in_vehicle_p50_s": 260.0,
        "in_vehicle_mean_s": 260.0,
        "walk_mean_m": 50.0,  # a only: c's rider was not taken to the drop-off curb
        "detour_ratio_mean": 1.2,
        "pickup_eta_error_p50_s": None,  # no assignment here carries an ETA
        "pickup_eta_error_abs_p95_s": None,
    }
    empty = trip_kpis([])
    assert empty["requests"] == 0 and empty["served_pct"] == 0.0
    assert empty["wait_p50_s"] is None and empty["detour_ratio_mean"] is None


def test_vehicle_kpis_share_the_fleets_time_and_distance() -> None:
    cars = [
        VehicleSummary("taxi000", 3.0, 7.0, 600.0, 300.0),
        VehicleSummary("taxi001", 1.0, 0.0, 0.0, 0.0),
    ]
    assert vehicle_kpis(cars, 1000.0) == {
        "km_total": 11.0,
        "deadhead_km_share": round(4 / 11, 3),
        "utilisation": 0.3,  # 600 s busy of 2 cars × 1000 s
        "occupied_time_share": 0.15,
    }
    idle = vehicle_kpis(cars, 0.0)
    assert idle["utilisation"] is None and idle["occupied_time_share"] is None
    assert vehicle_kpis([], 100.0)["deadhead_km_share"] is None


def test_an_ev_yield_counts_when_the_car_came_to_a_stand() -> None:
    A, at = EvApproach, TimePoint.from_s
    yields = [
        YieldRecord("taxi000", "ev0", at(10), None, A.BEHIND, stopped_at=at(16), resumed_at=at(30)),
        YieldRecord("taxi001", "ev0", at(45), "r1", A.HEAD_ON, stopped_at=at(50)),  # standing
        YieldRecord("taxi002", "ev1", at(60), None, A.BEHIND, resumed_at=at(70)),  # passed first
    ]
    assert ev_yield_kpis(yields) == {
        "ev_yields": 2,
        "ev_yields_resumed": 1,
        "ev_yield_reaction_mean_s": 5.5,  # (6 + 5) / 2
        "ev_yield_stopped_mean_s": 14.0,
    }


def test_simulate_and_serve_compute_the_same_kpis_from_the_same_history(tmp_path: Path) -> None:
    """A live service on FakeWorld with riders and ambulances, stopped mid-service (trips
    under way, yields perhaps too); its own `kpis()` against `simulate`'s `fleet_kpis` over a
    `ServiceHistory` of the same run, assembled as `ServiceSimulation.run` assembles it."""
    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": 6, "hours": 1.0, "seed": 5,
            "world.emergency_per_hour": 12.0,
            "world.background_vehicles_per_hour_per_km2": 300.0,
        }
    )  # fmt: skip
    live = LiveService(
        config, tmp_path, riders_per_hour=90.0, background_traffic=True,
        hearing=False, city_blocks=False, world=FakeWorld, city=mini_city(),
    )  # fmt: skip
    with live:
        live.step_until(lambda: False, 1500.0)
        served = live.kpis()
        fleet, world = live.fleet, live.world
        vehicles = list(fleet.vehicles.values())
        requests = tuple(t.request for t in fleet.trips.values())
        history = ServiceHistory(
            city=config.map.city, seed=config.seed, policy=config.dispatch.policy,
            fleet_size=config.fleet.size, service_s=config.hours * 3600.0,
            simulated_s=world.time.time_s, wall_s=1.0, requests=requests,
            demand=DemandSample(requests, 0, 0, len(requests), 0),
            trips=fleet.trips,
            yields=fleet.yields + [v.yielding for v in vehicles if v.yielding is not None],
            vehicles=[
                VehicleSummary(v.vehicle_id, v.km_empty, v.km_occupied, v.busy_s, v.occupied_s)
                for v in vehicles
            ],
            emergency=list(world.emergency.values()), world=world.stats,
        )  # fmt: skip
        simulated = fleet_kpis(history)
    # the real-time factor measures the wall clock of each program, not the history
    shared = (served.keys() & simulated.keys()) - {"real_time_factor"}
    assert {
        "requests", "served", "served_pct", "cancelled_pct", "unfinished", "wait_p50_s",
        "wait_p95_s", "in_vehicle_p50_s", "walk_mean_m", "detour_ratio_mean",
        "deadhead_km_share", "utilisation", "ev_yields", "fleet", "pickup_eta_error_p50_s",
    } <= shared  # fmt: skip
    assert {k: served[k] for k in shared} == {k: simulated[k] for k in shared}
    # not vacuous: riders were served, some are still on their way, cars pulled over
    assert served["served"] >= 5 and served["unfinished"] >= 1
    assert served["wait_p50_s"] is not None and served["in_vehicle_p50_s"] is not None
    assert 0 < served["utilisation"] < 1 and served["ev_yields"] >= 1


def test_by_hour_counts_each_trip_in_the_hour_it_was_requested() -> None:
    from robotaxi.fleet.kpis import by_hour

    late = _trip(
        "e",
        [(S.REQUESTED, 7300), (S.ASSIGNED, 7310), (S.EN_ROUTE, 7310), (S.ARRIVED, 7400)],
    )  # fmt: skip
    rows = by_hour([*_trips(), late], start_hour=23.5)
    # the first hour holds the five trips above, the second none, the third the late one;
    # the clock wraps past midnight
    assert [r["hour"] for r in rows] == ["23:30", "00:30", "01:30"]
    assert [r["requests"] for r in rows] == [5, 0, 1]
    first = trip_kpis(_trips())
    assert {k: rows[0][k] for k in ("served", "served_pct", "wait_p50_s", "wait_p95_s")} == {
        k: first[k] for k in ("served", "served_pct", "wait_p50_s", "wait_p95_s")
    }
    assert rows[1]["served_pct"] == 0.0 and rows[1]["wait_p50_s"] is None
    assert rows[2]["wait_p50_s"] == 100.0 and rows[2]["served"] == 0
    assert by_hour([], 8.0) == []


def test_kpis_carry_the_calibration_behind_the_background_the_run_used() -> None:
    from robotaxi.sim.runner import _calibration

    config = load_config(overrides={"map.city": "sf"})  # the city's tracked settings
    assert config.world.background_demand == "planbayarea"
    table = _calibration(config)
    assert table is not None and table["scale"] == config.world.background_scale
    assert {row["period"] for row in table["table"]} == {"AM", "MD", "PM"}
    # a scale of the run's own, random traffic or a city never calibrated: none
    assert (
        _calibration(load_config(overrides={"map.city": "sf", "world.background_scale": 0.05}))
        is None
    )
    assert _calibration(load_config(overrides={"map.city": "grid"})) is None
