"""Create sms_ledger (every SMS, before it is sent), sms_gate and checks (the audit).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_ledger",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("instance_id", sa.String(19), nullable=False),
        sa.Column("recipient", sa.String(16), nullable=False),
        sa.Column("body", sa.String(320), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("settled_at", UtcDateTime()),
        sa.Column("message_sid", sa.String(64)),
        sa.Column("error", sa.String(500)),
    )
    op.create_index("ix_sms_ledger_created_at", "sms_ledger", ["created_at"])
    op.create_index(
        "ix_sms_ledger_recipient_created_at", "sms_ledger", ["recipient", "created_at"]
    )
    op.create_index("ix_sms_ledger_status", "sms_ledger", ["status"])

    gate = op.create_table(
        "sms_gate",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("touched_at", UtcDateTime()),
    )
    op.bulk_insert(gate, [{"id": 1, "touched_at": None}])

    op.create_table(
        "checks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("checked_at", UtcDateTime(), nullable=False),
        sa.Column("requester_kind", sa.String(16), nullable=False),
        sa.Column("requester", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32)),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("role_name", sa.String(64), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("instance_id", sa.String(19), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("cpu_usage", sa.Float),
        sa.Column("datapoint_time", UtcDateTime()),
        sa.Column("alert_status", sa.String(16)),
    )
    op.create_index(
        "ix_checks_instance_checked_at", "checks", ["instance_id", "checked_at"]
    )
    op.create_index("ix_checks_checked_at", "checks", ["checked_at"])


def downgrade() -> None:
    op.drop_table("checks")
    op.drop_table("sms_gate")
    op.drop_table("sms_ledger")
