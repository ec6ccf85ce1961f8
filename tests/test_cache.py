"""The expiring cache behind credentials, clients and readings."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from bot.cache import FIRST_PRUNE_AT, ExpiringCache
from tests.harness import FakeClock


def test_simultaneous_misses_of_one_key_compute_once():
    """Sixteen threads asking for one missing key share one computation."""
    clock = FakeClock()
    cache: ExpiringCache[str, int] = ExpiringCache(clock)
    calls: list[int] = []
    start = threading.Barrier(16)

    def compute() -> tuple[int, object]:
        calls.append(1)
        time.sleep(0.05)
        return 42, clock() + timedelta(minutes=1)

    def ask(_: int) -> int:
        start.wait(timeout=5)
        return cache.get("role", compute)

    with ThreadPoolExecutor(16) as pool:
        values = list(pool.map(ask, range(16)))

    assert values == [42] * 16
    assert len(calls) == 1


def test_an_expired_value_is_computed_again():
    """After its expiry a value is computed afresh."""
    clock = FakeClock()
    cache: ExpiringCache[str, int] = ExpiringCache(clock)
    counter = iter(range(10))

    def compute() -> tuple[int, object]:
        return next(counter), clock() + timedelta(minutes=1)

    first = cache.get("k", compute)
    clock.advance(seconds=59)
    same = cache.get("k", compute)
    clock.advance(seconds=2)
    fresh = cache.get("k", compute)

    assert (first, same, fresh) == (0, 0, 1)


def test_expired_entries_do_not_pile_up():
    """A long run of short-lived keys keeps only about the live ones."""
    clock = FakeClock()
    cache: ExpiringCache[int, int] = ExpiringCache(clock)

    for key in range(FIRST_PRUNE_AT * 20):
        cache.get(key, lambda: (0, clock() + timedelta(seconds=1)))
        clock.advance(seconds=2)

    assert len(cache) <= FIRST_PRUNE_AT
