"""Create deliveries: ids of Slack deliveries already handled, kept for a day.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.String(128), primary_key=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_deliveries_received_at", "deliveries", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_received_at", "deliveries")
    op.drop_table("deliveries")
