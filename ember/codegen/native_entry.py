"""One native entry point per plan: `ember_run(arena, inputs, outputs, times)` calls
every kernel of a static-shape plan in order, so running the plan is one foreign call.

The compiler layer (compiler/native_program.py) turns a plan into a *program*: a list
of calls whose every argument is fixed at build time (dimensions, strides, tiles) or a
pointer `base + byte offset`, where base is the arena (weights, persistent buffers,
scratch and GEMM workspace all sit at planned offsets in it), the i-th input or the
i-th output. This module writes that program as LLVM IR:

    i32 ember_run(ptr arena, ptr inputs, ptr outputs, ptr times)

Each call becomes a small internal *thunk* `void (i64 begin, i64 end, i64 worker, ptr ctx)`
that computes its pointers from ctx = {arena, inputs, outputs, &status} and calls the
kernel; `ember_run` calls the thunk directly (serial) or through
`ember_parallel_for(thunk, ctx, extent, align, max_threads)`, which cuts [0, extent)
into up to 4 aligned chunks per thread that the threads claim as they free up (a
descheduled thread delays a step by one chunk, not its whole share); results are
those of the Python-driven plan bit for bit, since no kernel's arithmetic depends on
where a chunk starts. A call may be guarded by the
thread count (`when`: a GEMM splits rows or columns depending on it), decided at run
time from `ember_threads()`. With `times` non-null, the clock (ns) after each plan step
is stored at times[step]. A nonzero return is 1 + the plan step that failed (an
embedding or index kernel's index out of range; an index kernel, llvm/index_ops.py,
has written the index, the size and which index tensor to its error record). A plan calling custom ops (Python) is split at each:
`ember_run_0` .. `ember_run_<k>` (same signature), the caller running the op between
two segments (`EntryEmitter(..., breaks=)`).

`RUNTIME_C` is the small C support library linked beside the kernels: a pthread pool
(`ember_init`, `ember_threads`, `ember_set_threads`, `ember_parallel_for`;
one job at a time; a forked child runs serially), `ember_copy` (an N-D strided copy,
broadcasting with stride 0) and `ember_copy_rows` (the same over a range of the first
dimension, a chunked job for large copies), `ember_take` (embedding rows, bounds-checked) and
`ember_now`. It is compiled with the system C compiler (the one that links the
shared library).
"""
from __future__ import annotations

