"""The Store base class and the rules every store shares (argument types, add's integers).

torch's semantics, learned by running torch 2.13's stores: values are bytes (str is
UTF-8 encoded), counters are decimal text, `compare_set` on a missing key sets it only
when `expected` is empty, and a timed-out wait raises (each store's own error kind).
"""
from __future__ import annotations

import datetime

from ..errors import DistStoreError

DEFAULT_TIMEOUT = datetime.timedelta(seconds=300)
_INT64 = 1 << 63


def as_key(key, op: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{op}: a store key must be a str, got {type(key).__name__}")
    return key


def as_keys(keys, op: str) -> list[str]:
    # torch takes a sequence of str and refuses a lone str (it would wait on its letters)
    if isinstance(keys, (str, bytes)) or not hasattr(keys, "__iter__"):
        raise TypeError(f"{op}: keys must be a list of str, got {type(keys).__name__}")
    return [as_key(k, op) for k in keys]


def as_value(value, op: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{op}: a store value must be str or bytes, got {type(value).__name__}")


def as_amount(amount, op: str) -> int:
    if not hasattr(amount, "__index__"):
        raise TypeError(f"{op}: the amount must be an int, got {type(amount).__name__}")
    amount = amount.__index__()
    if not -_INT64 <= amount < _INT64:
        raise TypeError(f"{op}: the amount {amount} does not fit in int64")
    return amount


def as_seconds(timeout, op: str) -> float:
    if isinstance(timeout, datetime.timedelta):
        return timeout.total_seconds()
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return float(timeout)
    raise TypeError(f"{op}: timeout must be a datetime.timedelta, got {type(timeout).__name__}")


def counter_value(stored: bytes | None, key: str) -> int:
    """A counter's current value: missing or empty is 0; else the leading integer of the
    text, as C's strtoll reads it (torch's stores accept b' 7' and b'7x' as 7)."""
    if not stored:
        return 0
    text = stored.decode("latin-1").lstrip(" \t\n\r\f\v")
    end = 1 if text[:1] in "+-" else 0
    while end < len(text) and text[end] in "0123456789":
        end += 1
    digits = text[:end]
    if digits in ("", "+", "-"):
        raise ValueError(f"add({key!r}, ...): the value stored under {key!r} ({stored!r}) "
                         "is not an integer counter")
    return wrap_int64(int(digits))


def wrap_int64(value: int) -> int:
    """Counters are int64 and wrap around, as torch's do."""
    return (value + _INT64) % (1 << 64) - _INT64


def compare_set_result(current: bytes | None, expected: bytes, desired: bytes):
    """(value to store or None, value returned) for compare_set, torch's rules: a missing
    key is set only when `expected` is empty (else `expected` comes back); a present key
    is set only when it equals `expected` (else its value comes back)."""
    if current is None:
        return (desired, desired) if expected == b"" else (None, expected)
    if current == expected:
        return desired, desired
    return None, current


def timeout_ms(seconds: float) -> int:
    return int(round(seconds * 1000))


class Store:
    """torch.distributed.Store: the base class of every key-value store.

    Subclasses implement set/get/add/compare_set/wait/check/delete_key/num_keys; the
    base gives barrier, multi_get/multi_set (one key at a time) and the timeout.
    """

    _timeout_s = DEFAULT_TIMEOUT.total_seconds()   # also for subclasses that skip __init__

    def __init__(self):
        self._timeout_s = DEFAULT_TIMEOUT.total_seconds()

    # --- the timeout ---------------------------------------------------------------------
    @property
    def timeout(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self._timeout_s)

    def set_timeout(self, timeout, /) -> None:
        self._timeout_s = as_seconds(timeout, f"{type(self).__name__}.set_timeout")

    # --- operations each store provides ----------------------------------------------------
    def _missing(self, op: str):
        return NotImplementedError(f"{type(self).__name__} does not implement Store.{op}")

    def set(self, key, value, /) -> None:
        raise self._missing("set")

    def get(self, key, /) -> bytes:
        raise self._missing("get")

    def add(self, key, amount, /) -> int:
        raise self._missing("add")

    def compare_set(self, key, expected_value, desired_value, /) -> bytes:
        raise self._missing("compare_set")

    def wait(self, keys, timeout=None, /) -> None:
        raise self._missing("wait")

    def check(self, keys, /) -> bool:
        raise self._missing("check")

    def delete_key(self, key, /) -> bool:
        raise self._missing("delete_key")

    def num_keys(self) -> int:
        raise self._missing("num_keys")

    def append(self, key, value, /) -> None:
        raise self._missing("append")

    def clone(self) -> "Store":
        raise self._missing("clone")

    def list_keys(self) -> list[str]:
        raise NotImplementedError("listKeys support is not implemented.")

    def has_extended_api(self) -> bool:
        return False

    # --- queues: TCPStore and HashStore only -----------------------------------------------
    def queue_push(self, key, value, /) -> None:
        raise NotImplementedError("queue support is not implemented.")

    def queue_pop(self, key, block: bool = True) -> bytes:
        raise NotImplementedError("queue support is not implemented.")

    def queue_len(self, key, /) -> int:
        raise NotImplementedError("queue support is not implemented.")

    # --- built on the operations above ------------------------------------------------------
    def multi_get(self, keys, /) -> list[bytes]:
        keys = as_keys(keys, "multi_get")
        self.wait(keys)
        return [self.get(k) for k in keys]

    def multi_set(self, keys, values, /) -> None:
        keys, values = as_keys(keys, "multi_set"), list(values)
        check_same_length(keys, values)
        for key, value in zip(keys, values):
            self.set(key, value)

    def barrier(self, key, world_size, timeout=None) -> None:
        """Block until `world_size` callers reached the barrier `key` (torch's keys
        `key/num_members` and `key/last_member`)."""
        key = as_key(key, "barrier")
        if self.add(f"{key}/num_members", 1) == world_size:
            self.set(f"{key}/last_member", "1")
        if timeout is None:
            self.wait([f"{key}/last_member"])
        else:
            self.wait([f"{key}/last_member"], timeout)


def check_same_length(keys: list, values: list) -> None:
    if len(keys) != len(values):
        raise DistStoreError(f"multi_set: {len(keys)} keys and {len(values)} values; the "
                             "keys and values lists must be of the same length")
