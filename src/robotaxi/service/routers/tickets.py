"""Support tickets: a rider asks for help (in the app, or Help on the in-car screen) about a
ride and its car; operators reply from /ops; either side may close; the rider reads replies.

Life cycle (stored, each step with its time and author): open → answered (an operator
replied) → closed. A rider writing again reopens an answered or closed ticket.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from robotaxi.service.deps import (
    CurrentRider,
    LiveDep,
    RiderOrOperator,
    RuntimeDep,
    StoreDep,
    check_rate,
)
from robotaxi.service.schemas import (
    TicketCreate,
    TicketMessageCreate,
    TicketMessagePublic,
    TicketPublic,
    error_responses,
)
from robotaxi.store.errors import TicketClosedError
from robotaxi.store.records import (
    Rider,
    SupportTicket,
    TicketAuthor,
    TicketStatus,
    TicketTopic,
)
from robotaxi.store.store import Store

router = APIRouter(prefix="/api/tickets", tags=["support tickets"])
NO_TICKET = "you have no support ticket with that id"
# ids are 32-bit on PostgreSQL: a larger one is malformed (422), not a database error
TicketId = Annotated[int, Path(ge=1, le=2_147_483_647, description="the ticket's number")]


def _public(ticket: SupportTicket) -> TicketPublic:
    return TicketPublic(
        id=ticket.id,
        text=ticket.text,
        status=ticket.status.value,
        created_at=ticket.created_at.isoformat(),
        updated_at=None if ticket.updated_at is None else ticket.updated_at.isoformat(),
        ride_id=ticket.ride_id,
        rider_id=ticket.rider_id,
        rider_name=ticket.rider_name,
        vehicle_id=ticket.vehicle_id,
        topic=None if ticket.topic is None else ticket.topic.value,
        messages=[
            TicketMessagePublic(
                author=m.author.value,
                text=m.text,
                status=m.status.value,
                created_at=m.created_at.isoformat(),
            )
            for m in ticket.messages
        ],
    )


def _ticket_for(ticket_id: int, who: Rider | None, store: Store) -> SupportTicket:
    """The ticket, if `who` may see it (its rider, or an operator when None); else 404, the
    same answer as for a ticket that does not exist, so ids of others' tickets leak nothing."""
    ticket = store.ticket(ticket_id)
    if ticket is None or (who is not None and ticket.rider_id != who.id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no support ticket {ticket_id}")
    return ticket


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 404, 413, 429, e404="you have no ride with that id"),
)
def open_ticket(
    body: TicketCreate, rider: CurrentRider, store: StoreDep, live: LiveDep, runtime: RuntimeDep
) -> TicketPublic:
    """Ask for help, optionally about one of your rides (its car is attached); a few new
    tickets a minute per rider (429 beyond: write in an open ticket instead)."""
    check_rate(runtime.ticket_limiter, rider.id, "new support tickets")
    vehicle_id = None
    if body.ride_id is not None:
        ride = store.ride(body.ride_id)
        if ride is None or ride.rider_id != rider.id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no ride {body.ride_id}")
        # the live view knows a fresh assignment before the store has recorded it
        view = live.trip(body.ride_id)
        vehicle_id = view.vehicle_id if view is not None and view.vehicle_id else ride.vehicle_id
    topic = None if body.topic is None else TicketTopic(body.topic)
    ticket = store.create_ticket(
        body.text, rider_id=rider.id, ride_id=body.ride_id, vehicle_id=vehicle_id, topic=topic
    )
    return _public(ticket)


@router.get("", responses=error_responses(401))
def list_tickets(
    who: RiderOrOperator,
    store: StoreDep,
    ride_id: str | None = Query(None, max_length=64, description="only this ride's tickets"),
    limit: int = Query(200, ge=1, le=1000, description="the latest this many"),
) -> list[TicketPublic]:
    """Operators see every ticket; a rider sees their own. Oldest first, with replies."""
    rider_id = None if who is None else who.id
    tickets = store.tickets(rider_id=rider_id, ride_id=ride_id, limit=limit)
    return [_public(t) for t in tickets]


@router.get("/{ticket_id}", responses=error_responses(401, 404, e404=NO_TICKET))
def read_ticket(ticket_id: TicketId, who: RiderOrOperator, store: StoreDep) -> TicketPublic:
    """One ticket with its replies: for its rider and operators."""
    return _public(_ticket_for(ticket_id, who, store))


@router.post(
    "/{ticket_id}/messages",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        400,
        401,
        404,
        409,
        413,
        e404=NO_TICKET,
        e409="the ticket is closed: operators reply again once the rider writes",
    ),
)
def add_message(
    ticket_id: TicketId, body: TicketMessageCreate, who: RiderOrOperator, store: StoreDep
) -> TicketPublic:
    """Write to a ticket. An operator's message is a reply (the ticket becomes answered);
    its rider's is a follow-up (the ticket is open again, also when it was closed)."""
    _ticket_for(ticket_id, who, store)
    author = TicketAuthor.OPERATOR if who is None else TicketAuthor.RIDER
    try:
        return _public(store.add_ticket_message(ticket_id, author, body.text))
    except TicketClosedError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.post("/{ticket_id}/close", responses=error_responses(401, 404, 413, e404=NO_TICKET))
def close_ticket(ticket_id: TicketId, who: RiderOrOperator, store: StoreDep) -> TicketPublic:
    """Close a ticket (its rider or an operator); closing a closed ticket changes nothing."""
    _ticket_for(ticket_id, who, store)
    by = TicketAuthor.OPERATOR if who is None else TicketAuthor.RIDER
    return _public(store.set_ticket_status(ticket_id, TicketStatus.CLOSED, by=by))
