"""Native hand-off between the thread pool's threads: a worker that has just run a chunk
waits for the next one spinning in native code for a short while instead of sleeping.

Waking a sleeping Python worker costs tens of microseconds (a futex wake, the GIL, the
worker's Python loop, then the same back for the caller): about 65 us a parallel_for on
the 2-core hosts, as much as a whole int8 GEMM of a small MLP layer gains from its second
thread. A spinning worker holds no GIL: the caller writes the chunk into the worker's
slot and the worker calls the kernel from native code (about 10 us a parallel_for).
OpenMP runtimes do the same (their workers spin after each parallel region).

Each worker has a slot of 8 int64 words (one cache line): state, then the chunk as
kernel address, begin, end, worker, params. state: 0 asleep (in Python, waiting on its
queue), 1 spinning and idle, 2 a chunk posted, 3 the chunk running. Every move is a
compare-and-swap or made by the one side that owns the state it leaves:

    worker: 0 -> 1 (starts spinning), 2 -> 3 (takes the chunk), 3 -> 1 (chunk done),
            1 -> 0 (idle for `ticks`: back to its queue)
    caller: 1 -> 2 (post), 2 -> 1 (reclaim: the worker has not started it, so the caller
            runs the chunk itself: a worker descheduled on a loaded host never makes
            the caller wait), 1 -> 0 (stop, before it queues a Python task)

A spinning worker calls sched_yield every YIELD_TICKS, so on a host with more runnable
threads than cores it does not keep the one it spins on from them (the caller among them),
and stops spinning (back to its queue) as soon as one of its steps shows it was off its
core: on such a host spinning costs the others, and the worker that spun is then
scheduled late when a chunk comes (measured: a depthwise net 2.3x slower on 2 threads
at load 9 on 2 cores before this rule).

    spin_worker(slot, ticks)
    spin_post(slot, fn, begin, end, worker, params) -> 1 if the spinning worker has it
    spin_reclaim(slot) -> 1 if the chunk was taken back (not started)
    spin_wait(slot, ticks) -> 1 once the chunk is done, 0 if `ticks` passed first
    spin_stop(slot)
    spin_pair(slot, fn, begin0, end0, begin1, end1, worker, params, ticks) -> -1 if the
        worker was not spinning (nothing run), else: chunk 1 posted to it, chunk 0 run
        here (as worker 0), chunk 1 taken back and run here if the worker has not
        started it, then spin_wait's result: one call (the GIL released once) for a
        two-thread parallel_for instead of four calls and the Python between them

Busy time: the worker adds the cycle-counter ticks of every chunk it runs from its slot
to the slot's word BUSY_WORKER, and spin_pair adds those of the chunks it runs on the
caller's thread to word BUSY_CALLER (plain stores by the one thread that owns each word;
readers such as tools/qprofile.py take differences around a step): a spinning thread's
CPU time counts its spinning too, these words only its kernels. spin_ticks() reads the
counter (to convert ticks to seconds).

Kernels posted have the thread pool's chunk signature with one pointer argument:
fn(begin, end, worker, params) (int64, int64, int64, pointer). A kernel with more
arguments after `worker` (2 to MAX_ARGS words: pointers and int64s, the int8 add's,
max pool's, quantize's) is posted as the trampoline spin_call<k>, whose params block
holds the kernel's address and its k arguments: it calls fn(begin, end, worker,
args...) (pointers and int64s pass alike, in integer registers).
"""
from __future__ import annotations

import ctypes
import functools

from llvmlite import ir

from . import irutil as u
from .jit import compile_built

ASLEEP, SPINNING, POSTED, RUNNING = 0, 1, 2, 3
BUSY_WORKER, BUSY_CALLER = 6, 7      # slot words: kernel ticks run by the worker / caller
YIELD_TICKS = 50_000          # about 20 us at the 2-4 GHz cycle counters tick at
OFF_CORE_TICKS = 25_000       # a spin step this long: the thread was descheduled
_CHUNK_FN = ir.FunctionType(u.VOID, [u.I64, u.I64, u.I64, u.PTR])
MAX_ARGS = 16        # the widest kernel a trampoline passes on (the float GEMM's 15 after worker)


