"""Support: tickets carry their car, topic and last change; replies and closings are logged.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


# nullable (tickets opened before this revision have no car, topic or change): ADD COLUMN on
# SQLite and PostgreSQL alike, no table rebuild, no ticket touched
def _ticket_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("vehicle_id", sa.String(length=64), nullable=True),
        sa.Column("topic", sa.String(length=32), nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=True),
    ]


def upgrade() -> None:
    for column in _ticket_columns():
        op.add_column("support_tickets", column)
    op.create_index("ix_support_tickets_rider_id", "support_tickets", ["rider_id"])
    op.create_table(
        "support_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["support_tickets.id"],
            name=op.f("fk_support_messages_ticket_id_support_tickets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_messages")),
    )
    op.create_index("ix_support_messages_ticket_id", "support_messages", ["ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_support_messages_ticket_id", table_name="support_messages")
    op.drop_table("support_messages")
    op.drop_index("ix_support_tickets_rider_id", table_name="support_tickets")
    with op.batch_alter_table("support_tickets") as batch:
        for column in reversed(_ticket_columns()):
            batch.drop_column(column.name)
