"""Charging (`fleet.charging`) and its configuration (`config.charging`): charger queues are
first come, first served; the charging curve holds the car's limit, its taper and the
target, with closed-form answers; the policy prefers hours of low demand; a fleet's day
of charging runs end to end; impossible configurations fail with a `ConfigError` that
names the problem. Runs without SUMO."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import yaml

from robotaxi.config.charging import (
    SF_DEPOTS,
    ChargingConfig,
    DepotConfig,
    EnergyConfig,
    check_depots_on_map,
    depots_for_map,
)
from robotaxi.core.errors import ConfigError
from robotaxi.fleet.charging import (
    ChargeReason,
    ChargerQueue,
    ChargeStage,
    ChargingCurve,
    ChargingError,
    ChargingPolicy,
    CrowFlyDistance,
    Depot,
    FleetCharging,
    crow_fly_distance,
    depots_from_config,
    low_demand_hours_from_profile,
)

CAPACITY = 84.7
CURVE = ChargingCurve()  # 100 kW car limit, taper from 80 % to 15 kW at 100 %
SLOPE = (15.0 - 100.0) / (0.2 * CAPACITY)  # kW per kWh on the taper


# --- queues: first come, first served ---------------------------------------------------------


def test_chargers_go_to_cars_in_arrival_order() -> None:
    queue = ChargerQueue(Depot("d", 0.0, 0.0, chargers=2, charger_kw=150.0))
    started = [queue.arrive(f"car{i}", float(i)) for i in range(5)]
    assert started == [["car0"], ["car1"], [], [], []]
    assert list(queue.plugged) == ["car0", "car1"]
    assert [v for v, _ in queue.waiting] == ["car2", "car3", "car4"]
    assert queue.leave("car1", 10.0) == ["car2"]  # the longest waiting car, not the newest
    assert queue.leave("car3", 11.0) == []  # a car giving up its place frees no charger
    assert queue.leave("car0", 12.0) == ["car4"]
    assert queue.plugged == {"car2": 10.0, "car4": 12.0}
    assert queue.free == 0 and not queue.waiting


def test_a_queue_refuses_double_arrivals_and_unknown_leavers() -> None:
    queue = ChargerQueue(Depot("d", 0.0, 0.0, chargers=1, charger_kw=150.0))
    queue.arrive("a", 0.0)
    with pytest.raises(ChargingError, match="already"):
        queue.arrive("a", 1.0)
    with pytest.raises(ChargingError, match="not at depot"):
        queue.leave("b", 1.0)


def test_fleet_charging_serves_each_depot_first_come_first_served() -> None:
    config = EnergyConfig(initial_soc=(0.1, 0.1))
    fleet = FleetCharging(config, [Depot("d", 0.0, 0.0, 1, 150.0)], start_hour=12.0)
    for v in ("c", "a", "b"):
        fleet.add_car(v)
    orders = fleet.plan(0.0, {"c": (0.0, 0.0), "a": (10.0, 0.0), "b": (20.0, 0.0)})
    assert {o.vehicle_id for o in orders} == {"a", "b", "c"}  # all must charge: all go
    # arrival order, not id or charge order, decides who charges first
    assert fleet.arrived("b", 5.0) == ChargeStage.PLUGGED
    assert fleet.arrived("c", 6.0) == ChargeStage.QUEUED
    assert fleet.arrived("a", 7.0) == ChargeStage.QUEUED
    finished: list[str] = []
    t = 7.0
    while len(finished) < 3 and t < 4 * 3600:
        t += 10.0
        finished += fleet.step(t, 10.0)
    assert finished == ["b", "c", "a"]
    by_car = {s.vehicle_id: s for s in fleet.sessions}
    assert by_car["c"].plugged_s == by_car["b"].left_s
    assert by_car["a"].plugged_s == by_car["c"].left_s
    assert by_car["b"].arrived_s == by_car["b"].plugged_s == 5.0
    kpis = fleet.kpis(rides=0)
    assert kpis["charging_sessions"] == 3
    c_plugged, a_plugged = by_car["c"].plugged_s, by_car["a"].plugged_s
    assert c_plugged is not None and a_plugged is not None
    assert kpis["queued_total_s"] == pytest.approx(c_plugged - 6.0 + a_plugged - 7.0, abs=0.05)


def test_a_car_taken_back_leaves_the_line_and_the_next_one_plugs_in() -> None:
    config = EnergyConfig(initial_soc=(0.1, 0.1))
    fleet = FleetCharging(config, [Depot("d", 0.0, 0.0, 1, 150.0)])
    for v in ("a", "b", "c"):
        fleet.add_car(v)
    fleet.plan(0.0, {v: (0.0, 0.0) for v in ("a", "b", "c")})
    for t, v in enumerate(("a", "b", "c")):
        fleet.arrived(v, float(t))
    fleet.cancel("b", 3.0)  # in line: gives up its place
    fleet.cancel("a", 4.0)  # on the charger: c takes it
    assert fleet.stage("c") == ChargeStage.PLUGGED and not fleet.busy("a")
    assert fleet.stage("b") == ChargeStage.NONE
    with pytest.raises(ChargingError, match="not sent"):
        fleet.arrived("b", 5.0)
    kpis = fleet.kpis(rides=0)
    assert kpis["charging_sessions"] == 2  # a and c took the charger; b never did
    assert kpis["queued_total_s"] == pytest.approx(0.0 + 2.0 + 2.0)  # a 0, b 1→3, c 2→4


# --- the charging curve ---------------------------------------------------------------------


def test_power_respects_the_car_the_charger_and_the_taper() -> None:
    assert CURVE.power_kw(0.2 * CAPACITY, 150.0) == 100.0  # the car's limit, not the charger's
    assert CURVE.power_kw(0.2 * CAPACITY, 50.0) == 50.0  # the charger's
    assert CURVE.power_kw(0.8 * CAPACITY, 150.0) == pytest.approx(100.0)
    assert CURVE.power_kw(0.9 * CAPACITY, 150.0) == pytest.approx(57.5)  # half-way down to 15
    assert CURVE.power_kw(0.99 * CAPACITY, 150.0) == pytest.approx(19.25)
    assert CURVE.power_kw(CAPACITY, 150.0) == 0.0
    socs = np.linspace(0.0, CAPACITY, 500)
    power = [CURVE.power_kw(float(s), 150.0) for s in socs]
    assert max(power) <= 100.0
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(power))  # never rises


def test_charge_durations_match_closed_form_answers() -> None:
    # 20 → 80 % on the flat part at 100 kW: 50.82 kWh / 100 kW = 30.49 min
    assert CURVE.duration_s(0.2 * CAPACITY, 0.8 * CAPACITY, 150.0) == pytest.approx(1829.52)
    # 80 → 90 % on the taper: ln(P(90 %) / P(80 %)) / slope h = ln(0.575) / −5.018 h
    taper_s = math.log(57.5 / 100.0) / SLOPE * 3600
    assert taper_s == pytest.approx(397.0, abs=0.1)
    assert CURVE.duration_s(0.8 * CAPACITY, 0.9 * CAPACITY, 150.0) == pytest.approx(taper_s)
    # a 50 kW charger is flat until the taper falls below 50 kW (at 91.76 %)
    knee = 0.8 * CAPACITY + (50.0 - 100.0) / SLOPE
    assert knee / CAPACITY == pytest.approx(0.917647, abs=1e-6)
    expected = (knee - 0.2 * CAPACITY) / 50.0 * 3600 + math.log(
        CURVE.power_kw(0.95 * CAPACITY, 50.0) / 50.0
    ) / SLOPE * 3600
    assert CURVE.duration_s(0.2 * CAPACITY, 0.95 * CAPACITY, 50.0) == pytest.approx(expected)
    assert CURVE.duration_s(0.5 * CAPACITY, 0.4 * CAPACITY, 150.0) == 0.0


def test_charging_stops_at_the_target_and_is_exact_in_any_step() -> None:
    start, target = 0.3 * CAPACITY, 0.9 * CAPACITY
    whole = CURVE.charge_kwh(start, 1500.0, 150.0, target)
    stepped = start
    for _ in range(1500):
        stepped = CURVE.charge_kwh(stepped, 1.0, 150.0, target)
    assert stepped == pytest.approx(whole, rel=1e-9)
    assert whole < target  # 25 min is not enough for 30 → 90 %
    needed = CURVE.duration_s(start, target, 150.0)
    assert CURVE.charge_kwh(start, needed, 150.0, target) == pytest.approx(target)
    assert CURVE.charge_kwh(start, needed + 3600.0, 150.0, target) == target  # never beyond
    assert CURVE.charge_kwh(start, 3 * 3600.0, 150.0, 2 * CAPACITY) == pytest.approx(CAPACITY)
    assert CURVE.charge_kwh(0.95 * CAPACITY, 600.0, 150.0, 0.9 * CAPACITY) == 0.95 * CAPACITY


def test_the_taper_slows_the_last_fifth() -> None:
    first_fifth = CURVE.duration_s(0.6 * CAPACITY, 0.8 * CAPACITY, 150.0)
    last_fifth = CURVE.duration_s(0.8 * CAPACITY, CAPACITY, 150.0)
    assert last_fifth > 2 * first_fifth
    assert last_fifth == pytest.approx(math.log(15.0 / 100.0) / SLOPE * 3600)


# --- the policy -----------------------------------------------------------------------------


POLICY = ChargingPolicy()  # below 25 %; 60 % in hours 1–6; targets 80 % / 90 %


def test_low_charge_always_goes_to_charge() -> None:
    for hour in (3.0, 8.0, 18.5):
        assert POLICY.reason_to_charge(0.2 * CAPACITY, hour, 2000.0) == ChargeReason.LOW


def test_a_car_too_low_for_a_short_ride_goes_even_above_the_threshold() -> None:
    # 22 kWh is above 25 % (21.2 kWh), but 40 km from a depot a 2 km ride needs
    # 42 km × 0.3593 + 0.45 = 15.5 kWh and leaves 6.5 kWh, below the 8.5 kWh reserve
    assert POLICY.charge_below_soc * CAPACITY < 22.0
    assert POLICY.reason_to_charge(22.0, 8.0, 40_000.0) == ChargeReason.LOW
    assert POLICY.reason_to_charge(22.0, 8.0, 1_000.0) is None


def test_the_policy_prefers_low_demand_hours() -> None:
    half = 0.5 * CAPACITY
    assert POLICY.reason_to_charge(half, 3.5, 2000.0) == ChargeReason.OPPORTUNISTIC
    assert POLICY.reason_to_charge(half, 8.0, 2000.0) is None
    assert POLICY.reason_to_charge(0.7 * CAPACITY, 3.5, 2000.0) is None
    assert POLICY.target_kwh(3.5) == pytest.approx(0.9 * CAPACITY)
    assert POLICY.target_kwh(17.0) == pytest.approx(0.8 * CAPACITY)
    assert POLICY.is_low_demand(24 + 2.0)  # wraps past midnight


def test_low_demand_hours_come_from_a_demand_profile() -> None:
    profile = [10, 5, 3, 2, 2, 4, 20, 60, 100, 80] + [70] * 8 + [90, 85, 60, 40, 30, 20]
    assert low_demand_hours_from_profile(profile, 0.25) == {0, 1, 2, 3, 4, 5, 6, 23}
    policy = ChargingPolicy.from_config(EnergyConfig(), hourly_requests=profile)
    assert policy.low_demand_hours == low_demand_hours_from_profile(profile, 0.5)
    assert low_demand_hours_from_profile([0.0] * 24, 0.5) == frozenset(range(24))
    with pytest.raises(ChargingError, match="24 values"):
        low_demand_hours_from_profile([1.0] * 23, 0.5)


def test_depot_choice_nearest_or_a_free_one_within_the_detour() -> None:
    dist = np.array([1000.0, 2500.0, 5000.0])
    assert POLICY.choose_depot(dist, [1, 1, 1], ChargeReason.LOW) == 0
    assert POLICY.choose_depot(dist, [0, 1, 1], ChargeReason.LOW) == 1  # 1.5 km farther
    assert POLICY.choose_depot(dist, [0, 0, 1], ChargeReason.LOW) == 0  # 4 km: queue instead
    assert POLICY.choose_depot(dist, [0, 0, 1], ChargeReason.OPPORTUNISTIC) is None
    strict = ChargingPolicy(max_detour_m=0.0)
    assert strict.choose_depot(dist, [0, 1, 1], ChargeReason.LOW) == 0


def _day_of_charging(low_demand_hours: tuple[int, ...]) -> tuple[FleetCharging, np.ndarray]:
    """Ten cars driving at 5 m/s from 08:00 for 24 h, sent to one 3-charger depot as the
    policy says (they arrive at once); kWh charged per clock hour."""
    depot = DepotConfig(name="d", x_m=0.0, y_m=0.0, chargers=3)
    config = EnergyConfig(
        charging=ChargingConfig(depots=(depot,), low_demand_hours=low_demand_hours)
    )
    fleet = FleetCharging(config, [Depot("d", 0.0, 0.0, 3, 150.0)], start_hour=8.0, seed=1)
    for i in range(10):
        fleet.add_car(f"car{i}")
    by_hour = np.zeros(24)
    dt, t = 120.0, 0.0
    while t + dt < 24 * 3600:
        t += dt
        for v in fleet.batteries.cars:
            moving = not fleet.busy(v)
            fleet.consume(v, 5.0 * dt if moving else 0.0, dt, parked=not moving, now_s=t)
        before = sum(c.kwh_charged for c in fleet.batteries.cars.values())
        fleet.step(t, dt)
        charged = sum(c.kwh_charged for c in fleet.batteries.cars.values()) - before
        by_hour[int(fleet.clock_hour(t - dt / 2))] += charged
        idle = {v: (500.0, 0.0) for v in fleet.batteries.cars if not fleet.busy(v)}
        for order in fleet.plan(t, idle):
            fleet.arrived(order.vehicle_id, t)
        fleet.sample(t, len(idle))
    return fleet, by_hour


def test_a_day_of_charging_shifts_energy_into_low_demand_hours() -> None:
    with_hours, charged = _day_of_charging((1, 2, 3, 4, 5, 6))
    without, charged_without = _day_of_charging(())
    low = slice(1, 7)
    assert charged[low].sum() / charged.sum() > charged_without[low].sum() / charged_without.sum()
    for fleet in (with_hours, without):
        assert not fleet.batteries.empties
        kpis = fleet.kpis(rides=1)
        assert kpis["rides_lost_to_empty_battery"] == 0
        assert len(kpis["hours"]) == 24 and kpis["hours"][0] == "08:00"
    by_reason = with_hours.kpis(rides=1)["charging_sessions_by_reason"]
    assert by_reason["low"] < without.kpis(rides=1)["charging_sessions_by_reason"]["low"]
    for session in with_hours.sessions:
        if session.reason == ChargeReason.OPPORTUNISTIC:
            assert with_hours.policy.is_low_demand(with_hours.clock_hour(session.decided_s))
            assert session.target_kwh == pytest.approx(0.9 * CAPACITY)


def test_busy_cars_and_infeasible_trips_are_masked_for_dispatch() -> None:
    config = EnergyConfig(initial_soc=(0.5, 0.5))
    depots = [Depot("east", 3000.0, 0.0, 2, 150.0), Depot("west", -3000.0, 0.0, 2, 150.0)]
    fleet = FleetCharging(config, depots, distance_fn=crow_fly_distance(1.0))
    fleet.add_car("full", 80.0)
    fleet.add_car("low", 12.0)
    fleet.add_car("charging", 15.0)
    fleet.plan(0.0, {"charging": (0.0, 0.0)})
    assert fleet.busy("charging")
    np.testing.assert_allclose(fleet.nearest_depot_m(np.array([[2000.0, 0.0]])), [1000.0])
    car, request = np.divmod(np.arange(6), 2)  # every car with every request
    ok = fleet.feasible(
        ["full", "low", "charging"],
        car,
        request,
        np.full(6, 1000.0),
        np.array([2000.0, 60_000.0]),
        np.array([[2000.0, 0.0], [0.0, 0.0]]),
    )
    # low: 12 − 8.5 reserve leaves 3.5 kWh; a 2 km ride needs (1+2+1 km) × 0.359 + 0.45
    np.testing.assert_array_equal(ok, [True, True, True, False, False, False])
    # pairs in any order, some pairs only
    some = fleet.feasible(
        ["full", "low", "charging"],
        np.array([1, 1, 0]),
        np.array([1, 0, 1]),
        np.full(3, 1000.0),
        np.array([2000.0, 60_000.0]),
        np.array([[2000.0, 0.0], [0.0, 0.0]]),
    )
    np.testing.assert_array_equal(some, [False, True, True])


def test_a_plugged_car_draws_from_the_charger_not_its_battery() -> None:
    config = EnergyConfig(initial_soc=(0.1, 0.1))
    fleet = FleetCharging(config, [Depot("d", 0.0, 0.0, 1, 150.0)])
    fleet.add_car("a")
    fleet.add_car("b")
    fleet.plan(0.0, {"a": (0.0, 0.0), "b": (0.0, 0.0)})
    fleet.arrived("a", 0.0)
    fleet.arrived("b", 0.0)
    soc = fleet.batteries.soc_kwh(["a", "b"])
    fleet.consume("a", 0.0, 60.0, parked=True, now_s=60.0)
    fleet.consume("b", 0.0, 60.0, parked=True, now_s=60.0)
    after = fleet.batteries.soc_kwh(["a", "b"])
    assert after[0] == soc[0]  # plugged
    assert after[1] == pytest.approx(soc[1] - 1.8 / 60)  # queued: 1.8 kW for a minute
    fleet.step(60.0, 60.0)  # the first plug_s (60 s) on the charger delivers nothing
    assert fleet.batteries.soc_kwh(["a"])[0] == soc[0]
    fleet.step(120.0, 60.0)
    assert fleet.batteries.soc_kwh(["a"])[0] == pytest.approx(soc[0] + 100.0 / 60)


# --- configuration --------------------------------------------------------------------------


def test_defaults_are_valid_and_load_from_yaml() -> None:
    config = EnergyConfig()
    assert config.battery_usable_kwh == 84.7 and len(config.charging.depots) == 4
    text = """
    reserve_kwh: 10
    charging:
      target_soc: 0.85
      depots:
        - {name: Pier 70, lon: -122.383, lat: 37.760, chargers: 12, charger_kw: 350}
        - {name: yard, x_m: 100, y_m: 200}
    """
    loaded = EnergyConfig.model_validate(yaml.safe_load(text))
    assert loaded.reserve_kwh == 10 and loaded.charging.target_soc == 0.85
    assert [d.name for d in loaded.charging.depots] == ["Pier 70", "yard"]
    assert loaded.charging.depots[1].chargers == 8  # default


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "x", "lon": -122.4, "lat": 37.7, "chargers": 0}, "0 chargers: give at least 1"),
        ({"name": "x", "lon": -122.4, "lat": 37.7, "charger_kw": -50}, "must be positive"),
        ({"name": "x"}, "depot 'x' has no location: give lon and lat"),
        ({"name": "x", "lon": -122.4}, "has no location"),
        ({"name": "x", "lon": -122.4, "lat": 37.7, "x_m": 1, "y_m": 2}, "give one location"),
        ({"name": " ", "x_m": 1, "y_m": 2}, "empty name"),
    ],
)
def test_impossible_depots_are_config_errors(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DepotConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"target_soc": 0.2}, "target_soc 0.2 must be above charge_below_soc 0.25"),
        ({"target_soc": 0.25}, "must be above charge_below_soc"),
        ({"opportunistic_below_soc": 0.2}, "must be at least charge_below_soc"),
        ({"low_demand_target_soc": 0.5}, "low_demand_target_soc 0.5 must be above"),
        ({"target_soc": 1.2}, r"within \(0, 1\]"),
        ({"taper_start_soc": 1.0}, "strictly between 0 and 1"),
        ({"taper_end_kw": 150.0}, "at most vehicle_max_kw"),
        ({"vehicle_max_kw": -1.0}, "must be positive"),
        ({"low_demand_hours": [3, 24]}, r"\[24\] are not clock hours"),
        ({"depots": []}, "no charging depots"),
        (
            {"depots": [{"name": "a", "x_m": 0, "y_m": 0}, {"name": "a", "x_m": 1, "y_m": 1}]},
            "two charging depots are named 'a'",
        ),
        ({"max_detour_m": -1}, "negative"),
    ],
)
def test_impossible_charging_settings_are_config_errors(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ChargingConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"battery_usable_kwh": 0}, "battery_usable_kwh 0.0 must be positive"),
        ({"drive_kwh_per_km": -0.2}, "must be positive"),
        ({"parked_kw": -1}, "parked_kw -1.0 is negative"),
        ({"planning_speed_mps": 0}, "planning_speed_mps 0.0 must be positive"),
        ({"initial_soc": [0.9, 0.5]}, "0 ≤ low ≤ high ≤ 1"),
        ({"reserve_kwh": 30}, "reserve_kwh 30.0 must be below the charging threshold"),
    ],
)
def test_impossible_energy_settings_are_config_errors(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EnergyConfig.model_validate(raw)


def _shift(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in projection: 1e5 m per degree around (−122.5, 37.7)."""
    return (np.asarray(lon) + 122.5) * 1e5, (np.asarray(lat) - 37.7) * 1e5


