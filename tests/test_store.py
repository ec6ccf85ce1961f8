"""The database module on SQLite and on Postgres: migrations, claims, deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import StoreUnavailable
from bot.store import (
    AlertKey,
    Caps,
    CheckRecord,
    Claim,
    Held,
    OverCap,
    PendingSend,
    Store,
    migrate,
)
from tests.harness import ACCOUNT, HOT, PHONE, free_port

KEY = AlertKey(ACCOUNT, "us-east-1", HOT, PHONE)
COOLDOWN = timedelta(minutes=60)
STALE = timedelta(minutes=2)
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CAPS = Caps(per_number=5, total=100)
BODY = "cpubot: EC2 hot"


def claim(store: Store, now: datetime = NOW, key: AlertKey = KEY, caps: Caps = CAPS):
    """Claim the right to send for a key, with the default rules."""
    return store.claim_alert(
        key, BODY, now, cooldown=COOLDOWN, stale_after=STALE, caps=caps
    )


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """Return a store on a freshly migrated database."""
    migrate(database_url)
    store = Store(database_url)
    yield store
    store.close()


def test_migrating_twice_is_harmless(database_url):
    """``migrate`` brings the schema to the newest revision and can run again."""
    first = migrate(database_url)
    second = migrate(database_url)

    assert first == second
    assert first != "base"


def test_first_claim_wins_and_the_second_is_held_pending(store):
    """While one check sends, another is told the alert is being sent."""
    first = claim(store)
    other = claim(store)

    assert isinstance(first, Claim)
    assert other == Held(pending=True, next_alert_after=None)


def test_sent_alert_holds_until_the_cooldown_ends(store):
    """After a sent SMS, claims are held until the cooldown has passed."""
    first = claim(store)
    store.settle_send(first.send_id, NOW, sid="SM1", error=None)

    during = claim(store, NOW + timedelta(minutes=59))
    after = claim(store, NOW + timedelta(minutes=60))

    assert during == Held(pending=False, next_alert_after=NOW + COOLDOWN)
    assert isinstance(after, Claim)


def test_failed_alert_may_be_claimed_again_at_once(store):
    """A failed send does not start the cooldown."""
    first = claim(store)
    store.settle_send(first.send_id, NOW, sid=None, error="Twilio refused")

    again = claim(store)

    assert isinstance(again, Claim)


def test_a_send_abandoned_by_a_crash_must_be_settled_when_stale(store):
    """A pending send nobody settled is handed back for settlement once stale."""
    first = claim(store)

    soon = claim(store, NOW + timedelta(minutes=1))
    later = claim(store, NOW + timedelta(minutes=3))

    assert isinstance(soon, Held)
    assert later == PendingSend(first.send_id, PHONE, BODY, NOW)
    assert store.pending_sends(older_than=NOW + timedelta(minutes=3)) == [later]


def test_a_settled_abandoned_send_found_at_the_provider_holds_the_cooldown(store):
    """A pending send later found at the provider counts as sent when it was made."""
    first = claim(store)

    store.settle_send(
        first.send_id, NOW + timedelta(minutes=3), sid="SM9", error=None, sent_at=NOW
    )

    assert claim(store, NOW + timedelta(minutes=3)) == Held(
        pending=False, next_alert_after=NOW + COOLDOWN
    )
    assert [row["status"] for row in store.sends()] == ["sent"]


def test_per_number_cap_blocks_until_the_oldest_send_is_an_hour_old(store):
    """The per-number cap counts the last hour of that number's SMS."""
    caps = Caps(per_number=2, total=100)
    for n, minute in enumerate((0, 10)):
        key = AlertKey(ACCOUNT, "us-east-1", f"i-0000000{n}", PHONE)
        sent = claim(store, NOW + timedelta(minutes=minute), key=key, caps=caps)
        store.settle_send(sent.send_id, NOW, sid=f"SM{minute}", error=None)

    blocked = claim(store, NOW + timedelta(minutes=20), caps=caps)
    reopened = claim(store, NOW + timedelta(minutes=61), caps=caps)

    assert isinstance(blocked, OverCap)
    assert blocked.reopens_at == NOW + timedelta(hours=1)
    assert "SMS_MAX_PER_NUMBER_PER_HOUR" in blocked.reason
    assert isinstance(reopened, Claim)


def test_total_cap_counts_every_recipient(store):
    """The total cap counts SMS to anyone."""
    caps = Caps(per_number=5, total=2)
    for number in ("+12025550123", "+12025550124"):
        claim(store, key=AlertKey(ACCOUNT, "us-east-1", HOT, number), caps=caps)

    blocked = claim(store, caps=caps)

    assert isinstance(blocked, OverCap)
    assert "SMS_MAX_PER_HOUR" in blocked.reason


def test_checks_are_listed_newest_first(store):
    """The audit trail lists one instance's checks, newest first, up to a limit."""
    for minute in range(3):
        store.record_check(
            CheckRecord(
                checked_at=NOW + timedelta(minutes=minute),
                requester_kind="api",
                requester="ops",
                channel=None,
                account_id=ACCOUNT,
                role_name="cpubot-reader",
                region="us-east-1",
                instance_id=HOT,
                outcome="ok",
                cpu_usage=float(minute),
            )
        )

    latest = store.recent_checks(HOT, limit=2)

    assert [record.cpu_usage for record in latest] == [2.0, 1.0]
    assert store.recent_checks("i-00000000") == []


def test_keys_are_independent(store):
    """Another recipient or instance has its own claim."""
    claim(store)

    other = AlertKey(ACCOUNT, "us-east-1", HOT, "+12025550123")

    assert isinstance(claim(store, key=other), Claim)


def test_many_threads_claiming_at_once_get_one_claim(store):
    """Of 16 simultaneous claims exactly one wins."""
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda _: claim(store), range(16)))

    assert sum(isinstance(outcome, Claim) for outcome in outcomes) == 1
    assert len(store.sends()) == 1


def test_a_delivery_is_new_only_once(store):
    """The same delivery id is first once, and forgotten after a day."""
    assert store.first_delivery("slack:1", NOW) is True
    assert store.first_delivery("slack:1", NOW) is False
    assert store.first_delivery("slack:1", NOW + timedelta(days=2)) is True


def test_unreachable_database_raises_store_unavailable():
    """A database that cannot be reached is reported as unavailable."""
    store = Store(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")

    with pytest.raises(StoreUnavailable):
        claim(store)
    store.close()
