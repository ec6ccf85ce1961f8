"""A thread-safe cache whose entries expire, computing each missing key only once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from bot.models import Clock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

FIRST_PRUNE_AT = 64


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires_at: datetime


class ExpiringCache(Generic[K, V]):
    """Share each value until it expires; a missing key is computed only once.

    This is what keeps a burst of checks of one role down to one AssumeRole call, and
    a burst of checks of one instance down to one CloudWatch call. Expired entries
    are dropped whenever the cache has doubled since it was last pruned, so a
    long-running process does not keep old credentials and clients.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: dict[K, _Entry[V]] = {}
        self._locks: dict[K, threading.Lock] = {}
        self._users: dict[K, int] = {}
        self._guard = threading.Lock()
        self._prune_at = FIRST_PRUNE_AT

    def get(self, key: K, compute: Callable[[], tuple[V, datetime]]) -> V:
        """Return the live value for ``key``, computing it when missing or expired."""
        with self._locked(key):
            entry = self._entries.get(key)
            if entry is not None and self._clock() < entry.expires_at:
                return entry.value

            value, expires_at = compute()
            with self._guard:
                self._entries[key] = _Entry(value, expires_at)
                if len(self._entries) >= self._prune_at:
                    self._prune()
            return value

    def evict(self, key: K) -> None:
        """Forget ``key`` so that the next ``get`` computes it again."""
        with self._guard:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    @contextmanager
    def _locked(self, key: K) -> Iterator[None]:
        """Hold the key's own lock; the lock lives while anyone uses it."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
            self._users[key] = self._users.get(key, 0) + 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                self._users[key] -= 1
                if not self._users[key]:
                    del self._users[key]
                    if key not in self._entries:
                        del self._locks[key]

    def _prune(self) -> None:
        """Drop expired entries and their idle locks; called with the guard held."""
        now = self._clock()
        for key, entry in list(self._entries.items()):
            if entry.expires_at <= now:
                del self._entries[key]
                if key not in self._users:
                    self._locks.pop(key, None)
        self._prune_at = max(FIRST_PRUNE_AT, 2 * len(self._entries))
