"""`Store`: riders, rides, the append-only trip event log and support tickets in one database.

SQLite by default (a file, WAL mode, foreign keys on), any SQLAlchemy URL by setting
(PostgreSQL through psycopg). The schema is created or upgraded by Alembic on open.

The store owns the engine and hands out units of work (`unit_of_work`, `reading`): one
transaction shared by a repository per aggregate (riders, runs, rides, trip events, vehicle
events, support tickets). What is done in one unit lands together or not at all, so a
process killed at any instant leaves each unit either complete or absent. Appending events
is idempotent on (trip_id, seq), so a writer that restarts may replay its last batch safely.
The one-call methods below each run one repository call in a unit of work of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Self

from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from robotaxi.core.time import TimePoint
from robotaxi.core.types import RideRequest, TripEvent, TripState, VehicleEvent
from robotaxi.store import engine as _engine
from robotaxi.store.engine import (
    MIGRATIONS_DIR,
    WRITE_OPTION,
    SqliteSync,
    create_store_engine,
    describe,
    translate_errors,
)
from robotaxi.store.errors import StoreError
from robotaxi.store.records import (
    LoggedVehicleEvent,
    NewRide,
    Pricer,
    Ride,
    Rider,
    Run,
    SupportTicket,
    TicketAuthor,
    TicketStatus,
    TicketTopic,
)
from robotaxi.store.scope import Scope
from robotaxi.store.unit_of_work import UnitOfWork

__all__ = ["MIGRATIONS_DIR", "LoggedVehicleEvent", "SqliteSync", "Store", "UnitOfWork"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """The persistence of the trip life cycle. Open with `Store.open(url)`; close when done.

    Thread-safe in the way an SQLAlchemy Engine is: each unit of work (and so each one-call
    method) checks out its own connection. A unit of work itself belongs to one thread.
    """

    def __init__(self, engine: Engine, *, wall_clock: Callable[[], datetime] = _utc_now):
        """Wrap an engine whose schema is already migrated; use `Store.open` instead."""
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._wall_clock = wall_clock
        self._where = describe(engine.url)

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
        engine = create_store_engine(parsed, sqlite_synchronous)
        store = cls(engine, wall_clock=wall_clock)
        try:
            store.migrate()
        except BaseException:
            engine.dispose()
            raise
        return store

    @property
    def engine(self) -> Engine:
        """The underlying engine (health checks, tests); prefer units of work."""
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
        _engine.migrate(self._writer)

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None before the first migration)."""
        return _engine.schema_revision(self._engine)

    # --- units of work ----------------------------------------------------------------

    @contextmanager
    def unit_of_work(self, action: str = "writing to the store") -> Iterator[UnitOfWork]:
        """One write transaction over every repository: committed when the block ends,
        rolled back when it raises. On SQLite it takes the write lock at once.

        `action` names the work in the StoreError raised if the commit itself fails.
        """
        with (
            translate_errors(self._where, action),
            Session(bind=self._writer) as session,
            session.begin(),
        ):
            yield UnitOfWork(Scope(session, True, self._where, self._wall_clock))

    @contextmanager
    def reading(self, action: str = "reading the store") -> Iterator[UnitOfWork]:
        """One read-only transaction over every repository (writes raise StoreError)."""
        with translate_errors(self._where, action), Session(bind=self._engine) as session:
            yield UnitOfWork(Scope(session, False, self._where, self._wall_clock))

    # --- writes that span aggregates (see UnitOfWork) ---------------------------------

    def record(
        self,
        *,
        rides: Sequence[RideRequest | NewRide] = (),
        events: Sequence[TripEvent] = (),
        vehicle_events: Sequence[VehicleEvent] = (),
        registered: bool = False,
        run_id: str | None = None,
        pricer: Pricer | None = None,
    ) -> int:
        """Write new rides, trip events and vehicle events in ONE transaction; returns the
        trip events newly added. This is the call a simulation makes once per flush; see
        `UnitOfWork.record` for what is skipped as a replay and what is refused, and for
        how rides that end in the batch are charged by `pricer`."""
        if not rides and not events and not vehicle_events:
            return 0
        with self.unit_of_work("recording trip events") as uow:
            return uow.record(
                rides=rides,
                events=events,
                vehicle_events=vehicle_events,
                registered=registered,
                run_id=run_id,
                pricer=pricer,
            )

    def close_ride(
        self,
        ride_id: str,
        *,
        reason: str,
        time: TimePoint,
        via: Sequence[TripState] = (TripState.CANCELLED,),
        pricer: Pricer | None = None,
    ) -> list[TripEvent]:
        """End an in-flight ride with a recorded reason, in one transaction; see
        `UnitOfWork.close_ride`."""
        with self.unit_of_work("closing a ride") as uow:
            return uow.close_ride(ride_id, reason=reason, time=time, via=via, pricer=pricer)

    # --- one-call methods: one repository call in a unit of work of its own -----------

    def create_rider(self, name: str) -> tuple[Rider, str]:
        """Register a rider; returns the rider and their bearer token, shown only this once."""
        with self.unit_of_work("registering a rider") as uow:
            return uow.riders.create(name)

    def rider(self, rider_id: str) -> Rider | None:
        with self.reading() as uow:
            return uow.riders.get(rider_id)

    def rider_by_token(self, token: str) -> Rider | None:
        """The rider whose bearer token this is, or None (see `RiderRepository.by_token`)."""
        with self.reading() as uow:
            return uow.riders.by_token(token)

    def start_run(self, config: Mapping[str, Any], *, run_id: str | None = None) -> Run:
        """Record the start of a simulate run (or a service start) with its config as JSON."""
        with self.unit_of_work("recording a run") as uow:
            return uow.runs.start(config, run_id=run_id)

    def end_run(self, run_id: str) -> Run:
        with self.unit_of_work("ending a run") as uow:
            return uow.runs.end(run_id)

    def runs(self) -> list[Run]:
        with self.reading() as uow:
            return uow.runs.all()

    def add_ride(
        self, ride: RideRequest | NewRide, *, registered: bool = True, run_id: str | None = None
    ) -> Ride:
        """Store one new ride (state REQUESTED); its id is the request's `request_id`.

        `registered=True` links it to the rider `request.rider_id` of the riders table
        (which must exist); simulated riders use `registered=False`. Adding the same request
        again is a no-op that returns the stored ride.
        """
        with self.unit_of_work("adding a ride") as uow:
            return uow.rides.add(ride, registered=registered, run_id=run_id)

    def ride(self, ride_id: str) -> Ride | None:
        with self.reading() as uow:
            return uow.rides.get(ride_id)

    def refund(self, ride_id: str, cents: int, reason: str) -> Ride | None:
        """Refund `cents` more of a priced ride's fare; see `RideRepository.refund`."""
        with self.unit_of_work("refunding a ride") as uow:
            return uow.rides.refund(ride_id, cents, reason)

    def rides_of_rider(self, rider_id: str, *, limit: int | None = None) -> list[Ride]:
        """A registered rider's rides, newest request first."""
        with self.reading() as uow:
            return uow.rides.of_rider(rider_id, limit=limit)

    def open_rides(self) -> list[Ride]:
        """Rides not yet completed or cancelled, oldest request first (restart recovery)."""
        with self.reading() as uow:
            return uow.rides.open()

    def append_events(self, events: Sequence[TripEvent]) -> int:
        """Append a batch of events in one transaction (see `record`); returns how many new."""
        return self.record(events=events)

    def events(self, trip_id: str) -> list[TripEvent]:
        """A trip's events in seq order, equal to the TripEvents that were appended."""
        with self.reading() as uow:
            return uow.trip_events.of_trip(trip_id)

    def event_count(self) -> int:
        with self.reading() as uow:
            return uow.trip_events.count()

    def record_vehicle_events(
        self, events: Sequence[VehicleEvent], *, run_id: str | None = None
    ) -> int:
        """Append vehicle events (e.g. ambulance yields) in one transaction; returns how many."""
        if not events:
            return 0
        with self.unit_of_work("recording vehicle events") as uow:
            return uow.vehicle_events.append(events, run_id=run_id)

    def vehicle_events(self, vehicle_id: str | None = None) -> list[VehicleEvent]:
        """Vehicle events in time order (all cars, or one)."""
        with self.reading() as uow:
            return uow.vehicle_events.of_vehicle(vehicle_id)

    def vehicle_event_log(
        self, *, vehicle_id: str | None = None, limit: int | None = None
    ) -> list[LoggedVehicleEvent]:
        """The latest `limit` vehicle events of every run (all cars, or one), newest last."""
        with self.reading() as uow:
            return uow.vehicle_events.latest(vehicle_id=vehicle_id, limit=limit)

    def share_ride(self, ride_id: str) -> str | None:
        """A new read-only link token for a ride (shown once; None: the ride has as many
        live links as it may have)."""
        with self.unit_of_work("sharing a ride") as uow:
            return uow.shares.create(ride_id)

    def shared_ride(self, token: str) -> str | None:
        """The ride a share token shows, or None when the token is unknown or revoked."""
        with self.reading() as uow:
            return uow.shares.ride_of(token)

    def stop_sharing(self, ride_id: str) -> int:
        """Revoke every share link of a ride; returns how many were live."""
        with self.unit_of_work("stopping sharing a ride") as uow:
            return uow.shares.revoke_all(ride_id)

    def create_ticket(
        self,
        text: str,
        *,
        rider_id: str | None = None,
        ride_id: str | None = None,
        vehicle_id: str | None = None,
        topic: TicketTopic | None = None,
    ) -> SupportTicket:
        with self.unit_of_work("opening a support ticket") as uow:
            return uow.tickets.create(
                text, rider_id=rider_id, ride_id=ride_id, vehicle_id=vehicle_id, topic=topic
            )

    def ticket(self, ticket_id: int) -> SupportTicket | None:
        """One support ticket with its log, or None."""
        with self.reading() as uow:
            return uow.tickets.get(ticket_id)

    def tickets(
        self,
        *,
        status: TicketStatus | None = None,
        rider_id: str | None = None,
        ride_id: str | None = None,
        limit: int | None = None,
    ) -> list[SupportTicket]:
        """Support tickets with their logs, oldest first, optionally only one status, one
        rider's or one ride's, and only the latest `limit`."""
        with self.reading() as uow:
            return uow.tickets.find(status=status, rider_id=rider_id, ride_id=ride_id, limit=limit)

    def add_ticket_message(self, ticket_id: int, author: TicketAuthor, text: str) -> SupportTicket:
        """An operator's reply or a rider's follow-up; see `TicketRepository.add_message`."""
        with self.unit_of_work("replying to a support ticket") as uow:
            return uow.tickets.add_message(ticket_id, author, text)

    def set_ticket_status(
        self, ticket_id: int, status: TicketStatus, *, by: TicketAuthor = TicketAuthor.OPERATOR
    ) -> SupportTicket:
        with self.unit_of_work("updating a support ticket") as uow:
            return uow.tickets.set_status(ticket_id, status, by=by)
