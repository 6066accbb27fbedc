"""The append-only log of what cars did outside trips (pulling over for ambulances, …)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, tuple_

from robotaxi.core.time import TimePoint
from robotaxi.core.types import VehicleEvent
from robotaxi.core.yielding import VehicleEventKind
from robotaxi.store.models import Base, VehicleEventRow
from robotaxi.store.records import LoggedVehicleEvent
from robotaxi.store.repositories.sql import LOOKUP_CHUNK
from robotaxi.store.scope import Repository


class VehicleEventRepository(Repository):
    def append(self, events: Sequence[VehicleEvent], *, run_id: str | None = None) -> int:
        """Append every event as given (no replay check); returns how many."""
        if not events:
            return 0
        rows = [_vehicle_event_row(e, run_id) for e in events]
        with self._scope.writing("recording vehicle events") as session:
            session.execute(insert(VehicleEventRow), rows)
        return len(rows)

    def append_new(self, events: Sequence[VehicleEvent], *, run_id: str | None = None) -> int:
        """Append events, skipping any already stored (or repeated) with the same run, car,
        time and kind: a car does one kind of thing once per instant, so that is a replay.
        Returns how many were new."""
        if not events:
            return 0
        rows = [_vehicle_event_row(e, run_id) for e in events]
        table = Base.metadata.tables[VehicleEventRow.__tablename__]
        cars_times = sorted({(r["vehicle_id"], r["time_us"]) for r in rows})
        seen: set[tuple[Any, ...]] = set()
        with self._scope.writing("recording vehicle events") as session:
            conn = session.connection()
            for chunk_start in range(0, len(cars_times), LOOKUP_CHUNK):
                chunk = cars_times[chunk_start : chunk_start + LOOKUP_CHUNK]
                stored = conn.execute(
                    select(table.c.run_id, table.c.vehicle_id, table.c.time_us, table.c.kind)
                    .where(tuple_(table.c.vehicle_id, table.c.time_us).in_(chunk))
                )  # fmt: skip
                seen.update(tuple(r) for r in stored)
            fresh = []
            for row in rows:
                key = (row["run_id"], row["vehicle_id"], row["time_us"], row["kind"])
                if key not in seen:
                    seen.add(key)
                    fresh.append(row)
            if fresh:
                conn.execute(insert(table), fresh)
        return len(fresh)

    def of_vehicle(self, vehicle_id: str | None = None) -> list[VehicleEvent]:
        """Vehicle events in time order (all cars, or one)."""
        query = select(VehicleEventRow).order_by(VehicleEventRow.time_us, VehicleEventRow.id)
        if vehicle_id is not None:
            query = query.where(VehicleEventRow.vehicle_id == vehicle_id)
        with self._scope.reading("reading vehicle events") as session:
            return [_vehicle_event(r) for r in session.scalars(query)]

    def latest(
        self, *, vehicle_id: str | None = None, limit: int | None = None
    ) -> list[LoggedVehicleEvent]:
        """The latest `limit` vehicle events of every run (all cars, or one), in the order
        they were written: newest last, and within a run in the order they happened."""
        query = select(VehicleEventRow).order_by(VehicleEventRow.id.desc()).limit(limit)
        if vehicle_id is not None:
            query = query.where(VehicleEventRow.vehicle_id == vehicle_id)
        with self._scope.reading("reading the vehicle event log") as session:
            rows = list(session.scalars(query))
        return [LoggedVehicleEvent(r.run_id, _vehicle_event(r)) for r in reversed(rows)]


def _vehicle_event_row(e: VehicleEvent, run_id: str | None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "vehicle_id": e.vehicle_id,
        "time_us": e.time.time_us,
        "kind": VehicleEventKind(e.kind).value,
        "data": dict(e.data),
    }


def _vehicle_event(row: VehicleEventRow) -> VehicleEvent:
    return VehicleEvent(
        row.vehicle_id, TimePoint(row.time_us), VehicleEventKind(row.kind), row.data
    )
