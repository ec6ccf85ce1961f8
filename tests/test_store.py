"""The database module on SQLite and on Postgres: migrations, claims, deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import StoreUnavailable
from bot.store import AlertKey, Claim, Held, Store, migrate
from tests.harness import ACCOUNT, HOT, PHONE, free_port

KEY = AlertKey(ACCOUNT, "us-east-1", HOT, PHONE)
COOLDOWN = timedelta(minutes=60)
STALE = timedelta(minutes=2)
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


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
    claim = store.claim_alert(KEY, NOW, COOLDOWN, STALE)
    other = store.claim_alert(KEY, NOW, COOLDOWN, STALE)

    assert isinstance(claim, Claim)
    assert other == Held(pending=True, next_alert_after=None)


def test_sent_alert_holds_until_the_cooldown_ends(store):
    """After a sent SMS, claims are held until the cooldown has passed."""
    claim = store.claim_alert(KEY, NOW, COOLDOWN, STALE)
    store.settle_alert(claim, NOW, sid="SM1", error=None)

    during = store.claim_alert(KEY, NOW + timedelta(minutes=59), COOLDOWN, STALE)
    after = store.claim_alert(KEY, NOW + timedelta(minutes=60), COOLDOWN, STALE)

    assert during == Held(pending=False, next_alert_after=NOW + COOLDOWN)
    assert isinstance(after, Claim)


def test_failed_alert_may_be_claimed_again_at_once(store):
    """A failed send does not start the cooldown."""
    claim = store.claim_alert(KEY, NOW, COOLDOWN, STALE)
    store.settle_alert(claim, NOW, sid=None, error="Twilio refused")

    again = store.claim_alert(KEY, NOW, COOLDOWN, STALE)

    assert isinstance(again, Claim)


def test_a_claim_abandoned_by_a_crash_is_reclaimed_when_stale(store):
    """A pending claim nobody settled is taken over once it is stale."""
    store.claim_alert(KEY, NOW, COOLDOWN, STALE)

    soon = store.claim_alert(KEY, NOW + timedelta(minutes=1), COOLDOWN, STALE)
    later = store.claim_alert(KEY, NOW + timedelta(minutes=3), COOLDOWN, STALE)

    assert isinstance(soon, Held)
    assert isinstance(later, Claim)


def test_keys_are_independent(store):
    """Another recipient or instance has its own claim."""
    store.claim_alert(KEY, NOW, COOLDOWN, STALE)

    other = AlertKey(ACCOUNT, "us-east-1", HOT, "+12025550123")

    assert isinstance(store.claim_alert(other, NOW, COOLDOWN, STALE), Claim)


def test_many_threads_claiming_at_once_get_one_claim(store):
    """Of 16 simultaneous claims exactly one wins."""
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(
            pool.map(lambda _: store.claim_alert(KEY, NOW, COOLDOWN, STALE), range(16))
        )

    assert sum(isinstance(outcome, Claim) for outcome in outcomes) == 1


def test_a_delivery_is_new_only_once(store):
    """The same delivery id is first once, and forgotten after a day."""
    assert store.first_delivery("slack:1", NOW) is True
    assert store.first_delivery("slack:1", NOW) is False
    assert store.first_delivery("slack:1", NOW + timedelta(days=2)) is True


def test_unreachable_database_raises_store_unavailable():
    """A database that cannot be reached is reported as unavailable."""
    store = Store(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")

    with pytest.raises(StoreUnavailable):
        store.claim_alert(KEY, NOW, COOLDOWN, STALE)
    store.close()
