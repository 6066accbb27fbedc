"""Initial schema: riders, runs, rides, the trip event log and support tickets.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from models: a shipped revision must not change
# when the models move on.
ID = sa.String(length=64)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "riders",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_riders")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_riders_token_hash")),
    )
    op.create_table(
        "runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("ended_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_table(
        "rides",
        sa.Column("id", ID, nullable=False),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("rider_id", ID, nullable=True),
        sa.Column("request_rider_id", ID, nullable=False),
        sa.Column("rider_name", sa.String(length=200), nullable=False),
        sa.Column("requested_at_us", sa.BigInteger(), nullable=False),
        sa.Column("pickup_x_m", sa.Float(), nullable=False),
        sa.Column("pickup_y_m", sa.Float(), nullable=False),
        sa.Column("dropoff_x_m", sa.Float(), nullable=False),
        sa.Column("dropoff_y_m", sa.Float(), nullable=False),
        sa.Column("pickup_lat", sa.Float(), nullable=True),
        sa.Column("pickup_lon", sa.Float(), nullable=True),
        sa.Column("dropoff_lat", sa.Float(), nullable=True),
        sa.Column("dropoff_lon", sa.Float(), nullable=True),
        sa.Column("patience_s", sa.Float(), nullable=False),
        sa.Column("origin_zone", sa.String(length=100), nullable=False),
        sa.Column("destination_zone", sa.String(length=100), nullable=False),
        sa.Column("pickup_walk_m", sa.Float(), nullable=True),
        sa.Column("dropoff_walk_m", sa.Float(), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("vehicle_id", ID, nullable=True),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["rider_id"], ["riders.id"], name=op.f("fk_rides_rider_id_riders")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_rides_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rides")),
    )
    op.create_index("ix_rides_rider_id_requested_at_us", "rides", ["rider_id", "requested_at_us"])
    op.create_index("ix_rides_state", "rides", ["state"])
    op.create_table(
        "support_tickets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ride_id", ID, nullable=True),
        sa.Column("rider_id", ID, nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["ride_id"], ["rides.id"], name=op.f("fk_support_tickets_ride_id_rides")
        ),
        sa.ForeignKeyConstraint(
            ["rider_id"], ["riders.id"], name=op.f("fk_support_tickets_rider_id_riders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_tickets")),
    )
    op.create_index("ix_support_tickets_status", "support_tickets", ["status"])
    op.create_table(
        "trip_events",
        # INTEGER on SQLite makes the id the rowid alias (autoincrementing); BIGINT elsewhere
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("trip_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("vehicle_id", ID, nullable=True),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["trip_id"], ["rides.id"], name=op.f("fk_trip_events_trip_id_rides")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trip_events")),
        # a replayed append of the same (trip, seq) cannot make a second row
        sa.UniqueConstraint("trip_id", "seq", name="uq_trip_events_trip_id_seq"),
    )


def downgrade() -> None:
    op.drop_table("trip_events")
    op.drop_index("ix_support_tickets_status", table_name="support_tickets")
    op.drop_table("support_tickets")
    op.drop_index("ix_rides_state", table_name="rides")
    op.drop_index("ix_rides_rider_id_requested_at_us", table_name="rides")
    op.drop_table("rides")
    op.drop_table("runs")
    op.drop_table("riders")