class _ChunkCallee(ir.instructions.CastInstr):
    """A kernel address cast to a pointer, callable with the chunk signature (llvmlite
    reads a callee's type from its pointee, which opaque pointers do not have)."""
    function_type = property(lambda self: _CHUNK_FN)


def _callee(value, fn_type):
    """A kernel address (a pointer) callable with fn_type (as _ChunkCallee)."""
    value.__class__ = type(f"_Callee{len(fn_type.args)}", (ir.instructions.CastInstr,),
                           {"function_type": property(lambda self: fn_type)})
    return value


def _word(b, slot, i):
    return b.gep(slot, [u.i64(i)], source_etype=u.I64)


def _store_state(b, slot, value):
    """An atomic release store of the state word (llvmlite's store_atomic checks a
    pointee type, which opaque pointers do not have: the instruction is made here)."""
    b._insert(ir.instructions.StoreAtomicInstr(b.block, u.i64(value), _word(b, slot, 0),
                                               "release", 8))


def _state(b, slot):
    return b.load_atomic(_word(b, slot, 0), "acquire", 8, typ=u.I64)


def _cas(b, slot, old, new):
    pair = b.cmpxchg(_word(b, slot, 0), u.i64(old), u.i64(new), "acq_rel", "acquire")
    return b.extract_value(pair, 1)


def _ticks(b):
    fn = b.module.globals.get("llvm.readcyclecounter") or ir.Function(
        b.module, ir.FunctionType(u.I64, []), name="llvm.readcyclecounter")
    return b.call(fn, [])


def _pause(b):
    fn = b.module.globals.get("llvm.x86.sse2.pause") or ir.Function(
        b.module, ir.FunctionType(u.VOID, []), name="llvm.x86.sse2.pause")
    b.call(fn, [])


def _sched_yield(b):
    fn = b.module.globals.get("sched_yield") or ir.Function(
        b.module, ir.FunctionType(ir.IntType(32), []), name="sched_yield")
    b.call(fn, [])


def _pause_or_yield(b, fn, last_yield):
    """A spin step: the pause hint, and sched_yield where YIELD_TICKS have passed since
    the last one."""
    _pause(b)
    now = _ticks(b)
    due = b.icmp_unsigned(">", b.sub(now, b.load(last_yield, typ=u.I64)), u.i64(YIELD_TICKS))
    yield_block, after = fn.append_basic_block("yield"), fn.append_basic_block("yielded")
    b.cbranch(due, yield_block, after)
    b.position_at_end(yield_block)
    _sched_yield(b)
    b.store(_ticks(b), last_yield)
    b.branch(after)
    b.position_at_end(after)


def _add_busy(b, slot, word, started):
    """slot[word] += ticks since `started` (the word has one writer)."""
    ptr = _word(b, slot, word)
    b.store(b.add(b.load(ptr, typ=u.I64), b.sub(_ticks(b), started)), ptr)


def _emit_worker(module):
    fn, b = u.define(module, "spin_worker", u.VOID, [("slot", u.PTR), ("ticks", u.I64)],
                     noalias_ptrs=False)
    slot, ticks = fn.args
    _store_state(b, slot, SPINNING)
    since, last_yield, last_step = b.alloca(u.I64), b.alloca(u.I64), b.alloca(u.I64)
    for word in (since, last_yield, last_step):
        b.store(_ticks(b), word)
    loop, take, run, idle, give_up, leave = (fn.append_basic_block(n) for n in (
        "loop", "take", "run", "idle", "give_up", "leave"))
    b.branch(loop)
    b.position_at_end(loop)
    sw = b.switch(_state(b, slot), idle)
    sw.add_case(u.i64(POSTED), take)
    sw.add_case(u.i64(ASLEEP), leave)          # stopped by the caller
    b.position_at_end(take)                    # the caller may reclaim it first
    b.cbranch(_cas(b, slot, POSTED, RUNNING), run, loop)
    b.position_at_end(run)
    words = [b.load(_word(b, slot, i), typ=u.I64) for i in range(1, 6)]
    kernel = b.inttoptr(words[0], u.PTR)
    kernel.__class__ = _ChunkCallee
    started = _ticks(b)
    b.call(kernel, [words[1], words[2], words[3], b.inttoptr(words[4], u.PTR)])
    _add_busy(b, slot, BUSY_WORKER, started)
    _store_state(b, slot, SPINNING)
    b.store(_ticks(b), since)
    b.store(_ticks(b), last_step)
    b.branch(loop)
    b.position_at_end(idle)
    now = _ticks(b)
    waited = b.sub(now, b.load(since, typ=u.I64))
    # a step that took long: the thread was off its core (another ran after its
    # sched_yield, or it was preempted): the host has more runnable threads than cores,
    # where spinning only takes time from them: back to the queue
    off_core = b.icmp_unsigned(">", b.sub(now, b.load(last_step, typ=u.I64)),
                               u.i64(OFF_CORE_TICKS))
    b.store(now, last_step)
    spin_on = fn.append_basic_block("spin_on")
    b.cbranch(b.or_(b.icmp_unsigned(">", waited, ticks), off_core), give_up, spin_on)
    b.position_at_end(spin_on)
    _pause_or_yield(b, fn, last_yield)
    b.branch(loop)
    b.position_at_end(give_up)
    b.cbranch(_cas(b, slot, SPINNING, ASLEEP), leave, loop)   # lost to a post: run it
    b.position_at_end(leave)
    b.ret_void()


