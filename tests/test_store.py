"""The store against real databases: an SQLite file, and PostgreSQL when it is installed.

Backend-parametrised tests take the `store_url` fixture; its "postgresql" cases start a
throw-away cluster (initdb in a temporary folder, a free port on 127.0.0.1) once per session
and skip, naming postgres, when PostgreSQL or psycopg is not installed.
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from robotaxi.core.errors import InvalidTransitionError, RobotaxiError
from robotaxi.core.time import TimePoint
from robotaxi.core.types import RideRequest, TripEvent, TripState, VehicleEvent
from robotaxi.core.yielding import VehicleEventKind
from robotaxi.store.errors import StoreError, TicketClosedError
from robotaxi.store.models import Base
from robotaxi.store.records import (
    Fare,
    LatLon,
    NewRide,
    TicketAuthor,
    TicketMessage,
    TicketStatus,
    TicketTopic,
    fold,
)
from robotaxi.store.repositories import sql as store_sql
from robotaxi.store.store import Store
from robotaxi.store.tokens import hash_token, token_matches

LIFE_CYCLE = (
    TripState.ASSIGNED,
    TripState.EN_ROUTE,
    TripState.ARRIVED,
    TripState.BOARDED,
    TripState.STARTED,
    TripState.DRIVING,
    TripState.ARRIVED_AT_DESTINATION,
    TripState.COMPLETED,
)
FIXED_WALL_CLOCK = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


# --- PostgreSQL, when installed --------------------------------------------------------


def _postgres_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A temporary PostgreSQL cluster on 127.0.0.1; yields its base URL (no database)."""
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("postgres backend: PostgreSQL is not installed (no pg_ctl on PATH)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("postgres backend: the psycopg driver is not installed")
    base = Path(tempfile.mkdtemp(prefix="robotaxi-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: run the cluster as Debian's postgres user
        shutil.chown(base, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data_dir, log = base / "data", base / "server.log"
    port = _free_port()

    def run(*args: str | Path) -> None:
        done = subprocess.run(
            [*as_postgres, *map(str, args)], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(f"{args[0]} failed: {done.stderr}{done.stdout}{server_log}")

    run(
        bindir / "initdb",
        "-D",
        data_dir,
        "-U",
        "robotaxi",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
        "--no-instructions",
    )
    # fsync off: the tests kill clients, never this server
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(bindir / "pg_ctl", "-D", data_dir, "-l", log, "-o", options, "-w", "-t", "60", "start")
    try:
        yield f"postgresql+psycopg://robotaxi@127.0.0.1:{port}"
    finally:
        run(bindir / "pg_ctl", "-D", data_dir, "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.sqlite'}"
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"{server}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url, wall_clock=lambda: FIXED_WALL_CLOCK) as opened:
        yield opened


# --- helpers ---------------------------------------------------------------------------


def request_of(ride_id: str, *, rider_id: str = "sim-rider", t_s: float = 0.0) -> RideRequest:
    return RideRequest(
        request_id=ride_id,
        rider_id=rider_id,
        rider_name="Grace",
        time=TimePoint.from_s(t_s),
        pickup_x=12.5,
        pickup_y=-40.25,
        dropoff_x=1830.0,
        dropoff_y=977.125,
        patience_s=420.0,
        origin_zone="mission",
        destination_zone="soma",
    )


def life_cycle_events(trip_id: str, *, vehicle_id: str = "taxi_7") -> list[TripEvent]:
    return [
        TripEvent(
            trip_id=trip_id,
            seq=seq,
            time=TimePoint.from_s(10.0 + 30.0 * seq),
            state=state,
            vehicle_id=None if state is TripState.BOARDED else vehicle_id,
            cause=f"step {seq}",
            data={"eta_s": 60.5 - seq, "route": ["e1", "e2"], "note": "ünïcode ✓", "n": None},
        )
        for seq, state in enumerate(LIFE_CYCLE)
    ]


# --- the fold (pure) -------------------------------------------------------------------


def test_fold_is_the_state_of_the_highest_seq_whatever_the_order() -> None:
    events = life_cycle_events("t")[:5]  # up to STARTED
    assert fold([]) is TripState.REQUESTED
    assert fold(events) is TripState.STARTED
    assert fold(reversed(events)) is TripState.STARTED
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    assert fold(shuffled) is TripState.STARTED
    assert fold(events[:2]) is TripState.EN_ROUTE


# --- events ----------------------------------------------------------------------------


def test_events_round_trip_equal(store: Store) -> None:
    store.record(rides=[request_of("t1"), request_of("t2")], events=life_cycle_events("t1"))
    late = TripEvent("t2", 0, TimePoint(10 * 3600 * 1_000_000 + 7), TripState.CANCELLED)
    store.append_events([late])
    assert store.events("t1") == life_cycle_events("t1")
    assert store.events("t2") == [late]
    assert store.events("no-such-trip") == []
    ride = store.ride("t1")
    assert ride is not None
    assert ride.request == request_of("t1")
    assert ride.rider_id is None  # simulated rider: no riders row


def test_rides_are_charged_once_in_the_transaction_of_their_end(store: Store) -> None:
    logs: list[list[TripState]] = []

    def pricer(events: Sequence[TripEvent]) -> Fare | None:
        logs.append([e.state for e in events])
        return Fare(cents=100 * len(events), currency="USD", rule="metered")

    events = life_cycle_events("t1")
    store.record(rides=[request_of("t1")], events=events[:5], pricer=pricer)
    assert logs == [] and store.ride("t1").fare is None  # type: ignore[union-attr]  # not ended
    store.record(events=events[5:], pricer=pricer)
    # priced from its whole log, the events of this batch and the stored ones alike
    assert logs == [list(LIFE_CYCLE)]
    assert store.ride("t1").fare == Fare(800, "USD", "metered", 0, None)  # type: ignore[union-attr]
    # a replayed batch, or a later pricing, never charges twice
    store.record(events=events[5:], pricer=lambda _: Fare(1, "USD", "metered"))
    assert store.ride("t1").fare == Fare(800, "USD", "metered", 0, None)  # type: ignore[union-attr]
    # no pricer: no fare (a `simulate` run's events file)
    store.record(rides=[request_of("t2")], events=life_cycle_events("t2"))
    assert store.ride("t2").fare is None  # type: ignore[union-attr]


def test_refunds_add_up_to_the_fare_at_most(store: Store) -> None:
    store.record(rides=[request_of("t1"), request_of("t2")], events=life_cycle_events("t1"))
    store.record(events=[], pricer=None)
    with store.unit_of_work() as uow:
        uow.rides.set_fares({"t1": Fare(1234, "USD", "metered")})
    assert store.refund("t1", 234, "late") == store.ride("t1")
    assert store.ride("t1").fare == Fare(1234, "USD", "metered", 234, "late")  # type: ignore[union-attr]
    assert store.refund("t1", 1001, "too much") is None  # 1000 left
    ride = store.refund("t1", 1000, "the rest")
    assert ride is not None and ride.fare is not None and ride.fare.net_cents == 0
    assert store.refund("t1", 1, "nothing left") is None
    assert store.refund("t2", 1, "not charged") is None and store.ride("t2").fare is None  # type: ignore[union-attr]
    assert store.refund("nope", 1, "no ride") is None
    with pytest.raises(StoreError, match="at least one cent"):
        store.refund("t1", 0, "zero")
    with pytest.raises(StoreError, match="negative"), store.unit_of_work() as uow:
        uow.rides.set_fares({"t2": Fare(-1, "USD", "metered")})


@pytest.mark.parametrize("upsert", ["native", "lookup"])
def test_reappend_is_idempotent(store: Store, upsert: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if upsert == "lookup":  # the path for backends without ON CONFLICT
        monkeypatch.setattr(store_sql, "NATIVE_UPSERT_DIALECTS", ())
    store.add_ride(request_of("t1"), registered=False)
    events = life_cycle_events("t1")
    assert store.append_events(events[:4]) == 4
    assert store.append_events(events[:4]) == 0
    # a replay that overlaps: only the new tail is added
    assert store.append_events(events[2:6]) == 2
    assert store.append_events(events) == 2
    assert store.event_count() == len(events)
    assert store.events("t1") == events
    # a ride recorded twice is one ride
    store.record(rides=[request_of("t1")])
    assert len(store.open_rides()) + 1 == 1  # t1 completed, nothing else exists


@pytest.mark.parametrize("upsert", ["native", "lookup"])
def test_contradicting_replay_is_refused_and_writes_nothing(
    store: Store, upsert: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if upsert == "lookup":
        monkeypatch.setattr(store_sql, "NATIVE_UPSERT_DIALECTS", ())
    store.add_ride(request_of("t1"), registered=False)
    events = life_cycle_events("t1")
    store.append_events(events[:3])
    forged = TripEvent("t1", 1, events[1].time, TripState.CANCELLED, "taxi_7", "forged")
    with pytest.raises(StoreError, match="append-only"):
        store.append_events([events[3], forged])
    twice_in_one_batch = [events[3], events[4], TripEvent("t1", 4, TimePoint(0), TripState.DRIVING)]
    with pytest.raises(StoreError, match="append-only"):
        store.append_events(twice_in_one_batch)
    assert store.events("t1") == events[:3]
    ride = store.ride("t1")
    assert ride is not None and ride.state is TripState.ARRIVED and ride.last_seq == 2


def test_ride_state_is_the_fold_of_its_events(store: Store) -> None:
    """Batches arrive shuffled and replayed; the stored state always equals the fold."""
    rng = random.Random(11)
    trips = [f"t{i}" for i in range(12)]
    store.record(rides=[request_of(t, t_s=i) for i, t in enumerate(trips)])
    all_events = []
    for trip in trips:
        # each trip reaches a different point of its life cycle
        all_events += life_cycle_events(trip)[: rng.randint(1, len(LIFE_CYCLE))]
    rng.shuffle(all_events)
    for start in range(0, len(all_events), 7):
        batch = all_events[start : start + 7]
        store.append_events(batch)
        store.append_events(batch[: rng.randint(0, len(batch))])  # a replay
        for trip in trips:
            ride = store.ride(trip)
            logged = store.events(trip)
            assert ride is not None
            assert ride.state is fold(logged)
            assert ride.last_seq == max((e.seq for e in logged), default=-1)
    for trip in trips:
        ride = store.ride(trip)
        assert ride is not None
        expected = life_cycle_events(trip)[ride.last_seq]
        assert ride.state is expected.state
        assert ride.updated_at == expected.time
        assert ride.vehicle_id == "taxi_7"  # the BOARDED event has none: the car is kept


def test_a_failing_batch_leaves_nothing_of_it(store: Store) -> None:
    store.record(rides=[request_of("t1")], events=life_cycle_events("t1")[:2])
    good = life_cycle_events("t1")[2:6] + life_cycle_events("t2")[:3]
    unknown_trip = TripEvent("ghost", 0, TimePoint(5), TripState.ASSIGNED, "taxi_1")
    with pytest.raises(StoreError, match="schema"):
        store.record(rides=[request_of("t2")], events=[*good, unknown_trip])
    not_json = TripEvent("t1", 6, TimePoint(5), TripState.ARRIVED, data={"x": object()})
    with pytest.raises(StoreError, match="JSON"):
        store.record(rides=[request_of("t2")], events=[*good[:-1], not_json])
    assert store.ride("t2") is None
    assert store.events("t2") == []
    assert store.events("t1") == life_cycle_events("t1")[:2]
    ride = store.ride("t1")
    assert ride is not None and ride.state is TripState.EN_ROUTE
    # the same batch without the bad event goes through whole
    assert store.record(rides=[request_of("t2")], events=good) == len(good)


def test_threads_writing_at_once_all_land(store: Store) -> None:
    """One Store shared by threads (as a web server does): no batch lost, none failed."""
    trips = [f"w{k}-{i}" for k in range(4) for i in range(10)]
    store.record(rides=[request_of(t) for t in trips])

    def writer(k: int) -> None:
        for i in range(10):
            store.append_events(life_cycle_events(f"w{k}-{i}")[:4])
            store.append_events(life_cycle_events(f"w{k}-{i}")[4:])

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert store.event_count() == len(trips) * len(LIFE_CYCLE)
    assert store.open_rides() == []
    assert all(store.events(t) == life_cycle_events(t) for t in trips)


# --- units of work -----------------------------------------------------------------------


def test_a_unit_of_work_commits_all_its_repositories_together(store: Store) -> None:
    with store.unit_of_work() as uow:
        ada, _ = uow.riders.create("Ada")
        run = uow.runs.start({"city": "grid"}, run_id="run-1")
        uow.rides.add(request_of("t1", rider_id=ada.id), registered=True, run_id=run.id)
        uow.trip_events.append(life_cycle_events("t1")[:2])
        uow.rides.advance(life_cycle_events("t1")[:2])
        # the unit sees its own writes before they are committed
        ride = uow.rides.get("t1")
        assert ride is not None and ride.state is TripState.EN_ROUTE
        ticket = uow.tickets.create("Left my bag", rider_id=ada.id, ride_id="t1")
        uow.vehicle_events.append(
            [VehicleEvent("taxi_7", TimePoint(5), VehicleEventKind.EV_IN_RANGE, {"ev": "a0"})],
            run_id=run.id,
        )
    assert store.rider(ada.id) == ada and [r.id for r in store.runs()] == ["run-1"]
    assert [r.id for r in store.rides_of_rider(ada.id)] == ["t1"]
    assert store.events("t1") == life_cycle_events("t1")[:2]
    assert store.tickets() == [ticket]
    with store.reading() as uow:
        assert [r.id for r in uow.rides.of_run("run-1")] == ["t1"]
        assert [e.event.kind for e in uow.vehicle_events.latest()] == ["ev_in_range"]


def test_a_unit_of_work_that_raises_leaves_nothing(store: Store) -> None:
    class Crash(Exception):
        pass

    with pytest.raises(Crash), store.unit_of_work() as uow:
        ada, _ = uow.riders.create("Ada")
        uow.record(rides=[request_of("t1")], events=life_cycle_events("t1")[:3])
        uow.tickets.create("lost", rider_id=ada.id)
        raise Crash
    # a StoreError half-way (an event of an unknown trip) undoes what came before it too
    with pytest.raises(StoreError, match="schema"), store.unit_of_work() as uow:
        uow.record(rides=[request_of("t2")], events=life_cycle_events("t2")[:2])
        uow.record(events=life_cycle_events("ghost")[:1])
    assert store.ride("t1") is None and store.ride("t2") is None
    assert store.event_count() == 0 and store.tickets() == []
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM riders")).scalar() == 0


def test_a_ride_closed_in_the_unit_that_logged_its_first_event(store: Store) -> None:
    """Restart recovery's unit: a ride with no event gets REQUESTED and its closing at once."""
    store.add_ride(request_of("t1"), registered=False)
    with store.unit_of_work() as uow:
        uow.record(events=[TripEvent("t1", 0, TimePoint(0), TripState.REQUESTED, cause="rider")])
        closing = uow.close_ride("t1", reason="restarted", time=TimePoint(7))
    assert [e.seq for e in closing] == [1]
    assert [e.state for e in store.events("t1")] == [TripState.REQUESTED, TripState.CANCELLED]
    ride = store.ride("t1")
    assert ride is not None and ride.state is TripState.CANCELLED and ride.last_seq == 1


def test_reading_refuses_writes(store: Store) -> None:
    with store.reading() as uow:
        with pytest.raises(StoreError, match="unit_of_work"):
            uow.riders.create("Ada")
        with pytest.raises(StoreError, match="unit_of_work"):
            uow.record(rides=[request_of("t1")])
        assert uow.rides.open() == []
    assert store.ride("t1") is None


# --- riders and tokens -----------------------------------------------------------------


def test_token_hash_is_sha256() -> None:
    # FIPS 180-2 test vector
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert token_matches("abc", hash_token("abc"))
    assert not token_matches("abd", hash_token("abc"))


def test_tokens_are_stored_only_as_hashes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'riders.sqlite'}"
    with Store.open(url) as store:
        riders = [store.create_rider(name) for name in ("Ada", "Linus", "Grace")]
        tokens = [token for _, token in riders]
        assert len(set(tokens)) == 3 and all(len(t) >= 43 for t in tokens)
        for rider, token in riders:
            assert store.rider_by_token(token) == rider
            assert store.rider(rider.id) == rider
        assert store.rider_by_token(tokens[0][:-1] + "x") is None
        assert store.rider_by_token("") is None
        files_open = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    files_closed = (tmp_path / "riders.sqlite").read_bytes()
    for blob in (files_open, files_closed):
        assert b"Linus" in blob  # the grep does find what is stored...
        assert hash_token(tokens[1]).encode() in blob
        for token in tokens:  # ...and no token is among it
            assert token.encode() not in blob


def test_rides_of_a_rider(store: Store) -> None:
    ada, _ = store.create_rider("Ada")
    bob, _ = store.create_rider("Bob")
    for i in range(5):
        store.add_ride(request_of(f"a{i}", rider_id=ada.id, t_s=100.0 * i))
    store.add_ride(
        NewRide(
            request_of("b0", rider_id=bob.id),
            pickup_walk_m=42.5,
            dropoff_walk_m=7.25,
            pickup_latlon=LatLon(37.7749, -122.4194),
            dropoff_latlon=LatLon(37.8024, -122.4058),
        )
    )
    store.add_ride(request_of("sim0", rider_id=ada.id), registered=False)
    assert [r.id for r in store.rides_of_rider(ada.id)] == ["a4", "a3", "a2", "a1", "a0"]
    assert [r.id for r in store.rides_of_rider(ada.id, limit=2)] == ["a4", "a3"]
    (bobs,) = store.rides_of_rider(bob.id)
    assert bobs.pickup_latlon == LatLon(37.7749, -122.4194)
    assert bobs.dropoff_latlon == LatLon(37.8024, -122.4058)
    assert bobs.pickup_walk_m == 42.5 and bobs.dropoff_walk_m == 7.25
    assert bobs.rider_id == bob.id and bobs.request == request_of("b0", rider_id=bob.id)
    assert store.rides_of_rider("nobody") == []
    with pytest.raises(StoreError):
        store.add_ride(request_of("x", rider_id="not-registered"))
    assert store.ride("x") is None


# --- restart recovery ------------------------------------------------------------------


def test_open_rides_and_closing_them(store: Store) -> None:
    for i, trip in enumerate(["done", "waiting", "riding", "gone"]):
        store.add_ride(request_of(trip, t_s=i), registered=False)
    store.append_events(life_cycle_events("done"))
    store.append_events(life_cycle_events("riding")[:6])
    store.append_events([TripEvent("gone", 0, TimePoint(3), TripState.CANCELLED, cause="rider")])
    assert [r.id for r in store.open_rides()] == ["waiting", "riding"]
    closing = store.close_ride(
        "riding",
        reason="service restarted mid-ride",
        time=TimePoint(999),
        via=(TripState.PULLED_OVER, TripState.COMPLETED),
    )
    assert closing == [
        TripEvent("riding", seq, TimePoint(999), state, "taxi_7", "service restarted mid-ride")
        for seq, state in ((6, TripState.PULLED_OVER), (7, TripState.COMPLETED))
    ]
    ride = store.ride("riding")
    assert ride is not None
    assert ride.state is TripState.COMPLETED and ride.close_reason == "service restarted mid-ride"
    assert store.events("riding") == life_cycle_events("riding")[:6] + closing
    assert [r.id for r in store.open_rides()] == ["waiting"]
    (cancel,) = store.close_ride("waiting", reason="restarted before pickup", time=TimePoint(5))
    assert cancel == TripEvent("waiting", 0, TimePoint(5), TripState.CANCELLED, None, cancel.cause)
    assert store.open_rides() == []
    with pytest.raises(InvalidTransitionError):
        store.close_ride("riding", reason="again", time=TimePoint(1000))
    store.add_ride(request_of("new"), registered=False)
    with pytest.raises(InvalidTransitionError):
        store.close_ride("new", reason="x", time=TimePoint(1), via=(TripState.PULLED_OVER,))
    with pytest.raises(StoreError):
        store.close_ride("nope", reason="x", time=TimePoint(1))
    assert store.events("new") == []


CHILD = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy import event
    from robotaxi.core.time import TimePoint
    from robotaxi.core.types import RideRequest, TripEvent, TripState
    from robotaxi.store.store import Store

    url, pause_at = sys.argv[1], int(sys.argv[2])
    store = Store.open(url)
    batch = -1

    def pause(conn, cursor, statement, params, context, executemany):
        if batch == pause_at and statement.startswith("INSERT INTO trip_events"):
            print(f"inside {batch}", flush=True)
            time.sleep(60)

    event.listen(store.engine, "after_cursor_execute", pause)
    for batch in range(10_000):
        rides = [
            RideRequest(f"r{batch}-{i}", f"p{i}", "Sim", TimePoint(batch), 0.0, 0.0, 1.0, 1.0)
            for i in range(5)
        ]
        events = [
            TripEvent(f"r{b}-{i}", seq, TimePoint(batch * 10 + seq), state, "v1")
            for b, seqs in ((batch, (0, 1)), (batch - 1, (2, 3)))
            if b >= 0
            for i in range(5)
            for seq, state in zip(seqs, [TripState.ASSIGNED, TripState.EN_ROUTE]
                                  if seqs[0] == 0 else [TripState.ARRIVED, TripState.BOARDED])
        ]
        store.record(rides=rides, events=events)
        print(f"committed {batch}", flush=True)
    """
)


@pytest.mark.parametrize("kill_point", ["mid-transaction", "streaming"])
def test_sigkill_mid_stream_loses_no_committed_batch(store_url: str, kill_point: str) -> None:
    """A writer killed at any instant: every batch it saw committed is there whole, once."""
    Store.open(store_url).close()  # migrate first, so the child starts writing at once
    pause_at = 6 if kill_point == "mid-transaction" else -1
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, store_url, str(pause_at)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    committed = -1
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("committed"):
                committed = int(line.split()[1])
            if line.startswith("inside") or committed >= 8:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, stderr
    assert committed >= 5, stderr

    with Store.open(store_url) as store:
        rides = {
            f"r{b}-{i}": store.ride(f"r{b}-{i}") for b in range(committed + 50) for i in range(5)
        }
        present_batches = {int(k[1:].split("-")[0]) for k, v in rides.items() if v is not None}
        last = max(present_batches)
        # every batch the writer reported is there; at most one more (committed, not yet
        # reported when killed); none at all after the one it was writing
        assert present_batches == set(range(last + 1))
        assert committed <= last <= committed + 1
        if kill_point == "mid-transaction":
            assert last == committed == pause_at - 1
        for b in range(last + 1):
            # the newest batch's rides stop at EN_ROUTE; older ones were advanced to BOARDED
            want = [TripState.ASSIGNED, TripState.EN_ROUTE]
            if b < last:
                want += [TripState.ARRIVED, TripState.BOARDED]
            for i in range(5):
                trip = f"r{b}-{i}"
                assert [e.state for e in store.events(trip)] == want
                assert [e.seq for e in store.events(trip)] == list(range(len(want)))
                ride = rides[trip]
                assert ride is not None and ride.state is want[-1]
        assert store.event_count() == 5 * (4 * last + 2)
        assert len(store.open_rides()) == 5 * (last + 1)


# --- schema and opening ----------------------------------------------------------------


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from robotaxi.store.store import MIGRATIONS_DIR

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def test_migrations_twice_are_a_no_op_and_match_the_models(store_url: str) -> None:
    with Store.open(store_url) as store:
        store.record(rides=[request_of("t1")], events=life_cycle_events("t1")[:3])
        tables = set(inspect(store.engine).get_table_names())
        store.migrate()
        assert store.schema_revision() == _head_revision()
    with Store.open(store_url) as store:
        store.migrate()
        assert store.schema_revision() == _head_revision()
        assert set(inspect(store.engine).get_table_names()) == tables
        assert tables == {
            "alembic_version",
            "riders",
            "runs",
            "rides",
            "trip_events",
            "support_tickets",
            "support_messages",
            "vehicle_events",
            "ride_shares",
        }
        assert store.events("t1") == life_cycle_events("t1")[:3]
        with store.engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            assert versions == [(_head_revision(),)]
            # the hand-written revision creates exactly what the ORM models describe
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_a_database_from_a_newer_robotaxi_is_refused(store_url: str) -> None:
    with Store.open(store_url) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="revision 9999, unknown to this robotaxi"):
        Store.open(store_url)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'x.sqlite'}") as store, store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    junk = tmp_path / "notes.sqlite"
    junk.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(StoreError, match="not a robotaxi database") as caught:
        Store.open(f"sqlite:///{junk}")
    assert isinstance(caught.value, RobotaxiError)
    assert "\n" not in str(caught.value)
    assert junk.read_bytes() == b"these are my notes, not a database\n" * 200
    with pytest.raises(StoreError, match="folder exists"):
        Store.open(f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}")
    with pytest.raises(StoreError, match="parse"):
        Store.open("not a url")


def test_an_unreachable_server_is_a_store_error() -> None:
    pytest.importorskip("psycopg", reason="postgres backend: the psycopg driver is not installed")
    port = _free_port()  # nothing listens there once the probe socket is closed
    with pytest.raises(StoreError, match="server is running"):
        Store.open(f"postgresql+psycopg://robotaxi@127.0.0.1:{port}/robotaxi")


# --- runs and support tickets ------------------------------------------------------------


def test_runs_and_support_tickets(store: Store) -> None:
    config = {"city": "grid", "fleet": 30, "seed": 7, "speeds_mps": [8.5, 13.9]}
    run = store.start_run(config, run_id="run-1")
    store.record(rides=[request_of("t1")], run_id=run.id)
    ended = store.end_run("run-1")
    assert store.runs() == [ended]
    assert ended.config == config and ended.started_at == FIXED_WALL_CLOCK
    ride = store.ride("t1")
    assert ride is not None and ride.run_id == "run-1"

    ada, _ = store.create_rider("Ada")
    store.add_ride(request_of("a1", rider_id=ada.id))
    first = store.create_ticket("  The car smells of smoke ", rider_id=ada.id, ride_id="a1")
    second = store.create_ticket("Door would not open")
    assert first.text == "The car smells of smoke" and first.status is TicketStatus.OPEN
    assert store.tickets() == [first, second]
    assert store.tickets(rider_id=ada.id) == [first]
    closed = store.set_ticket_status(first.id, TicketStatus.CLOSED)
    assert store.tickets(status=TicketStatus.OPEN) == [second]
    assert store.tickets(status=TicketStatus.CLOSED) == [closed]
    with pytest.raises(StoreError):
        store.create_ticket("   ")
    with pytest.raises(StoreError):
        store.create_ticket("lost", ride_id="no-such-ride")


def test_support_ticket_life_cycle_is_stored(store: Store) -> None:
    ada, _ = store.create_rider("Ada")
    bob, _ = store.create_rider("Bob")
    store.add_ride(request_of("a1", rider_id=ada.id))
    opened = store.create_ticket(
        "Left my bag",
        rider_id=ada.id,
        ride_id="a1",
        vehicle_id="taxi_3",
        topic=TicketTopic.LOST_ITEM,
    )
    store.create_ticket("Wet seat", rider_id=bob.id)
    assert (opened.vehicle_id, opened.topic, opened.rider_name) == (
        "taxi_3",
        TicketTopic.LOST_ITEM,
        "Ada",
    )
    assert opened.messages == () and opened.updated_at is None

    answered = store.add_ticket_message(opened.id, TicketAuthor.OPERATOR, " At the depot ")
    assert answered.status is TicketStatus.ANSWERED
    (reply,) = answered.messages
    assert reply == TicketMessage(
        TicketAuthor.OPERATOR, "At the depot", TicketStatus.ANSWERED, FIXED_WALL_CLOCK
    )
    assert answered.updated_at == FIXED_WALL_CLOCK
    reopened = store.add_ticket_message(opened.id, TicketAuthor.RIDER, "Thanks, when?")
    assert reopened.status is TicketStatus.OPEN
    closed = store.set_ticket_status(opened.id, TicketStatus.CLOSED, by=TicketAuthor.RIDER)
    assert store.set_ticket_status(opened.id, TicketStatus.CLOSED) == closed  # no second entry
    with pytest.raises(TicketClosedError, match="closed"):
        store.add_ticket_message(opened.id, TicketAuthor.OPERATOR, "Tomorrow")
    assert store.ticket(opened.id) == closed  # the refused reply left nothing
    assert [(m.author, m.text, m.status) for m in closed.messages] == [
        (TicketAuthor.OPERATOR, "At the depot", TicketStatus.ANSWERED),
        (TicketAuthor.RIDER, "Thanks, when?", TicketStatus.OPEN),
        (TicketAuthor.RIDER, None, TicketStatus.CLOSED),
    ]
    # a rider's follow-up reopens even a closed ticket
    again = store.add_ticket_message(opened.id, TicketAuthor.RIDER, "Still not back")
    assert again.status is TicketStatus.OPEN and len(again.messages) == 4
    assert [t.id for t in store.tickets(ride_id="a1")] == [opened.id]
    assert [t.rider_name for t in store.tickets()] == ["Ada", "Bob"]
    assert [t.rider_name for t in store.tickets(limit=1)] == ["Bob"]  # the latest
    assert store.ticket(999_999) is None
    with pytest.raises(StoreError, match="no support ticket"):
        store.add_ticket_message(999_999, TicketAuthor.OPERATOR, "hello")
    with pytest.raises(StoreError, match="needs a text"):
        store.add_ticket_message(opened.id, TicketAuthor.OPERATOR, "   ")


def test_same_stream_gives_the_same_database(tmp_path: Path) -> None:
    def write(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        rng = random.Random(42)
        with Store.open(f"sqlite:///{path}", wall_clock=lambda: FIXED_WALL_CLOCK) as store:
            trips = [f"t{i}" for i in range(20)]
            events = [e for t in trips for e in life_cycle_events(t)[: rng.randint(1, 8)]]
            rng.shuffle(events)
            store.record(rides=[request_of(t, t_s=i) for i, t in enumerate(trips)])
            for start in range(0, len(events), 9):
                store.append_events(events[start : start + 9])
            with store.engine.connect() as conn:
                rides = conn.execute(text("SELECT * FROM rides ORDER BY id")).all()
                logged = conn.execute(text("SELECT * FROM trip_events ORDER BY id")).all()
        return [tuple(r) for r in rides], [tuple(r) for r in logged]

    first, second = write(tmp_path / "a.sqlite"), write(tmp_path / "b.sqlite")
    assert first == second
    assert len(first[0]) == 20 and len(first[1]) > 20


def test_vehicle_events_round_trip(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.sqlite'}"
    K = VehicleEventKind
    events = [
        VehicleEvent("taxi1", TimePoint.from_s(10), K.EV_IN_RANGE, {"ev": "ambulance0"}),
        VehicleEvent("taxi2", TimePoint.from_s(11), K.EV_IN_RANGE, {"ev": "ambulance0"}),
        VehicleEvent("taxi1", TimePoint.from_s(14), K.EV_PULLED_OVER, {"ev": "ambulance0"}),
        VehicleEvent("taxi1", TimePoint.from_s(20), K.EV_RESUMED, {"ev": "ambulance0"}),
    ]
    with Store.open(url) as store:
        run = store.start_run({"city": "grid"})
        assert store.record_vehicle_events(events, run_id=run.id) == 4
    with Store.open(url) as store:  # durable across a reopen
        assert store.vehicle_events() == events
        assert [e.kind for e in store.vehicle_events("taxi1")] == [
            "ev_in_range", "ev_pulled_over", "ev_resumed",
        ]  # fmt: skip
