"""An in-memory key-value table: HashStore's storage and TCPStore's server state.

One condition variable guards it; a blocked `wait`/`get`/`queue_pop` sleeps on it until a
writer notifies (no polling), up to its deadline. Queues live beside the keys: they
count for wait/check (torch's rule) but not for num_keys or list_keys.
"""
from __future__ import annotations

import collections
import threading

from ._base import compare_set_result, counter_value, wrap_int64


class Table:
    def __init__(self):
        self.data: dict[str, bytes] = {}
        self.queues: dict[str, collections.deque] = {}
        self.internal: dict[str, int] = {}      # TCPStore's client counter
        self.cond = threading.Condition()
        self.closed = False                     # the TCPStore server stopped: waits end

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _wait_for(self, ready, timeout_s: float) -> bool:
        """Sleep on the condition until `ready()`, the deadline or close (lock held)."""
        return self.cond.wait_for(lambda: ready() or self.closed, timeout_s) and ready()

    # --- writers ---------------------------------------------------------------------------
    def set(self, key: str, value: bytes) -> None:
        with self.cond:
            self.data[key] = value
            self.cond.notify_all()

    def multi_set(self, keys: list[str], values: list[bytes]) -> None:
        with self.cond:
            self.data.update(zip(keys, values))
            self.cond.notify_all()

    def add(self, key: str, amount: int) -> int:
        with self.cond:
            value = wrap_int64(counter_value(self.data.get(key), key) + amount)
            self.data[key] = str(value).encode()
            self.cond.notify_all()
            return value

    def append(self, key: str, value: bytes) -> None:
        with self.cond:
            self.data[key] = self.data.get(key, b"") + value
            self.cond.notify_all()

    def compare_set(self, key: str, expected: bytes, desired: bytes) -> bytes:
        with self.cond:
            new, result = compare_set_result(self.data.get(key), expected, desired)
            if new is not None:
                self.data[key] = new
                self.cond.notify_all()
            return result

    def delete(self, key: str) -> bool:
        with self.cond:
            return self.data.pop(key, None) is not None

    def queue_push(self, key: str, value: bytes) -> None:
        with self.cond:
            self.queues.setdefault(key, collections.deque()).append(value)
            self.cond.notify_all()

    def add_internal(self, key: str, amount: int) -> int:
        with self.cond:
            self.internal[key] = self.internal.get(key, 0) + amount
            self.cond.notify_all()
            return self.internal[key]

    # --- readers -----------------------------------------------------------------------------
    def has(self, key: str, queues: bool = True) -> bool:
        return key in self.data or (queues and bool(self.queues.get(key)))

    def wait(self, keys: list[str], timeout_s: float, queues: bool = True) -> bool:
        """True once every key exists; False at the deadline."""
        with self.cond:
            return self._wait_for(lambda: all(self.has(k, queues) for k in keys), timeout_s)

    def wait_value(self, keys: list[str], timeout_s: float, queues: bool):
        """The keys' values once all exist (b"" for a key that is only a queue), or None
        at the deadline."""
        with self.cond:
            if not self._wait_for(lambda: all(self.has(k, queues) for k in keys), timeout_s):
                return None
            return [self.data.get(k, b"") for k in keys]

    def check(self, keys: list[str]) -> bool:
        with self.cond:
            return all(self.has(k) for k in keys)

    def num_keys(self) -> int:
        with self.cond:
            return len(self.data) + len(self.internal)

    def list_keys(self) -> list[str]:
        with self.cond:
            return list(self.data)

    def queue_len(self, key: str) -> int:
        with self.cond:
            return len(self.queues.get(key, ()))

    def queue_pop(self, key: str, block: bool, timeout_s: float):
        """The queue's first value; None when it stays empty (at once unless `block`)."""
        with self.cond:
            if block:
                self._wait_for(lambda: bool(self.queues.get(key)), timeout_s)
            queue = self.queues.get(key)
            return queue.popleft() if queue else None

    def wait_counter(self, key: str, target: int, timeout_s: float, internal: bool) -> int:
        """Wait until the counter `key` reaches `target`; returns its value then (or at
        the deadline)."""
        def value():
            if internal:
                return self.internal.get(key, 0)
            return counter_value(self.data.get(key), key)
        with self.cond:
            self._wait_for(lambda: value() >= target, timeout_s)
            return value()

