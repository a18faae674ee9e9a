"""The CUDA caching allocator: PyTorch's policy over an injectable raw-memory backend.

cuMemAlloc/cuMemFree synchronize the device and cost tens of microseconds, so device
memory is requested in segments and carved into blocks that are cached when freed,
as PyTorch's CUDACachingAllocator does:

- sizes round up to multiples of 512 bytes (`round_size`);
- requests up to 1 MiB come from the *small* pool, whose segments are 2 MiB; larger
  requests come from the *large* pool, whose segments are 20 MiB for requests under
  10 MiB and the request rounded up to 2 MiB otherwise (`segment_size`);
- a cached block larger than the request is *split*: the rest stays cached when at
  least 512 bytes remain (small pool) or more than 1 MiB remains (large pool);
- a freed block *merges* with free neighbours of its segment;
- free lists are per stream: a block is only reused by the stream it was allocated
  on, so its last use on that stream is ordered before the new one without events;
- when the backend is out of memory the allocator frees every cached segment that is
  wholly free and retries once (`num_alloc_retries`); a second failure raises
  OutOfMemoryError with the allocator's statistics, as PyTorch's message gives them;
- `empty_cache()` gives wholly free segments back to the backend;
- a CUDA-graph capture allocates from a *private pool* (`begin_private_pool`): blocks the
  captured work allocates keep a key of their own instead of a stream's, so once freed
  they are reused only by a later capture into the same pool, never by ordinary work
  that would overwrite what a replay reads and writes; segments of a live pool are never
  given back (PyTorch's graph memory pools).

The backend is what gets raw memory: `DriverBackend` (cuMemAlloc on a GPU) or
`HostBackend` (host memory with a capacity, for the CPU tests of this policy).
Statistics use PyTorch's `memory_stats()` key names.
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

import numpy as np

from ...ir import compile_times
from ...ir.errors import OutOfMemoryError, at_user_line

MIN_BLOCK = 512                  # every size is a multiple of this
SMALL_SIZE = 1 << 20             # largest request served by the small pool
SMALL_SEGMENT = 2 << 20          # segment size of the small pool
MIN_LARGE_ALLOC = 10 << 20       # large requests below this get a LARGE_SEGMENT
LARGE_SEGMENT = 20 << 20
ROUND_LARGE = 2 << 20            # larger requests round up to this


class BackendOutOfMemory(Exception):
    """Raised by a backend's `malloc` when the device has no room."""


