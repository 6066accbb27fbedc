"""`Store`: riders, rides, the append-only trip event log and support tickets in one database.

SQLite by default (a file, WAL mode, foreign keys on), any SQLAlchemy URL by setting
(PostgreSQL through psycopg). The schema is created or upgraded by Alembic on open.

Every write method is one transaction: it all lands or none of it does, so a process killed
at any instant leaves each batch either complete or absent. Appending events is idempotent
on (trip_id, seq), so a writer that restarts may replay its last batch safely.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, func, select, tuple_, update
from sqlalchemy import insert as generic_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import bindparam

from robotaxi.core.errors import InvalidTransitionError
from robotaxi.core.time import TimePoint
from robotaxi.core.types import RideRequest, TripEvent, TripState, VehicleEvent
from robotaxi.store.errors import StoreError
from robotaxi.store.models import (
    Base,
    RideRow,
    RiderRow,
    RunRow,
    SupportTicketRow,
    TripEventRow,
    VehicleEventRow,
)
from robotaxi.store.records import LatLon, NewRide, Ride, Rider, Run, SupportTicket, TicketStatus
from robotaxi.store.tokens import hash_token, new_token, token_matches

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
TERMINAL_STATES = tuple(s.value for s in TripState if s.terminal)
SqliteSync = Literal["FULL", "NORMAL"]

# execution option read by the SQLite "begin" hook: writers take the write lock up front
_WRITE_OPTION = "robotaxi_store_write"
_SQLITE_BUSY_TIMEOUT_S = 30.0
# backends with INSERT ... ON CONFLICT DO NOTHING; others look keys up before inserting
_NATIVE_UPSERT_DIALECTS = ("sqlite", "postgresql")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LoggedVehicleEvent:
    """A vehicle event as the log holds it, with the run that wrote it (None: no run)."""

    run_id: str | None
    event: VehicleEvent


class Store:
    """The persistence of the trip life cycle. Open with `Store.open(url)`; close when done.

    Thread-safe in the way an SQLAlchemy Engine is: each call checks out its own connection.
    """

    def __init__(self, engine: Engine, *, wall_clock: Callable[[], datetime] = _utc_now):
        """Wrap an engine whose schema is already migrated; use `Store.open` instead."""
        self._engine = engine
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        self._wall_clock = wall_clock
        self._where = _describe(engine.url)

    # --- opening and closing ----------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str | URL,
        *,
        sqlite_synchronous: SqliteSync = "FULL",
        wall_clock: Callable[[], datetime] = _utc_now,
    ) -> Store:
        """Connect to `url`, create or upgrade its schema to the newest revision, and check it.

        `sqlite_synchronous="FULL"` survives power loss as well as a killed process;
        "NORMAL" (enough for a killed process in WAL mode) suits throw-away simulation
        outputs. Raises `StoreError` when the database is unreachable or is not one.
        """
        if sqlite_synchronous not in ("FULL", "NORMAL"):
            raise StoreError(
                f"sqlite_synchronous must be 'FULL' or 'NORMAL', got {sqlite_synchronous!r}"
            )
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(
                f"cannot parse the database URL ({exc}); use e.g. sqlite:///path/db.sqlite "
                "or postgresql+psycopg://user@host/db"
            ) from exc
        engine = _create_engine(parsed, sqlite_synchronous)
        store = cls(engine, wall_clock=wall_clock)
        try:
            store.migrate()
        except BaseException:
            engine.dispose()
            raise
        return store

    @property
    def engine(self) -> Engine:
        """The underlying engine (health checks, tests); prefer the methods below."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- schema -----------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision; a no-op when it is already there."""
        config = _alembic_config(self._engine.url)
        with self._errors("upgrading the schema"), self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                # two servers starting on one empty database must not both create tables
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4120250001)")
            current = MigrationContext.configure(conn).get_current_revision()
            script = ScriptDirectory.from_config(config)
            if current is not None and current not in {r.revision for r in script.walk_revisions()}:
                raise StoreError(
                    f"{self._where} has schema revision {current}, unknown to this robotaxi "
                    "(made by a newer version?); upgrade robotaxi or use another database"
                )
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                raise StoreError(
                    f"cannot migrate {self._where}: {exc}; use a fresh database file"
                ) from exc

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None before the first migration)."""
        with self._errors("reading the schema revision"), self._engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # --- riders -----------------------------------------------------------------------

    def create_rider(self, name: str) -> tuple[Rider, str]:
        """Register a rider; returns the rider and their bearer token, shown only this once."""
        name = name.strip()
        if not name or len(name) > 200:
            raise StoreError("a rider's name must have 1 to 200 characters; choose another")
        token = new_token()
        row = RiderRow(
            id=uuid.uuid4().hex,
            name=name,
            token_hash=hash_token(token),
            created_at=self._wall_clock(),
        )
        with self._write("registering a rider") as session:
            session.add(row)
            session.flush()
            rider = _rider(row)
        return rider, token

    def rider(self, rider_id: str) -> Rider | None:
        with self._read("reading a rider") as session:
            row = session.get(RiderRow, rider_id)
            return None if row is None else _rider(row)

    def rider_by_token(self, token: str) -> Rider | None:
        """The rider whose bearer token this is, or None.

        The lookup is by the token's hash (an index cannot leak the token through timing);
        the hash found is compared again in constant time before it is trusted.
        """
        if not token:
            return None
        with self._read("checking a token") as session:
            row = session.scalars(
                select(RiderRow).where(RiderRow.token_hash == hash_token(token))
            ).first()
            if row is None or not token_matches(token, row.token_hash):
                return None
            return _rider(row)

    # --- runs -------------------------------------------------------------------------

    def start_run(self, config: Mapping[str, Any], *, run_id: str | None = None) -> Run:
        """Record the start of a simulate run (or a service start) with its config as JSON."""
        row = RunRow(
            id=run_id or uuid.uuid4().hex,
            config=dict(config),
            started_at=self._wall_clock(),
            ended_at=None,
        )
        with self._write("recording a run") as session:
            session.add(row)
            session.flush()
            return _run(row)

    def end_run(self, run_id: str) -> Run:
        with self._write("ending a run") as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise StoreError(f"no run {run_id!r} in {self._where}; start it with start_run")
            row.ended_at = self._wall_clock()
            session.flush()
            return _run(row)

    def runs(self) -> list[Run]:
        with self._read("listing runs") as session:
            rows = session.scalars(select(RunRow).order_by(RunRow.started_at, RunRow.id))
            return [_run(r) for r in rows]

    # --- rides and the event log ------------------------------------------------------

    def add_ride(
        self, ride: RideRequest | NewRide, *, registered: bool = True, run_id: str | None = None
    ) -> Ride:
        """Store one new ride (state REQUESTED); its id is the request's `request_id`.

        `registered=True` links it to the rider `request.rider_id` of the riders table
        (which must exist); simulated riders use `registered=False`. Adding the same request
        again is a no-op that returns the stored ride.
        """
        row = _ride_row(ride, registered=registered, run_id=run_id)
        with self._write("adding a ride") as session:
            _insert_ignoring_duplicates(session.connection(), RideRow, [row], ["id"])
            stored = session.get(RideRow, row["id"])
            if stored is None:  # pragma: no cover - the insert above just wrote it
                raise StoreError(f"ride {row['id']!r} vanished while being added")
            return _ride(stored)

    def record(
        self,
        *,
        rides: Sequence[RideRequest | NewRide] = (),
        events: Sequence[TripEvent] = (),
        vehicle_events: Sequence[VehicleEvent] = (),
        registered: bool = False,
        run_id: str | None = None,
    ) -> int:
        """Write new rides, trip events and vehicle events in ONE transaction; returns the
        trip events newly added.

        This is the call a simulation makes once per flush. Rides are written first, so an
        event may refer to a ride of the same batch. Rides already stored (same id), events
        already stored (same trip_id and seq, same content) and vehicle events already
        stored for `run_id` (same car, time and kind) are skipped, so a batch can be
        replayed after a crash. Each ride's state moves to its highest-seq event in the same
        transaction. Raises `StoreError`, writing nothing of the batch, when an event names
        an unknown trip or contradicts a stored event with the same seq.
        """
        if not rides and not events and not vehicle_events:
            return 0
        events = _unique_events(events)
        ride_rows = [_ride_row(r, registered=registered, run_id=run_id) for r in rides]
        event_rows = [_event_row(e) for e in events]
        vehicle_rows = [_vehicle_event_row(e, run_id) for e in vehicle_events]
        with self._write("recording trip events") as session:
            conn = session.connection()
            if ride_rows:
                _insert_ignoring_duplicates(conn, RideRow, ride_rows, ["id"])
            if vehicle_rows:
                _insert_new_vehicle_events(conn, vehicle_rows)
            if not event_rows:
                return 0
            inserted = _insert_ignoring_duplicates(
                conn, TripEventRow, event_rows, ["trip_id", "seq"]
            )
            if len(inserted) < len(event_rows):
                self._check_replayed(conn, events, inserted)
            _advance_rides(conn, events)
            return len(inserted)

    def append_events(self, events: Sequence[TripEvent]) -> int:
        """Append a batch of events in one transaction (see `record`); returns how many new."""
        return self.record(events=events)

    def close_ride(
        self,
        ride_id: str,
        *,
        reason: str,
        time: TimePoint,
        via: Sequence[TripState] = (TripState.CANCELLED,),
    ) -> list[TripEvent]:
        """End an in-flight ride with a recorded reason (e.g. after a server restart).

        Appends one event per state of `via` (the last must be terminal; e.g.
        `(PULLED_OVER, COMPLETED)` for a rider already on the way, whose life cycle does not
        allow a cancel), each at `time` with `cause=reason` and the ride's car, and stores
        the reason on the ride, all in one transaction. Whether each step is allowed is the
        trip state machine's call (fleet.trips), made by the caller. Raises
        `InvalidTransitionError` when the ride has already ended and `StoreError` when there
        is no such ride.
        """
        if not via or not via[-1].terminal:
            raise InvalidTransitionError(
                "close_ride must end in a terminal state (completed or cancelled), got "
                f"{[s.value for s in via]}"
            )
        if not reason.strip():
            raise StoreError("close_ride needs a reason that says why the ride ended")
        with self._write("closing a ride") as session:
            row = session.scalars(
                select(RideRow).where(RideRow.id == ride_id).with_for_update()
            ).first()
            if row is None:
                raise StoreError(f"no ride {ride_id!r} in {self._where}")
            if TripState(row.state).terminal:
                raise InvalidTransitionError(
                    f"ride {ride_id!r} already ended ({row.state}); nothing to close"
                )
            closing = [
                TripEvent(ride_id, row.last_seq + 1 + i, time, state, row.vehicle_id, reason)
                for i, state in enumerate(via)
            ]
            conn = session.connection()
            conn.execute(generic_insert(TripEventRow), [_event_row(e) for e in closing])
            _advance_rides(conn, closing)
            conn.execute(update(RideRow).where(RideRow.id == ride_id).values(close_reason=reason))
            return closing

    def ride(self, ride_id: str) -> Ride | None:
        with self._read("reading a ride") as session:
            row = session.get(RideRow, ride_id)
            return None if row is None else _ride(row)

    def events(self, trip_id: str) -> list[TripEvent]:
        """A trip's events in seq order, equal to the TripEvents that were appended."""
        with self._read("reading trip events") as session:
            rows = session.scalars(
                select(TripEventRow)
                .where(TripEventRow.trip_id == trip_id)
                .order_by(TripEventRow.seq)
            )
            return [_trip_event(r) for r in rows]

    def record_vehicle_events(
        self, events: Sequence[VehicleEvent], *, run_id: str | None = None
    ) -> int:
        """Append vehicle events (e.g. ambulance yields) in one transaction; returns how many."""
        if not events:
            return 0
        rows = [_vehicle_event_row(e, run_id) for e in events]
        with self._write("recording vehicle events") as session:
            session.execute(generic_insert(VehicleEventRow), rows)
        return len(rows)

    def vehicle_events(self, vehicle_id: str | None = None) -> list[VehicleEvent]:
        """Vehicle events in time order (all cars, or one)."""
        query = select(VehicleEventRow).order_by(VehicleEventRow.time_us, VehicleEventRow.id)
        if vehicle_id is not None:
            query = query.where(VehicleEventRow.vehicle_id == vehicle_id)
        with self._read("reading vehicle events") as session:
            return [
                VehicleEvent(r.vehicle_id, TimePoint(r.time_us), r.kind, r.data)
                for r in session.scalars(query)
            ]

    def vehicle_event_log(
        self, *, vehicle_id: str | None = None, limit: int | None = None
    ) -> list[LoggedVehicleEvent]:
        """The latest `limit` vehicle events of every run (all cars, or one), in the order
        they were written: newest last, and within a run in the order they happened."""
        query = select(VehicleEventRow).order_by(VehicleEventRow.id.desc()).limit(limit)
        if vehicle_id is not None:
            query = query.where(VehicleEventRow.vehicle_id == vehicle_id)
        with self._read("reading the vehicle event log") as session:
            rows = list(session.scalars(query))
        return [
            LoggedVehicleEvent(
                r.run_id, VehicleEvent(r.vehicle_id, TimePoint(r.time_us), r.kind, r.data)
            )
            for r in reversed(rows)
        ]

    def event_count(self) -> int:
        with self._read("counting trip events") as session:
            return int(session.scalar(select(func.count()).select_from(TripEventRow)) or 0)

    def rides_of_rider(self, rider_id: str, *, limit: int | None = None) -> list[Ride]:
        """A registered rider's rides, newest request first."""
        with self._read("listing a rider's rides") as session:
            query = (
                select(RideRow)
                .where(RideRow.rider_id == rider_id)
                .order_by(RideRow.requested_at_us.desc(), RideRow.id)
                .limit(limit)
            )
            return [_ride(r) for r in session.scalars(query)]

    def open_rides(self) -> list[Ride]:
        """Rides not yet completed or cancelled, oldest request first (restart recovery)."""
        with self._read("listing open rides") as session:
            query = (
                select(RideRow)
                .where(RideRow.state.not_in(TERMINAL_STATES))
                .order_by(RideRow.requested_at_us, RideRow.id)
            )
            return [_ride(r) for r in session.scalars(query)]

    # --- support tickets --------------------------------------------------------------

    def create_ticket(
        self, text: str, *, rider_id: str | None = None, ride_id: str | None = None
    ) -> SupportTicket:
        text = text.strip()
        if not text:
            raise StoreError("a support ticket needs a text that says what is wrong")
        row = SupportTicketRow(
            ride_id=ride_id,
            rider_id=rider_id,
            text=text,
            created_at=self._wall_clock(),
            status=TicketStatus.OPEN.value,
        )
        with self._write("opening a support ticket") as session:
            session.add(row)
            session.flush()
            return _ticket(row)

    def tickets(
        self, *, status: TicketStatus | None = None, rider_id: str | None = None
    ) -> list[SupportTicket]:
        """Support tickets, oldest first, optionally only one status or one rider's."""
        with self._read("listing support tickets") as session:
            query = select(SupportTicketRow).order_by(SupportTicketRow.id)
            if status is not None:
                query = query.where(SupportTicketRow.status == status.value)
            if rider_id is not None:
                query = query.where(SupportTicketRow.rider_id == rider_id)
            return [_ticket(r) for r in session.scalars(query)]

    def set_ticket_status(self, ticket_id: int, status: TicketStatus) -> SupportTicket:
        with self._write("updating a support ticket") as session:
            row = session.get(SupportTicketRow, ticket_id)
            if row is None:
                raise StoreError(f"no support ticket {ticket_id} in {self._where}")
            row.status = status.value
            session.flush()
            return _ticket(row)

    # --- internals --------------------------------------------------------------------

    def _check_replayed(
        self, conn: Connection, events: Sequence[TripEvent], inserted: set[tuple[str, int]]
    ) -> None:
        """Events skipped as duplicates must equal what is stored, or the batch is refused."""
        skipped = [e for e in events if (e.trip_id, e.seq) not in inserted]
        keys = sorted({(e.trip_id, e.seq) for e in skipped})
        stored: dict[tuple[str, int], TripEvent] = {}
        with Session(bind=conn) as session:
            for chunk_start in range(0, len(keys), 400):
                chunk = keys[chunk_start : chunk_start + 400]
                rows = session.scalars(
                    select(TripEventRow).where(
                        tuple_(TripEventRow.trip_id, TripEventRow.seq).in_(chunk)
                    )
                )
                stored.update({(r.trip_id, r.seq): _trip_event(r) for r in rows})
        for event_ in skipped:
            if stored.get((event_.trip_id, event_.seq)) != _normalised(event_):
                raise StoreError(
                    f"event seq {event_.seq} of trip {event_.trip_id!r} differs from the one "
                    "already stored; a trip's events are append-only: give it the next seq"
                )

    @contextmanager
    def _write(self, action: str) -> Iterator[Session]:
        with self._errors(action), Session(bind=self._writer) as session, session.begin():
            yield session

    @contextmanager
    def _read(self, action: str) -> Iterator[Session]:
        with self._errors(action), Session(bind=self._engine) as session:
            yield session

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn driver errors into one-line StoreErrors that say what to do."""
        try:
            yield
        except IntegrityError as exc:
            raise StoreError(
                f"{action} was refused by the schema ({_first_line(exc.orig)}); "
                "check that every id it refers to exists and that new ids are unique"
            ) from exc
        except (DatabaseError, OperationalError) as exc:
            raise _unavailable(self._where, exc) from exc
        except NoSuchModuleError as exc:
            raise StoreError(
                f"no database driver for {self._where}; install it "
                "(e.g. pip install 'psycopg[binary]' for postgresql+psycopg)"
            ) from exc
        except StatementError as exc:
            if isinstance(exc.orig, TypeError | ValueError):
                raise StoreError(
                    f"{action}: a value cannot be stored ({_first_line(exc.orig)}); "
                    "event data must be JSON (dicts, lists, str, numbers, bools, None)"
                ) from exc
            raise StoreError(f"{action} failed on {self._where}: {_first_line(exc)}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"{action} failed on {self._where}: {_first_line(exc)}") from exc
        except TypeError as exc:
            # psycopg serialises JSON itself, outside SQLAlchemy's StatementError wrapping
            if "JSON serializable" not in str(exc):
                raise
            raise StoreError(
                f"{action}: a value cannot be stored ({exc}); "
                "event data must be JSON (dicts, lists, str, numbers, bools, None)"
            ) from exc


# --- engine set-up ------------------------------------------------------------------------


def _create_engine(url: URL, sqlite_synchronous: SqliteSync) -> Engine:
    where = _describe(url)
    try:
        if url.get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})
            _configure_sqlite(engine, sqlite_synchronous)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except NoSuchModuleError as exc:
        raise StoreError(
            f"unknown database kind in {where}; use sqlite:/// or postgresql+psycopg://"
        ) from exc
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"the driver for {where} is not installed ({exc.name}); "
            "install it, e.g. pip install 'psycopg[binary]'"
        ) from exc
    return engine


def _configure_sqlite(engine: Engine, synchronous: SqliteSync) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below): pysqlite's own implicit BEGIN comes only before
        # DML, which would leave reads and DDL (migrations) outside the transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers lock up front so that a read-then-write never fails half-way with "database
        # is locked" when another writer got in between (WAL cannot upgrade a stale read).
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _alembic_config(url: URL) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # only for offline (--sql) use; online runs get the store's own connection
    config.set_main_option(
        "sqlalchemy.url", url.render_as_string(hide_password=True).replace("%", "%%")
    )
    return config


def _describe(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return f"SQLite database {url.database or ':memory:'}"
    return f"database {url.render_as_string(hide_password=True)}"


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _unavailable(where: str, exc: SQLAlchemyError) -> StoreError:
    message = _first_line(getattr(exc, "orig", None) or exc)
    if "file is not a database" in message or "malformed" in message:
        return StoreError(
            f"{where} is not a robotaxi database ({message}); "
            "point the database URL at a new file or at one robotaxi made"
        )
    if "unable to open database file" in message:
        return StoreError(
            f"cannot open {where} ({message}); check that its folder exists and is writable"
        )
    if "readonly" in message or "read-only" in message:
        return StoreError(f"{where} is read-only ({message}); make it writable or copy it")
    return StoreError(
        f"cannot use {where} ({message}); check that the database server is running and the "
        "database URL (--database-url) is right"
    )


# --- rows ↔ records ---------------------------------------------------------------------


def _insert_ignoring_duplicates(
    conn: Connection,
    model: type[RideRow] | type[TripEventRow],
    rows: list[dict[str, Any]],
    key: list[str],
) -> set[tuple[Any, ...]]:
    """INSERT rows, skipping those whose `key` is already stored; returns the inserted keys."""
    table = Base.metadata.tables[model.__tablename__]
    key_cols = [table.c[k] for k in key]
    dialect = conn.dialect.name
    if dialect in _NATIVE_UPSERT_DIALECTS:
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        statement = insert(table).on_conflict_do_nothing(index_elements=key_cols)
        result = conn.execute(statement.returning(*key_cols), rows)
        return {tuple(r) for r in result}
    # other backends: look the keys up first (no native upsert in SQLAlchemy for them)
    wanted = [tuple(row[k] for k in key) for row in rows]
    existing = {
        tuple(r) for r in conn.execute(select(*key_cols).where(tuple_(*key_cols).in_(wanted)))
    }
    fresh: dict[tuple[Any, ...], dict[str, Any]] = {}
    for k, row in zip(wanted, rows, strict=True):
        if k not in existing and k not in fresh:
            fresh[k] = row
    if fresh:
        conn.execute(generic_insert(table), list(fresh.values()))
    return set(fresh)


def _unique_events(events: Sequence[TripEvent]) -> Sequence[TripEvent]:
    """The batch without repeats of one (trip_id, seq); a repeat that differs is refused."""
    by_key: dict[tuple[str, int], TripEvent] = {}
    for e in events:
        held = by_key.setdefault((e.trip_id, e.seq), e)
        if held is not e and _normalised(held) != _normalised(e):
            raise StoreError(
                f"a batch holds two different events with seq {e.seq} for trip {e.trip_id!r}; "
                "a trip's events are append-only: give each the next seq"
            )
    return events if len(by_key) == len(events) else list(by_key.values())


def _advance_rides(conn: Connection, events: Sequence[TripEvent]) -> None:
    """Move each ride's folded state to its highest-seq event (never backwards)."""
    latest: dict[str, TripEvent] = {}
    for e in events:
        held = latest.get(e.trip_id)
        if held is None or e.seq > held.seq:
            latest[e.trip_id] = e
    table = Base.metadata.tables[RideRow.__tablename__]
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.last_seq < bindparam("b_seq"))
        .values(
            state=bindparam("b_state"),
            # an event without a vehicle (e.g. boarded) keeps the car already assigned
            vehicle_id=func.coalesce(bindparam("b_vehicle"), table.c.vehicle_id),
            updated_at_us=bindparam("b_time"),
            last_seq=bindparam("b_seq"),
        )
    )
    params = [
        {
            "b_id": e.trip_id,
            "b_seq": e.seq,
            "b_state": e.state.value,
            "b_vehicle": e.vehicle_id,
            "b_time": e.time.time_us,
        }
        for e in latest.values()
    ]
    conn.execute(statement, params)


