"""Trip sharing: read-only links to a ride (only their tokens' SHA-256 digests are kept).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ride_shares",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("ride_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("revoked_at", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["ride_id"], ["rides.id"], name=op.f("fk_ride_shares_ride_id_rides")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_ride_shares")),
    )
    op.create_index("ix_ride_shares_ride_id", "ride_shares", ["ride_id"])


def downgrade() -> None:
    op.drop_index("ix_ride_shares_ride_id", table_name="ride_shares")
    op.drop_table("ride_shares")