def _emit_post(module):
    fn, b = u.define(module, "spin_post", u.I64, [("slot", u.PTR), ("fn", u.I64),
                                                  ("begin", u.I64), ("end", u.I64),
                                                  ("worker", u.I64), ("params", u.I64)],
                     noalias_ptrs=False)
    slot = fn.args[0]
    # the chunk's words first: a worker reads them only after the compare-and-swap
    # below publishes them (release), and none reads them while it is not spinning
    for i, value in enumerate(fn.args[1:], start=1):
        b.store(value, _word(b, slot, i))
    b.ret(b.zext(_cas(b, slot, SPINNING, POSTED), u.I64))


def _emit_reclaim(module):
    fn, b = u.define(module, "spin_reclaim", u.I64, [("slot", u.PTR)], noalias_ptrs=False)
    b.ret(b.zext(_cas(b, fn.args[0], POSTED, SPINNING), u.I64))


def _emit_wait(module):
    fn, b = u.define(module, "spin_wait", u.I64, [("slot", u.PTR), ("ticks", u.I64)],
                     noalias_ptrs=False)
    _wait_loop(b, fn, *fn.args)


def _wait_loop(b, fn, slot, ticks):
    """Spin until the slot's chunk is done (return 1) or `ticks` have passed (return 0)."""
    start = _ticks(b)
    last_yield = b.alloca(u.I64)
    b.store(start, last_yield)
    loop, spin_on, done, late = (fn.append_basic_block(n) for n in
                                 ("loop", "spin_on", "done", "late"))
    b.branch(loop)
    b.position_at_end(loop)
    state = _state(b, slot)
    busy = b.or_(b.icmp_unsigned("==", state, u.i64(POSTED)),
                 b.icmp_unsigned("==", state, u.i64(RUNNING)))
    b.cbranch(busy, spin_on, done)
    b.position_at_end(spin_on)
    _pause_or_yield(b, fn, last_yield)
    b.cbranch(b.icmp_unsigned(">", b.sub(_ticks(b), start), ticks), late, loop)
    b.position_at_end(done)
    b.ret(u.i64(1))
    b.position_at_end(late)
    b.ret(u.i64(0))


