"""The store's tables as SQLAlchemy 2 typed ORM classes (schema revision 0004).

Times of the simulation are integer microseconds (`*_us`, as `TimePoint`); wall-clock times
(`created_at`, `started_at`, ...) are timezone-aware UTC. Positions are map-frame metres.
The Alembic revisions in `migrations/versions` create exactly these tables; a test compares
the two, so change both together (a new revision, never an edit of a shipped one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints so that later Alembic revisions can alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 64
# JSONB on PostgreSQL (indexable, compact); JSON text elsewhere.
JsonType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RiderRow(Base):
    """A registered rider of the live service; simulated riders have no row here."""

    __tablename__ = "riders"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # SHA-256 hex digest of the bearer token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunRow(Base):
    """One `robotaxi simulate` run (or one service start): its config and wall-clock span."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RideRow(Base):
    """A ride (trip): the request as made, plus the state folded from its events."""

    __tablename__ = "rides"
    __table_args__ = (
        Index("ix_rides_rider_id_requested_at_us", "rider_id", "requested_at_us"),
        Index("ix_rides_state", "state"),
    )

    # the RideRequest's request_id; TripEvent.trip_id refers to it
    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"))
    # set only for registered riders; simulated riders keep their id in request_rider_id
    rider_id: Mapped[str | None] = mapped_column(ForeignKey("riders.id"))
    request_rider_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    rider_name: Mapped[str] = mapped_column(String(200))
    requested_at_us: Mapped[int] = mapped_column(BigInteger)
    pickup_x_m: Mapped[float] = mapped_column(Float)
    pickup_y_m: Mapped[float] = mapped_column(Float)
    dropoff_x_m: Mapped[float] = mapped_column(Float)
    dropoff_y_m: Mapped[float] = mapped_column(Float)
    pickup_lat: Mapped[float | None] = mapped_column(Float)
    pickup_lon: Mapped[float | None] = mapped_column(Float)
    dropoff_lat: Mapped[float | None] = mapped_column(Float)
    dropoff_lon: Mapped[float | None] = mapped_column(Float)
    patience_s: Mapped[float] = mapped_column(Float)
    origin_zone: Mapped[str] = mapped_column(String(100))
    destination_zone: Mapped[str] = mapped_column(String(100))
    # walks between where the rider asked and the curb spots the car serves, m
    pickup_walk_m: Mapped[float | None] = mapped_column(Float)
    dropoff_walk_m: Mapped[float | None] = mapped_column(Float)
    # --- the fold of the ride's events, kept in sync in the events' transaction ---
    state: Mapped[str] = mapped_column(String(32))
    vehicle_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    updated_at_us: Mapped[int] = mapped_column(BigInteger)
    # seq of the event the fold stands at; -1 before the first event
    last_seq: Mapped[int] = mapped_column(Integer)
    close_reason: Mapped[str | None] = mapped_column(Text)
    # --- what the ride cost, set once when it ended (integer cents of fare_currency) ---
    fare_cents: Mapped[int | None] = mapped_column(Integer)
    fare_currency: Mapped[str | None] = mapped_column(String(3))
    fare_rule: Mapped[str | None] = mapped_column(String(32))
    # operators' refunds so far, at most fare_cents in all
    refunded_cents: Mapped[int | None] = mapped_column(Integer)
    refund_reason: Mapped[str | None] = mapped_column(Text)


class TripEventRow(Base):
    """The append-only event log: one row per trip transition, never updated or deleted."""

    __tablename__ = "trip_events"
    __table_args__ = (UniqueConstraint("trip_id", "seq", name="uq_trip_events_trip_id_seq"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    trip_id: Mapped[str] = mapped_column(ForeignKey("rides.id"))
    seq: Mapped[int] = mapped_column(Integer)
    time_us: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(32))
    vehicle_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    cause: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JsonType)


class VehicleEventRow(Base):
    """Append-only log of what cars did outside trips (pulling over for ambulances, …)."""

    __tablename__ = "vehicle_events"
    __table_args__ = (Index("ix_vehicle_events_vehicle_id_time_us", "vehicle_id", "time_us"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"))
    vehicle_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    time_us: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JsonType)


class SupportTicketRow(Base):
    """A rider's (or the car's Help button's) request for a human: who, about which ride and
    car, and where its life cycle stands (open, answered, closed)."""

    __tablename__ = "support_tickets"
    __table_args__ = (
        Index("ix_support_tickets_status", "status"),
        Index("ix_support_tickets_rider_id", "rider_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ride_id: Mapped[str | None] = mapped_column(ForeignKey("rides.id"))
    rider_id: Mapped[str | None] = mapped_column(ForeignKey("riders.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    # --- revision 0004: nullable, tickets opened before it have none ---
    # the ride's car when the ticket was opened (a ride may be reassigned later)
    vehicle_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    # what it is about, when the rider chose ("lost_item", "comfort", "safety", "other")
    topic: Mapped[str | None] = mapped_column(String(32))
    # wall clock of the last message or status change
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RideShareRow(Base):
    """A read-only link to one ride that its rider gave to someone (trip sharing); only the
    SHA-256 digest of the link's token is stored. Revision 0005."""

    __tablename__ = "ride_shares"
    __table_args__ = (Index("ix_ride_shares_ride_id", "ride_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    ride_id: Mapped[str] = mapped_column(ForeignKey("rides.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SupportMessageRow(Base):
    """Append-only log of a ticket after it was opened: replies, follow-ups and closings,
    each with the status the ticket had after it (so the life cycle is kept, not only its
    end)."""

    __tablename__ = "support_messages"
    __table_args__ = (Index("ix_support_messages_ticket_id", "ticket_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("support_tickets.id"))
    author: Mapped[str] = mapped_column(String(16))  # "rider" or "operator"
    text: Mapped[str | None] = mapped_column(Text)  # None: a status change only (closing)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
