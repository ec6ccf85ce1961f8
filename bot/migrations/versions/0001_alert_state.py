"""Create alert_state: one row per instance and recipient, the cooldown's lock.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_state",
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("instance_id", sa.String(19), primary_key=True),
        sa.Column("recipient", sa.String(16), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claim_id", sa.String(32)),
        sa.Column("claimed_at", UtcDateTime()),
        sa.Column("last_sent_at", UtcDateTime()),
        sa.Column("message_sid", sa.String(64)),
        sa.Column("last_error", sa.String(500)),
    )


def downgrade() -> None:
    op.drop_table("alert_state")
