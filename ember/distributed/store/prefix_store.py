"""torch.distributed.PrefixStore: every key of the wrapped store becomes prefix + "/" + key."""
from __future__ import annotations

from ._base import Store, as_key, as_keys


class PrefixStore(Store):
    """A view of `store` whose keys all start with `prefix + "/"`; counts, the timeout and
    the extended API are the wrapped store's."""

    def __init__(self, prefix: str, store: Store):
        if store is None:
            raise ValueError("PrefixStore: store argument cannot be None")
        if not isinstance(prefix, str):
            raise TypeError(f"PrefixStore: prefix must be a str, got {type(prefix).__name__}")
        self._prefix = prefix
        self._store = store

    def _k(self, key, op: str) -> str:
        return f"{self._prefix}/{as_key(key, op)}"

    def _ks(self, keys, op: str) -> list[str]:
        return [f"{self._prefix}/{k}" for k in as_keys(keys, op)]

    @property
    def underlying_store(self) -> Store:
        return self._store

    @property
    def _underlying_non_prefix_store(self) -> Store:
        store = self._store
        while isinstance(store, PrefixStore):
            store = store._store
        return store

    @property
    def timeout(self):
        return self._store.timeout

    def set_timeout(self, timeout, /) -> None:
        self._store.set_timeout(timeout)

    def set(self, key, value, /) -> None:
        self._store.set(self._k(key, "set"), value)

    def get(self, key, /) -> bytes:
        return self._store.get(self._k(key, "get"))

    def add(self, key, amount, /) -> int:
        return self._store.add(self._k(key, "add"), amount)

    def compare_set(self, key, expected_value, desired_value, /) -> bytes:
        return self._store.compare_set(self._k(key, "compare_set"), expected_value,
                                       desired_value)

    def wait(self, keys, timeout=None, /) -> None:
        keys = self._ks(keys, "wait")
        if timeout is None:
            self._store.wait(keys)
        else:
            self._store.wait(keys, timeout)

    def check(self, keys, /) -> bool:
        return self._store.check(self._ks(keys, "check"))

    def delete_key(self, key, /) -> bool:
        return self._store.delete_key(self._k(key, "delete_key"))

    def num_keys(self) -> int:
        return self._store.num_keys()

    def list_keys(self) -> list[str]:
        start = f"{self._prefix}/"
        return [k[len(start):] for k in self._store.list_keys() if k.startswith(start)]

    def append(self, key, value, /) -> None:
        self._store.append(self._k(key, "append"), value)

    def multi_get(self, keys, /) -> list[bytes]:
        return self._store.multi_get(self._ks(keys, "multi_get"))

    def multi_set(self, keys, values, /) -> None:
        self._store.multi_set(self._ks(keys, "multi_set"), values)

    def has_extended_api(self) -> bool:
        return self._store.has_extended_api()

    def clone(self) -> "PrefixStore":
        return PrefixStore(self._prefix, self._store.clone())

    def queue_push(self, key, value, /) -> None:
        self._store.queue_push(self._k(key, "queue_push"), value)

    def queue_pop(self, key, block: bool = True) -> bytes:
        return self._store.queue_pop(self._k(key, "queue_pop"), block)

    def queue_len(self, key, /) -> int:
        return self._store.queue_len(self._k(key, "queue_len"))

    def __repr__(self) -> str:
        return f"PrefixStore(prefix={self._prefix!r}, store={self._store!r})"
