"""Support tickets: a rider's (or the car's Help button's) requests for a human."""

from __future__ import annotations

from sqlalchemy import select

from robotaxi.store.errors import StoreError
from robotaxi.store.models import SupportTicketRow
from robotaxi.store.records import SupportTicket, TicketStatus
from robotaxi.store.repositories.sql import utc
from robotaxi.store.scope import Repository


class TicketRepository(Repository):
    def create(
        self, text: str, *, rider_id: str | None = None, ride_id: str | None = None
    ) -> SupportTicket:
        """Open a ticket; the rider and ride it names must exist."""
        text = text.strip()
        if not text:
            raise StoreError("a support ticket needs a text that says what is wrong")
        row = SupportTicketRow(
            ride_id=ride_id,
            rider_id=rider_id,
            text=text,
            created_at=self._scope.wall_clock(),
            status=TicketStatus.OPEN.value,
        )
        with self._scope.writing("opening a support ticket") as session:
            session.add(row)
            session.flush()
            return _ticket(row)

    def find(
        self, *, status: TicketStatus | None = None, rider_id: str | None = None
    ) -> list[SupportTicket]:
        """Tickets, oldest first, optionally only one status or one rider's."""
        query = select(SupportTicketRow).order_by(SupportTicketRow.id)
        if status is not None:
            query = query.where(SupportTicketRow.status == status.value)
        if rider_id is not None:
            query = query.where(SupportTicketRow.rider_id == rider_id)
        with self._scope.reading("listing support tickets") as session:
            return [_ticket(r) for r in session.scalars(query)]

    def set_status(self, ticket_id: int, status: TicketStatus) -> SupportTicket:
        with self._scope.writing("updating a support ticket") as session:
            row = session.get(SupportTicketRow, ticket_id)
            if row is None:
                raise StoreError(f"no support ticket {ticket_id} in {self._scope.where}")
            row.status = status.value
            session.flush()
            return _ticket(row)


def _ticket(row: SupportTicketRow) -> SupportTicket:
    return SupportTicket(
        id=row.id,
        text=row.text,
        created_at=utc(row.created_at),
        status=TicketStatus(row.status),
        ride_id=row.ride_id,
        rider_id=row.rider_id,
    )
