"""Runs: one per `robotaxi simulate` (or service start), with its config and wall-clock span."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from robotaxi.store.errors import StoreError
from robotaxi.store.models import RunRow
from robotaxi.store.records import Run
from robotaxi.store.repositories.sql import utc
from robotaxi.store.scope import Repository


class RunRepository(Repository):
    def start(self, config: Mapping[str, Any], *, run_id: str | None = None) -> Run:
        """Record the start of a run with its config as JSON (a fresh id unless given)."""
        row = RunRow(
            id=run_id or uuid.uuid4().hex,
            config=dict(config),
            started_at=self._scope.wall_clock(),
            ended_at=None,
        )
        with self._scope.writing("recording a run") as session:
            session.add(row)
            session.flush()
            return _run(row)

    def end(self, run_id: str) -> Run:
        with self._scope.writing("ending a run") as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise StoreError(
                    f"no run {run_id!r} in {self._scope.where}; start it with start_run"
                )
            row.ended_at = self._scope.wall_clock()
            session.flush()
            return _run(row)

    def all(self) -> list[Run]:
        """Every run, in the order they started."""
        with self._scope.reading("listing runs") as session:
            rows = session.scalars(select(RunRow).order_by(RunRow.started_at, RunRow.id))
            return [_run(r) for r in rows]


def _run(row: RunRow) -> Run:
    return Run(
        id=row.id,
        config=row.config,
        started_at=utc(row.started_at),
        ended_at=None if row.ended_at is None else utc(row.ended_at),
    )
