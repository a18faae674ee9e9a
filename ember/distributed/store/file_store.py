"""torch.distributed.FileStore: a store in one file, shared by processes on a shared disk.

The file is an append-only log of (key, value) records in torch's layout (a little-endian
u32 length before each key and each value), so ember's and torch's FileStores can share a
file. User keys are written as "/" + key; a deletion is the record ("-" + its name, "");
two internal counters, "refcount/" (users now) and "cleanup/" (users gone), decide when
the last user removes the file. Writers hold an exclusive `flock` on it, readers a shared
one; each store object caches the log and reads only what was appended since. A blocked
get/wait looks at the file's size every 10 ms (a stat call: no core is spun).
"""
from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
import weakref
from contextlib import contextmanager

from ._base import (Store, as_amount, as_key, as_keys, as_seconds, as_value,
                    check_same_length, compare_set_result, counter_value, timeout_ms,
                    wrap_int64)

_U32 = struct.Struct("<I")
_POLL_S = 0.01
_REFCOUNT, _CLEANUP = "refcount/", "cleanup/"


class _Log:
    """One open file of the log, its parsed contents, and the locks that guard both."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.offset = 0
        self.cache: dict[str, bytes] = {}
        self.mutex = threading.Lock()            # threads sharing this store object

    @contextmanager
    def locked(self, exclusive: bool):
        with self.mutex:
            fcntl.flock(self.fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                self.refresh()
                yield self
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)

    def refresh(self) -> None:
        size = os.fstat(self.fd).st_size
        if size == self.offset:
            return
        data = os.pread(self.fd, size - self.offset, self.offset)
        pos = 0
        while (record := _record_at(data, pos)) is not None:
            key, value, pos = record
            if key.startswith("-"):
                self.cache.pop(key[1:], None)
            else:
                self.cache[key] = value
        self.offset += pos

    def write(self, records) -> None:
        """Append records (the exclusive lock held) and take them into the cache."""
        out = bytearray()
        for key, value in records:
            raw = key.encode("utf-8", "surrogateescape")
            out += _U32.pack(len(raw)) + raw + _U32.pack(len(value)) + value
        os.lseek(self.fd, 0, os.SEEK_END)
        os.write(self.fd, bytes(out))
        self.refresh()

    def changed(self) -> bool:
        return os.fstat(self.fd).st_size != self.offset

    def close(self) -> None:
        os.close(self.fd)


def _record_at(data: bytes, pos: int):
    """(key, value, next position) of the record at `pos`; None where no whole record is
    (the end, or the tail of a write a crashed process left unfinished)."""
    if pos + 4 > len(data):
        return None
    (klen,) = _U32.unpack_from(data, pos)
    vpos = pos + 4 + klen
    if vpos + 4 > len(data):
        return None
    (vlen,) = _U32.unpack_from(data, vpos)
    end = vpos + 4 + vlen
    if end > len(data):
        return None
    return data[pos + 4: vpos].decode("utf-8", "surrogateescape"), data[vpos + 4: end], end


def _release(log: _Log, world_size: int) -> None:
    """A user is gone: count it; the last one (every expected user gone) removes the file."""
    try:
        with log.locked(exclusive=True):
            cleanup = counter_value(log.cache.get(_CLEANUP), _CLEANUP) + 1
            refcount = counter_value(log.cache.get(_REFCOUNT), _REFCOUNT) - 1
            log.write([(_CLEANUP, str(cleanup).encode()), (_REFCOUNT, str(refcount).encode())])
            if refcount == 0 and 0 < world_size <= cleanup:
                os.unlink(log.path)
    except OSError:
        pass                                    # the file is already gone
    finally:
        log.close()


class FileStore(Store):
    """FileStore(file_name, world_size=-1): a store in `file_name`, shared by the
    processes that open it; the file is removed once `world_size` users have gone (never
    with world_size=-1)."""

    def __init__(self, file_name: str, world_size: int = -1):
        super().__init__()
        if not isinstance(file_name, str):
            raise TypeError(f"FileStore: file_name must be a str, got {type(file_name).__name__}")
        self._world_size = int(world_size)
        self._log = _Log(file_name)
        with self._log.locked(exclusive=True) as log:
            count = counter_value(log.cache.get(_REFCOUNT), _REFCOUNT) + 1
            log.write([(_REFCOUNT, str(count).encode())])
        self._finalizer = weakref.finalize(self, _release, self._log, self._world_size)

    @property
    def path(self) -> str:
        return self._log.path

    # --- waiting ---------------------------------------------------------------------------
    def _wait_for(self, keys: list[str], timeout_s: float) -> dict[str, bytes] | None:
        """The keys' values once all are in the file; None at the deadline."""
        deadline = time.monotonic() + timeout_s
        first = True
        while True:
            if first or self._log.changed():
                with self._log.locked(exclusive=False) as log:
                    if all(k in log.cache for k in keys):
                        return {k: log.cache[k] for k in keys}
                first = False
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(_POLL_S, left))

    def _values(self, keys: list[str], op: str) -> list[bytes]:
        real = ["/" + k for k in keys]
        found = self._wait_for(real, self._timeout_s)
        if found is None:
            missing = [k for k in keys if not self.check([k])]
            raise RuntimeError(f"FileStore.{op}: Timeout waiting for key: "
                               f"{', '.join(missing)} after {timeout_ms(self._timeout_s)} "
                               f"ms (file {self.path})")
        return [found[k] for k in real]

    # --- operations ----------------------------------------------------------------------------
    def set(self, key, value, /) -> None:
        record = ("/" + as_key(key, "set"), as_value(value, "set"))
        with self._log.locked(exclusive=True) as log:
            log.write([record])

    def get(self, key, /) -> bytes:
        return self._values([as_key(key, "get")], "get")[0]

    def add(self, key, amount, /) -> int:
        key, amount = as_key(key, "add"), as_amount(amount, "add")
        with self._log.locked(exclusive=True) as log:
            value = wrap_int64(counter_value(log.cache.get("/" + key), key) + amount)
            log.write([("/" + key, str(value).encode())])
        return value

    def compare_set(self, key, expected_value, desired_value, /) -> bytes:
        key = "/" + as_key(key, "compare_set")
        expected = as_value(expected_value, "compare_set")
        desired = as_value(desired_value, "compare_set")
        with self._log.locked(exclusive=True) as log:
            new, result = compare_set_result(log.cache.get(key), expected, desired)
            if new is not None:
                log.write([(key, new)])
        return result

    def append(self, key, value, /) -> None:
        key, value = "/" + as_key(key, "append"), as_value(value, "append")
        with self._log.locked(exclusive=True) as log:
            log.write([(key, log.cache.get(key, b"") + value)])

    def wait(self, keys, timeout=None, /) -> None:
        keys = as_keys(keys, "wait")
        seconds = self._timeout_s if timeout is None else as_seconds(timeout, "wait")
        if self._wait_for(["/" + k for k in keys], seconds) is None:
            raise RuntimeError(f"FileStore.wait: Wait timeout after {timeout_ms(seconds)} ms "
                               f"for keys {keys} (file {self.path})")

    def check(self, keys, /) -> bool:
        keys = as_keys(keys, "check")
        with self._log.locked(exclusive=False) as log:
            return all("/" + k in log.cache for k in keys)

    def delete_key(self, key, /) -> bool:
        # torch's FileStore records the deletion and answers True whether or not it existed
        record = ("-/" + as_key(key, "delete_key"), b"")
        with self._log.locked(exclusive=True) as log:
            log.write([record])
        return True

    def num_keys(self) -> int:
        # torch counts every key of the file, its two internal counters included
        with self._log.locked(exclusive=False) as log:
            return len(log.cache)

    def list_keys(self) -> list[str]:
        with self._log.locked(exclusive=False) as log:
            return [k[1:] for k in log.cache if k.startswith("/")]

    def multi_get(self, keys, /) -> list[bytes]:
        return self._values(as_keys(keys, "multi_get"), "multi_get")

    def multi_set(self, keys, values, /) -> None:
        keys = as_keys(keys, "multi_set")
        values = [as_value(v, "multi_set") for v in values]
        check_same_length(keys, values)
        with self._log.locked(exclusive=True) as log:
            log.write([("/" + k, v) for k, v in zip(keys, values)])

    def clone(self) -> "FileStore":
        # a new user of the same file, with the default timeout (as torch's clone)
        return FileStore(self.path, self._world_size)

    def __repr__(self) -> str:
        return f"FileStore(file_name={self.path!r}, world_size={self._world_size})"
