"""A thread-safe cache whose entries expire, computing each missing key only once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from bot.models import Clock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

PRUNE_ABOVE = 10_000


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires_at: datetime


class ExpiringCache(Generic[K, V]):
    """Share each value until it expires; a missing key is computed only once.

    This is what keeps a burst of checks of one role down to one AssumeRole call, and
    a burst of checks of one instance down to one CloudWatch call.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: dict[K, _Entry[V]] = {}
        self._locks: dict[K, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: K, compute: Callable[[], tuple[V, datetime]]) -> V:
        """Return the live value for ``key``, computing it when missing or expired."""
        with self._lock_for(key):
            entry = self._entries.get(key)
            if entry is not None and self._clock() < entry.expires_at:
                return entry.value

            value, expires_at = compute()
            self._entries[key] = _Entry(value, expires_at)
            return value

    def evict(self, key: K) -> None:
        """Forget ``key`` so that the next ``get`` computes it again."""
        with self._guard:
            self._entries.pop(key, None)

    def _lock_for(self, key: K) -> threading.Lock:
        with self._guard:
            if len(self._locks) > PRUNE_ABOVE:
                self._prune()
            return self._locks.setdefault(key, threading.Lock())

    def _prune(self) -> None:
        """Drop expired entries and idle locks; called with the guard held."""
        now = self._clock()
        for key, entry in list(self._entries.items()):
            if entry.expires_at <= now:
                del self._entries[key]
        for key, lock in list(self._locks.items()):
            if key not in self._entries and not lock.locked():
                del self._locks[key]
