"""Batteries and charging in the fleet's tick (issue 11): on a busy FakeWorld day with small
batteries, cars go to charge, queue and come back into service, and no ride is ever lost to
an empty battery because dispatch never gives a car a trip it cannot finish."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakecity import mini_service
from robotaxi.config import load_config
from robotaxi.fleet.manager import VehicleStatus
from robotaxi.metrics.fleet_kpis import fleet_kpis
from robotaxi.sim.simulation import Callback, Simulation, Tick


class Statuses(Callback):
    name = "statuses"

    def __init__(self) -> None:
        self.seen: set[VehicleStatus] = set()
        self.min_soc_kwh = float("inf")

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        assert sim.fleet is not None and sim.fleet.charging is not None
        self.seen.update(v.status for v in sim.fleet.vehicles.values())
        soc = sim.fleet.charging.batteries.soc_kwh(list(sim.fleet.vehicles))
        self.min_soc_kwh = min(self.min_soc_kwh, float(soc.min()))


def test_small_batteries_charge_and_no_ride_is_lost_to_an_empty_battery(tmp_path: Path) -> None:
    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": 6, "hours": 6.0, "seed": 5, "world.step_s": 5.0,
            "demand.requests_per_hour": 50.0, "world.emergency_per_hour": 0.0,
            # a 12 kWh battery lasts well under the day: every car must charge
            "energy.battery_usable_kwh": 12.0, "energy.reserve_kwh": 2.0,
            "energy.charging.depots": [
                {"name": "west", "x_m": 150.0, "y_m": 400.0, "chargers": 1, "charger_kw": 50.0},
                {"name": "east", "x_m": 650.0, "y_m": 400.0, "chargers": 1, "charger_kw": 50.0},
            ],
        }
    )  # fmt: skip
    statuses = Statuses()
    history = mini_service(config, tmp_path, callbacks=[statuses]).run()
    kpis = fleet_kpis(history)
    energy = kpis["energy"]
    assert energy is not None
    assert energy["rides_lost_to_empty_battery"] == 0
    assert energy["cars_ran_empty"] == 0
    assert statuses.min_soc_kwh > 0.0
    # every car charged at least once, some waited in line for the one charger per depot
    assert energy["charging_sessions"] >= config.fleet.size
    assert energy["queued_total_s"] > 0
    assert {VehicleStatus.TO_CHARGER, VehicleStatus.CHARGING} <= statuses.seen
    assert max(energy["cars_charging_by_hour"]) > 0
    # and the service went on: most riders were served
    assert kpis["served_pct"] > 70
    assert energy["kwh_per_km"] is not None and energy["kwh_per_km"] > 0.276


def test_a_tick_s_draws_as_arrays_are_each_car_s_own_draw_bit_for_bit() -> None:
    """`FleetCharging.consume_slots` (the fleet's tick: a thousand cars as array operations)
    against `consume` one car at a time: the same batteries, bit for bit; a plugged car
    draws nothing; a car that runs empty is recorded once, with the trip it was on."""
    from robotaxi.config.charging import EnergyConfig
    from robotaxi.fleet.charging import Depot, FleetCharging

    def fleet() -> FleetCharging:
        out = FleetCharging(EnergyConfig(initial_soc=(0.1, 0.1)), [Depot("d", 0.0, 0.0, 1, 150.0)])
        for k in range(30):
            out.add_car(f"c{k}")
        out.plan(0.0, {"c3": (0.0, 0.0)})
        out.arrived("c3", 0.0)  # plugged: on the grid, not its battery
        return out

    one, many = fleet(), fleet()
    rng = np.random.default_rng(11)
    ids = list(many.batteries.cars)
    slots = np.array([many.batteries.slot(v) for v in ids])
    for tick in range(1, 40):
        metres = rng.choice([0.0, -2.0, 500.0, 3000.0], size=len(ids))
        parked = rng.integers(2, size=len(ids)).astype(bool)
        trips = [f"t{tick}-{k}" if k % 3 else None for k in range(len(ids))]
        for k, vid in enumerate(ids):
            one.consume(vid, float(metres[k]), 60.0, parked=bool(parked[k]), now_s=60.0 * tick,
                        trip_id=trips[k])  # fmt: skip
        many.consume_slots(slots, metres, parked, trips.__getitem__, 60.0, 60.0 * tick)
    assert [many.batteries.cars[v] for v in ids] == [one.batteries.cars[v] for v in ids]
    assert many.batteries.cars["c3"].kwh_used == 0.0
    assert many.batteries.empties == one.batteries.empties and many.batteries.empties


def _service_record(history: object) -> list[object]:
    trips = history.trips  # type: ignore[attr-defined]
    events = [
        (tid, e.state, e.time, e.vehicle_id, e.cause, e.data)
        for tid in sorted(trips)
        for e in trips[tid].events
    ]
    return [events, history.vehicles, history.energy]  # type: ignore[attr-defined]


def test_the_battery_check_s_bounds_give_the_verdicts_of_the_ride_lengths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The battery check reads a ride's cheap bound (`route_length_upper_m`, fixed ways to
    and from the landmarks) first, the landmark bound (`route_length_bound_m`, tables per
    set of travel times) only for a pair refused on the cheap one, and the ride's length only
    for a pair refused on that: the same day as with the landmark bound from the start, or
    with no bound at all (every ride searched). Small batteries: some pairs fall back."""
    from robotaxi.fleet.manager import FleetManager
    from robotaxi.map import RoutingGraph

    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": 6, "hours": 3.0, "seed": 5, "world.step_s": 5.0,
            "demand.requests_per_hour": 50.0, "world.emergency_per_hour": 0.0,
            "energy.battery_usable_kwh": 12.0, "energy.reserve_kwh": 2.0,
        }
    )  # fmt: skip
    asked = {"tighter": 0, "length": 0}
    tighter, length = FleetManager._ride_bound_m, FleetManager._ride_length

    def counted_tighter(self: FleetManager, trip: object, noted: object) -> float:
        asked["tighter"] += 1
        return tighter(self, trip, noted)  # type: ignore[arg-type]

    def counted_length(self: FleetManager, trip: object) -> float:
        asked["length"] += 1
        return length(self, trip)  # type: ignore[arg-type]

    monkeypatch.setattr(FleetManager, "_ride_bound_m", counted_tighter)
    monkeypatch.setattr(FleetManager, "_ride_length", counted_length)
    runs = [_service_record(mini_service(config, tmp_path / "cheap").run())]
    assert asked["tighter"] > 0 and asked["length"] > 0  # both fall-backs were taken
    bound = RoutingGraph.route_length_bound_m
    monkeypatch.setattr(RoutingGraph, "route_length_upper_m", lambda self, a, b: bound(self, a, b))
    runs.append(_service_record(mini_service(config, tmp_path / "landmark").run()))
    monkeypatch.setattr(RoutingGraph, "route_length_upper_m", lambda self, a, b: float("inf"))
    monkeypatch.setattr(
        RoutingGraph, "route_length_bound_m", lambda self, a, b, weights=None: float("inf")
    )
    runs.append(_service_record(mini_service(config, tmp_path / "none").run()))
    assert runs[0] == runs[1] == runs[2]
