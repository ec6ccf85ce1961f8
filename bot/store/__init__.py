"""The database behind one small module: alerts, the SMS ledger, deliveries, checks.

Every SMS claim passes through one gate row, locked for the length of a short
transaction, so that the cooldown, the caps and the ledger are decided by one
process at a time however many check the same hot instance: a check may send only
after it has written a ``pending`` ledger row under that lock.
"""

from __future__ import annotations

import logging
import time
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
from bot.store.schema import (
    UtcDateTime,
    alert_state,
    checks,
    deliveries,
    metadata,
    sms_gate,
    sms_ledger,
)

__all__ = [
    "AlertKey",
    "Caps",
    "CheckRecord",
    "Claim",
    "Held",
    "OverCap",
    "PendingSend",
    "Store",
    "UtcDateTime",
    "metadata",
    "migrate",
    "migrate_if_local",
]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
DELIVERY_MEMORY = timedelta(days=1)
CAP_WINDOW = timedelta(hours=1)
COUNTED = ("pending", "sent")


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
class Caps:
    """SMS volume limits over the last hour: per recipient and in all."""

    per_number: int
    total: int


@dataclass(frozen=True)
class Claim:
    """The right, held by one check, to send one SMS recorded as pending."""

    key: AlertKey
    send_id: str
    body: str
    created_at: datetime


@dataclass(frozen=True)
class Held:
    """Why a check may not send now: sent recently, or being sent by another check.

    ``refused`` holds the provider's reason when the last attempt was refused for
    good (an invalid or opted-out number): that, too, waits for the cooldown.
    """

    pending: bool
    next_alert_after: datetime | None
    refused: str | None = None


@dataclass(frozen=True)
class OverCap:
    """An SMS cap is reached; it reopens at a known time."""

    reason: str
    reopens_at: datetime


@dataclass(frozen=True)
class PendingSend:
    """A ledger row left pending, by a crash or a lost answer; Twilio must be asked."""

    send_id: str
    recipient: str
    body: str
    created_at: datetime


@dataclass(frozen=True)
class CheckRecord:
    """One line of the audit trail."""

    checked_at: datetime
    requester_kind: str
    requester: str
    channel: str | None
    account_id: str
    role_name: str
    region: str
    instance_id: str
    outcome: str
    cpu_usage: float | None = None
    datapoint_time: datetime | None = None
    alert_status: str | None = None


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
            connection.execute(sa.select(sms_gate.c.id).limit(1))

    def claim_alert(
        self,
        key: AlertKey,
        body: str,
        now: datetime,
        *,
        cooldown: timedelta,
        stale_after: timedelta,
        caps: Caps,
    ) -> Claim | Held | OverCap | PendingSend:
        """Decide under the gate whether this check may send, and record it pending."""
        with self._transaction() as connection:
            _pass_gate(connection, now)
            connection.execute(_insert_ignore(connection, alert_state, _idle(key)))
            row = connection.execute(sa.select(alert_state).where(key.where())).one()

            held = _held(connection, row, now, cooldown, stale_after)
            if held is not None:
                return held
            over = _over_cap(connection, key.recipient, now, caps)
            if over is not None:
                return over
            return _record_pending(connection, key, body, now)

    def settle_send(
        self,
        send_id: str,
        now: datetime,
        *,
        sid: str | None,
        error: str | None,
        sent_at: datetime | None = None,
        refused: bool = False,
    ) -> None:
        """Record a send's outcome: sent with its SID (and time), or failed.

        A send the provider ``refused`` for good starts the cooldown like a sent
        one, so that an invalid or opted-out number is not tried on every check.
        """
        status = "sent" if sid is not None else "refused" if refused else "failed"
        state: dict[str, Any] = {
            "status": status,
            "claim_id": None,
            "last_error": error,
        }
        if sid is not None or refused:
            state.update(last_sent_at=sent_at or now, message_sid=sid)

        with self._transaction() as connection:
            connection.execute(
                sms_ledger.update()
                .where(sms_ledger.c.id == send_id, sms_ledger.c.status == "pending")
                .values(status=status, settled_at=now, message_sid=sid, error=error)
            )
            connection.execute(
                alert_state.update()
                .where(alert_state.c.claim_id == send_id)
                .values(**state)
            )

    def pending_sends(self, older_than: datetime) -> list[PendingSend]:
        """Return ledger rows still pending that were recorded before ``older_than``."""
        query = sa.select(sms_ledger).where(
            sms_ledger.c.status == "pending", sms_ledger.c.created_at < older_than
        )
        with self._connect() as connection:
            rows = connection.execute(query.order_by(sms_ledger.c.created_at)).all()
        return [_pending(row) for row in rows]

    def sends(self, recipient: str | None = None) -> list[dict[str, Any]]:
        """Return ledger rows, oldest first (for operators and tests)."""
        query = sa.select(sms_ledger).order_by(sms_ledger.c.created_at)
        if recipient is not None:
            query = query.where(sms_ledger.c.recipient == recipient)
        with self._connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def first_delivery(self, delivery_id: str, now: datetime | None = None) -> bool:
        """Record a delivery (a Slack trigger id); False when it was seen before."""
        now = now or datetime.now(UTC)
        values = {"delivery_id": delivery_id, "received_at": now}
        with self._transaction() as connection:
            connection.execute(
                deliveries.delete().where(
                    deliveries.c.received_at < now - DELIVERY_MEMORY
                )
            )
            inserted = connection.execute(
                _insert_ignore(connection, deliveries, values).returning(
                    deliveries.c.delivery_id
                )
            )
            return inserted.first() is not None

    def record_check(self, record: CheckRecord) -> None:
        """Append one check to the audit trail."""
        with self._transaction() as connection:
            connection.execute(checks.insert().values(**record.__dict__))

    def recent_checks(
        self, instance_id: str | None = None, limit: int = 20
    ) -> list[CheckRecord]:
        """Return the latest checks, newest first, of one instance or of all."""
        query = sa.select(
            *[checks.c[name] for name in CheckRecord.__dataclass_fields__]
        )
        if instance_id is not None:
            query = query.where(checks.c.instance_id == instance_id)
        query = query.order_by(checks.c.checked_at.desc(), checks.c.id.desc())
        with self._connect() as connection:
            rows = connection.execute(query.limit(limit)).all()
        return [CheckRecord(**row._mapping) for row in rows]

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        with _unavailable_on_error(), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with _unavailable_on_error(), self.engine.begin() as connection:
            yield connection


