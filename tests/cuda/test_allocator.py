"""The caching allocator's policy (runtime/cuda/allocator.py) on host memory: the same
code that serves cuMemAlloc on a GPU, with a HostBackend of fixed capacity."""
import pytest
from hypothesis import given, settings, strategies as st

from ember.ir.errors import OutOfMemoryError
from ember.runtime.cuda.allocator import (CachingAllocator, HostBackend, round_size,
                                          segment_size)

MiB = 1 << 20


def make(capacity=256 * MiB):
    backend = HostBackend(capacity)
    return CachingAllocator(backend), backend


@pytest.mark.parametrize("request_bytes, rounded", [(0, 512), (1, 512), (512, 512),
                                                     (513, 1024), (MiB + 1, MiB + 512)])
def test_sizes_round_to_512_bytes(request_bytes, rounded):
    assert round_size(request_bytes) == rounded


@pytest.mark.parametrize("size, segment", [(512, 2 * MiB), (MiB, 2 * MiB),
                                           (MiB + 512, 20 * MiB), (10 * MiB - 512, 20 * MiB),
                                           (10 * MiB, 10 * MiB), (25 * MiB, 26 * MiB)])
def test_segment_sizes_follow_pytorch(size, segment):
    assert segment_size(size) == segment


def test_small_requests_share_one_2mib_segment():
    alloc, backend = make()
    a, b = alloc.malloc(1), alloc.malloc(1000)
    assert backend.calls["malloc"] == 1
    assert (a.size, b.size) == (512, 1024)
    assert b.ptr == a.ptr + 512                       # split from the same segment
    assert alloc.memory_allocated() == 1536
    assert alloc.memory_reserved() == 2 * MiB


def test_freed_block_is_reused_without_a_backend_call():
    alloc, backend = make()
    a = alloc.malloc(4096)
    ptr = a.ptr
    alloc.free(a)
    assert alloc.memory_allocated() == 0 and alloc.memory_reserved() == 2 * MiB
    b = alloc.malloc(4000)
    assert b.ptr == ptr and backend.calls["malloc"] == 1


def test_free_merges_neighbours_and_empty_cache_returns_the_segment():
    alloc, backend = make()
    blocks = [alloc.malloc(512) for _ in range(3)]
    for i in (0, 2, 1):                               # the middle one merges both sides
        alloc.free(blocks[i])
    (whole,) = alloc.cached_blocks()
    assert whole.size == 2 * MiB and whole.whole_segment
    alloc.empty_cache()
    assert alloc.memory_reserved() == 0 and backend.calls["free"] == 1 and backend.used() == 0


def test_empty_cache_keeps_segments_in_use():
    alloc, backend = make()
    a = alloc.malloc(512)
    alloc.free(alloc.malloc(3 * MiB))                 # a wholly free 20 MiB large segment
    alloc.empty_cache()
    assert alloc.memory_reserved() == 2 * MiB and backend.calls["free"] == 1
    alloc.free(a)


def test_large_requests_split_only_above_one_mib():
    alloc, _ = make()
    a = alloc.malloc(3 * MiB)                         # 20 MiB segment, 17 MiB left cached
    assert alloc.memory_reserved() == 20 * MiB and a.size == 3 * MiB
    b = alloc.malloc(16 * MiB + 512 * 1024)           # 0.5 MiB would remain: not split
    assert b.ptr == a.ptr + 3 * MiB and b.size == 17 * MiB
    assert alloc.memory_allocated() == 20 * MiB and alloc.memory_reserved() == 20 * MiB


def test_big_requests_get_their_own_rounded_segment():
    alloc, _ = make()
    alloc.malloc(25 * MiB)
    assert alloc.memory_reserved() == 26 * MiB


def test_free_lists_are_per_stream():
    alloc, backend = make()
    a = alloc.malloc(4096, stream=1)
    alloc.free(a)
    b = alloc.malloc(4096, stream=2)
    assert backend.calls["malloc"] == 2 and b.ptr != a.ptr
    c = alloc.malloc(4096, stream=1)
    assert c.ptr == a.ptr