def _ride_row(
    ride: RideRequest | NewRide, *, registered: bool, run_id: str | None
) -> dict[str, Any]:
    new = ride if isinstance(ride, NewRide) else NewRide(ride)
    request, pickup, dropoff = new.request, new.pickup_latlon, new.dropoff_latlon
    return {
        "id": request.request_id,
        "run_id": run_id,
        "rider_id": request.rider_id if registered else None,
        "request_rider_id": request.rider_id,
        "rider_name": request.rider_name,
        "requested_at_us": request.time.time_us,
        "pickup_x_m": request.pickup_x,
        "pickup_y_m": request.pickup_y,
        "dropoff_x_m": request.dropoff_x,
        "dropoff_y_m": request.dropoff_y,
        "pickup_lat": None if pickup is None else pickup.lat,
        "pickup_lon": None if pickup is None else pickup.lon,
        "dropoff_lat": None if dropoff is None else dropoff.lat,
        "dropoff_lon": None if dropoff is None else dropoff.lon,
        "patience_s": request.patience_s,
        "origin_zone": request.origin_zone,
        "destination_zone": request.destination_zone,
        "pickup_walk_m": new.pickup_walk_m,
        "dropoff_walk_m": new.dropoff_walk_m,
        "state": TripState.REQUESTED.value,
        "vehicle_id": None,
        "updated_at_us": request.time.time_us,
        "last_seq": -1,
        "close_reason": None,
    }


