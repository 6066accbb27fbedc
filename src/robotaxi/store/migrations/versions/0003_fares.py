"""Fares: the charged fare of each ended ride and operators' refunds, in integer cents.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# every column nullable (rides ended before fares existed have none): ADD COLUMN on SQLite
# and PostgreSQL alike, no table rebuild, no ride touched
def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("fare_cents", sa.Integer(), nullable=True),
        sa.Column("fare_currency", sa.String(length=3), nullable=True),
        sa.Column("fare_rule", sa.String(length=32), nullable=True),
        sa.Column("refunded_cents", sa.Integer(), nullable=True),
        sa.Column("refund_reason", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    for column in _columns():
        op.add_column("rides", column)


def downgrade() -> None:
    with op.batch_alter_table("rides") as batch:
        for column in reversed(_columns()):
            batch.drop_column(column.name)