def round_size(nbytes: int) -> int:
    return max(MIN_BLOCK, -(-nbytes // MIN_BLOCK) * MIN_BLOCK)


def segment_size(size: int) -> int:
    """Bytes to request from the backend for a rounded request that found no cached block."""
    if size <= SMALL_SIZE:
        return SMALL_SEGMENT
    if size < MIN_LARGE_ALLOC:
        return LARGE_SEGMENT
    return -(-size // ROUND_LARGE) * ROUND_LARGE


def format_size(nbytes: int) -> str:
    """PyTorch's format_size: bytes, KiB, MiB or GiB with two decimals."""
    if nbytes < 1024:
        return f"{nbytes} bytes"
    for unit, shift in (("KiB", 10), ("MiB", 20), ("GiB", 30)):
        if nbytes < 1 << (shift + 10) or unit == "GiB":
            return f"{nbytes / (1 << shift):.2f} {unit}"


@dataclass(eq=False)
class Block:
    """A piece of a segment. `prev`/`next` are its neighbours in the same segment."""
    ptr: int
    size: int
    stream: int
    small: bool
    allocated: bool = False
    requested: int = 0
    prev: "Block | None" = field(default=None, repr=False)
    next: "Block | None" = field(default=None, repr=False)

    def key(self) -> tuple[int, int, int]:
        return (self.stream, self.size, self.ptr)

    @property
    def whole_segment(self) -> bool:
        return self.prev is None and self.next is None


class _Pool:
    """Free blocks ordered by (stream, size, ptr): the best fit on a stream is a bisect."""

    def __init__(self):
        self.keys: list[tuple[int, int, int]] = []
        self.blocks: dict[tuple[int, int, int], Block] = {}

    def add(self, block: Block) -> None:
        key = block.key()
        bisect.insort(self.keys, key)
        self.blocks[key] = block

    def remove(self, block: Block) -> None:
        key = block.key()
        del self.keys[bisect.bisect_left(self.keys, key)]
        del self.blocks[key]

    def best_fit(self, stream: int, size: int) -> Block | None:
        i = bisect.bisect_left(self.keys, (stream, size, 0))
        if i == len(self.keys) or self.keys[i][0] != stream:
            return None
        return self.blocks[self.keys[i]]

    def __iter__(self):
        return iter(list(self.blocks.values()))


class _Stat:
    """PyTorch's stat record: current, peak, allocated (total added), freed (total removed)."""
    __slots__ = ("current", "peak", "allocated", "freed")

    def __init__(self):
        self.current = self.peak = self.allocated = self.freed = 0

    def add(self, n: int) -> None:
        self.current += n
        self.allocated += n
        self.peak = max(self.peak, self.current)

    def sub(self, n: int) -> None:
        self.current -= n
        self.freed += n

    def reset_peak(self) -> None:
        self.peak = self.current


_STATS = ("allocated_bytes", "reserved_bytes", "active_bytes", "requested_bytes",
          "allocation", "segment", "active")


class CachingAllocator:
    """Device memory for one device. `malloc` returns a Block; `free` takes it back."""

    def __init__(self, backend):
        self.backend = backend
        self._small, self._large = _Pool(), _Pool()
        self._segments: dict[int, int] = {}          # segment ptr -> size
        self._lock = threading.RLock()
        self._stats = {name: _Stat() for name in _STATS}
        self.num_alloc_retries = 0
        self.num_ooms = 0
        self._redirect: dict[int, int] = {}      # capturing stream -> its private pool key
        self._live_pools: dict[int, int] = {}    # pool key -> graphs (or captures) using it
        self._next_pool = -1                      # stream handles are >= 0: keys never clash

    # --- private pools (CUDA-graph capture) ------------------------------------------
    def new_private_pool(self) -> int:
        """A fresh pool key (torch.cuda.graph_pool_handle), used by nothing yet."""
        with self._lock:
            pool, self._next_pool = self._next_pool, self._next_pool - 1
            return pool

    def begin_private_pool(self, stream: int, pool: int | None = None) -> int:
        """Serve `stream`'s requests from a private pool (a new one unless `pool` is given:
        graphs may share one) until `end_private_pool(stream)`; the pool stays live until
        `release_private_pool` is called once for each begin. Returns the pool's key."""
        with self._lock:
            if pool is None:
                pool = self.new_private_pool()
            self._redirect[stream] = pool
            self._live_pools[pool] = self._live_pools.get(pool, 0) + 1
            return pool

    def end_private_pool(self, stream: int) -> None:
        with self._lock:
            self._redirect.pop(stream, None)

    def release_private_pool(self, pool: int) -> None:
        """A graph using `pool` is gone: once none is left, its free segments may be
        given back."""
        with self._lock:
            users = self._live_pools.get(pool, 0) - 1
            if users > 0:
                self._live_pools[pool] = users
            else:
                self._live_pools.pop(pool, None)

    # --- allocation ------------------------------------------------------------------
    def malloc(self, nbytes: int, stream: int = 0) -> Block:
        size = round_size(nbytes)
        small = size <= SMALL_SIZE
        with self._lock:
            stream = self._redirect.get(stream, stream)
            pool = self._small if small else self._large
            block = pool.best_fit(stream, size)
            if block is not None:
                pool.remove(block)
            else:
                block = self._new_segment(nbytes, size, stream, small)
            if self._should_split(block, size):
                self._split(block, size, pool)
            block.allocated, block.requested = True, nbytes
            self._count_alloc(block, +1)
            return block

    def _new_segment(self, nbytes: int, size: int, stream: int, small: bool) -> Block:
        alloc = segment_size(size)
        try:
            ptr = self.backend.malloc(alloc)
        except BackendOutOfMemory:
            self.num_alloc_retries += 1          # free what the cache holds, then retry
            self._release_cached()
            try:
                ptr = self.backend.malloc(alloc)
            except BackendOutOfMemory:
                self.num_ooms += 1
                raise OutOfMemoryError(self._oom_message(nbytes) + at_user_line()) from None
        self._segments[ptr] = alloc
        self._stats["reserved_bytes"].add(alloc)
        self._stats["segment"].add(1)
        return Block(ptr, alloc, stream, small)

    @staticmethod
    def _should_split(block: Block, size: int) -> bool:
        remaining = block.size - size
        return remaining >= MIN_BLOCK if block.small else remaining > SMALL_SIZE

    @staticmethod
    def _split(block: Block, size: int, pool: _Pool) -> None:
        rest = Block(block.ptr + size, block.size - size, block.stream, block.small,
                     prev=block, next=block.next)
        if block.next is not None:
            block.next.prev = rest
        block.next, block.size = rest, size
        pool.add(rest)

    # --- freeing ---------------------------------------------------------------------
    def free(self, block: Block) -> None:
        """Return `block` to its stream's free list, merged with free neighbours."""
        with self._lock:
            if not block.allocated:
                raise ValueError(f"double free of the block at {block.ptr:#x}")
            self._count_alloc(block, -1)
            block.allocated, block.requested = False, 0
            pool = self._small if block.small else self._large
            for neighbour in (block.prev, block.next):
                if neighbour is not None and not neighbour.allocated:
                    pool.remove(neighbour)
                    self._merge(block, neighbour)
            pool.add(block)

    @staticmethod
    def _merge(block: Block, neighbour: Block) -> None:
        if neighbour is block.prev:
            block.ptr, block.prev = neighbour.ptr, neighbour.prev
            if block.prev is not None:
                block.prev.next = block
        else:
            block.next = neighbour.next
            if block.next is not None:
                block.next.prev = block
        block.size += neighbour.size

    def empty_cache(self) -> None:
        """Give every wholly free cached segment back to the backend."""
        with self._lock:
            self._release_cached()

    def _release_cached(self) -> None:
        for pool in (self._small, self._large):
            for block in pool:
                if block.whole_segment and block.stream not in self._live_pools:
                    pool.remove(block)
                    self.backend.free(block.ptr)
                    del self._segments[block.ptr]
                    self._stats["reserved_bytes"].sub(block.size)
                    self._stats["segment"].sub(1)

    # --- statistics ------------------------------------------------------------------
    def _count_alloc(self, block: Block, sign: int) -> None:
        for name, amount in (("allocated_bytes", block.size), ("active_bytes", block.size),
                             ("requested_bytes", block.requested), ("allocation", 1),
                             ("active", 1)):
            stat = self._stats[name]
            stat.add(amount) if sign > 0 else stat.sub(amount)

    def memory_allocated(self) -> int:
        return self._stats["allocated_bytes"].current

    def memory_reserved(self) -> int:
        return self._stats["reserved_bytes"].current

    def max_memory_allocated(self) -> int:
        return self._stats["allocated_bytes"].peak

    def max_memory_reserved(self) -> int:
        return self._stats["reserved_bytes"].peak

    def reset_peak_memory_stats(self) -> None:
        with self._lock:
            for stat in self._stats.values():
                stat.reset_peak()

    def memory_stats(self) -> dict:
        """PyTorch's flat keys: 'allocated_bytes.all.current', ..., 'num_alloc_retries'."""
        out = {}
        for name, stat in self._stats.items():
            for field_name in _Stat.__slots__:
                out[f"{name}.all.{field_name}"] = getattr(stat, field_name)
        out["num_alloc_retries"] = self.num_alloc_retries
        out["num_ooms"] = self.num_ooms
        return out

    def cached_blocks(self) -> list[Block]:
        """Free blocks, both pools (for tests and memory_summary)."""
        with self._lock:
            return list(self._small) + list(self._large)

    def _oom_message(self, nbytes: int) -> str:
        total = self.backend.capacity()
        free = self.backend.free_memory()
        allocated, reserved = self.memory_allocated(), self.memory_reserved()
        return (f"CUDA out of memory. Tried to allocate {format_size(nbytes)}. "
                f"GPU {self.backend.index} has a total capacity of {format_size(total)} of "
                f"which {format_size(free)} is free. Of the allocated memory "
                f"{format_size(allocated)} is allocated by ember, and "
                f"{format_size(reserved - allocated)} is reserved by ember but unallocated. "
                "Cached blocks were already freed and the allocation retried; free tensors "
                "you no longer need or use smaller batches.")


# --- backends ----------------------------------------------------------------------------
class HostBackend:
    """Raw memory from host RAM with a capacity: the allocator's policy runs in CPU tests
    on real addresses (blocks can be written and read with numpy)."""

    def __init__(self, capacity: int, index: int = 0):
        self.index = index
        self._capacity = capacity
        self._arrays: dict[int, np.ndarray] = {}
        self.calls = {"malloc": 0, "free": 0}

    def malloc(self, nbytes: int) -> int:
        if self.used() + nbytes > self._capacity:
            raise BackendOutOfMemory(nbytes)
        arr = np.empty(nbytes, np.uint8)
        self._arrays[arr.ctypes.data] = arr
        self.calls["malloc"] += 1
        return arr.ctypes.data

    def free(self, ptr: int) -> None:
        del self._arrays[ptr]
        self.calls["free"] += 1

    def used(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())

    def capacity(self) -> int:
        return self._capacity

    def free_memory(self) -> int:
        return self._capacity - self.used()

    def view(self, ptr: int, nbytes: int) -> np.ndarray:
        """A uint8 view of `nbytes` at `ptr` inside one of this backend's segments."""
        for start, arr in self._arrays.items():
            if start <= ptr and ptr + nbytes <= start + arr.nbytes:
                return arr[ptr - start:ptr - start + nbytes]
        raise ValueError(f"{ptr:#x}+{nbytes} is not inside a segment")


class DriverBackend:
    """cuMemAlloc/cuMemFree on one device's primary context."""

    def __init__(self, index: int = 0):
        self.index = index

    def malloc(self, nbytes: int) -> int:
        from . import driver
        driver.context(self.index)
        try:
            with driver.relaxed_capture(), compile_times.stage("device allocation (cuMemAlloc)"):
                return int(driver.call("cuMemAlloc", nbytes))   # (a capture's pool may grow)
        except driver.DriverCallError as err:
            if err.code == "CUDA_ERROR_OUT_OF_MEMORY":
                raise BackendOutOfMemory(nbytes) from None
            raise

    def free(self, ptr: int) -> None:
        from . import driver
        driver.context(self.index)
        driver.call("cuMemFree", ptr)

    def capacity(self) -> int:
        from . import driver
        return driver.total_memory(self.index)

    def free_memory(self) -> int:
        from . import driver
        return driver.mem_get_info(self.index)[0]


_allocators: dict[int, CachingAllocator] = {}


def device_allocator(index: int = 0) -> CachingAllocator:
    """The process-wide caching allocator of CUDA device `index`."""
    alloc = _allocators.get(index)
    if alloc is None:
        alloc = _allocators.setdefault(index, CachingAllocator(DriverBackend(index)))
    return alloc
