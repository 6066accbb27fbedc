"""Support tickets: a rider asks for help (Help on the in-car screen); operators read them."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from robotaxi.service.deps import CurrentRider, Operator, RiderOrOperator, StoreDep
from robotaxi.service.schemas import TicketCreate, TicketPublic, error_responses
from robotaxi.store.records import SupportTicket, TicketStatus

router = APIRouter(prefix="/api/tickets", tags=["support tickets"])


def _public(ticket: SupportTicket) -> TicketPublic:
    return TicketPublic(
        id=ticket.id,
        text=ticket.text,
        status=ticket.status.value,
        created_at=ticket.created_at.isoformat(),
        ride_id=ticket.ride_id,
        rider_id=ticket.rider_id,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 404, 413, e404="you have no ride with that id"),
)
def open_ticket(body: TicketCreate, rider: CurrentRider, store: StoreDep) -> TicketPublic:
    """Ask for help, optionally about one of your rides."""
    if body.ride_id is not None:
        ride = store.ride(body.ride_id)
        if ride is None or ride.rider_id != rider.id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no ride {body.ride_id}")
    return _public(store.create_ticket(body.text, rider_id=rider.id, ride_id=body.ride_id))


@router.get("", responses=error_responses(401))
def list_tickets(who: RiderOrOperator, store: StoreDep) -> list[TicketPublic]:
    """Operators see every ticket; a rider sees their own."""
    rider_id = None if who is None else who.id
    return [_public(t) for t in store.tickets(rider_id=rider_id)]


@router.post("/{ticket_id}/close", responses=error_responses(401, 403, 404, 413))
def close_ticket(ticket_id: int, _: Operator, store: StoreDep) -> TicketPublic:
    if not any(t.id == ticket_id for t in store.tickets()):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no support ticket {ticket_id}")
    return _public(store.set_ticket_status(ticket_id, TicketStatus.CLOSED))
