"""Events files written by an older robotaxi still open, read back whole, and take new writes.

tests/data/events-v0.sqlite is the `events.sqlite` of a `robotaxi simulate` run made with the
code of commit 55abbc5 (schema revision 0002, before the store was split into repositories):

    git worktree add /tmp/store-base 55abbc5
    PYTHONPATH=/tmp/store-base/src .venv/bin/python -m robotaxi.cli.main simulate \
        --city grid --fleet 5 --hours 0.1 --seed 3 --ev-per-hour 40 --out /tmp/old-run --no-map

then `PRAGMA journal_mode=DELETE; VACUUM;` on it, so that the committed file is one
self-contained file (journal mode is a header flag: the store switches it back to WAL on
open). It holds 1 run, 12 rides (11 completed, 1 cancelled by its rider's patience), 101
trip events and 3 vehicle events (one car yielding to an ambulance). Never regenerate it:
it stands for files users already have. When the schema or the types in `core` change (a
new Alembic revision, event kinds as enums, ...), this test must keep passing on it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from robotaxi.core.time import TimePoint
from robotaxi.core.types import RideRequest, TripEvent, TripState, VehicleEvent
from robotaxi.fleet.fares import Tariff, charge
from robotaxi.service.runtime import tariff_pricer
from robotaxi.store.records import Fare, TicketAuthor, fold
from robotaxi.store.store import MIGRATIONS_DIR, Store

FIXTURE = Path(__file__).parent / "data" / "events-v0.sqlite"
FIXTURE_REVISION = "0002"


def _raw(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows read with plain sqlite3, read-only: what the file holds, independent of the store."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def old_events_file(tmp_path: Path) -> Path:
    copy = tmp_path / "events.sqlite"
    shutil.copyfile(FIXTURE, copy)
    return copy


def test_an_old_events_file_opens_and_reads_back_whole(old_events_file: Path) -> None:
    original = FIXTURE.read_bytes()
    beside_fixture = sorted(p.name for p in FIXTURE.parent.iterdir())
    assert _raw(FIXTURE, "SELECT version_num FROM alembic_version") == [(FIXTURE_REVISION,)]
    raw_rides = _raw(
        FIXTURE,
        "SELECT id, run_id, request_rider_id, rider_name, requested_at_us, pickup_x_m, "
        "pickup_y_m, dropoff_x_m, dropoff_y_m, patience_s, origin_zone, destination_zone "
        "FROM rides ORDER BY requested_at_us, id",
    )
    raw_events = _raw(
        FIXTURE,
        "SELECT trip_id, seq, time_us, state, vehicle_id, cause, data FROM trip_events "
        "ORDER BY trip_id, seq",
    )
    raw_vehicle = _raw(
        FIXTURE,
        "SELECT run_id, vehicle_id, time_us, kind, data FROM vehicle_events ORDER BY id",
    )
    ((run_id, raw_config),) = _raw(FIXTURE, "SELECT id, config FROM runs")

    with Store.open(f"sqlite:///{old_events_file}") as store:  # migrates when behind
        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        assert store.schema_revision() == head

        (run,) = store.runs()
        assert run.id == run_id and run.config == json.loads(raw_config)
        assert run.config["fleet"]["size"] == 5 and run.ended_at is not None

        with store.reading() as uow:
            rides = uow.rides.of_run(run_id)
            events = {ride.id: uow.trip_events.of_trip(ride.id) for ride in rides}
            vehicle_log = uow.vehicle_events.latest()
        # every ride, with its request as made
        assert [r.request for r in rides] == [
            RideRequest(rid, rider, name, TimePoint(t_us), px, py, dx, dy, patience, o, d)
            for (rid, _, rider, name, t_us, px, py, dx, dy, patience, o, d) in raw_rides
        ]
        assert len(rides) == 12 and all(r.run_id == run_id and r.rider_id is None for r in rides)
        # every trip event, equal field by field to the stored row
        assert [(e.trip_id, e.seq) for trip in events.values() for e in trip] == sorted(
            (row[0], row[1]) for row in raw_events
        )
        by_key = {(e.trip_id, e.seq): e for trip in events.values() for e in trip}
        for trip_id, seq, time_us, state, vehicle_id, cause, data in raw_events:
            assert by_key[trip_id, seq] == TripEvent(
                trip_id, seq, TimePoint(time_us), TripState(state), vehicle_id, cause,
                json.loads(data),
            )  # fmt: skip
        assert len(by_key) == 101
        # each trip's log is whole (seq 0..n-1, starting REQUESTED) and folds to a terminal
        # state that is the ride's stored state
        for ride in rides:
            log = events[ride.id]
            assert [e.seq for e in log] == list(range(len(log)))
            assert log[0].state is TripState.REQUESTED
            assert fold(log).terminal and ride.state is fold(log)
            assert ride.last_seq == log[-1].seq and ride.updated_at == log[-1].time
        states = sorted(ride.state.value for ride in rides)
        assert states == ["cancelled"] + ["completed"] * 11
        assert store.open_rides() == []
        # every vehicle event, with the run that wrote it
        assert [(le.run_id, le.event) for le in vehicle_log] == [
            (rid, VehicleEvent(car, TimePoint(t_us), kind, json.loads(data)))
            for (rid, car, t_us, kind, data) in raw_vehicle
        ]
        assert [le.event.kind for le in vehicle_log] == [
            "ev_in_range", "ev_pulled_over", "ev_resumed",
        ]  # fmt: skip
        assert store.vehicle_events("taxi002") == [le.event for le in vehicle_log]

        # rides ended before fares existed have none (the migration adds empty columns)
        assert all(ride.fare is None for ride in rides)

        # and the old file takes new writes next to the old rows
        new_run = store.start_run({"city": "grid"})
        request = RideRequest("new-1", "rider-x", "Ada", TimePoint(10), 0.0, 0.0, 1.0, 1.0)
        first = TripEvent("new-1", 0, TimePoint(10), TripState.REQUESTED, cause="rider")
        assert store.record(rides=[request], events=[first], run_id=new_run.id) == 1
        assert store.event_count() == 102 and len(store.runs()) == 2
        # ... fares among them: an old ride priced now by today's tariff, and refunded
        old = rides[0]
        with store.unit_of_work() as uow:
            uow.price_ended([old.id], tariff_pricer(Tariff()))
        priced = store.ride(old.id)
        assert priced is not None and priced.fare is not None
        assert priced.fare == Fare(
            charge(Tariff(), events[old.id]).cents,
            "USD",
            priced.fare.rule,  # type: ignore[union-attr]
        )
        assert priced.fare.cents >= 350 and priced.fare.rule == "metered"
        refunded = store.refund(old.id, 100, "goodwill")
        assert refunded is not None and refunded.fare is not None
        assert refunded.fare.refunded_cents == 100
        assert refunded.request == old.request and refunded.state == old.state

    assert FIXTURE.read_bytes() == original
    assert sorted(p.name for p in FIXTURE.parent.iterdir()) == beside_fixture


def test_tickets_of_a_revision_0003_database_survive_the_support_upgrade(tmp_path: Path) -> None:
    """Revision 0004 (support replies) adds to the tickets table: tickets opened before it,
    open and closed, read back whole, take replies and keep their rider and ride."""
    path = tmp_path / "service.sqlite"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:  # the schema a server of the fares release made
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO riders (id, name, token_hash, created_at) "
            "VALUES ('ada', 'Ada', 'h1', '2026-12-01 10:00:00')"
        )
        conn.execute(
            "INSERT INTO rides (id, rider_id, request_rider_id, rider_name, requested_at_us, "
            "pickup_x_m, pickup_y_m, dropoff_x_m, dropoff_y_m, patience_s, origin_zone, "
            "destination_zone, state, vehicle_id, updated_at_us, last_seq) VALUES "
            "('r1', 'ada', 'ada', 'Ada', 0, 0, 0, 1, 1, 300, 'z', 'z', 'completed', 'taxi1', 9, 3)"
        )
        conn.executemany(
            "INSERT INTO support_tickets (ride_id, rider_id, text, created_at, status) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                ("r1", "ada", "Left my bag", "2026-12-01 10:05:00", "open"),
                (None, "ada", "Seat was wet", "2026-12-01 10:06:00", "closed"),
            ],
        )
    before = _raw(
        path, "SELECT id, ride_id, rider_id, text, created_at, status FROM support_tickets"
    )

    with Store.open(f"sqlite:///{path}") as store:
        assert store.schema_revision() == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        bag, seat = store.tickets()
        assert (bag.text, bag.ride_id, bag.rider_id, bag.status.value) == (
            "Left my bag", "r1", "ada", "open",
        )  # fmt: skip
        assert (seat.text, seat.status.value, seat.rider_name) == ("Seat was wet", "closed", "Ada")
        assert bag.vehicle_id is None and bag.topic is None and bag.messages == ()
        assert bag.created_at.isoformat() == "2026-12-01T10:05:00+00:00"
        replied = store.add_ticket_message(bag.id, TicketAuthor.OPERATOR, "At the depot")
        assert replied.status.value == "answered" and replied.text == "Left my bag"
    after = _raw(
        path, "SELECT id, ride_id, rider_id, text, created_at, status FROM support_tickets"
    )
    assert [row[:5] for row in after] == [row[:5] for row in before]
