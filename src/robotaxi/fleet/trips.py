"""The trip life cycle (DESIGN.md): a state machine whose every transition is an event.

requested → assigned → en_route → arrived (greeting) → boarded → started ("Start ride") →
driving → arrived_at_destination → completed, with `cancelled` and `pulled_over` (the rider
asked to stop early) branches, and `interrupted` for a ride that ended under way for a reason
not the rider's (the service stopped mid-ride). Reassignment before the car arrives is
assigned → assigned or en_route → assigned. A trip's state is the fold of its events (`fold_state`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from robotaxi.core import InvalidTransitionError, RideRequest, TimePoint, TripEvent, TripState

S = TripState
ALLOWED: Mapping[TripState, frozenset[TripState]] = {
    S.REQUESTED: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.EN_ROUTE, S.ASSIGNED, S.CANCELLED}),
    S.EN_ROUTE: frozenset({S.ARRIVED, S.ASSIGNED, S.CANCELLED}),
    S.ARRIVED: frozenset({S.BOARDED, S.CANCELLED}),
    S.BOARDED: frozenset({S.STARTED, S.CANCELLED}),
    S.STARTED: frozenset({S.DRIVING, S.INTERRUPTED}),
    S.DRIVING: frozenset({S.ARRIVED_AT_DESTINATION, S.PULLED_OVER, S.INTERRUPTED}),
    S.PULLED_OVER: frozenset({S.COMPLETED}),
    S.ARRIVED_AT_DESTINATION: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    S.INTERRUPTED: frozenset(),
}


def greeting(rider_name: str) -> str:
    return f"Hey there, {rider_name}!"


@dataclass
class Trip:
    """One ride, from request to its end. Mutated only through `transition`."""

    request: RideRequest
    state: TripState = S.REQUESTED
    vehicle_id: str | None = None
    events: list[TripEvent] = field(default_factory=list)
    # where the car stops for the rider: curb-spot indices and walking distances (m)
    pickup_curb: int = -1
    dropoff_curb: int = -1
    pickup_walk_m: float = 0.0
    dropoff_walk_m: float = 0.0

    @property
    def trip_id(self) -> str:
        return self.request.request_id

    def time_of(self, state: TripState) -> TimePoint | None:
        """Time of the last transition into `state`, if it happened."""
        for event in reversed(self.events):
            if event.state == state:
                return event.time
        return None

    def transition(
        self,
        new_state: TripState,
        time: TimePoint,
        *,
        vehicle_id: str | None = None,
        cause: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> TripEvent:
        if self.events and new_state not in ALLOWED[self.state]:
            raise InvalidTransitionError(
                f"trip {self.trip_id}: cannot go from {self.state} to {new_state}"
            )
        if not self.events and new_state != S.REQUESTED:
            raise InvalidTransitionError(f"trip {self.trip_id}: must start as requested")
        if self.events and time < self.events[-1].time:
            raise InvalidTransitionError(f"trip {self.trip_id}: event time goes backwards")
        if vehicle_id is not None:
            self.vehicle_id = vehicle_id
        event = TripEvent(
            trip_id=self.trip_id,
            seq=len(self.events),
            time=time,
            state=new_state,
            vehicle_id=self.vehicle_id,
            cause=cause,
            data=dict(data or {}),
        )
        self.events.append(event)
        self.state = new_state
        return event


def new_trip(request: RideRequest) -> Trip:
    trip = Trip(request)
    trip.transition(
        S.REQUESTED,
        request.time,
        cause="rider",
        data={"rider": request.rider_name, "rider_id": request.rider_id},
    )
    return trip


def fold_state(events: Iterable[TripEvent]) -> TripState | None:
    """A trip's state from its events, checking that every step was allowed."""
    state: TripState | None = None
    for event in sorted(events, key=lambda e: e.seq):
        if state is None:
            if event.state != S.REQUESTED:
                raise InvalidTransitionError(f"trip {event.trip_id} does not start as requested")
        elif event.state not in ALLOWED[state]:
            raise InvalidTransitionError(
                f"trip {event.trip_id}: event {event.seq} goes from {state} to {event.state}"
            )
        state = event.state
    return state