RUNTIME_C = r"""
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*ember_chunk)(int64_t, int64_t, int64_t, void *);

static int pool_size = 1;
static int pool_limit = 1;          /* set_num_threads's cap (<= pool_size) */
static int pool_started = 0;
static pthread_mutex_t call_mu = PTHREAD_MUTEX_INITIALIZER;  /* one job at a time */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER;
/* A job is [0, n) cut into job_chunks aligned chunks that the threads claim one at a
   time (the caller too), so a thread the OS has descheduled (a busy host) delays a
   step by one chunk at most, not by its whole share. job_next holds the job's
   generation (high 32 bits) and the next unclaimed chunk (low 32): a worker that wakes
   after its job ended cannot claim a chunk of the next one with the old job's fields. */
#define CHUNKS_PER_THREAD 4
static atomic_long job_gen = 0;
static atomic_llong job_next = 0;
static ember_chunk job_fn;
static void *job_ctx;
static int job_chunks;
static int job_threads;             /* workers with a smaller id take part */
static int64_t *job_bounds;
static atomic_int job_left;         /* chunks not finished yet */

/* Spin before sleeping, for up to SPIN_NS: waking a sleeping thread (futex, and an
   inter-processor interrupt under a hypervisor) costs 10-30 microseconds, more than a
   small kernel takes; a plan's parallel steps follow each other within a few
   microseconds, so a worker spinning that long is ready for the next one, and one
   waiting at the end of a call costs at most SPIN_NS of a core. */
#define SPIN_NS 50000
#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

static int64_t clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spin while *flag == value, at most SPIN_NS; 1 when it changed. */
static int spin_while_long(atomic_long *flag, long value) {
    int64_t start = clock_ns();
    for (int i = 1; atomic_load(flag) == value; i++) {
        CPU_RELAX();
        if ((i & 63) == 0 && clock_ns() - start > SPIN_NS)
            return 0;
    }
    return 1;
}

/* Spin while *count > 0, at most SPIN_NS. */
static void spin_while_positive(atomic_int *count) {
    int64_t start = clock_ns();
    for (int i = 1; atomic_load(count) > 0; i++) {
        CPU_RELAX();
        if ((i & 63) == 0 && clock_ns() - start > SPIN_NS)
            return;
    }
}

/* The next chunk of job `gen` (of `chunks`), or -1 when none is left or the job is over. */
static int claim_chunk(long gen, int chunks) {
    long long v = atomic_load(&job_next);
    for (;;) {
        if ((v >> 32) != (gen & 0x7fffffff) || (int)(v & 0xffffffff) >= chunks)
            return -1;
        if (atomic_compare_exchange_weak(&job_next, &v, v + 1))
            return (int)(v & 0xffffffff);
    }
}

/* Claim and run chunks of job `gen` as worker `id`; 1 when this thread finished the
   job's last chunk. */
static int run_chunks(long gen, ember_chunk fn, void *ctx, int chunks, int id) {
    int last = 0, c;
    while ((c = claim_chunk(gen, chunks)) >= 0) {
        fn(job_bounds[c], job_bounds[c + 1], id, ctx);
        if (atomic_fetch_sub(&job_left, 1) == 1)
            last = 1;
    }
    return last;
}

static void *pool_worker(void *arg) {
    int id = (int)(intptr_t)arg;
    long seen = 0;
    for (;;) {
        spin_while_long(&job_gen, seen);
        pthread_mutex_lock(&pool_mu);
        while (atomic_load(&job_gen) == seen)
            pthread_cond_wait(&pool_wake, &pool_mu);
        seen = atomic_load(&job_gen);
        ember_chunk fn = job_fn;
        void *ctx = job_ctx;
        int chunks = job_chunks, threads = job_threads;
        pthread_mutex_unlock(&pool_mu);
        if (id < threads && run_chunks(seen, fn, ctx, chunks, id)) {
            pthread_mutex_lock(&pool_mu);
            pthread_cond_signal(&pool_done);
            pthread_mutex_unlock(&pool_mu);
        }
    }
    return 0;
}

/* A forked child has none of the pool's threads (and maybe a lock held at fork time):
   it runs serially on fresh locks. */
static void pool_after_fork_child(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    pool_mu = fresh;
    call_mu = fresh;
    pool_wake = fresh_cond;
    pool_done = fresh_cond;
    pool_size = pool_limit = 1;
}

int ember_init(int64_t n_threads) {
    if (pool_started)
        return pool_size;
    pool_started = 1;
    pthread_atfork(NULL, NULL, pool_after_fork_child);
    pool_size = pool_limit = n_threads < 1 ? 1 : (int)n_threads;
    job_bounds = calloc((size_t)pool_size * CHUNKS_PER_THREAD + 1, sizeof(int64_t));
    for (int i = 1; i < pool_size; i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, pool_worker, (void *)(intptr_t)i) != 0) {
            pool_size = pool_limit = i;     /* run on the threads that did start */
            pthread_attr_destroy(&attr);
            break;
        }
        pthread_attr_destroy(&attr);
    }
    return pool_size;
}

int64_t ember_threads(void) { return pool_limit; }

/* torch.set_num_threads for the pool: use at most n of its threads. */
void ember_set_threads(int64_t n) {
    pool_limit = n < 1 ? 1 : n > pool_size ? pool_size : (int)n;
}

/* [0, n) on at most min(pool, max_threads) threads, in chunks starting on multiples
   of align (up to CHUNKS_PER_THREAD per thread, claimed dynamically; the caller is
   worker 0). Which thread runs a chunk never changes a result: every kernel computes
   each output element within one chunk, in an order that does not depend on where
   the chunk starts. */
void ember_parallel_for(ember_chunk fn, void *ctx, int64_t n, int64_t align,
                        int64_t max_threads) {
    if (n <= 0)
        return;
    int64_t threads = pool_limit;
    if (max_threads > 0 && max_threads < threads)
        threads = max_threads;
    int64_t blocks = (n + align - 1) / align;
    if (threads < 2 || blocks < 2) {
        fn(0, n, 0, ctx);
        return;
    }
    int64_t parts = threads * CHUNKS_PER_THREAD;
    if (parts > blocks)
        parts = blocks;
    pthread_mutex_lock(&call_mu);
    pthread_mutex_lock(&pool_mu);
    for (int64_t i = 0; i <= parts; i++) {
        int64_t bound = (blocks * i / parts) * align;
        job_bounds[i] = bound < n ? bound : n;
    }
    job_fn = fn;
    job_ctx = ctx;
    job_chunks = (int)parts;
    job_threads = (int)threads;
    atomic_store(&job_left, (int)parts);
    long gen = atomic_load(&job_gen) + 1;
    atomic_store(&job_next, (long long)(gen & 0x7fffffff) << 32);
    atomic_store(&job_gen, gen);
    pthread_cond_broadcast(&pool_wake);
    pthread_mutex_unlock(&pool_mu);
    run_chunks(gen, fn, ctx, (int)parts, 0);
    spin_while_positive(&job_left);
    if (atomic_load(&job_left) > 0) {
        pthread_mutex_lock(&pool_mu);
        while (atomic_load(&job_left) > 0)
            pthread_cond_wait(&pool_done, &pool_mu);
        pthread_mutex_unlock(&pool_mu);
    }
    pthread_mutex_unlock(&call_mu);
}

/* The clock of the plan's step stamps (`times`): the wall clock, or with
   ember_stamp_clock(1) the calling thread's CPU time (on a busy host, what each step of
   a one-thread call cost, which the wall clock there does not show). */
static clockid_t stamp_clock = CLOCK_MONOTONIC;

void ember_stamp_clock(int64_t thread_cpu) {
    stamp_clock = thread_cpu ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
}

int64_t ember_now(void) {
    struct timespec ts;
    clock_gettime(stamp_clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* dst[i...] = src[i...] over `shape`; strides in elements (0 broadcasts). */
void ember_copy(char *dst, const int64_t *dst_strides, const char *src,
                const int64_t *src_strides, const int64_t *shape, int64_t ndim,
                int64_t itemsize) {
    if (ndim == 0) {
        memcpy(dst, src, (size_t)itemsize);
        return;
    }
    int64_t ds = dst_strides[0] * itemsize, ss = src_strides[0] * itemsize;
    if (ndim == 1) {
        if (ds == itemsize && ss == itemsize) {
            memcpy(dst, src, (size_t)(shape[0] * itemsize));
            return;
        }
        if (itemsize == 4) {
            for (int64_t i = 0; i < shape[0]; i++)
                *(uint32_t *)(dst + i * ds) = *(const uint32_t *)(src + i * ss);
            return;
        }
        for (int64_t i = 0; i < shape[0]; i++)
            memcpy(dst + i * ds, src + i * ss, (size_t)itemsize);
        return;
    }
    for (int64_t i = 0; i < shape[0]; i++)
        ember_copy(dst + i * ds, dst_strides + 1, src + i * ss, src_strides + 1, shape + 1,
                   ndim - 1, itemsize);
}

/* Rows [begin, end) of dimension 0 of ember_copy's copy (ndim >= 1): a chunked job,
   so a large copy (a transposed activation made contiguous for a GEMM, a bias
   broadcast over a GEMM's output) is split across the pool like a kernel. */
void ember_copy_rows(int64_t begin, int64_t end, int64_t worker, char *dst,
                     const int64_t *dst_strides, const char *src, const int64_t *src_strides,
                     const int64_t *shape, int64_t ndim, int64_t itemsize) {
    (void)worker;
    for (int64_t i = begin; i < end; i++)
        ember_copy(dst + i * dst_strides[0] * itemsize, dst_strides + 1,
                   src + i * src_strides[0] * itemsize, src_strides + 1, shape + 1, ndim - 1,
                   itemsize);
}

/* out[i, :] = weight[idx[i], :]; returns 1 on an index out of range (0 <= idx < rows,
   as torch.nn.functional.embedding and ember's eager kernel require), else 0. */
int ember_take(char *out, const char *weight, int64_t rows, int64_t row_bytes,
               const char *idx, int64_t count, int64_t idx_size) {
    for (int64_t i = 0; i < count; i++) {
        int64_t j = idx_size == 8 ? ((const int64_t *)idx)[i] : ((const int32_t *)idx)[i];
        if (j < 0 || j >= rows)
            return 1;
        memcpy(out + i * row_bytes, weight + j * row_bytes, (size_t)row_bytes);
    }
    return 0;
}
"""

