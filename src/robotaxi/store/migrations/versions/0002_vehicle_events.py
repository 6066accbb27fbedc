"""Vehicle events: what cars did outside trips (pulling over for ambulances, …).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=64)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "vehicle_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("vehicle_id", ID, nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_vehicle_events_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vehicle_events")),
    )
    op.create_index(
        "ix_vehicle_events_vehicle_id_time_us", "vehicle_events", ["vehicle_id", "time_us"]
    )


def downgrade() -> None:
    op.drop_index("ix_vehicle_events_vehicle_id_time_us", table_name="vehicle_events")
    op.drop_table("vehicle_events")
