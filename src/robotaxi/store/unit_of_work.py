"""`UnitOfWork`: the seven repositories over one transaction, and the writes that span them.

Everything done through one unit of work commits together when its `with` block ends, or
not at all when the block raises; so a process killed at any instant leaves each unit either
complete or absent. Get one from `Store.unit_of_work()` (writes) or `Store.reading()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from robotaxi.core.errors import InvalidTransitionError
from robotaxi.core.time import TimePoint
from robotaxi.core.types import RideRequest, TripEvent, TripState, VehicleEvent
from robotaxi.store.errors import StoreError
from robotaxi.store.records import NewRide, Pricer
from robotaxi.store.repositories import (
    RideRepository,
    RiderRepository,
    RunRepository,
    ShareRepository,
    TicketRepository,
    TripEventRepository,
    VehicleEventRepository,
)
from robotaxi.store.scope import Scope


class UnitOfWork:
    """One transaction, shared by a repository per aggregate."""

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self.riders = RiderRepository(scope)
        self.runs = RunRepository(scope)
        self.rides = RideRepository(scope)
        self.trip_events = TripEventRepository(scope)
        self.vehicle_events = VehicleEventRepository(scope)
        self.tickets = TicketRepository(scope)
        self.shares = ShareRepository(scope)

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
        """Write new rides, trip events and vehicle events; returns the trip events newly
        added. With a `pricer`, rides that end in this batch are charged (`price_ended`).

        Rides go first, so an event may refer to a ride of the same batch. Rides already
        stored (same id), events already stored (same trip_id and seq, same content) and
        vehicle events already stored for `run_id` (same car, time and kind) are skipped, so
        a batch can be replayed after a crash. Each ride's state moves to its highest-seq
        event. Raises `StoreError` when an event names an unknown trip or contradicts a
        stored event with the same seq (the unit of work then commits nothing).
        """
        self.rides.add_many(rides, registered=registered, run_id=run_id)
        self.vehicle_events.append_new(vehicle_events, run_id=run_id)
        added = self.trip_events.append(events)
        self.rides.advance(events)
        if pricer is not None:
            self.price_ended({e.trip_id for e in events if e.state.terminal}, pricer)
        return added

    def price_ended(self, ride_ids: Iterable[str], pricer: Pricer) -> None:
        """Charge each of these rides what `pricer` says for its whole log (in this
        transaction, so a ride's end and its fare land together); rides priced before keep
        their fare."""
        fares = {}
        for ride_id in sorted(ride_ids):
            fare = pricer(self.trip_events.of_trip(ride_id))
            if fare is not None:
                fares[ride_id] = fare
        if fares:
            self.rides.set_fares(fares)

    def close_ride(
        self,
        ride_id: str,
        *,
        reason: str,
        time: TimePoint,
        via: Sequence[TripState] = (TripState.CANCELLED,),
        pricer: Pricer | None = None,
    ) -> list[TripEvent]:
        """End an in-flight ride with a recorded reason (e.g. after a server restart), and
        charge it by `pricer` when given.

        Appends one event per state of `via` (the last must be terminal; e.g.
        `(PULLED_OVER, COMPLETED)` for a rider already on the way, whose life cycle does not
        allow a cancel), each at `time` with `cause=reason` and the ride's car, and stores
        the reason on the ride. Whether each step is allowed is the trip state machine's
        call (fleet.trips), made by the caller. Raises `InvalidTransitionError` when the
        ride has already ended and `StoreError` when there is no such ride.
        """
        if not via or not via[-1].terminal:
            raise InvalidTransitionError(
                "close_ride must end in a terminal state (completed, cancelled or "
                "interrupted), got "
                f"{[s.value for s in via]}"
            )
        if not reason.strip():
            raise StoreError("close_ride needs a reason that says why the ride ended")
        ride = self.rides.get(ride_id, for_update=True)
        if ride is None:
            raise StoreError(f"no ride {ride_id!r} in {self._scope.where}")
        if ride.state.terminal:
            raise InvalidTransitionError(
                f"ride {ride_id!r} already ended ({ride.state.value}); nothing to close"
            )
        closing = [
            TripEvent(ride_id, ride.last_seq + 1 + i, time, state, ride.vehicle_id, reason)
            for i, state in enumerate(via)
        ]
        self.trip_events.append(closing)
        self.rides.advance(closing)
        self.rides.set_close_reason(ride_id, reason)
        if pricer is not None:
            self.price_ended([ride_id], pricer)
        return closing