# argument kinds of each callee, after (begin, end, worker) for the chunked ones
SIGNATURES = {
    "kernel": ("buffers",),
    "gemm": ("i64",) * 3 + ("ptr", "i64", "i64") * 2 + ("ptr", "i64", "i32", "ptr", "i64",
                                                          "ptr"),
    "gemm_batch": ("i64",) * 3 + ("ptr", "i64", "i64") * 2 + (
        "ptr", "i64", "i32", "ptr", "i64", "ptr", "i64", "i64", "i64"),
    "conv": ("ptr",) * 6 + ("i64",) * 28,
    "conv_cols": ("ptr",) * 6 + ("i64",) * 30,
    "wino": ("ptr",) * 7 + ("i64",) * 24,
    "conv_pool": ("ptr",) * 6 + ("i64",) * 28 + ("ptr",) + ("i64",) * 12,
    "pad": ("ptr", "ptr") + ("i64",) * 12,
    "copy": ("ptr", "i64s", "ptr", "i64s", "i64s", "i64", "i64"),
    "copy_rows": ("ptr", "i64s", "ptr", "i64s", "i64s", "i64", "i64"),
    "take": ("ptr", "ptr", "i64", "i64", "ptr", "i64", "i64"),
    # ember_copy from a constant: a fill (full), the value's bytes an i64s of the call
    "fill": ("ptr", "i64s", "i64s", "i64s", "i64s", "i64", "i64"),
    # llvm/index_ops.py: (buffers, geometry, error record), returns 1 on a bad index
    "index": ("buffers", "i64s", "ptr"),
}
# calls returning an i32 status (nonzero: an index out of range; the entry stops there)
STATUS = {"take", "index"}
CHUNKED = {"kernel", "gemm", "gemm_batch", "conv", "conv_cols", "conv_pool", "pad", "copy_rows",
           "wino", "index"}
