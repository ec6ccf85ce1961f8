"""The tables of cpubot's database, which the Alembic migrations build."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC and reads them back aware."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Any
    ) -> datetime | None:
        """Convert to naive UTC before writing."""
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: datetime | None, dialect: Any
    ) -> datetime | None:
        """Mark values read back as UTC."""
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()

alert_state = sa.Table(
    "alert_state",
    metadata,
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

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("delivery_id", sa.String(128), primary_key=True),
    sa.Column("received_at", UtcDateTime(), nullable=False, index=True),
)

sms_gate = sa.Table(
    "sms_gate",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("touched_at", UtcDateTime()),
)

sms_ledger = sa.Table(
    "sms_ledger",
    metadata,
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
    sa.Index("ix_sms_ledger_created_at", "created_at"),
    sa.Index("ix_sms_ledger_recipient_created_at", "recipient", "created_at"),
    sa.Index("ix_sms_ledger_status", "status"),
)

checks = sa.Table(
    "checks",
    metadata,
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
    sa.Index("ix_checks_instance_checked_at", "instance_id", "checked_at"),
    sa.Index("ix_checks_checked_at", "checked_at"),
)
