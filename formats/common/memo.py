"""One memo for every cache of computed values: bounded in bytes, safe across threads, and
computing each key once however many threads ask for it at the same time (the FUSE loop is
multithreaded: two readers of one file must not render it twice)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, cast

from cachetools import LRUCache

V = TypeVar("V")


class _Flight(Generic[V]):
    """A computation under way: later askers wait for its value (or its exception)."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: V | None = None
        self.error: BaseException | None = None


class BoundedMemo(Generic[V]):
    """Least recently used values, at most ``max_bytes`` by ``sizeof``; a value larger than
    the whole budget is handed to its askers and not kept."""

    def __init__(self, max_bytes: int, sizeof: Callable[[V], int]) -> None:
        self._values: LRUCache = LRUCache(maxsize=max(1, max_bytes), getsizeof=sizeof)
        self._sizeof = sizeof
        self._flights: dict[Hashable, _Flight[V]] = {}
        self._lock = threading.Lock()

    @property
    def current_bytes(self) -> int:
        return int(self._values.currsize)

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        with self._lock:
            cached = self._values.get(key)
            if cached is not None:
                return cached
            flight = self._flights.get(key)
            owner = flight is None
            if owner:
                flight = self._flights[key] = _Flight()
        assert flight is not None
        if not owner:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return cast(V, flight.value)  # set before done, as error is None
        try:
            flight.value = value = compute()
        except BaseException as e:
            flight.error = e
            raise
        finally:
            with self._lock:
                del self._flights[key]
                if flight.error is None and self._sizeof(value) <= self._values.maxsize:
                    self._values[key] = value
            flight.done.set()
        return value

    def discard(self, key: Hashable) -> None:
        """Forget ``key``'s value (found no longer valid): its next ``get`` computes it again."""
        with self._lock:
            self._values.pop(key, None)
