"""Retiring ended trips (`FleetManager.retire_ended`): a service that runs for days holds its
open trips and a few numbers per ended one, and its KPIs do not change (issue 10)."""

from __future__ import annotations

from pathlib import Path

from fakecity import mini_service
from robotaxi.config import load_config
from robotaxi.fleet.kpis import trip_kpis
from robotaxi.fleet.manager import FleetManager
from robotaxi.sim.simulation import Callback, Simulation, Tick

KEEP_S = 300.0


class Retire(Callback):
    """Retires ended trips every tick and notes how many the fleet holds."""

    name = "retire"

    def __init__(self) -> None:
        self.held: list[int] = []
        self.fleet: FleetManager | None = None
        self.last_s = 0.0

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        assert sim.fleet is not None
        self.fleet = sim.fleet
        sim.fleet.retire_ended(tick.time_s, KEEP_S)
        self.held.append(len(sim.fleet.trips))
        self.last_s = tick.time_s


def _run(tmp_path: Path, callbacks: list[Callback]):
    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": 8, "hours": 1.5, "seed": 11,
            "demand.requests_per_hour": 150.0, "world.step_s": 2.0,
            "world.emergency_per_hour": 2.0,
        }
    )  # fmt: skip
    return mini_service(config, tmp_path, callbacks=callbacks).run()


def test_retired_trips_leave_memory_and_the_kpis_unchanged(tmp_path: Path) -> None:
    whole = _run(tmp_path / "a", [])
    retire = Retire()
    _run(tmp_path / "b", [retire])
    fleet = retire.fleet
    assert fleet is not None
    # the same run: every trip is either held or retired, and the KPIs are the same figures
    assert len(fleet.retired) + len(fleet.trips) == len(whole.trips) > 200
    assert len(fleet.retired) > 0.8 * len(whole.trips)
    assert trip_kpis(fleet.trip_records()) == trip_kpis(whole.trips.values())
    # memory follows the open trips and those ended in the last KEEP_S: after the first
    # half hour, what the fleet holds stays flat while the run's total keeps growing
    half_hour = 900  # ticks at a 2 s step
    first, later = max(retire.held[:half_hour]), max(retire.held[half_hour:])
    assert later <= 1.5 * first + 10
    assert later < 0.5 * len(whole.trips)
    # nothing held ended longer than KEEP_S ago; the records hold what the KPIs read
    for trip in fleet.trips.values():
        if trip.state.terminal:
            assert retire.last_s - trip.events[-1].time.time_s <= KEEP_S
    records = fleet.retired
    assert trip_kpis(records) == trip_kpis(
        t for t in whole.trips.values() if t.trip_id not in fleet.trips
    )
    done = [r for r in records if r.wait_s is not None and r.in_vehicle_s is not None]
    assert done and all(r.wait_s >= 0 and r.in_vehicle_s > 0 for r in done)
    assert all(r.cancel_cause for r in records if r.state.value == "cancelled")
