"""End to end: the robotaxi service really runs in SUMO, on the grid city and on sf-mission."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from conftest import SHARED_DATA, needs_data
from robotaxi.cli.main import main
from robotaxi.config import load_config
from robotaxi.core import TripState
from robotaxi.fleet.trips import ALLOWED
from robotaxi.metrics.fleet_kpis import fleet_kpis
from robotaxi.sim.runner import ServiceHistory, ServiceSimulation

pytestmark = pytest.mark.sumo

S = TripState
LIFE_CYCLE_PATTERN = re.compile(
    r"requested( assigned( en_route)?)* assigned en_route arrived boarded started driving"
    r" arrived_at_destination completed"
)


def _grid_config(map_cache: Path, **extra: object):
    overrides = {
        "map.city": "grid", "map.cache_dir": str(map_cache), "fleet.size": 20,
        "hours": 20 / 60, "seed": 7, "world.emergency_per_hour": 6.0,
        "demand.requests_per_hour": 120.0,
    }  # fmt: skip
    overrides.update(extra)
    return load_config(overrides=overrides)


@pytest.fixture(scope="module")
def grid_run(map_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> ServiceHistory:
    work = tmp_path_factory.mktemp("grid-run")
    return ServiceSimulation(_grid_config(map_cache), work).run()


def test_every_completed_trip_follows_the_life_cycle(grid_run: ServiceHistory) -> None:
    completed = [t for t in grid_run.trips.values() if t.state == S.COMPLETED]
    assert len(completed) >= 20
    for trip in completed:
        states = " ".join(e.state.value for e in trip.events)
        # reassignment may repeat "assigned" (and "en_route") before the car arrives
        assert LIFE_CYCLE_PATTERN.fullmatch(states), (trip.trip_id, states)
        times = [e.time.time_us for e in trip.events]
        assert times == sorted(times)
        for a, b in zip(trip.events, trip.events[1:], strict=False):
            assert b.state in ALLOWED[a.state]
        arrived = next(e for e in trip.events if e.state == S.ARRIVED)
        assert arrived.data["greeting"] == f"Hey there, {trip.request.rider_name}!"
        started = next(e for e in trip.events if e.state == S.STARTED)
        boarded = next(e for e in trip.events if e.state == S.BOARDED)
        assert 3.0 <= started.time - boarded.time <= 30.0  # buckling up, then Start ride


def test_cars_pull_over_for_ambulances_and_resume(grid_run: ServiceHistory) -> None:
    done = [y for y in grid_run.yields if y.stopped_at is not None]
    assert done, "no robotaxi yielded to an ambulance"
    for record in done:
        assert record.stopped_at is not None and record.in_range_at <= record.stopped_at
        assert record.resumed_at is not None and record.resumed_at >= record.stopped_at
    assert any(e.travel_s for e in grid_run.emergency)


def test_the_service_serves_more_than_90_percent(grid_run: ServiceHistory) -> None:
    kpis = fleet_kpis(grid_run)
    assert kpis["requests"] >= 30
    assert kpis["served_pct"] > 90.0, kpis
    for key in ("wait_p50_s", "wait_p95_s", "in_vehicle_p50_s", "deadhead_km_share"):
        assert kpis[key] is not None and kpis[key] > 0
    assert kpis["wait_p50_s"] <= kpis["wait_p95_s"]
    assert 0 < kpis["utilisation"] <= 1
    assert kpis["ev_yields"] >= 1


def test_same_seed_gives_identical_event_logs(map_cache: Path, tmp_path: Path) -> None:
    logs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        code = main([
            "simulate", "--hours", "0.15", "--fleet", "10", "--seed", "11", "--out", str(out),
            "--no-map", "--ev-per-hour", "6",
        ])  # fmt: skip
        assert code == 0
        with sqlite3.connect(out / "events.sqlite") as db:
            rows = db.execute(
                "SELECT trip_id, seq, time_us, state, vehicle_id, cause, data "
                "FROM trip_events ORDER BY trip_id, seq"
            ).fetchall()
            rows += db.execute(
                "SELECT vehicle_id, time_us, kind, data FROM vehicle_events ORDER BY id"
            ).fetchall()
        logs.append(rows)
    assert len(logs[0]) > 50
    assert logs[0] == logs[1]
    # a different seed gives a different service
    other = tmp_path / "other"
    assert main(["simulate", "--hours", "0.15", "--fleet", "10", "--seed", "12",
                 "--out", str(other), "--no-map"]) == 0  # fmt: skip
    with sqlite3.connect(other / "events.sqlite") as db:
        rows = db.execute(
            "SELECT trip_id, seq, time_us FROM trip_events ORDER BY trip_id, seq"
        ).fetchall()
    assert rows != [r[:3] for r in logs[0]]


def test_simulate_writes_kpis_event_log_and_map(tmp_path: Path) -> None:
    import json

    out = tmp_path / "demo"
    assert main(["simulate", "--hours", "0.1", "--fleet", "8", "--out", str(out)]) == 0
    kpis = json.loads((out / "kpis.json").read_text())
    required = (
        "requests", "served_pct", "cancelled_pct", "wait_p50_s", "wait_p95_s",
        "in_vehicle_p50_s", "deadhead_km_share", "ev_yields", "sim_hours", "wall_s",
    )  # fmt: skip
    assert set(required) <= kpis.keys()
    assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with sqlite3.connect(out / "events.sqlite") as db:
        rides = db.execute("SELECT COUNT(*) FROM rides").fetchone()[0]
        states = {r[0] for r in db.execute("SELECT state FROM rides")}
    assert rides == kpis["requests"] and "completed" in states


@needs_data
def test_sf_mission_with_real_demand(map_cache: Path, tmp_path: Path) -> None:
    config = load_config(overrides={
        "map.city": "sf-mission", "map.data_dir": str(SHARED_DATA), "map.cache_dir": str(map_cache),
        "fleet.size": 40, "hours": 0.15, "seed": 3, "start": "tue 08:00",
    })  # fmt: skip
    history = ServiceSimulation(config, tmp_path / "sf").run()
    kpis = fleet_kpis(history)
    assert kpis["requests"] >= 10
    assert history.demand.dropped_outside_map > 0  # most of the city is off this map
    assert all(t.request.origin_zone.startswith("taz") for t in history.trips.values())
    assert kpis["served_pct"] >= 80.0, kpis
    assert kpis["wait_p50_s"] is not None and kpis["wait_p50_s"] < 600
