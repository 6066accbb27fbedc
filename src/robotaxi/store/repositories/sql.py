"""SQL shared by the repositories: insert-or-skip on every backend, and stored times as UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, tuple_
from sqlalchemy import insert as generic_insert
from sqlalchemy.dialects import postgresql, sqlite

from robotaxi.store.models import Base, RideRow, TripEventRow

# backends with INSERT ... ON CONFLICT DO NOTHING; others look keys up before inserting
NATIVE_UPSERT_DIALECTS: tuple[str, ...] = ("sqlite", "postgresql")
# rows per `IN (...)` lookup: well under every backend's limit on bound parameters
LOOKUP_CHUNK = 400


def insert_ignoring_duplicates(
    conn: Connection,
    model: type[RideRow] | type[TripEventRow],
    rows: list[dict[str, Any]],
    key: list[str],
) -> set[tuple[Any, ...]]:
    """INSERT rows, skipping those whose `key` is already stored; returns the inserted keys."""
    table = Base.metadata.tables[model.__tablename__]
    key_cols = [table.c[k] for k in key]
    dialect = conn.dialect.name
    if dialect in NATIVE_UPSERT_DIALECTS:
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        statement = insert(table).on_conflict_do_nothing(index_elements=key_cols)
        result = conn.execute(statement.returning(*key_cols), rows)
        return {tuple(r) for r in result}
    # other backends: look the keys up first (no native upsert in SQLAlchemy for them)
    wanted = [tuple(row[k] for k in key) for row in rows]
    existing = {
        tuple(r) for r in conn.execute(select(*key_cols).where(tuple_(*key_cols).in_(wanted)))
    }
    fresh: dict[tuple[Any, ...], dict[str, Any]] = {}
    for k, row in zip(wanted, rows, strict=True):
        if k not in existing and k not in fresh:
            fresh[k] = row
    if fresh:
        conn.execute(generic_insert(table), list(fresh.values()))
    return set(fresh)


def utc(moment: datetime) -> datetime:
    """A stored wall-clock time as aware UTC (SQLite hands back naive datetimes)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