def _event_row(e: TripEvent) -> dict[str, Any]:
    return {
        "trip_id": e.trip_id,
        "seq": e.seq,
        "time_us": e.time.time_us,
        "state": TripState(e.state).value,
        "vehicle_id": e.vehicle_id,
        "cause": e.cause,
        "data": dict(e.data),
    }


def _vehicle_event_row(e: VehicleEvent, run_id: str | None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "vehicle_id": e.vehicle_id,
        "time_us": e.time.time_us,
        "kind": e.kind,
        "data": dict(e.data),
    }


def _insert_new_vehicle_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """INSERT vehicle events, skipping any already stored (or repeated) with the same run,
    car, time and kind: a car does one kind of thing once per instant, so that is a replay."""
    table = Base.metadata.tables[VehicleEventRow.__tablename__]
    cars_times = sorted({(r["vehicle_id"], r["time_us"]) for r in rows})
    seen: set[tuple[Any, ...]] = set()
    for chunk_start in range(0, len(cars_times), 400):
        chunk = cars_times[chunk_start : chunk_start + 400]
        stored = conn.execute(
            select(table.c.run_id, table.c.vehicle_id, table.c.time_us, table.c.kind).where(
                tuple_(table.c.vehicle_id, table.c.time_us).in_(chunk)
            )
        )
        seen.update(tuple(r) for r in stored)
    fresh = []
    for row in rows:
        key = (row["run_id"], row["vehicle_id"], row["time_us"], row["kind"])
        if key not in seen:
            seen.add(key)
            fresh.append(row)
    if fresh:
        conn.execute(generic_insert(table), fresh)