_LLVM_TYPE = {"i64": "i64", "i32": "i32", "ptr": "ptr", "i64s": "ptr", "buffers": "ptr"}


class EntryEmitter:
    """LLVM IR text of `ember_run` for a program (see module doc).

    A call is a dict: `fn` (symbol), `sig` (a SIGNATURES key), `args` (one per
    signature kind: an int for i64/i32, a pointer `(base, byte_offset)` with base
    'arena' / ('in', i) / ('out', i) or None for null, a list of ints for i64s, a list
    of pointers for buffers), `extent`, `align`, `parallel` (bool), `when` (None or a
    list of ('nt_le' | 'nt_gt', n), all of which must hold), `step` (the plan step it
    belongs to)."""

    def __init__(self, calls: list, n_steps: int, prefix: str = "ember",
                 breaks: list | None = None):
        """`breaks`: call indices where the program stops for a custom op (Python, run
        by the caller): without any, one function `<prefix>_run`; with k of them, k + 1
        functions `<prefix>_run_0` .. `<prefix>_run_<k>` (same signature), segment j
        running calls [breaks[j-1], breaks[j])."""
        self.calls, self.n_steps, self.prefix = calls, n_steps, prefix
        self.breaks = list(breaks or [])
        self.lines: list[str] = []
        self.globals: list[str] = []
        self.declared: dict[str, str] = {}
        self.counter = 0

    def emit(self) -> str:
        for i, call in enumerate(self.calls):
            self._thunk(i, call)
        self._run()
        decls = [f"declare {ret} @{name}({args})" for name, (ret, args) in
                 sorted(self.declared.items())]
        return "\n".join(self.globals + decls + self.lines) + "\n"

    def _declare(self, name: str, ret: str, args: str) -> None:
        self.declared[name] = (ret, args)

    def _tmp(self) -> str:
        self.counter += 1
        return f"%t{self.counter}"

    def _pointer(self, body: list, ptr) -> str:
        if ptr is None:
            return "null"
        base, offset = ptr
        if base == "arena":
            src = "%arena"
        else:
            which = "%ins" if base[0] == "in" else "%outs"
            slot, src = self._tmp(), self._tmp()
            body.append(f"  {slot} = getelementptr ptr, ptr {which}, i64 {int(base[1])}")
            body.append(f"  {src} = load ptr, ptr {slot}")
        if not offset:
            return src
        out = self._tmp()
        body.append(f"  {out} = getelementptr i8, ptr {src}, i64 {int(offset)}")
        return out

    def _thunk(self, index: int, call: dict) -> None:
        sig = call["sig"]
        kinds = SIGNATURES[sig]
        if len(kinds) != len(call["args"]):
            raise ValueError(f"native entry: call {call['fn']} ({sig}) takes {len(kinds)} "
                             f"arguments, got {len(call['args'])}")
        body = ["  %arena = load ptr, ptr %ctx",
                "  %insp = getelementptr ptr, ptr %ctx, i64 1", "  %ins = load ptr, ptr %insp",
                "  %outsp = getelementptr ptr, ptr %ctx, i64 2",
                "  %outs = load ptr, ptr %outsp"]
        args = ["i64 %b", "i64 %e", "i64 %w"] if sig in CHUNKED else []
        for kind, value in zip(kinds, call["args"]):
            args.append(f"{_LLVM_TYPE[kind]} {self._argument(body, kind, value, index)}")
        arg_types = ", ".join(a.split(" ")[0] for a in args)
        if sig in STATUS:
            self._declare(call["fn"], "i32", arg_types)
            status = self._tmp()
            body.append(f"  {status} = call i32 @{call['fn']}({', '.join(args)})")
            flag, where = self._tmp(), self._tmp()
            body.append(f"  {where} = getelementptr ptr, ptr %ctx, i64 3")
            body.append(f"  {flag} = load ptr, ptr {where}")
            # or-ed in: chunks of one parallel call run on several threads, and one
            # that succeeds must not clear another's failure
            body.append(f"  {self._tmp()} = atomicrmw or ptr {flag}, i32 {status} monotonic")
        else:
            self._declare(call["fn"], "void", arg_types)
            body.append(f"  call void @{call['fn']}({', '.join(args)})")
        self.lines.append(f"define internal void @{self.prefix}_call{index}(i64 %b, i64 %e, "
                          f"i64 %w, ptr %ctx) {{\nentry:")
        self.lines += body + ["  ret void", "}"]

    def _argument(self, body: list, kind: str, value, index: int) -> str:
        if kind in ("i64", "i32"):
            return str(int(value))
        if kind == "ptr":
            return self._pointer(body, value)
        if kind == "i64s":
            name = f"@{self.prefix}_c{index}_{len(self.globals)}"
            items = ", ".join(f"i64 {int(v)}" for v in value) or "i64 0"
            count = max(1, len(value))
            self.globals.append(f"{name} = private unnamed_addr constant [{count} x i64] "
                                f"[{items}], align 8")
            return name
        # buffers: a stack array of pointers (a generated kernel's `void **buffers`)
        array = self._tmp()
        body.append(f"  {array} = alloca [{max(1, len(value))} x ptr], align 8")
        for i, ptr in enumerate(value):
            p = self._pointer(body, ptr)
            slot = self._tmp()
            body.append(f"  {slot} = getelementptr ptr, ptr {array}, i64 {i}")
            body.append(f"  store ptr {p}, ptr {slot}")
        return array

    def entry_names(self) -> list[str]:
        """The exported functions, in the order the caller runs them."""
        if not self.breaks:
            return [f"{self.prefix}_run"]
        return [f"{self.prefix}_run_{j}" for j in range(len(self.breaks) + 1)]

    def _run(self) -> None:
        self._declare("ember_parallel_for", "void", "ptr, ptr, i64, i64, i64")
        self._declare("ember_threads", "i64", "")
        self._declare("ember_now", "i64", "")
        bounds = [0] + self.breaks + [len(self.calls)]
        for name, begin, end in zip(self.entry_names(), bounds, bounds[1:]):
            self._segment(name, begin, end)

    def _segment(self, name: str, begin: int, end: int) -> None:
        """One exported function running calls [begin, end)."""
        out = [f"define i32 @{name}(ptr %arena, ptr %ins, ptr %outs, ptr %times) {{",
               "entry:",
               "  %ctx = alloca [4 x ptr], align 8",
               "  %status = alloca i32, align 4",
               "  store i32 0, ptr %status",
               "  store ptr %arena, ptr %ctx",
               "  %c1 = getelementptr ptr, ptr %ctx, i64 1", "  store ptr %ins, ptr %c1",
               "  %c2 = getelementptr ptr, ptr %ctx, i64 2", "  store ptr %outs, ptr %c2",
               "  %c3 = getelementptr ptr, ptr %ctx, i64 3", "  store ptr %status, ptr %c3",
               "  %nt = call i64 @ember_threads()",
               "  %timed = icmp ne ptr %times, null"]
        last_of_step = {}
        for i, call in enumerate(self.calls):
            last_of_step[call["step"]] = i
        for i in range(begin, end):
            call = self.calls[i]
            out += self._run_call(i, call)
            if last_of_step.get(call["step"]) == i:
                out += self._after_step(call["step"], call["sig"] in STATUS or any(
                    c["sig"] in STATUS for c in self.calls if c["step"] == call["step"]))
        out += ["  ret i32 0", "}"]
        self.lines += out

    def _run_call(self, i: int, call: dict) -> list:
        thunk = f"@{self.prefix}_call{i}"
        if call["parallel"]:
            text = [f"  call void @ember_parallel_for(ptr {thunk}, ptr %ctx, "
                    f"i64 {int(call['extent'])}, i64 {int(call['align'])}, "
                    f"i64 {int(call.get('max_threads', 0))})"]
        else:
            text = [f"  call void {thunk}(i64 0, i64 {int(call.get('extent', 1))}, i64 0, "
                    "ptr %ctx)"]
        when = call.get("when") or []
        if not when:
            return text
        conds = []
        for j, (kind, bound) in enumerate(when):
            op = {"nt_le": "sle", "nt_gt": "sgt"}[kind]
            conds.append(f"  %w{i}_{j} = icmp {op} i64 %nt, {int(bound)}")
        flag = f"%w{i}_0"
        for j in range(1, len(when)):
            conds.append(f"  %w{i}_and{j} = and i1 {flag}, %w{i}_{j}")
            flag = f"%w{i}_and{j}"
        return conds + [f"  br i1 {flag}, label %do{i}, label %done{i}", f"do{i}:", *text,
                        f"  br label %done{i}", f"done{i}:"]

    def _after_step(self, step: int, checks_status: bool) -> list:
        out = []
        if checks_status:
            out += [f"  %s{step} = load i32, ptr %status",
                    f"  %bad{step} = icmp ne i32 %s{step}, 0",
                    f"  br i1 %bad{step}, label %fail{step}, label %ok{step}",
                    f"fail{step}:", f"  ret i32 {step + 1}", f"ok{step}:"]
        out += [f"  br i1 %timed, label %tm{step}, label %tmd{step}", f"tm{step}:",
                f"  %now{step} = call i64 @ember_now()",
                f"  %tp{step} = getelementptr i64, ptr %times, i64 {step}",
                f"  store i64 %now{step}, ptr %tp{step}",
                f"  br label %tmd{step}", f"tmd{step}:"]
        return out