def _emit_pair(module):
    fn, b = u.define(module, "spin_pair", u.I64, [
        ("slot", u.PTR), ("fn", u.I64), ("begin0", u.I64), ("end0", u.I64),
        ("begin1", u.I64), ("end1", u.I64), ("worker", u.I64), ("params", u.I64),
        ("ticks", u.I64)], noalias_ptrs=False)
    slot, kernel_word, begin0, end0, begin1, end1, worker, params, ticks = fn.args
    for i, value in enumerate((kernel_word, begin1, end1, worker, params), start=1):
        b.store(value, _word(b, slot, i))
    posted, refused = fn.append_basic_block("posted"), fn.append_basic_block("refused")
    b.cbranch(_cas(b, slot, SPINNING, POSTED), posted, refused)
    b.position_at_end(refused)
    b.ret(u.i64(-1))
    b.position_at_end(posted)
    kernel = b.inttoptr(kernel_word, u.PTR)
    kernel.__class__ = _ChunkCallee
    pointer = b.inttoptr(params, u.PTR)
    started = _ticks(b)
    b.call(kernel, [begin0, end0, u.i64(0), pointer])
    _add_busy(b, slot, BUSY_CALLER, started)
    # not started (its worker descheduled): run it here, as spin_reclaim's caller does
    reclaimed, wait = fn.append_basic_block("reclaimed"), fn.append_basic_block("wait")
    b.cbranch(_cas(b, slot, POSTED, SPINNING), reclaimed, wait)
    b.position_at_end(reclaimed)
    again = b.inttoptr(kernel_word, u.PTR)
    again.__class__ = _ChunkCallee
    started = _ticks(b)
    b.call(again, [begin1, end1, worker, pointer])
    _add_busy(b, slot, BUSY_CALLER, started)
    b.ret(u.i64(1))
    b.position_at_end(wait)
    _wait_loop(b, fn, slot, ticks)


def _emit_stop(module):
    fn, b = u.define(module, "spin_stop", u.VOID, [("slot", u.PTR)], noalias_ptrs=False)
    _cas(b, fn.args[0], SPINNING, ASLEEP)
    b.ret_void()


def _emit_trampoline(module, k: int):
    """spin_call<k>(begin, end, worker, params): params = [fn, arg 1 .. arg k] (int64
    words); calls fn(begin, end, worker, arg 1, ..., arg k)."""
    fn, b = u.define(module, f"spin_call{k}", u.VOID, [
        ("begin", u.I64), ("end", u.I64), ("worker", u.I64), ("params", u.PTR)],
        noalias_ptrs=False)
    begin, end, worker, params = fn.args
    words = [b.load(_word(b, params, i), typ=u.I64) for i in range(k + 1)]
    kernel = _callee(b.inttoptr(words[0], u.PTR), ir.FunctionType(u.VOID, [u.I64] * (3 + k)))
    b.call(kernel, [begin, end, worker] + words[1:])
    b.ret_void()


def _emit_ticks(module):
    fn, b = u.define(module, "spin_ticks", u.I64, [], noalias_ptrs=False)
    b.ret(_ticks(b))


def module() -> ir.Module:
    mod = ir.Module(name="ember_spin")
    _emit_ticks(mod)
    for emit in (_emit_worker, _emit_post, _emit_reclaim, _emit_wait, _emit_stop,
                 _emit_pair):
        emit(mod)
    for k in range(2, MAX_ARGS + 1):
        _emit_trampoline(mod, k)
    return mod


@functools.lru_cache(maxsize=1)
def functions():
    """The compiled library and its functions as ctypes calls (each releases the GIL):
    worker, post, reclaim, wait, stop."""
    lib = compile_built(module)
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    return (lib,
            lib.function("spin_worker", None, ptr, i64),
            lib.function("spin_post", i64, ptr, i64, i64, i64, i64, i64),
            lib.function("spin_reclaim", i64, ptr),
            lib.function("spin_wait", i64, ptr, i64),
            lib.function("spin_stop", None, ptr))


@functools.lru_cache(maxsize=1)
def pair_function():
    """spin_pair as a ctypes call (releases the GIL)."""
    return functions()[0].function("spin_pair", ctypes.c_int64, ctypes.c_void_p,
                                   *[ctypes.c_int64] * 8)


@functools.lru_cache(maxsize=1)
def trampolines() -> dict:
    """{k: address of spin_call<k>} for k = 2 .. MAX_ARGS."""
    lib = functions()[0]
    return {k: lib.address(f"spin_call{k}") for k in range(2, MAX_ARGS + 1)}


@functools.lru_cache(maxsize=1)
def ticks_function():
    """spin_ticks as a ctypes call: the cycle counter the busy words count in."""
    return functions()[0].function("spin_ticks", ctypes.c_int64)


def install(pool=None) -> None:
    """Give the thread pool (default: the process's) the native hand-off; a kernel's
    compiling code calls this before its first parallel run."""
    from ...runtime.threads import default_pool
    (pool or default_pool()).use_spinning(*functions()[1:], trampolines=trampolines(),
                                          pair=pair_function(), ticks=ticks_function())
