"""One car per curb spot (issue 13 defect: five idle cars stood within 1 m of one curb point):
cars placed at the start, parked after a ride, rebalanced or sent to charge each take a spot
no other car holds, and a car parked at a rider's spot makes room."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from fakecity import mini_service
from robotaxi.config import load_config
from robotaxi.fleet.manager import VehicleStatus
from robotaxi.sim.simulation import Callback, Simulation, Tick

CAR_LENGTH_M = 4.68


class ParkedApart(Callback):
    """Every tick: the cars standing still with no rider are a car's length apart."""

    name = "parked-apart"

    def __init__(self) -> None:
        self.checks = 0
        self.closest_m = math.inf
        self.most_parked = 0

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        assert sim.fleet is not None
        parked = [
            v
            for v in sim.fleet.vehicles.values()
            if v.stopped and v.trip_id is None and v.status == VehicleStatus.IDLE
        ]
        self.most_parked = max(self.most_parked, len(parked))
        for a, b in itertools.combinations(parked, 2):
            self.closest_m = min(self.closest_m, math.dist(a.xy, b.xy))
            self.checks += 1
        held = [v.target_curb for v in sim.fleet.vehicles.values() if v.trip_id is None]
        assert len([c for c in held if c is not None]) == len(set(held) - {None})


def test_idle_cars_never_stand_on_one_spot(tmp_path: Path) -> None:
    # a fleet far larger than the demand on a small map, rebalancing every minute toward a
    # few hot spots: the very case that stacked cars on one curb point
    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": 40, "hours": 1.0, "seed": 2, "world.step_s": 2.0,
            "demand.requests_per_hour": 40.0, "world.emergency_per_hour": 0.0,
            "dispatch.rebalance_interval_s": 60.0,
        }
    )  # fmt: skip
    check = ParkedApart()
    history = mini_service(config, tmp_path, callbacks=[check]).run()
    assert check.most_parked >= 20 and check.checks > 10_000
    assert check.closest_m >= CAR_LENGTH_M, check.closest_m
    assert sum(1 for t in history.trips.values() if t.state.value == "completed") >= 20
