"""Support tickets: a rider's (or the car's Help button's) requests for a human, and the
replies, follow-ups and closings that make up each ticket's life cycle."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select

from robotaxi.store.errors import StoreError
from robotaxi.store.models import RiderRow, SupportMessageRow, SupportTicketRow
from robotaxi.store.records import (
    SupportTicket,
    TicketAuthor,
    TicketMessage,
    TicketStatus,
    TicketTopic,
    status_after_message,
)
from robotaxi.store.repositories.sql import utc
from robotaxi.store.scope import Repository


class TicketRepository(Repository):
    def create(
        self,
        text: str,
        *,
        rider_id: str | None = None,
        ride_id: str | None = None,
        vehicle_id: str | None = None,
        topic: TicketTopic | None = None,
    ) -> SupportTicket:
        """Open a ticket; the rider and ride it names must exist. `vehicle_id` is the car of
        the ride when the ticket was opened."""
        text = text.strip()
        if not text:
            raise StoreError("a support ticket needs a text that says what is wrong")
        row = SupportTicketRow(
            ride_id=ride_id,
            rider_id=rider_id,
            vehicle_id=vehicle_id,
            topic=None if topic is None else topic.value,
            text=text,
            created_at=self._scope.wall_clock(),
            status=TicketStatus.OPEN.value,
        )
        with self._scope.writing("opening a support ticket") as session:
            session.add(row)
            session.flush()
            return self._load([row])[0]

    def get(self, ticket_id: int) -> SupportTicket | None:
        with self._scope.reading("reading a support ticket") as session:
            row = session.get(SupportTicketRow, ticket_id)
            return None if row is None else self._load([row])[0]

    def find(
        self,
        *,
        status: TicketStatus | None = None,
        rider_id: str | None = None,
        ride_id: str | None = None,
        limit: int | None = None,
    ) -> list[SupportTicket]:
        """Tickets with their logs, oldest first, optionally only one status, one rider's
        or one ride's, and only the latest `limit` of them."""
        query = select(SupportTicketRow).order_by(SupportTicketRow.id.desc())
        if limit is not None:
            query = query.limit(limit)
        if status is not None:
            query = query.where(SupportTicketRow.status == status.value)
        if rider_id is not None:
            query = query.where(SupportTicketRow.rider_id == rider_id)
        if ride_id is not None:
            query = query.where(SupportTicketRow.ride_id == ride_id)
        with self._scope.reading("listing support tickets") as session:
            return self._load(list(session.scalars(query))[::-1])

    def add_message(self, ticket_id: int, author: TicketAuthor, text: str) -> SupportTicket:
        """Log a reply (operator) or a follow-up (rider) and move the ticket's status
        (`status_after_message`); `TicketClosedError` for a reply to a closed ticket."""
        text = text.strip()
        if not text:
            raise StoreError("a reply to a support ticket needs a text")
        with self._scope.writing("replying to a support ticket"):
            row = self._row_for_update(ticket_id)
            status = status_after_message(TicketStatus(row.status), author)
            self._log(row, author, text, status)
            return self._load([row])[0]

    def set_status(
        self, ticket_id: int, status: TicketStatus, *, by: TicketAuthor = TicketAuthor.OPERATOR
    ) -> SupportTicket:
        """Move a ticket to `status` (closing it, mostly), logged with who did it; a no-op
        when it is already there."""
        with self._scope.writing("updating a support ticket") as session:
            row = self._row_for_update(ticket_id)
            if row.status != status.value:
                self._log(row, by, None, status)
            session.flush()
            return self._load([row])[0]

    # --- helpers ----------------------------------------------------------------------

    def _row_for_update(self, ticket_id: int) -> SupportTicketRow:
        session = self._scope.session
        row = session.get(SupportTicketRow, ticket_id, with_for_update=True)
        if row is None:
            raise StoreError(f"no support ticket {ticket_id} in {self._scope.where}")
        return row

    def _log(
        self, row: SupportTicketRow, author: TicketAuthor, text: str | None, status: TicketStatus
    ) -> None:
        now = self._scope.wall_clock()
        row.status = status.value
        row.updated_at = now
        self._scope.session.add(
            SupportMessageRow(
                ticket_id=row.id,
                author=author.value,
                text=text,
                status=status.value,
                created_at=now,
            )
        )
        self._scope.session.flush()

    def _load(self, rows: Sequence[SupportTicketRow]) -> list[SupportTicket]:
        """Tickets with their logs and riders' names: two more queries, however many."""
        if not rows:
            return []
        session = self._scope.session
        messages: dict[int, list[TicketMessage]] = defaultdict(list)
        ids = [r.id for r in rows]
        for chunk in (ids[i : i + 400] for i in range(0, len(ids), 400)):
            query = (
                select(SupportMessageRow)
                .where(SupportMessageRow.ticket_id.in_(chunk))
                .order_by(SupportMessageRow.id)
            )
            for m in session.scalars(query):
                messages[m.ticket_id].append(
                    TicketMessage(
                        author=TicketAuthor(m.author),
                        text=m.text,
                        status=TicketStatus(m.status),
                        created_at=utc(m.created_at),
                    )
                )
        rider_ids = sorted({r.rider_id for r in rows if r.rider_id is not None})
        names: dict[str, str] = {}
        for chunk_r in (rider_ids[i : i + 400] for i in range(0, len(rider_ids), 400)):
            query_r = select(RiderRow.id, RiderRow.name).where(RiderRow.id.in_(chunk_r))
            names.update({rid: name for rid, name in session.execute(query_r)})
        return [
            SupportTicket(
                id=row.id,
                text=row.text,
                created_at=utc(row.created_at),
                status=TicketStatus(row.status),
                ride_id=row.ride_id,
                rider_id=row.rider_id,
                vehicle_id=row.vehicle_id,
                topic=None if row.topic is None else TicketTopic(row.topic),
                updated_at=None if row.updated_at is None else utc(row.updated_at),
                messages=tuple(messages.get(row.id, ())),
                rider_name=None if row.rider_id is None else names.get(row.rider_id),
            )
            for row in rows
        ]
