"""The append-only trip event log: one row per transition, never updated or deleted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, tuple_

from robotaxi.core.time import TimePoint
from robotaxi.core.types import TripEvent, TripState
from robotaxi.store.errors import StoreError
from robotaxi.store.models import TripEventRow
from robotaxi.store.repositories.sql import LOOKUP_CHUNK, insert_ignoring_duplicates
from robotaxi.store.scope import Repository


class TripEventRepository(Repository):
    def append(self, events: Sequence[TripEvent]) -> int:
        """Append events; returns how many were new.

        Appending is idempotent on (trip_id, seq): an event already stored with the same
        content is skipped, so a writer that restarts may replay its last batch. Raises
        StoreError when an event contradicts a stored one (or another of the batch) with
        the same seq, or names an unknown trip. The rides' folded states are not touched:
        the unit of work advances them (`RideRepository.advance`) in the same transaction.
        """
        events = _unique(events)
        if not events:
            return 0
        rows = [_event_row(e) for e in events]
        with self._scope.writing("recording trip events") as session:
            inserted = insert_ignoring_duplicates(
                session.connection(), TripEventRow, rows, ["trip_id", "seq"]
            )
            if len(inserted) < len(rows):
                self._check_replayed(events, inserted)
            return len(inserted)

    def of_trip(self, trip_id: str) -> list[TripEvent]:
        """A trip's events in seq order, equal to the TripEvents that were appended."""
        query = select(TripEventRow).where(TripEventRow.trip_id == trip_id)
        with self._scope.reading("reading trip events") as session:
            return [_trip_event(r) for r in session.scalars(query.order_by(TripEventRow.seq))]

    def count(self) -> int:
        """Events in the log, over every trip and run."""
        with self._scope.reading("counting trip events") as session:
            return int(session.scalar(select(func.count()).select_from(TripEventRow)) or 0)

    def _check_replayed(self, events: Sequence[TripEvent], inserted: set[tuple[Any, ...]]) -> None:
        """Events skipped as duplicates must equal what is stored, or the batch is refused."""
        skipped = [e for e in events if (e.trip_id, e.seq) not in inserted]
        keys = sorted({(e.trip_id, e.seq) for e in skipped})
        stored: dict[tuple[str, int], TripEvent] = {}
        with self._scope.reading("checking replayed trip events") as session:
            for chunk_start in range(0, len(keys), LOOKUP_CHUNK):
                chunk = keys[chunk_start : chunk_start + LOOKUP_CHUNK]
                rows = session.scalars(
                    select(TripEventRow).where(
                        tuple_(TripEventRow.trip_id, TripEventRow.seq).in_(chunk)
                    )
                )
                stored.update({(r.trip_id, r.seq): _trip_event(r) for r in rows})
        for event in skipped:
            if stored.get((event.trip_id, event.seq)) != _normalised(event):
                raise StoreError(
                    f"event seq {event.seq} of trip {event.trip_id!r} differs from the one "
                    "already stored; a trip's events are append-only: give it the next seq"
                )


def _unique(events: Sequence[TripEvent]) -> Sequence[TripEvent]:
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