def test_a_depot_off_the_map_is_named() -> None:
    inside = DepotConfig(name="in", lon=-122.45, lat=37.75)  # (5000, 5000) m
    outside = DepotConfig(name="Far Away", lon=-122.30, lat=37.75)  # (20000, 5000) m
    xy = check_depots_on_map([inside], _shift, (0.0, 0.0, 10_000.0, 10_000.0))
    np.testing.assert_allclose(xy, [[5000.0, 5000.0]], atol=1e-6)
    with pytest.raises(ConfigError, match=r"depot 'Far Away' \(lon -122.3, lat 37.75\) is off"):
        check_depots_on_map([inside, outside], _shift, (0.0, 0.0, 10_000.0, 10_000.0))
    with pytest.raises(ConfigError, match=r"depot 'yard' .* is off the map"):
        check_depots_on_map(
            [DepotConfig(name="yard", x_m=-5.0, y_m=0.0)], _shift, (0.0, 0.0, 10.0, 10.0)
        )


def test_depots_for_a_map() -> None:
    bounds = (0.0, 0.0, 10_000.0, 10_000.0)
    # configured depots must all be on the map
    mine = ChargingConfig(depots=(DepotConfig(name="far", lon=-122.0, lat=37.75),))
    with pytest.raises(ConfigError, match="'far'"):
        depots_for_map(mine, _shift, bounds)
    # the San Francisco defaults: kept where they are on the map …
    sf_bounds = (0.0, 0.0, 11_000.0, 8_000.0)  # −122.5…−122.39, 37.70…37.78
    kept, xy = depots_for_map(ChargingConfig(), _shift, sf_bounds)
    assert [d.name for d in kept] == [d.name for d in SF_DEPOTS if d.lon and d.lon <= -122.39]
    assert len(xy) == len(kept) >= 1
    # … and spread over a map that holds none of them (the grid city)
    spread, xy = depots_for_map(ChargingConfig(), _shift, (0.0, 0.0, 3000.0, 3000.0))
    assert len(spread) == len(SF_DEPOTS)
    assert ((xy >= 0) & (xy <= 3000)).all()
    assert len({tuple(p) for p in xy}) == len(spread)
    depots = depots_from_config(spread, xy)
    assert depots[0] == Depot("depot 1", 2400.0, 1500.0, 8, 150.0)