def test_graph_capture_allocates_from_a_private_pool():
    """What a capture frees is reused only by a capture into the same pool, and its
    segments outlive empty_cache while the graph lives (PyTorch's graph pools)."""
    alloc, backend = make()
    pool = alloc.begin_private_pool(7)                 # stream 7 is capturing
    captured = alloc.malloc(4096, stream=7)
    alloc.end_private_pool(7)
    alloc.free(captured)                              # e.g. a value the plan dropped
    after = alloc.malloc(4096, stream=7)              # the same stream, no longer capturing
    assert after.ptr != captured.ptr and backend.calls["malloc"] == 2
    alloc.empty_cache()                               # the pool's free segment stays
    assert alloc.memory_reserved() == 4 * MiB
    alloc.begin_private_pool(8, pool)                 # a capture again into the same pool
    assert alloc.malloc(4096, stream=8).ptr == captured.ptr
    alloc.end_private_pool(8)
    alloc.free(after)
    alloc.release_private_pool(pool)
    alloc.empty_cache()                               # the pool's segment is in use
    assert alloc.memory_reserved() == 2 * MiB


def test_statistics_and_peaks():
    alloc, _ = make()
    a, b = alloc.malloc(MiB), alloc.malloc(1000)
    alloc.free(a)
    assert alloc.max_memory_allocated() == MiB + 1024
    assert alloc.memory_allocated() == 1024
    stats = alloc.memory_stats()
    assert stats["allocated_bytes.all.current"] == 1024
    assert stats["allocated_bytes.all.allocated"] == MiB + 1024
    assert stats["allocated_bytes.all.freed"] == MiB
    assert stats["requested_bytes.all.current"] == 1000
    assert stats["segment.all.current"] == 1 and stats["allocation.all.current"] == 1
    alloc.reset_peak_memory_stats()
    assert alloc.max_memory_allocated() == 1024
    alloc.free(b)


def test_out_of_memory_frees_the_cache_and_retries():
    alloc, backend = make(24 * MiB)
    alloc.free(alloc.malloc(3 * MiB))                 # 20 MiB cached on stream 0
    alloc.free(alloc.malloc(1024))                    # 2 MiB cached
    c = alloc.malloc(3 * MiB, stream=1)               # needs 20 MiB more: 42 > 24
    assert alloc.num_alloc_retries == 1 and alloc.memory_stats()["num_alloc_retries"] == 1
    assert alloc.memory_reserved() == 20 * MiB and backend.used() == 20 * MiB
    alloc.free(c)


def test_out_of_memory_error_gives_the_statistics():
    alloc, _ = make(24 * MiB)
    held = alloc.malloc(3 * MiB)
    with pytest.raises(OutOfMemoryError) as info:
        alloc.malloc(5 * MiB, stream=2)
    text = str(info.value)
    for part in ("CUDA out of memory. Tried to allocate 5.00 MiB",
                 "GPU 0 has a total capacity of 24.00 MiB of which 4.00 MiB is free",
                 "3.00 MiB is allocated by ember",
                 "17.00 MiB is reserved by ember but unallocated"):
        assert part in text, text
    assert isinstance(info.value, MemoryError)
    assert alloc.num_ooms == 1 and alloc.num_alloc_retries == 1
    alloc.free(held)


def test_double_free_is_refused():
    alloc, _ = make()
    a = alloc.malloc(10)
    alloc.free(a)
    with pytest.raises(ValueError, match="double free"):
        alloc.free(a)


_steps = st.lists(st.tuples(st.sampled_from(["malloc", "free"]),
                            st.integers(0, 3 * MiB), st.integers(0, 1)), max_size=40)


@settings(deadline=None, max_examples=40)
@given(_steps)
def test_random_sequences_keep_blocks_disjoint_and_stats_exact(steps):
    """Live blocks never overlap, lie inside one segment, hold their bytes; the statistics
    equal the sums; after freeing everything, empty_cache returns all memory."""
    alloc, backend = make(64 * MiB)
    live = []
    for i, (kind, size, stream) in enumerate(steps):
        if kind == "free" and live:
            block, fill = live.pop(size % len(live))
            assert (backend.view(block.ptr, block.size) == fill).all()
            alloc.free(block)
            continue
        try:
            block = alloc.malloc(size, stream)
        except OutOfMemoryError:
            continue
        fill = i % 251
        backend.view(block.ptr, block.size)[:] = fill
        live.append((block, fill))
        spans = sorted((b.ptr, b.ptr + b.size) for b, _ in live)
        assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
    assert alloc.memory_allocated() == sum(b.size for b, _ in live)
    assert alloc.memory_reserved() == backend.used()
    for block, _ in live:
        alloc.free(block)
    alloc.empty_cache()
    assert alloc.memory_reserved() == 0 and backend.used() == 0
