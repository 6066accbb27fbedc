"""The battery model (`fleet.energy`) and the energy KPIs (`fleet.energy_kpis`): energy use
against hand-computed trips, dispatch's reserve check (a car never accepts a trip it
cannot finish, over many random draws), the vectorised check agreeing with the scalar
one, and the KPI record on hand-built records. Runs without SUMO."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from robotaxi.config.charging import EnergyConfig
from robotaxi.core import DispatchError
from robotaxi.fleet.energy import (
    EPA_CITY_KWH_PER_KM,
    EPA_COMBINED_KWH_PER_KM,
    ConsumptionModel,
    EmptyBattery,
    FleetBatteries,
    can_accept,
    can_accept_many,
    initial_soc_kwh,
    route_m_upper_bound,
)
from robotaxi.fleet.energy_kpis import (
    cars_by_hour,
    energy_kpis,
    queued_times_s,
    rides_lost_to_empty_battery,
)

MODEL = ConsumptionModel()  # 0.276 kWh/km, 1.2 kW autonomy, 0.6 kW parked, plan at 4 m/s


# --- figures ------------------------------------------------------------------------------


def test_epa_figures_convert_to_kwh_per_km() -> None:
    # 33.705 kWh per gallon-equivalent; 80 MPGe city, 76 combined; 1.609344 km per mile
    assert abs(EPA_CITY_KWH_PER_KM - 0.2618) < 1e-4
    assert abs(EPA_COMBINED_KWH_PER_KM - 0.2756) < 1e-4
    assert MODEL.drive_kwh_per_km == 0.276
    assert EnergyConfig().drive_kwh_per_km == MODEL.drive_kwh_per_km
    assert ConsumptionModel.from_config(EnergyConfig()) == MODEL


# --- energy use on hand-computed trips ------------------------------------------------------


def test_a_drive_costs_distance_and_autonomy_time() -> None:
    # 5 km in 15 min: 5 × 0.276 + 0.25 h × 1.2 kW = 1.38 + 0.30
    assert MODEL.use_kwh(5000.0, 900.0, parked=False) == pytest.approx(1.68)


def test_standing_costs_autonomy_and_cabin() -> None:
    # 10 min at a curb: (1.2 + 0.6) kW × 1/6 h
    assert MODEL.use_kwh(0.0, 600.0, parked=True) == pytest.approx(0.30)
    assert MODEL.use_kwh(0.0, 600.0, parked=False) == pytest.approx(0.20)  # stopped in traffic


def test_planning_rate_and_curb_allowance() -> None:
    # 1 km at 4 m/s: 0.276 + 1.2 kW × 250 s = 0.276 + 0.08333
    assert MODEL.plan_kwh(1000.0) == pytest.approx(0.359333, abs=1e-6)
    assert MODEL.curb_kwh == pytest.approx(0.45)  # 900 s × 1.8 kW
    arr = MODEL.plan_kwh(np.array([0.0, 1000.0, 2000.0]))
    np.testing.assert_allclose(arr, [0.0, 0.359333, 0.718667], atol=1e-6)


def test_a_full_day_of_city_driving_fits_the_battery() -> None:
    # sanity: a car averaging 5 m/s draws 0.343 kWh/km, so 84.7 kWh last ~247 km / ~13.7 h
    per_km = MODEL.use_kwh(1000.0, 200.0, parked=False)
    assert per_km == pytest.approx(0.276 + 1.2 / 18, abs=1e-9)
    assert 84.7 / per_km == pytest.approx(246.9, abs=0.5)


def test_fleet_batteries_discharge_by_the_model() -> None:
    fleet = FleetBatteries()
    fleet.add("a", 40.0)
    fleet.consume("a", 5000.0, 900.0, parked=False, now_s=900.0)
    fleet.consume("a", 0.0, 600.0, parked=True, now_s=1500.0)
    car = fleet.cars["a"]
    assert car.soc_kwh == pytest.approx(40.0 - 1.68 - 0.30)
    assert car.kwh_used == pytest.approx(1.98)
    assert car.km == pytest.approx(5.0)
    assert car.soc == pytest.approx(car.soc_kwh / 84.7)


def test_an_empty_battery_is_recorded_once_with_its_trip() -> None:
    fleet = FleetBatteries()
    fleet.add("a", 1.0)
    first = fleet.consume("a", 5000.0, 900.0, parked=False, now_s=10.0, trip_id="t1")
    assert first == EmptyBattery("a", 10.0, "t1")
    assert fleet.consume("a", 100.0, 1.0, parked=False, now_s=11.0, trip_id="t1") is None
    assert fleet.cars["a"].soc_kwh == 0.0
    assert fleet.cars["a"].kwh_used == pytest.approx(1.0)  # it cannot draw what it lacks
    assert fleet.empties == [first]
    fleet.charge("a", 200.0)
    assert fleet.cars["a"].soc_kwh == pytest.approx(84.7)  # capped at the capacity
    assert fleet.cars["a"].kwh_charged == pytest.approx(84.7)


def test_a_tick_of_many_cars_draws_exactly_what_each_draw_alone_would() -> None:
    one, many = FleetBatteries(), FleetBatteries()
    rng = np.random.default_rng(5)
    ids = [f"car{k}" for k in range(40)]
    for vid in ids:
        soc = float(rng.uniform(0.01, 60.0))
        one.add(vid, soc)
        many.add(vid, soc)
    for tick in range(1, 30):
        draws = [
            (vid, float(rng.choice([0.0, -3.0, rng.uniform(0, 40)])), bool(rng.integers(2)),
             f"t{tick}" if rng.integers(2) else None)
            for vid in ids
        ]  # fmt: skip
        for vid, metres, parked, trip in draws:
            one.consume(vid, metres, 60.0, parked=parked, now_s=60.0 * tick, trip_id=trip)
        many.consume_many(draws, 60.0, 60.0 * tick)
    for vid in ids:
        assert many.cars[vid] == one.cars[vid]  # bit for bit, not approximately
    assert many.empties == one.empties and len(one.empties) > 0


def test_initial_charge_is_seeded_per_car() -> None:
    config = EnergyConfig()
    one = initial_soc_kwh(["car0", "car1", "car2"], config, seed=7)
    again = initial_soc_kwh(["car2", "car0"], config, seed=7)
    assert one["car0"] == again["car0"] and one["car2"] == again["car2"]
    assert initial_soc_kwh(["car0"], config, seed=8)["car0"] != one["car0"]
    for value in one.values():
        assert 0.6 * 84.7 <= value <= 0.95 * 84.7


# --- the reserve check ----------------------------------------------------------------------


def test_can_accept_at_the_hand_computed_boundary() -> None:
    # 2 km to the rider, 8 km ride, 3 km to the depot: 13 km × 0.359333 + 0.45 curb = 5.1213
    need = 13 * (0.276 + 1.2 / 3600 / 4 * 1000) + 0.45
    assert need == pytest.approx(5.121333, abs=1e-6)
    reserve = 8.5
    assert can_accept(need + reserve + 1e-9, 2000.0, 8000.0, 3000.0, reserve)
    assert not can_accept(need + reserve - 1e-6, 2000.0, 8000.0, 3000.0, reserve)
    assert can_accept(84.7, 0.0, 0.0, 0.0, 0.0)
    assert not can_accept(84.7, math.inf, 1000.0, 0.0, 0.0)  # unreachable
    assert not can_accept(84.7, math.nan, 1000.0, 0.0, 0.0)  # unknown: refuse


def test_a_car_never_accepts_a_trip_it_cannot_finish() -> None:
    """Property over 3 000 random draws (fixed seed): whenever `can_accept` says yes, the
    car drives to the rider, waits and rides with them, and drives to the depot — at any
    average speed from the planning speed up and any curb time up to the planned one —
    and arrives there with at least its reserve, never empty. Both answers occur."""
    rng = np.random.default_rng(20240611)
    accepted = refused = 0
    for _ in range(3000):
        soc = float(rng.uniform(0.0, 84.7))
        pickup, trip, depot = (float(x) for x in rng.uniform(0, [8000, 30000, 12000]))
        reserve = float(rng.uniform(0.0, 15.0))
        if not can_accept(soc, pickup, trip, depot, reserve):
            refused += 1
            continue
        accepted += 1
        fleet = FleetBatteries()
        fleet.add("car", soc)
        curb_s = rng.uniform(0, MODEL.planning_curb_s, 2)
        curb_s *= min(1.0, MODEL.planning_curb_s / curb_s.sum())
        t = 0.0
        legs = [(pickup, False), (0.0, True), (trip, False), (0.0, True), (depot, False)]
        curb = iter(curb_s)
        for distance, parked in legs:
            if parked:
                duration = float(next(curb))
            else:
                speed = float(rng.uniform(MODEL.planning_speed_mps, 15.0))
                duration = distance / speed
            t += duration
            assert fleet.consume("car", distance, duration, parked=parked, now_s=t) is None
        assert fleet.cars["car"].soc_kwh >= reserve - 1e-9
    assert accepted > 300 and refused > 300


def test_the_vectorised_check_agrees_with_the_scalar_one() -> None:
    rng = np.random.default_rng(3)
    soc = rng.uniform(0, 84.7, 40)
    pickup = rng.uniform(0, 10000, (40, 25))
    trip = rng.uniform(0, 30000, 25)
    depot = rng.uniform(0, 10000, 25)
    pickup[0, 0], trip[1] = np.inf, np.nan
    mask = can_accept_many(soc, pickup, trip, depot, 8.5)
    assert mask.shape == (40, 25) and mask.dtype == bool
    expected = np.array(
        [
            [can_accept(soc[c], pickup[c, r], trip[r], depot[r], 8.5) for r in range(25)]
            for c in range(40)
        ]
    )
    np.testing.assert_array_equal(mask, expected)
    assert not mask[0, 0] and not mask[:, 1].any()
    assert mask.any() and not mask.all()


def test_the_vectorised_check_handles_empty_batches_and_rejects_bad_shapes() -> None:
    assert can_accept_many(np.zeros(0), np.zeros((0, 3)), np.ones(3), np.ones(3), 1.0).shape == (
        0,
        3,
    )
    assert can_accept_many(np.ones(2), np.zeros((2, 0)), np.ones(0), np.ones(0), 1.0).shape == (
        2,
        0,
    )
    with pytest.raises(DispatchError, match="cars × requests"):
        can_accept_many(np.ones(2), np.zeros((3, 2)), np.ones(2), np.ones(2), 1.0)
    with pytest.raises(DispatchError, match="soc"):
        can_accept_many(np.ones(2), np.zeros((2, 2)), np.ones(2), np.ones(3), 1.0)


def test_eta_bounds_the_route_length() -> None:
    assert route_m_upper_bound(90.0, 13.9) == pytest.approx(1251.0)
    np.testing.assert_allclose(route_m_upper_bound(np.array([0.0, 10.0]), 15.0), [0.0, 150.0])


# --- KPIs on hand-built records -------------------------------------------------------------


@dataclass
class _Car:
    km: float
    kwh_used: float
    kwh_charged: float
    soc_kwh: float
    capacity_kwh: float = 84.7


@dataclass
class _Session:
    reason: str
    arrived_s: float | None
    plugged_s: float | None
    left_s: float | None
    kwh_into_battery: float = 0.0
    kwh_from_grid: float = 0.0


@dataclass
class _Sample:
    time_s: float
    available: int
    to_depot: int
    queued: int
    charging: int


def test_energy_kpis_on_hand_built_records() -> None:
    cars = [_Car(100.0, 30.0, 20.0, 42.35), _Car(50.0, 15.0, 0.0, 84.7)]
    sessions = [
        _Session("low", 100.0, 100.0, 2000.0, 20.0, 21.5),  # a free charger: 0 s in line
        _Session("low", 200.0, 800.0, 2500.0),  # 600 s in line
        _Session("opportunistic", 300.0, None, 500.0),  # gave up after 200 s
        _Session("low", 400.0, None, None),  # still in line at the end: 3 200 s to 3 600
        _Session("low", None, None, None),  # on its way
    ]
    samples = [
        _Sample(0.0, 10, 0, 0, 0),
        _Sample(1800.0, 8, 1, 0, 1),
        _Sample(3600.0, 6, 0, 2, 2),
        _Sample(9000.0, 9, 0, 0, 1),
    ]
    kpis = energy_kpis(cars, sessions, samples, [], rides=9, start_hour=8.0, end_s=3600.0)
    assert kpis["kwh_used"] == 45.0
    assert kpis["kwh_per_ride"] == 5.0
    assert kpis["kwh_per_km"] == 0.3
    assert kpis["kwh_charged"] == 20.0 and kpis["kwh_from_grid"] == 21.5
    assert kpis["charging_sessions"] == 2
    assert kpis["charging_sessions_by_reason"] == {"low": 2}
    # queued: 0, 600, 200, 3200 → p50 400, p95 by linear interpolation, total 4000
    assert kpis["queued_p50_s"] == 400.0
    assert kpis["queued_p95_s"] == round(float(np.percentile([0, 600, 200, 3200], 95)), 1)
    assert kpis["queued_total_s"] == 4000.0
    assert kpis["rides_lost_to_empty_battery"] == 0 and kpis["cars_ran_empty"] == 0
    assert kpis["soc_mean_pct"] == 75.0 and kpis["soc_min_pct"] == 50.0
    assert kpis["hours"] == ["08:00", "09:00", "10:00"]
    assert kpis["cars_available_by_hour"] == [9.0, 6.0, 9.0]
    assert kpis["cars_charging_by_hour"] == [0.5, 2.0, 1.0]
    assert kpis["cars_queued_by_hour"] == [0.0, 2.0, 0.0]
    assert kpis["cars_to_depot_by_hour"] == [0.5, 0.0, 0.0]


def test_kpis_before_anything_happened() -> None:
    kpis = energy_kpis([], [], [], [], rides=0, start_hour=23.5)
    assert kpis["kwh_per_ride"] is None and kpis["kwh_per_km"] is None
    assert kpis["queued_p50_s"] is None and kpis["queued_total_s"] == 0.0
    assert kpis["hours"] == [] and kpis["soc_mean_pct"] is None
    # the clock wraps past midnight
    assert cars_by_hour([_Sample(3700.0, 1, 0, 0, 0)], 23.5)["hours"] == ["23:30", "00:30"]


def test_queue_times_skip_cars_still_in_line_without_an_end() -> None:
    sessions = [_Session("low", 10.0, 70.0, None), _Session("low", 20.0, None, None)]
    assert queued_times_s(sessions) == [60.0]
    assert queued_times_s(sessions, end_s=100.0) == [60.0, 80.0]


def test_rides_lost_count_distinct_trips() -> None:
    empties = [
        EmptyBattery("a", 1.0, "t1"),
        EmptyBattery("a", 2.0, "t1"),
        EmptyBattery("b", 3.0, None),
    ]
    assert rides_lost_to_empty_battery(empties) == 1
    kpis = energy_kpis([], [], [], empties, rides=1, start_hour=0.0)
    assert kpis["rides_lost_to_empty_battery"] == 1 and kpis["cars_ran_empty"] == 2