def _normalised(e: TripEvent) -> TripEvent:
    """The event as it reads back (data as a plain dict)."""
    return TripEvent(
        e.trip_id, e.seq, e.time, TripState(e.state), e.vehicle_id, e.cause, dict(e.data)
    )


def _trip_event(row: TripEventRow) -> TripEvent:
    return TripEvent(
        trip_id=row.trip_id,
        seq=row.seq,
        time=TimePoint(row.time_us),
        state=TripState(row.state),
        vehicle_id=row.vehicle_id,
        cause=row.cause,
        data=row.data,
    )


def _latlon(lat: float | None, lon: float | None) -> LatLon | None:
    return None if lat is None or lon is None else LatLon(lat, lon)


def _ride(row: RideRow) -> Ride:
    request = RideRequest(
        request_id=row.id,
        rider_id=row.request_rider_id,
        rider_name=row.rider_name,
        time=TimePoint(row.requested_at_us),
        pickup_x=row.pickup_x_m,
        pickup_y=row.pickup_y_m,
        dropoff_x=row.dropoff_x_m,
        dropoff_y=row.dropoff_y_m,
        patience_s=row.patience_s,
        origin_zone=row.origin_zone,
        destination_zone=row.destination_zone,
    )
    return Ride(
        request=request,
        state=TripState(row.state),
        vehicle_id=row.vehicle_id,
        updated_at=TimePoint(row.updated_at_us),
        last_seq=row.last_seq,
        rider_id=row.rider_id,
        run_id=row.run_id,
        pickup_latlon=_latlon(row.pickup_lat, row.pickup_lon),
        dropoff_latlon=_latlon(row.dropoff_lat, row.dropoff_lon),
        pickup_walk_m=row.pickup_walk_m,
        dropoff_walk_m=row.dropoff_walk_m,
        close_reason=row.close_reason,
    )


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _rider(row: RiderRow) -> Rider:
    return Rider(id=row.id, name=row.name, created_at=_utc(row.created_at))


def _run(row: RunRow) -> Run:
    return Run(
        id=row.id,
        config=row.config,
        started_at=_utc(row.started_at),
        ended_at=None if row.ended_at is None else _utc(row.ended_at),
    )


def _ticket(row: SupportTicketRow) -> SupportTicket:
    return SupportTicket(
        id=row.id,
        text=row.text,
        created_at=_utc(row.created_at),
        status=TicketStatus(row.status),
        ride_id=row.ride_id,
        rider_id=row.rider_id,
    )