def _pass_gate(connection: Connection, now: datetime) -> None:
    """Lock the gate row: one claim at a time, in every process, until commit."""
    passed = connection.execute(
        sms_gate.update().where(sms_gate.c.id == 1).values(touched_at=now)
    )
    if passed.rowcount != 1:
        raise StoreUnavailable(
            "The SMS gate row is missing: run python -m bot migrate on a fresh "
            "database."
        )


def _held(
    connection: Connection,
    row: Any,
    now: datetime,
    cooldown: timedelta,
    stale_after: timedelta,
) -> Held | PendingSend | None:
    """Say why the key may not send now, if it may not."""
    if row.status == "pending":
        if row.claimed_at > now - stale_after:
            return Held(pending=True, next_alert_after=None)
        ledger = connection.execute(
            sa.select(sms_ledger).where(sms_ledger.c.id == row.claim_id)
        ).one()
        return _pending(ledger)

    if row.last_sent_at is not None and row.last_sent_at > now - cooldown:
        return Held(
            pending=False,
            next_alert_after=row.last_sent_at + cooldown,
            refused=row.last_error if row.status == "refused" else None,
        )
    return None


def _over_cap(
    connection: Connection, recipient: str, now: datetime, caps: Caps
) -> OverCap | None:
    """Count what went out in the last hour, for the number and in all."""
    since = now - CAP_WINDOW
    counted = sa.and_(sms_ledger.c.status.in_(COUNTED), sms_ledger.c.created_at > since)
    for condition, limit, reason in (
        (
            sms_ledger.c.recipient == recipient,
            caps.per_number,
            f"this number already got {caps.per_number} SMS in the last hour "
            "(SMS_MAX_PER_NUMBER_PER_HOUR)",
        ),
        (
            sa.true(),
            caps.total,
            f"{caps.total} SMS went out in the last hour (SMS_MAX_PER_HOUR)",
        ),
    ):
        count, oldest = connection.execute(
            sa.select(sa.func.count(), sa.func.min(sms_ledger.c.created_at)).where(
                counted, condition
            )
        ).one()
        if count >= limit:
            reopens = (oldest or now) + CAP_WINDOW
            return OverCap(reason=reason, reopens_at=reopens)
    return None


def _record_pending(
    connection: Connection, key: AlertKey, body: str, now: datetime
) -> Claim:
    send_id = uuid.uuid4().hex
    connection.execute(
        sms_ledger.insert().values(
            id=send_id,
            account_id=key.account_id,
            region=key.region,
            instance_id=key.instance_id,
            recipient=key.recipient,
            body=body,
            status="pending",
            created_at=now,
        )
    )
    connection.execute(
        alert_state.update()
        .where(key.where())
        .values(status="pending", claim_id=send_id, claimed_at=now)
    )
    return Claim(key=key, send_id=send_id, body=body, created_at=now)


def _pending(row: Any) -> PendingSend:
    return PendingSend(
        send_id=row.id,
        recipient=row.recipient,
        body=row.body,
        created_at=row.created_at,
    )


def _idle(key: AlertKey) -> dict[str, Any]:
    return {
        "account_id": key.account_id,
        "region": key.region,
        "instance_id": key.instance_id,
        "recipient": key.recipient,
        "status": "idle",
    }


def _insert_ignore(
    connection: Connection, table: sa.Table, values: dict[str, Any]
) -> sa.Insert:
    """INSERT a row unless its primary key exists, in the dialect's own words."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing()
    return sqlite.insert(table).values(values).on_conflict_do_nothing()


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
        pool_size=5,
        max_overflow=10,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


def migrate(url: str, attempts: int = 3) -> str:
    """Bring the schema up to date and return the revision reached.

    Processes starting together on one SQLite file may race to migrate it; the
    loser tries again, and finds the work done.
    """
    for attempt in range(1, attempts):
        try:
            return _upgrade(url)
        except StoreUnavailable:
            time.sleep(0.5 * attempt)
    return _upgrade(url)


def migrate_if_local(url: str) -> None:
    """Migrate a local SQLite file at start; Postgres is migrated by the release."""
    if url.startswith("sqlite"):
        migrate(url)


def _upgrade(url: str) -> str:
    """Run Alembic's upgrade to the newest revision once."""
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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Let readers and one writer work at once, and wait for the write lock."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
