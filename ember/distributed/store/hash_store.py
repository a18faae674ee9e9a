"""torch.distributed.HashStore: a thread-safe store inside one process."""
from __future__ import annotations

from ..errors import DistStoreError, QueueEmptyError
from ._base import (DEFAULT_TIMEOUT, Store, as_amount, as_key, as_keys, as_seconds, as_value,
                    check_same_length)
from ._table import Table


class HashStore(Store):
    """A key-value table shared by the threads of one process (and by its clones)."""

    def __init__(self):                         # noqa: super's only sets the timeout
        self._table = Table()
        self._shared = [DEFAULT_TIMEOUT.total_seconds()]   # clones share it, as in torch

    @property
    def _timeout_s(self) -> float:
        return self._shared[0]

    @_timeout_s.setter
    def _timeout_s(self, value: float) -> None:
        self._shared[0] = value

    def _wait_or_raise(self, keys: list[str], timeout_s: float, queues: bool = True):
        values = self._table.wait_value(keys, timeout_s, queues)
        if values is None:
            raise DistStoreError(f"HashStore: wait timeout after {timeout_s * 1000:.0f} ms "
                                 f"for keys {keys}")
        return values

    def set(self, key, value, /) -> None:
        self._table.set(as_key(key, "set"), as_value(value, "set"))

    def get(self, key, /) -> bytes:
        # get waits for a value; a key that is only a queue does not count
        return self._wait_or_raise([as_key(key, "get")], self._timeout_s, queues=False)[0]

    def add(self, key, amount, /) -> int:
        return self._table.add(as_key(key, "add"), as_amount(amount, "add"))

    def compare_set(self, key, expected_value, desired_value, /) -> bytes:
        return self._table.compare_set(as_key(key, "compare_set"),
                                       as_value(expected_value, "compare_set"),
                                       as_value(desired_value, "compare_set"))

    def wait(self, keys, timeout=None, /) -> None:
        keys = as_keys(keys, "wait")
        seconds = self._timeout_s if timeout is None else as_seconds(timeout, "wait")
        self._wait_or_raise(keys, seconds)

    def check(self, keys, /) -> bool:
        return self._table.check(as_keys(keys, "check"))

    def delete_key(self, key, /) -> bool:
        return self._table.delete(as_key(key, "delete_key"))

    def num_keys(self) -> int:
        return self._table.num_keys()

    def list_keys(self) -> list[str]:
        return self._table.list_keys()

    def append(self, key, value, /) -> None:
        self._table.append(as_key(key, "append"), as_value(value, "append"))

    def multi_get(self, keys, /) -> list[bytes]:
        return self._wait_or_raise(as_keys(keys, "multi_get"), self._timeout_s, queues=False)

    def multi_set(self, keys, values, /) -> None:
        keys = as_keys(keys, "multi_set")
        values = [as_value(v, "multi_set") for v in values]
        check_same_length(keys, values)
        self._table.multi_set(keys, values)

    def has_extended_api(self) -> bool:
        return True

    def clone(self) -> "HashStore":
        twin = HashStore.__new__(HashStore)
        twin.__dict__.update(self.__dict__)      # the same table and timeout
        return twin

    def queue_push(self, key, value, /) -> None:
        self._table.queue_push(as_key(key, "queue_push"), as_value(value, "queue_push"))

    def queue_pop(self, key, block: bool = True) -> bytes:
        key = as_key(key, "queue_pop")
        value = self._table.queue_pop(key, bool(block), self._timeout_s)
        if value is None:
            if not block:
                raise QueueEmptyError(f"HashStore.queue_pop({key!r}): queue is empty")
            raise DistStoreError(f"HashStore.queue_pop({key!r}): wait timeout after "
                                 f"{self._timeout_s * 1000:.0f} ms, the queue stayed empty")
        return value

    def queue_len(self, key, /) -> int:
        return self._table.queue_len(as_key(key, "queue_len"))
