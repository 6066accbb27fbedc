"""Frozen read models the store hands out (its ORM rows never leave the package)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from robotaxi.core.time import TimePoint
from robotaxi.core.types import RideRequest, TripEvent, TripState, VehicleEvent
from robotaxi.store.errors import TicketClosedError


@dataclass(frozen=True, slots=True)
class LatLon:
    """A WGS84 position in degrees (only at the edges: the web app's taps)."""

    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Rider:
    """A registered rider; the bearer token is not here (only its hash is stored)."""

    id: str
    name: str
    created_at: datetime  # wall clock, UTC


@dataclass(frozen=True, slots=True)
class Fare:
    """What an ended ride was charged: integer cents of `currency` (ISO 4217) by `rule`,
    and how much of it operators have refunded since (`refunded_cents` ≤ `cents`)."""

    cents: int
    currency: str
    rule: str
    refunded_cents: int = 0
    refund_reason: str | None = None

    @property
    def net_cents(self) -> int:
        return self.cents - self.refunded_cents


# prices an ended ride from its whole event log (None: no fare for it); given to the store
# by its caller, so that persistence knows no tariff
Pricer = Callable[[Sequence[TripEvent]], Fare | None]


@dataclass(frozen=True, slots=True)
class Ride:
    """A ride as stored: the request as made and the state folded from its events.

    `state`, `vehicle_id` and `updated_at` are those of the event with the highest `seq`
    (`last_seq`, -1 before any event, when state is REQUESTED and `updated_at` the request
    time). `rider_id` is set only for registered riders; simulated ones have None.
    """

    request: RideRequest
    state: TripState
    vehicle_id: str | None
    updated_at: TimePoint
    last_seq: int
    rider_id: str | None = None
    run_id: str | None = None
    pickup_latlon: LatLon | None = None
    dropoff_latlon: LatLon | None = None
    pickup_walk_m: float | None = None
    dropoff_walk_m: float | None = None
    close_reason: str | None = None
    fare: Fare | None = None  # set once the ride has ended and was priced

    @property
    def id(self) -> str:
        return self.request.request_id


@dataclass(frozen=True, slots=True)
class NewRide:
    """A ride to store, with what is known besides the request (all optional).

    Walks are metres between where the rider asked and the curb spot the car serves;
    lat/lon are the positions the rider tapped in the app, when they came from there.
    """

    request: RideRequest
    pickup_walk_m: float | None = None
    dropoff_walk_m: float | None = None
    pickup_latlon: LatLon | None = None
    dropoff_latlon: LatLon | None = None


class TicketStatus(enum.StrEnum):
    """A support ticket's life cycle: OPEN (waiting for support) → ANSWERED (support replied,
    waiting for the rider) → CLOSED. A rider's follow-up moves an answered or closed ticket
    back to OPEN; an operator's reply moves an open one to ANSWERED; either side may close."""

    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


class TicketAuthor(enum.StrEnum):
    RIDER = "rider"
    OPERATOR = "operator"


class TicketTopic(enum.StrEnum):
    """What a ticket is about, as the in-car Help buttons offer it."""

    LOST_ITEM = "lost_item"
    COMFORT = "comfort"
    SAFETY = "safety"
    OTHER = "other"


def status_after_message(status: TicketStatus, author: TicketAuthor) -> TicketStatus:
    """The status a ticket takes when `author` writes to it (`status` is the one it had).

    A rider's message (re)opens it; an operator's reply answers it, but not once closed.
    """
    if author is TicketAuthor.RIDER:
        return TicketStatus.OPEN
    if status is TicketStatus.CLOSED:
        raise TicketClosedError(
            "the ticket is closed: it takes a reply again once the rider writes to it"
        )
    return TicketStatus.ANSWERED


@dataclass(frozen=True, slots=True)
class TicketMessage:
    """One entry of a ticket's log after it was opened: a reply, a follow-up or a closing
    (`text` None), with the status the ticket had after it."""

    author: TicketAuthor
    text: str | None
    status: TicketStatus
    created_at: datetime  # wall clock, UTC


@dataclass(frozen=True, slots=True)
class SupportTicket:
    """A ticket as stored: the opening text, who opened it about which ride and car, its
    status and its log (oldest first)."""

    id: int
    text: str
    created_at: datetime  # wall clock, UTC
    status: TicketStatus
    ride_id: str | None = None
    rider_id: str | None = None
    vehicle_id: str | None = None
    topic: TicketTopic | None = None
    updated_at: datetime | None = None  # last message or status change; None: none yet
    messages: tuple[TicketMessage, ...] = ()
    rider_name: str | None = None


@dataclass(frozen=True, slots=True)
class Run:
    """One simulate run (or service start): its configuration as JSON and wall-clock span."""

    id: str
    config: Mapping[str, Any]
    started_at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LoggedVehicleEvent:
    """A vehicle event as the log holds it, with the run that wrote it (None: no run)."""

    run_id: str | None
    event: VehicleEvent


def fold(events: Iterable[TripEvent]) -> TripState:
    """A trip's state as the fold of its events: the state of the one with the highest seq.

    Order of arrival does not matter (a replayed old event cannot move a trip back), and a
    trip with no event yet is REQUESTED. Whether each transition was allowed is the trip
    state machine's business (fleet), not the log's.
    """
    latest: TripEvent | None = None
    for event in events:
        if latest is None or event.seq > latest.seq:
            latest = event
    return TripState.REQUESTED if latest is None else latest.state