def _plan_orders(fleet: FleetCharging, now_s: float, idle: dict[str, tuple[float, float]]) -> list:
    return [
        (o.vehicle_id, o.depot.depot_id, o.reason, o.target_kwh) for o in fleet.plan(now_s, idle)
    ]


def _reference_orders(
    fleet: FleetCharging, now_s: float, idle: dict[str, tuple[float, float]]
) -> list:
    """`plan`'s orders as its docstring has them, car by car, changing nothing: every idle
    car's reason (`reasons_to_charge`), cars that must charge first, lowest charge first;
    an opportunistic charge only where a charger is free (`choose_depot`)."""
    ids = [v for v in idle if not fleet.busy(v)]
    if not ids:
        return []
    hour = fleet.clock_hour(now_s)
    dist = fleet.distance_fn(np.array([idle[v] for v in ids]), fleet.depot_xy)
    soc = fleet.batteries.soc_kwh(ids)
    reasons = fleet.policy.reasons_to_charge(soc, hour, dist.min(axis=1))
    wanting = sorted(
        (r != ChargeReason.LOW, float(soc[i]), ids[i], i, r)
        for i, r in enumerate(reasons)
        if r is not None
    )
    free, orders = fleet._free_chargers(), []
    for _, soc_kwh, vehicle_id, i, reason in wanting:
        k = fleet.policy.choose_depot(dist[i], free, reason)
        if k is None:
            continue
        free[k] -= 1
        target = max(fleet.policy.target_kwh(hour), soc_kwh)
        orders.append((vehicle_id, fleet.depots[k].depot_id, reason, target))
    return orders


