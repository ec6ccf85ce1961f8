"""The database behind one small module: who was alerted, and when.

One row per account, region, instance and recipient is the lock that makes an
alert go out once however many processes check the same hot instance: a check
may send only after it has moved that row to ``pending`` with a conditional
UPDATE, which the database lets exactly one transaction do.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.errors import StoreUnavailable

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


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

DELIVERY_MEMORY = timedelta(days=1)


@dataclass(frozen=True)
class AlertKey:
    """What one cooldown covers: an instance and a recipient."""

    account_id: str
    region: str
    instance_id: str
    recipient: str

    def where(self) -> sa.ColumnElement[bool]:
        """Return the SQL condition selecting this key's row."""
        return sa.and_(
            alert_state.c.account_id == self.account_id,
            alert_state.c.region == self.region,
            alert_state.c.instance_id == self.instance_id,
            alert_state.c.recipient == self.recipient,
        )


@dataclass(frozen=True)
class Claim:
    """The right, held by one check, to send the alert for a key."""

    key: AlertKey
    claim_id: str


@dataclass(frozen=True)
class Held:
    """Why a check may not send now: sent recently, or being sent by another check."""

    pending: bool
    next_alert_after: datetime | None


class Store:
    """cpubot's database: SQLite by default, Postgres through ``DATABASE_URL``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers and is migrated."""
        with self._connect() as connection:
            connection.execute(sa.select(alert_state.c.status).limit(1))

    def claim_alert(
        self, key: AlertKey, now: datetime, cooldown: timedelta, stale_after: timedelta
    ) -> Claim | Held:
        """Take the right to send for ``key`` unless it was sent or is being sent."""
        claim_id = uuid.uuid4().hex
        free = sa.and_(
            key.where(),
            sa.or_(
                alert_state.c.status != "pending",
                alert_state.c.claimed_at <= now - stale_after,
            ),
            sa.or_(
                alert_state.c.last_sent_at.is_(None),
                alert_state.c.last_sent_at <= now - cooldown,
            ),
        )

        with self._transaction() as connection:
            connection.execute(_insert_missing(connection, key))
            taken = connection.execute(
                alert_state.update()
                .where(free)
                .values(status="pending", claim_id=claim_id, claimed_at=now)
            )
            if taken.rowcount == 1:
                return Claim(key=key, claim_id=claim_id)
            row = connection.execute(sa.select(alert_state).where(key.where())).one()

        next_after = row.last_sent_at + cooldown if row.last_sent_at else None
        return Held(pending=row.status == "pending", next_alert_after=next_after)

    def settle_alert(
        self, claim: Claim, now: datetime, *, sid: str | None, error: str | None
    ) -> None:
        """Record the outcome of a claimed send: sent with its SID, or failed."""
        values: dict[str, Any] = {"claim_id": None, "last_error": error}
        if sid is not None:
            values.update(status="sent", last_sent_at=now, message_sid=sid)
        else:
            values.update(status="failed")

        with self._transaction() as connection:
            connection.execute(
                alert_state.update()
                .where(claim.key.where(), alert_state.c.claim_id == claim.claim_id)
                .values(**values)
            )

    def first_delivery(self, delivery_id: str, now: datetime | None = None) -> bool:
        """Record a delivery (a Slack trigger id); False when it was seen before."""
        now = now or datetime.now(UTC)
        with self._transaction() as connection:
            connection.execute(
                deliveries.delete().where(
                    deliveries.c.received_at < now - DELIVERY_MEMORY
                )
            )
            statement = _insert_ignore(
                connection, deliveries, {"delivery_id": delivery_id, "received_at": now}
            )
            inserted = connection.execute(statement.returning(deliveries.c.delivery_id))
            return inserted.first() is not None

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        with _unavailable_on_error(), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with _unavailable_on_error(), self.engine.begin() as connection:
            yield connection


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
    """Turn any database error into ``StoreUnavailable``, logging its kind once."""
    try:
        yield
    except SQLAlchemyError as exc:
        log.warning("database error: %s", exc.__class__.__name__)
        raise StoreUnavailable(
            "The database is unavailable or not migrated (run: python -m bot migrate)."
        ) from exc


def create_engine(url: str) -> Engine:
    """Return an engine tuned for many short transactions from threads and processes."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


def migrate(url: str) -> str:
    """Bring the schema up to date with Alembic and return the revision reached."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            revision = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreUnavailable(
            f"Could not migrate the database: {exc.__class__.__name__}."
        ) from exc
    finally:
        engine.dispose()
    return revision or "base"


def _insert_missing(connection: Connection, key: AlertKey) -> sa.Insert:
    """INSERT the key's idle row unless it exists."""
    values = {
        "account_id": key.account_id,
        "region": key.region,
        "instance_id": key.instance_id,
        "recipient": key.recipient,
        "status": "idle",
    }
    return _insert_ignore(connection, alert_state, values)


def _insert_ignore(
    connection: Connection, table: sa.Table, values: dict[str, Any]
) -> sa.Insert:
    """INSERT a row unless its primary key exists, in the dialect's own words."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing()
    return sqlite.insert(table).values(values).on_conflict_do_nothing()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Let readers and one writer work at once, and wait for the write lock."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
