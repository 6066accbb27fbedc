"""Rides: each request as made, and the state folded from its trip events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.sql import bindparam

from robotaxi.core.time import TimePoint
from robotaxi.core.types import RideRequest, TripEvent, TripState
from robotaxi.store.errors import StoreError
from robotaxi.store.models import Base, RideRow
from robotaxi.store.records import Fare, LatLon, NewRide, Ride
from robotaxi.store.repositories.sql import insert_ignoring_duplicates
from robotaxi.store.scope import Repository

TERMINAL_STATES = tuple(s.value for s in TripState if s.terminal)


class RideRepository(Repository):
    def add(
        self, ride: RideRequest | NewRide, *, registered: bool, run_id: str | None = None
    ) -> Ride:
        """Store one new ride (state REQUESTED), or return it unchanged if already stored."""
        row = _ride_row(ride, registered=registered, run_id=run_id)
        with self._scope.writing("adding a ride") as session:
            insert_ignoring_duplicates(session.connection(), RideRow, [row], ["id"])
        stored = self.get(row["id"])
        if stored is None:  # pragma: no cover - the insert above just wrote it
            raise StoreError(f"ride {row['id']!r} vanished while being added")
        return stored

    def add_many(
        self,
        rides: Sequence[RideRequest | NewRide],
        *,
        registered: bool,
        run_id: str | None = None,
    ) -> int:
        """Store new rides, skipping those already stored (same id); returns how many new.

        `registered=True` links each to the rider `request.rider_id` of the riders table
        (which must exist); simulated riders use `registered=False`.
        """
        if not rides:
            return 0
        rows = [_ride_row(r, registered=registered, run_id=run_id) for r in rides]
        with self._scope.writing("adding rides") as session:
            return len(insert_ignoring_duplicates(session.connection(), RideRow, rows, ["id"]))

    def get(self, ride_id: str, *, for_update: bool = False) -> Ride | None:
        """The ride as stored now; `for_update` locks its row until the unit of work ends."""
        # populate_existing: `advance` updates rows behind the session's identity map
        with self._scope.reading("reading a ride") as session:
            row = session.get(RideRow, ride_id, populate_existing=True, with_for_update=for_update)
            return None if row is None else _ride(row)

    def of_rider(self, rider_id: str, *, limit: int | None = None) -> list[Ride]:
        """A registered rider's rides, newest request first."""
        query = (
            select(RideRow)
            .where(RideRow.rider_id == rider_id)
            .order_by(RideRow.requested_at_us.desc(), RideRow.id)
            .limit(limit)
            .execution_options(populate_existing=True)
        )
        with self._scope.reading("listing a rider's rides") as session:
            return [_ride(r) for r in session.scalars(query)]

    def of_run(self, run_id: str) -> list[Ride]:
        """The rides a run recorded, oldest request first."""
        query = (
            select(RideRow)
            .where(RideRow.run_id == run_id)
            .order_by(RideRow.requested_at_us, RideRow.id)
            .execution_options(populate_existing=True)
        )
        with self._scope.reading("listing a run's rides") as session:
            return [_ride(r) for r in session.scalars(query)]

    def open(self) -> list[Ride]:
        """Rides not yet completed or cancelled, oldest request first (restart recovery)."""
        query = (
            select(RideRow)
            .where(RideRow.state.not_in(TERMINAL_STATES))
            .order_by(RideRow.requested_at_us, RideRow.id)
            .execution_options(populate_existing=True)
        )
        with self._scope.reading("listing open rides") as session:
            return [_ride(r) for r in session.scalars(query)]

    def advance(self, events: Sequence[TripEvent]) -> None:
        """Move each ride's folded state to its highest-seq event (never backwards).

        Call it with the events appended in the same unit of work, so that a ride's state
        and its log never disagree.
        """
        latest: dict[str, TripEvent] = {}
        for e in events:
            held = latest.get(e.trip_id)
            if held is None or e.seq > held.seq:
                latest[e.trip_id] = e
        if not latest:
            return
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
                "b_state": TripState(e.state).value,
                "b_vehicle": e.vehicle_id,
                "b_time": e.time.time_us,
            }
            for e in latest.values()
        ]
        with self._scope.writing("advancing rides") as session:
            session.connection().execute(statement, params)

    def set_close_reason(self, ride_id: str, reason: str) -> None:
        """Store why a ride was ended by the service rather than by its life cycle."""
        with self._scope.writing("closing a ride") as session:
            session.connection().execute(
                update(RideRow).where(RideRow.id == ride_id).values(close_reason=reason)
            )

    def set_fares(self, fares: dict[str, Fare]) -> None:
        """Store what ended rides were charged; a ride already priced keeps its fare (a
        replayed batch never charges twice)."""
        for ride_id, fare in fares.items():
            if fare.cents < 0:
                raise StoreError(f"ride {ride_id!r}: a fare cannot be negative ({fare.cents})")
        with self._scope.writing("pricing rides") as session:
            for ride_id, fare in fares.items():
                session.connection().execute(
                    update(RideRow)
                    .where(RideRow.id == ride_id, RideRow.fare_cents.is_(None))
                    .values(
                        fare_cents=fare.cents,
                        fare_currency=fare.currency,
                        fare_rule=fare.rule,
                        refunded_cents=0,
                    )
                )

    def refund(self, ride_id: str, cents: int, reason: str) -> Ride | None:
        """Refund `cents` more of a priced ride's fare (refunds add up, to the fare at most);
        returns the ride as it is then, or None when nothing was refunded (no such ride, not
        priced, or more than what is left: `get` tells which)."""
        if cents <= 0:
            raise StoreError(f"a refund must be at least one cent, got {cents}")
        refunded = func.coalesce(RideRow.refunded_cents, 0)
        with self._scope.writing("refunding a ride") as session:
            done = session.connection().execute(
                update(RideRow)
                .where(
                    RideRow.id == ride_id,
                    RideRow.fare_cents.is_not(None),
                    refunded + cents <= RideRow.fare_cents,
                )
                .values(refunded_cents=refunded + cents, refund_reason=reason)
            )
            if done.rowcount != 1:
                return None
        return self.get(ride_id)


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
        "fare_cents": None,
        "fare_currency": None,
        "fare_rule": None,
        "refunded_cents": None,
        "refund_reason": None,
    }


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
        fare=None
        if row.fare_cents is None or row.fare_currency is None
        else Fare(
            cents=row.fare_cents,
            currency=row.fare_currency,
            rule=row.fare_rule or "",
            refunded_cents=row.refunded_cents or 0,
            refund_reason=row.refund_reason,
        ),
    )