@pytest.mark.parametrize("start_hour", [3.0, 12.0])  # a low-demand hour, a busy one
@pytest.mark.parametrize("seed", range(4))
def test_plan_looks_only_at_cars_that_may_want_to_charge_with_the_same_orders(
    start_hour: float, seed: int
) -> None:
    """`plan` skips the depot distances of cars above every threshold when the lowest of
    them could reach a depot from anywhere the cars are (`CrowFlyDistance`'s bound): the
    orders are those of the same crow-fly distance given as a plain function (no bound, so
    every car is looked at), including when a car above the thresholds stands too far from
    any depot for a short ride (then the bound cannot rule it out: every car is looked at)."""
    rng = np.random.default_rng(seed)
    config = EnergyConfig(initial_soc=(0.1, 0.95))
    depots = [
        Depot(f"d{k}", float(x), float(y), 3, 150.0)
        for k, (x, y) in enumerate(rng.uniform(0, 9000, (3, 2)))
    ]
    bounded = crow_fly_distance(1.3)
    assert isinstance(bounded, CrowFlyDistance)
    fleets = [
        FleetCharging(config, depots, distance_fn=fn, start_hour=start_hour, seed=seed)
        for fn in (bounded, lambda a, b: bounded(a, b))
    ]
    far = seed % 2 == 1  # a car at 60 kWh 200 km from the depots: above the thresholds, yet low
    for fleet in fleets:
        for i in range(300):
            fleet.add_car(f"car{i:03d}")
        fleet.add_car("far", 60.0)
    idle = {
        f"car{i:03d}": (float(x), float(y))
        for i, (x, y) in enumerate(rng.uniform(0, 9000, (300, 2)))
        if i % 4
    }
    if far:
        idle["far"] = (200_000.0, 4000.0)
    fast = fleets[0]
    rows = fast._may_want(
        fast.batteries.soc_kwh(list(idle)), np.array(list(idle.values())), fast.clock_hour(0.0)
    )
    assert (rows is None) == far  # the fast path is taken, or falls back
    for now_s in (0.0, 900.0, 1800.0):
        expected = _reference_orders(fleets[0], now_s, idle)
        orders = [_plan_orders(fleet, now_s, idle) for fleet in fleets]
        assert orders[0] == orders[1] == expected
        assert orders[0] or now_s > 0.0
        if far and now_s == 0.0:
            assert ("far", ChargeReason.LOW) in [(o[0], o[2]) for o in orders[0]]
        for fleet in fleets:
            fleet.batteries.consume_many([(v, 5000.0, False, None) for v in idle], 900.0, now_s)


def test_the_crow_fly_bound_holds_for_every_point_of_its_box() -> None:
    rng = np.random.default_rng(0)
    fn = CrowFlyDistance(1.4)
    depots = rng.uniform(-5000, 5000, (4, 2))
    points = rng.uniform(-8000, 8000, (2000, 2))
    lo, hi = (
        (float(points[:, 0].min()), float(points[:, 1].min())),
        (float(points[:, 0].max()), float(points[:, 1].max())),
    )
    bound = fn.farthest_nearest_m(lo, hi, depots)
    nearest = fn(points, depots).min(axis=1)
    assert nearest.max() <= bound
    corners = np.array([[x, y] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])])
    assert bound == pytest.approx(float(fn(corners, depots).max(axis=0).min()), rel=1e-6)
