"""The lite runtime: load a packaged model (.ember artifact) and run it, nothing else.

    from ember.runtime.lite import load_package     # or ember.aot.load_package
    model = load_package("model.ember")
    (y,) = model(x)                                  # numpy in, numpy out

This file imports numpy and the standard library only (ctypes over the artifact's
shared library), so a machine without llvmlite, lark, networkx or Triton runs a model
compiled elsewhere. `import ember.runtime.lite` runs ember/__init__.py, which imports
the whole compiler; a process without the compiler loads this file on its own:

    python path/to/ember/runtime/lite.py model.ember --input x=in.npy -o out.npz
    # or: spec = importlib.util.spec_from_file_location("ember_lite", path) ...

Loading checks everything before anything runs (ArtifactError saying which check
failed): the zip is readable, every member the manifest lists is there with its
SHA-256 (the Winograd-transformed weights instead equal, bit for bit, the transform of
SHA-checked weights, recomputed here: WINOGRAD_MEMBER), the format version is this
runtime's, and this CPU has the features the machine code was compiled for.
docs/aot.md describes the members.

Running is one foreign call: the artifact's shared library exports
`ember_run(arena, inputs, outputs, times)`, generated code that calls every kernel of
the plan in order (generated loops, GEMM and implicit-GEMM conv, copies, embedding
rows) with arguments fixed at packaging and buffers at planned offsets in one arena
(compiler/native_program.py, codegen/native_entry.py), splitting work over its own
native thread pool (`ember_init`, EMBER_NUM_THREADS threads). This file allocates the
arena, places the weights in it, passes pointers and returns the results: results the
caller keeps are fresh arrays each call; values living in the arena are copied out.
A plan with host steps is several native segments, this file calling each host step
between two of them on views of its operands and copying its results into their
planned buffers. Host steps are custom ops (ember.library.custom_op; the op must be
registered in this process: ember's registry is consulted only for such artifacts, and
only if ember is already imported) and the int8 steps of a converted model (quantize,
qgemm, ...: runtime/lite_int8.py's step classes, a sibling file of this one, loaded
only for such artifacts, by path when this file runs on its own; it needs no more than
this file does).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import sys
import tempfile
import threading
import zipfile

import numpy as np

FORMAT_VERSION = 4
# version 3: int8 GEMM plans carry the claiming schedule's extra kernel parameters (chunk,
# counter, n_valid); a version-2 artifact (fixed split) still runs here, while a runtime that
# reads only version 2 refuses a version-3 artifact instead of passing it short arguments.
# version 4: Winograd-transformed weights in WINOGRAD_MEMBER (or derived at load), not in
# the weights member; a version-3 artifact (them in the weights member, hashed) runs here
READABLE_VERSIONS = (2, 3, 4)
FORMAT_NAME = "ember-artifact"
MEMBERS = ("manifest.json", "graph.ir", "weights.safetensors", "memory_plan.json",
           "plan.json", "model.so")
# target="cuda": cubins (kernels/k<i>.cubin, listed in the manifest) instead of model.so
CUDA_MEMBERS = MEMBERS[:-1]
# the Winograd-transformed weights of 3x3 stride-1 convs ("u<step>"), when stored: a
# function of the weights member's direct-conv panels ("p<step>"), so loading checks
# them by computing that function again (runtime/winograd_weights.py) and comparing bit
# for bit rather than by their SHA-256 (measured cheaper: resnet18's 151 MB take 28 ms
# of CPU time to recompute and compare, 50-80 ms to hash). Its digest stays in the
# manifest for tools that check a file without loading it.
WINOGRAD_MEMBER = "winograd.safetensors"
# the starting values of the buffers a model updates in place (manifest "state")
STATE_MEMBER = "state.safetensors"
ALIGN = 64

try:                       # inside the ember package: ember's own error class
    from ..ir.errors import ArtifactError
except ImportError:        # loaded on its own (no package): the same name, standalone
    class ArtifactError(Exception):
        """A corrupt, incomplete or mismatched artifact (refused before anything runs)."""


try:                       # ember's: an IndexError that is also PyTorch's RuntimeError
    from ..ir.ops.joining import IndexBoundsError
except ImportError:
    class IndexBoundsError(IndexError, RuntimeError):
        """An index out of range (PyTorch raises IndexError or RuntimeError by op)."""


def index_error(step: dict, record) -> IndexBoundsError:
    """The error of an index kernel step (`kind` index, codegen/index_plan.py) that
    stopped on an index out of range; `record` is its error record (index value, size,
    which index), read from where the kernel wrote it."""
    value, size, which = (int(v) for v in record)
    where = f"{step.get('op', step.get('kind'))}, step {step.get('name', '?')}"
    dims = step.get("dims") or [0]
    dim = dims[which] if 0 <= which < len(dims) else dims[0]
    if step.get("op") == "embedding":        # PyTorch's own words for these two
        return IndexBoundsError(f"index out of range in self (index {value} with "
                                f"num_embeddings={size}; {where})")
    if step.get("op") == "index_select":
        return IndexBoundsError(f"index out of range in self (index {value} for dimension "
                                f"{dim} with size {size}; {where})")
    return IndexBoundsError(f"index {value} is out of bounds for dimension {dim} with size "
                            f"{size} ({where})")


def step_error(step: dict, arena_address: int) -> IndexError:
    """The error a native program returned for plan step `step` (1 + its number): an
    index kernel's record sits in the arena at the step's `error_at`; an embedding
    step (`ember_take`) has none."""
    if step.get("kind") == "index" and step.get("error_at") is not None:
        record = (ctypes.c_int64 * 3).from_address(arena_address + int(step["error_at"]))
        return index_error(step, list(record))
    return IndexError(f"{step.get('op', step['kind'])} (step {step['name']}): index out of "
                      "range in self")


class NoNativeProgram(ArtifactError):
    """A size of a dynamic dimension inside its range that the artifact has no native
    program for (ember.aot.load_package runs it through ember.compile instead)."""


# --- reading and checking an artifact --------------------------------------------------------
CHUNK_BYTES = 4 << 20        # members bigger than this carry per-chunk SHA-256s too
LOCAL_HEADER = 30            # a zip local file header before its name and extra field


def read_members(path, prefix: str = "") -> tuple[dict, dict]:
    """(manifest, {member: bytes-like}) with every check done; raises ArtifactError.

    The file is memory-mapped and members are slices of the mapping (stored members:
    no decompression, no copy); each is checked against the manifest's SHA-256, big
    members chunk by chunk on several threads (hashlib releases the GIL). The zip's
    own CRC-32 is not recomputed: the SHA-256s cover every byte it would. `prefix`:
    one model of a package holding several (its members are "<name>/...")."""
    import mmap
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)) \
                if size else memoryview(b"")
        with zipfile.ZipFile(path) as z:
            infos = {i.filename: i for i in z.infolist()}
        if prefix + "manifest.json" not in infos:
            if not prefix and PACKAGE_INDEX in infos:
                raise ArtifactError(f"{path}: a package of several models "
                                    f"({', '.join(package_models(path) or [])}); load one "
                                    "with model_name=")
            raise ArtifactError(f"{path}: missing member {prefix}manifest.json")
        manifest = json.loads(bytes(_member(data, infos[prefix + "manifest.json"], path)))
        check_format(manifest, path)
        members = {}
        for name in manifest["members"]:
            if prefix + name not in infos:
                raise ArtifactError(f"{path}: missing member {prefix}{name}")
            members[name] = _member(data, infos[prefix + name], path)
    except ArtifactError:
        raise
    except Exception as err:    # noqa: BLE001
        # a damaged zip surfaces as almost anything zipfile or json raise
        # (BadZipFile, EOFError, ValueError, UnicodeDecodeError, ...)
        raise ArtifactError(f"{path}: not a readable ember artifact "
                            f"({type(err).__name__}: {err})") from None
    _check_digests(manifest, members, path)
    for name in CUDA_MEMBERS if target_kind(manifest) == "cuda" else MEMBERS:
        if name not in members and name != "manifest.json":
            raise ArtifactError(f"{path}: missing member {name}")
    return manifest, {name: v if name in ("weights.safetensors", WINOGRAD_MEMBER) else bytes(v)
                      for name, v in members.items()}


def _member(data: memoryview, info, path) -> memoryview:
    """A stored member's bytes as a slice of the mapped file (its local header read)."""
    start = info.header_offset
    header = bytes(data[start:start + LOCAL_HEADER])
    if len(header) < LOCAL_HEADER or header[:4] != b"PK\x03\x04":
        raise ArtifactError(f"{path}: member {info.filename} has no local header")
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise ArtifactError(f"{path}: member {info.filename} is compressed; artifacts "
                            "store members")
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    begin = start + LOCAL_HEADER + name_len + extra_len
    end = begin + info.file_size
    if end > len(data):
        raise ArtifactError(f"{path}: member {info.filename} is truncated")
    return data[begin:end]


def _check_digests(manifest: dict, members: dict, path) -> None:
    chunked = manifest.get("chunked", {})
    if not isinstance(chunked, dict):
        raise ArtifactError(f"{path}: the manifest's chunk digests are malformed")
    jobs, threaded = [], False      # (member name, bytes, expected digest)
    for name, digest in manifest["members"].items():
        if name == WINOGRAD_MEMBER:          # checked by recomputing it (LiteModel)
            continue
        data = members[name]
        chunks = chunked.get(name)
        if chunks is None:
            jobs.append((name, data, digest))
            continue
        step = chunks.get("chunk_bytes") if isinstance(chunks, dict) else None
        digests = chunks.get("sha256") if isinstance(chunks, dict) else None
        if not isinstance(step, int) or step <= 0 or not isinstance(digests, list) or \
                len(digests) != max(1, -(-len(data) // step)):
            raise ArtifactError(f"{path}: the manifest's chunk digests of {name} are "
                                "malformed")
        jobs += [(name, data[i * step:(i + 1) * step], d) for i, d in enumerate(digests)]
        threaded = True
    ok = parallel_map(lambda job: hashlib.sha256(job[1]).hexdigest() == job[2], jobs,
                      min(cpu_count(), 8) if threaded else 1)
    for (name, _, _), good in zip(jobs, ok):
        if not good:
            raise ArtifactError(f"{path}: member {name} fails its SHA-256 check (corrupt)")


def parallel_map(fn, jobs: list, threads: int) -> list:
    """[fn(job) for job in jobs] on up to `threads` threads (this one among them), for
    work that releases the GIL (hashlib, NumPy). Plain threads: concurrent.futures'
    import alone (logging and more) costs ~12 ms of a cold start. The first exception
    of a job is raised here."""
    threads = max(1, min(threads, len(jobs)))
    if threads == 1:
        return [fn(job) for job in jobs]
    results, errors, lock = [None] * len(jobs), [], threading.Lock()
    todo = iter(range(len(jobs)))

    def work():
        while not errors:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            try:
                results[i] = fn(jobs[i])
            except BaseException as err:     # noqa: BLE001 - re-raised by the caller
                errors.append(err)
    helpers = [threading.Thread(target=work, daemon=True) for _ in range(threads - 1)]
    for t in helpers:
        t.start()
    work()
    for t in helpers:
        t.join()
    if errors:
        raise errors[0]
    return results


def chunk_digests(data: bytes, chunk_bytes: int = CHUNK_BYTES) -> dict:
    """The manifest's per-chunk SHA-256s of one member (written by packaging)."""
    view = memoryview(data)
    count = max(1, -(-len(view) // chunk_bytes))
    return {"chunk_bytes": chunk_bytes, "sha256": [
        hashlib.sha256(view[i * chunk_bytes:(i + 1) * chunk_bytes]).hexdigest()
        for i in range(count)]}


def check_format(manifest, path) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ArtifactError(f"{path}: not an ember artifact (manifest format "
                            f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("format_version") not in READABLE_VERSIONS:
        raise ArtifactError(f"{path}: format version {manifest.get('format_version')!r}; "
                            f"this runtime reads versions "
                            f"{', '.join(map(str, READABLE_VERSIONS))}")
    members = manifest.get("members")
    if not isinstance(members, dict) or not all(isinstance(v, str) for v in members.values()):
        raise ArtifactError(f"{path}: the manifest lists no members")
    target = manifest.get("target")
    if not isinstance(target, dict) or not isinstance(target.get("required_features"), list):
        raise ArtifactError(f"{path}: the manifest has no target CPU features")
    for key in ("inputs", "outputs"):
        specs = manifest.get(key)
        if not isinstance(specs, list) or not all(
                isinstance(s, dict) and isinstance(s.get("name"), str) and
                isinstance(s.get("dtype"), str) and isinstance(s.get("shape"), list)
                for s in specs):
            raise ArtifactError(f"{path}: the manifest's {key} are malformed")
        for s in specs:
            try:
                np.dtype(s["dtype"])
            except TypeError:
                raise ArtifactError(f"{path}: the manifest's {key} name an unknown dtype "
                                    f"{s['dtype']!r}") from None


def host_cpu_flags() -> set:
    """This CPU's feature flags as Linux names them (/proc/cpuinfo), lower case."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def check_cpu(manifest, path, flags: set | None = None) -> None:
    """Refuse machine code built for features this CPU lacks."""
    need = set(manifest.get("target", {}).get("required_features", []))
    have = host_cpu_flags() if flags is None else flags
    missing = sorted(need - have)
    if missing:
        # int8 steps take AMX tiles or VNNI as the packaging host chose per shape: an
        # artifact for hosts without them is packaged with those kernels turned off
        hint = "; package it with EMBER_QGEMM=vnni for CPUs without AMX" if \
            {"amx_int8", "amx_tile"} & set(missing) and "avx512_vnni" not in missing else ""
        raise ArtifactError(f"{path}: compiled for CPU features {sorted(need)}; this CPU "
                            f"lacks {missing}{hint}")


def aligned_empty(count: int, dtype, zeros: bool = False) -> np.ndarray:
    dtype = np.dtype(dtype)
    raw = (np.zeros if zeros else np.empty)(max(count, 1) * dtype.itemsize + ALIGN, np.uint8)
    start = (-address(raw)) % ALIGN
    return raw[start:start + count * dtype.itemsize].view(dtype)


class Spares:
    """Result buffers handed out call after call, reusing one only when nothing but
    this holder references it or its memory any more (the caller dropped the results
    of the call that got it): unobservable, and the reused buffer is already faulted
    in. A fresh 1 MB array costs 256 page faults when first written (glibc maps each
    such block anew: its dynamic mmap threshold lands exactly on the size freed),
    ~0.1-0.3 ms of a transformer layer's ~4-8 ms call."""

    def __init__(self, n: int):
        self.held: list = [None] * n

    def _free(self, i: int) -> bool:
        buf = self.held[i]
        if buf is None:
            return False
        # references to buf: the list, `buf` here, getrefcount's argument; to its memory's
        # owner (numpy points a view's base at it, so a caller's result made from buf
        # references buf or the owner): buf.base and the argument
        return sys.getrefcount(buf) == 3 and (buf.base is None or
                                              sys.getrefcount(buf.base) == 2)

    def _keep(self, i: int, buf: np.ndarray) -> np.ndarray:
        self.held[i] = buf
        return buf

    def get(self, i: int, make):
        """The i-th buffer: the spare if it is free, else `make()` (kept as the spare)."""
        return self.held[i] if self._free(i) else self._keep(i, make())

    def copy(self, i: int, view: np.ndarray) -> np.ndarray:
        """A copy of `view` (C order, as ndarray.copy) in the i-th spare if it is free."""
        if self._free(i) and self.held[i].shape == view.shape:
            np.copyto(self.held[i], view)
            return self.held[i]
        return self._keep(i, view.copy())


def address(a: np.ndarray) -> int:
    """The address of a contiguous array's data. ctypes' view of a writable buffer costs
    a fifth of numpy's `a.ctypes.data` (numpy 2 builds an object per access: ~3 us of a
    ~10 us call of a small model); read-only or empty arrays take numpy's way."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def anonymous_zeros(nbytes: int) -> np.ndarray:
    """nbytes of zeros (uint8, page-aligned) in an anonymous mapping of their own, its
    pages populated here (Linux's MAP_POPULATE; elsewhere faulted in as first written).

    Not numpy's allocation: numpy advises huge pages for a big array, and on a host
    whose memory is fragmented the kernel then compacts memory inside the page faults
    of the first call (measured for resnet18 batch 8, a 45 MB arena: that call's system
    time 3 to 119 ms from one fresh process to the next, against 18 to 39 ms in 4 KiB
    pages faulted one by one, and 12 to 16 ms populated at once here; the second call
    is as fast in all three)."""
    import mmap
    try:
        mapping = mmap.mmap(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                            | getattr(mmap, "MAP_POPULATE", 0))
    except (AttributeError, OSError, ValueError, TypeError):   # no such flags here
        mapping = mmap.mmap(-1, max(nbytes, 1))
    return np.frombuffer(mapping, np.uint8)[:nbytes]


# --- running: one call into the artifact's entry point -----------------------------------------
def cpu_count() -> int:
    """Threads for the artifact's pool: EMBER_NUM_THREADS, else the CPUs we may use."""
    forced = os.environ.get("EMBER_NUM_THREADS")
    if forced:
        return max(1, int(forced))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _strided(buf: np.ndarray, offset: int, shape, strides, dtype) -> np.ndarray:
    """A view of the bytes `buf` (uint8) from byte `offset`, with `shape` and element
    `strides` (non-negative, as the plan's values have)."""
    dtype = np.dtype(dtype)
    if not all(shape):
        return np.empty(shape, dtype)
    extent = 1 + sum((s - 1) * st for s, st in zip(shape, strides))
    flat = buf[offset:offset + extent * dtype.itemsize].view(dtype)
    return np.lib.stride_tricks.as_strided(flat, tuple(shape),
                                           tuple(s * dtype.itemsize for s in strides))


class LiteModel:
    """A loaded artifact: call with numpy arrays (one per input), get a list of arrays."""

    def __init__(self, path, check_features: bool = True, model_name: str | None = None):
        import time
        clock = [time.perf_counter()]

        def lap(name):          # load_times: where loading spends its time
            now = time.perf_counter()
            self.load_times[name] = now - clock[0]
            clock[0] = now
        self.path, self.load_times = str(path), {}
        manifest, members = read_members(path, model_prefix(path, model_name))
        lap("read_and_verify_s")
        if check_features:
            check_cpu(manifest, path)
        try:
            self.plan = json.loads(members["plan.json"])
            self.dynamic = self.plan.get("dynamic")    # dims, min, max: one entry per size
            entries = {int(n): e for n, e in self.plan["entries"].items()} \
                if self.dynamic else {None: self.plan["entry"]}
            layouts = [e["layout"] for e in entries.values()]
            weight_order = layouts[0]["weight_order"]
            if any(lay["weight_order"] != weight_order for lay in layouts):
                raise ValueError("entries disagree on the weights")
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ArtifactError(f"{path}: unreadable plan ({err})") from None
        self.manifest, self.graph_text = manifest, bytes(members["graph.ir"]).decode()
        self._load_state(members)
        # a dynamic range wider than its native programs: the exported program (bytes)
        self.exported_program = members.get("exported.ep")
        lap("plan_s")
        self.lib = _load_library(members["model.so"], path)
        self.n_threads = self.lib.ember_init(ctypes.c_int64(cpu_count()))
        self.lib.ember_now.restype = ctypes.c_int64
        lap("dlopen_s")
        # the arena, sized for the largest entry; with Winograd weights to check, it is
        # populated on a thread of its own meanwhile: the kernel's page zeroing runs
        # beside the check's NumPy work (resnet18: 45 MB, ~18 ms of CPU)
        size = max(lay["workspace_offset"] + 4 * lay["workspace_floats"] * self.n_threads
                   for lay in layouts)
        convs = _winograd_convs([self.plan.get("steps")] +
                                [e.get("steps") for e in entries.values()])
        arena: list = []
        populate = threading.Thread(target=lambda: arena.append(anonymous_zeros(size)),
                                    daemon=True) if convs and cpu_count() > 1 else None
        if populate is not None:
            populate.start()
        try:
            # the weights stay where they are in the memory-mapped file (64-byte aligned
            # by packaging), passed to the entry point after the inputs
            self.named_weights = _place_weights(members, weight_order, convs, path)
        finally:
            if populate is not None:
                populate.join()
        self.arena = arena[0] if arena else anonymous_zeros(size)
        self.weights = [self.named_weights[name] for name in weight_order]
        self._programs = {n: _Program(self, e, self.plan.get("steps"))
                          for n, e in entries.items()}
        example = self._programs.get(None) or self._programs.get(self._example_size()) or \
            next(iter(self._programs.values()))
        self.layout, self.result_geometry = example.layout, example.results
        self.fresh = example.fresh
        n_in = len(self.manifest["inputs"])
        self._ins = (ctypes.c_void_p * max(1, n_in + len(self.weights)))()
        for j, w in enumerate(self.weights):
            self._ins[n_in + j] = w.ctypes.data
        self._arena_address = self.arena.ctypes.data
        # (dtype, shape) per input of a static artifact: the common case's quick check
        self._static_inputs = None if self.dynamic else [
            (np.dtype(spec["dtype"]), tuple(spec["shape"])) for spec in self.manifest["inputs"]]
        self._arena_views: dict = {}
        self._last_program = None         # the entry that ran last (_enter)
        lap("arena_and_weights_s")

    def _load_state(self, members: dict) -> None:
        """The in-place updates the model makes (manifest "state"): the buffers it
        updates, owned by this model from their packaged values (a copy: the file's
        mapping is read-only), and which extra results carry the new values."""
        try:
            self.state_entries = list(self.manifest.get("state") or [])
            initial = _safetensors_in_place(members[STATE_MEMBER], self.path, STATE_MEMBER) \
                if STATE_MEMBER in members else {}
            specs = self.manifest["inputs"]
            self.state = {e["name"]: np.array(initial[e["name"]]).reshape(
                specs[e["input"]]["shape"]) for e in self.state_entries
                if e["kind"] == "buffer"}
            self._state_inputs = sorted((e["input"], e["name"]) for e in self.state_entries
                                        if e["kind"] == "buffer")
        except (KeyError, TypeError, ValueError) as err:
            raise ArtifactError(f"{self.path}: unreadable state ({err})") from None

    @property
    def user_inputs(self) -> list:
        """The inputs a caller passes (the updated buffers' inputs are fed by the model)."""
        return self.manifest["inputs"][:len(self.manifest["inputs"]) - len(self.state)]

    def _with_state(self, arrays: list) -> list:
        if not self.state:
            return arrays
        users = self.user_inputs
        if len(arrays) != len(users):
            raise ArtifactError(f"{self.path}: takes {len(users)} input(s) "
                                f"({', '.join(s['name'] for s in users)}), got {len(arrays)}")
        return arrays + [self.state[name] for _, name in self._state_inputs]

    def _write_back(self, arrays: list, results: list) -> list:
        """Each updated buffer's and input's new value into its place; the user's
        results (the extra ones dropped)."""
        if not self.state_entries:
            return results
        for entry in self.state_entries:
            new = results[entry["output"]]
            if entry["kind"] == "buffer":
                np.copyto(self.state[entry["name"]], new)
            else:
                target = arrays[entry["input"]]
                if not target.flags.writeable:
                    name = self.manifest["inputs"][entry["input"]]["name"]
                    raise ArtifactError(f"{self.path}: the model updates input '{name}' in "
                                        "place, but the array passed for it is read-only")
                np.copyto(target, new)
        return results[:len(results) - len(self.state_entries)]

    def _example_size(self) -> int:
        i, d = self.dynamic["dims"][0]
        return self.manifest["inputs"][i]["shape"][d]

    def _entry_function(self, name: str):
        try:
            fn = getattr(self.lib, name)
        except AttributeError:
            raise ArtifactError(f"{self.path}: the shared library has no entry point "
                                f"{name}") from None
        fn.restype = ctypes.c_int32
        fn.argtypes = [ctypes.c_void_p] * 4
        return fn

    @property
    def inputs(self) -> list:
        """The inputs a caller passes (a buffer the model updates is fed from its state)."""
        return self.user_inputs

    @property
    def outputs(self) -> list:
        return self.manifest["outputs"]

    def __call__(self, *arrays) -> list:
        return self.run(arrays)

    def profile(self, *arrays, repeats: int = 5,
                thread_cpu: bool = False) -> list[tuple[str, str, float]]:
        """(step name, kind, median seconds) per plan step over `repeats` calls (the
        entry point stamps the clock after each step). `thread_cpu`: stamp the calling
        thread's CPU time instead of the wall clock (each step's whole work when the
        pool has one thread, EMBER_NUM_THREADS=1; the caller's share otherwise)."""
        steps = self._program_for([np.asarray(a) for a in arrays]).steps
        samples: list[list] = [[] for _ in steps]
        now = self.lib.ember_now
        if thread_cpu:
            if not hasattr(self.lib, "ember_stamp_clock"):
                raise ArtifactError(f"{self.path}: packaged before step stamps could read "
                                    "CPU time; package it again to profile by CPU time")
            self.lib.ember_stamp_clock(ctypes.c_int64(1))
        try:
            for _ in range(repeats):
                stamps = np.full(max(1, len(steps)), -1, np.int64)
                start = now()
                self.run(arrays, stamps)
                prev = start
                for i, t in enumerate(stamps[:len(steps)]):
                    samples[i].append(max(0, int(t) - prev) * 1e-9 if t >= 0 else 0.0)
                    prev = int(t) if t >= 0 else prev
        finally:
            if thread_cpu:
                self.lib.ember_stamp_clock(ctypes.c_int64(0))
        return [(d["name"], d["kind"] + (f" ({d['op']})" if "op" in d else ""),
                 sorted(times)[len(times) // 2]) for d, times in zip(steps, samples)]

    def _enter(self, program: "_Program") -> None:
        """The entries of a dynamic artifact (one per size) share the arena, each with its
        own layout: the region one entry reads as zeros (a conv's taps in the padding, a
        missing bias) may hold another entry's buffers, so it is cleared on switching."""
        if self._last_program is not None:
            lay = program.layout
            start, size = lay.get("zeros_offset", 0), lay.get("zeros_bytes", 0)
            self.arena[start:start + size] = 0
        self._last_program = program

    def _program_for(self, arrays: list) -> "_Program":
        """The entry for these inputs' size of the dynamic dimension (the only one for a
        static artifact); checks the inputs' count, dtypes and shapes."""
        static = self._static_inputs
        if static is not None and len(arrays) == len(static) and all(
                a.dtype == dtype and a.shape == shape for a, (dtype, shape) in
                zip(arrays, static)):
            return self._programs[None]
        specs = self.manifest["inputs"]
        if len(arrays) != len(specs):
            raise ArtifactError(f"{self.path}: takes {len(specs)} input(s) "
                                f"({', '.join(s['name'] for s in specs)}), got {len(arrays)}")
        n, dims = None, []
        if self.dynamic:
            dims = [tuple(x) for x in self.dynamic["dims"]]
            sizes = {arrays[i].shape[d] for i, d in dims if d < arrays[i].ndim}
            n = sizes.pop() if len(sizes) == 1 else None
            upper = self.dynamic["max"]
            in_range = n is not None and (self.dynamic["min"] <= n or (
                n == 1 and self.dynamic.get("size_one"))) and (upper is None or n <= upper)
            if not in_range:
                where = ", ".join(f"dim {d} of '{specs[i]['name']}'" for i, d in dims)
                got = sorted({arrays[i].shape[d] for i, d in dims if d < arrays[i].ndim})
                raise ArtifactError(
                    f"{self.path}: the dynamic dimension s0 ({where}) takes one size in "
                    f"[{self.dynamic['min']}, {'inf' if upper is None else upper}], "
                    f"got {got}")
        for i, (spec, a) in enumerate(zip(specs, arrays)):
            shape = [n if (i, d) in dims else s for d, s in enumerate(spec["shape"])]
            if a.dtype != np.dtype(spec["dtype"]) or list(a.shape) != shape:
                want = ", ".join("s0" if (i, d) in dims else str(s)
                                 for d, s in enumerate(spec["shape"]))
                raise ArtifactError(f"input '{spec['name']}' must be {spec['dtype']}"
                                    f"[{want}], got {a.dtype}{list(a.shape)}")
        if n not in self._programs:
            raise NoNativeProgram(
                f"{self.path}: s0 = {n} has no native program in this artifact (native "
                f"sizes: {sorted(self._programs)}); ember.aot.load_package runs the other "
                "sizes of the range through ember.compile")
        return self._programs[n]

    def run(self, arrays, times: np.ndarray | None = None) -> list:
        """The outputs for `arrays` (numpy, one per input); `times` (int64, one per
        plan step) receives the clock after each step."""
        arrays = self._with_state([np.asarray(a) for a in arrays])
        program = self._program_for(arrays)
        if program is not self._last_program:
            self._enter(program)
        keep = []
        for i, a in enumerate(arrays):
            a = np.ascontiguousarray(a)
            keep.append(a)
            self._ins[i] = address(a)
        spares = program.spares
        fresh = [spares.get(i, lambda n=f["nbytes"]: aligned_empty(n, np.uint8))
                 for i, f in enumerate(program.fresh)]
        outs = program.outs
        for i, buf in enumerate(fresh):
            outs[i] = address(buf)
        stamps = None if times is None else times.ctypes.data
        if program.host:
            status = self._run_segments(program, keep, fresh, stamps, times)
        else:       # the whole plan: one foreign call
            status = program.segments[0](self._arena_address, self._ins, outs, stamps)
        if status:
            raise step_error(program.steps[status - 1], self._arena_address)
        return self._write_back(arrays, [self._result(g, keep, fresh, program, j)
                                         for j, g in enumerate(program.results)])

    def _run_segments(self, program: "_Program", inputs: list, fresh: list, stamps,
                      times) -> int:
        """Native segment j, then host step j in Python on views of its operands where
        they live (arena, inputs, weights, result buffers), its results copied into
        their buffers, then segment j + 1 ..."""
        for j, segment in enumerate(program.segments):
            status = segment(self._arena_address, self._ins, program.outs, stamps)
            if status or j == len(program.host):
                return status
            host = program.host[j]
            host([self._operand(g, inputs, fresh) for g in host.inputs],
                 [self._operand(g, inputs, fresh) for g in host.outputs])
            if times is not None:
                times[host.step] = self.lib.ember_now()
        return 0

    def _operand(self, g: dict, inputs: list, fresh: list) -> np.ndarray:
        """A view (no copy) of the value `g` describes where it lives."""
        base = g["base"]
        if base == "arena":        # fixed place: the view is made once
            view = self._arena_views.get(id(g))
            if view is None:
                view = self._arena_views[id(g)] = _strided(
                    self.arena, g["offset"], g["shape"], g["strides"], g["dtype"])
            return view
        kind, index = base
        if kind == "in":
            source = inputs[index] if index < len(inputs) else \
                self.weights[index - len(inputs)]
            return _strided(source.reshape(-1).view(np.uint8), g["offset"], g["shape"],
                            g["strides"], g["dtype"])
        return _strided(fresh[index], g["offset"], g["shape"], g["strides"], g["dtype"])

    def _result(self, g: dict, inputs: list, fresh: list, program=None,
                j: int = 0) -> np.ndarray:
        base = g["base"]
        if base == "arena":        # reused by the next call: a copy of a view made once
            view = self._arena_views.get(id(g))
            if view is None:
                view = self._arena_views[id(g)] = _strided(
                    self.arena, g["offset"], g["shape"], g["strides"], g["dtype"])
            return program.arena_copies.copy(j, view) if program is not None else view.copy()
        kind, index = base
        if kind == "out" and all(g["shape"]):       # the caller's own buffer: a view
            return np.ndarray(g["shape"], g["dtype"], buffer=fresh[index], offset=g["offset"],
                              strides=[s * np.dtype(g["dtype"]).itemsize
                                       for s in g["strides"]])
        if kind == "in":           # an input or a weight: a copy
            source = inputs[index] if index < len(inputs) else \
                self.weights[index - len(inputs)]
            return np.array(_strided(source.reshape(-1).view(np.uint8), g["offset"],
                                     g["shape"], g["strides"], g["dtype"]))
        return _strided(fresh[index], g["offset"], g["shape"], g["strides"], g["dtype"])


class _Program:
    """One entry of an artifact (the only one, or one per size of a dynamic dimension):
    its native segments, host steps, result buffers and where results live."""

    def __init__(self, model: "LiteModel", entry: dict, steps: list | None):
        try:
            self.steps = entry.get("steps", steps)
            self.layout, self.results, self.fresh = entry["layout"], entry["outputs"], \
                entry["fresh"]
            names = entry.get("segments") or [entry.get("symbol", "ember_run")]
            host = entry.get("host_steps", entry.get("custom_steps", []))   # or v2 before int8
            kinds = [self.steps[h["step"]]["kind"] for h in host]
        except (KeyError, TypeError, AttributeError, IndexError) as err:
            raise ArtifactError(f"{model.path}: unreadable plan ({err})") from None
        self.segments = [model._entry_function(name) for name in names]
        self.host = [_host_call(model, h, kind, self.steps) for h, kind in zip(host, kinds)]
        if len(self.host) != len(self.segments) - 1:
            raise ArtifactError(f"{model.path}: unreadable plan ({len(self.segments)} native "
                                f"segments around {len(self.host)} host steps)")
        self.outs = (ctypes.c_void_p * max(1, len(self.fresh)))()
        self.spares = Spares(len(self.fresh))                 # result buffers
        self.arena_copies = Spares(len(self.results))         # results copied out of the arena


def _host_call(model: "LiteModel", host: dict, kind: str, steps: list):
    """The callable running one host step: (operand views, result buffers) -> None."""
    if kind == "custom_op":
        return CustomOpCall(host, steps, model.path)
    int8 = _lite_int8()
    if kind in int8.QUANTIZED_STEPS:
        try:
            return QuantizedCall(host, steps[host["step"]], model, int8)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ArtifactError(f"{model.path}: unreadable plan (int8 step "
                                f"{steps[host['step']].get('name')!r}: {err!r})") from None
    raise ArtifactError(f"{model.path}: plan step {steps[host['step']].get('name')!r} has "
                        f"unknown host step kind {kind!r}")


_INT8: list = []


def _lite_int8():
    """runtime/lite_int8.py, this file's sibling: a relative import inside the ember
    package, else loaded by path (this file running on its own; lite_int8 then falls
    back to numpy, ctypes and the standard library as this file does)."""
    if _INT8:
        return _INT8[0]
    if __package__:
        from . import lite_int8 as module
    else:
        import importlib.util
        where = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lite_int8.py")
        spec = importlib.util.spec_from_file_location("ember_lite_int8", where)
        if spec is None or not os.path.exists(where):
            raise ArtifactError(f"the artifact has int8 steps and {where} (the int8 host "
                                "code that comes with this runtime) is missing")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.ArtifactError = ArtifactError
    _INT8.append(module)
    return module


class QuantizedCall:
    """An int8 step of a converted model (compiler/aot_quantized.py's description) run by
    lite_int8's step class: the GEMM and quantized add call their kernels in the
    artifact's library, the GEMM's weights packed at packaging (the `pq<step>` arrays of
    the weights member); its result is copied into its planned buffer."""

    def __init__(self, host: dict, desc: dict, model: "LiteModel", int8):
        self.step, self.name, self.kind = host["step"], desc["name"], desc["kind"]
        self.inputs, self.outputs = host["inputs"], host["outputs"]
        pool = int8.host_pool
        if self.kind in ("qgemm", "qgemm_dynamic"):
            packed = {k: v for k, v in model.named_weights.items()
                      if k.split(".")[0] == desc["packed"]}
            cls = int8.QGemmStep if self.kind == "qgemm" else int8.QGemmDynamicStep
            self.fn = cls(desc, model.lib, packed, pool)
        elif self.kind == "qadd":
            self.fn = int8.QAddStep(desc, model.lib, pool)
        elif self.kind in ("quantize", "qmaxpool") and "symbol" in desc:
            # the native kernel eager mode runs (artifacts packaged before: NumPy)
            cls = int8.QuantizeStep if self.kind == "quantize" else int8.QMaxPoolStep
            self.fn = cls(desc, model.lib, pool)
        else:
            self.fn = {"quantize": int8.QuantizeStep, "dequantize": int8.DequantizeStep,
                       "qmaxpool": int8.QMaxPoolStep, "qavgpool": int8.QAvgPoolStep,
                       "qreshape": int8.QReshapeStep, "qclamp": int8.QClampStep,
                       "qcat": int8.QCatStep, "qlut": int8.QLutStep,
                       "qmean": int8.QMeanStep}[self.kind](desc)

    def __call__(self, operands: list, outs: list) -> None:
        result = self.fn(*operands)
        (out,) = outs
        if not isinstance(result, np.ndarray) or result.shape != out.shape or \
                result.dtype != out.dtype:
            got = f"{result.dtype}{list(result.shape)}" if isinstance(result, np.ndarray) \
                else type(result).__name__
            raise RuntimeError(f"int8 step {self.name} ({self.kind}) produced {got}; the "
                               f"plan has {out.dtype}{list(out.shape)}")
        np.copyto(out, result)


class CustomOpCall:
    """A custom op (ember.library.custom_op) the plan calls by name between two native
    segments. Its code is the user's Python, so the loading process must have
    registered it (by importing the module that defines it, which imports ember); the
    registry is looked up only for artifacts that have such steps, and only if ember is
    already imported (this file never imports it)."""

    def __init__(self, custom: dict, steps: list, path):
        self.step = custom["step"]
        desc = steps[self.step]
        self.name, self.op_name, self.args = desc["name"], desc["op"], desc["args"]
        self.inputs, self.outputs = custom["inputs"], custom["outputs"]
        self.returns_tuple = bool(custom.get("tuple"))
        self.op = _registered_op(self.op_name)
        if self.op is None:
            raise ArtifactError(
                f"{path}: step {self.name} calls custom op '{self.op_name}', which is not "
                "registered in this process. Custom ops are saved by name only: import the "
                "module that defines it (with ember.library.custom_op) before loading.")

    def __call__(self, operands: list, outs: list) -> None:
        def decode(v):
            if isinstance(v, dict):
                return operands[v["input"]]
            return [decode(x) for x in v] if isinstance(v, list) else v
        result = self.op.reference(*[decode(v) for v in self.args])
        results = tuple(result) if self.returns_tuple and isinstance(result, (tuple, list)) \
            else (result,)
        if len(results) != len(outs) or not all(
                isinstance(r, np.ndarray) and r.shape == o.shape and r.dtype == o.dtype
                for r, o in zip(results, outs)):
            got = [f"{r.dtype}{list(r.shape)}" if isinstance(r, np.ndarray)
                   else type(r).__name__ for r in results]
            want = [f"{o.dtype}{list(o.shape)}" for o in outs]
            raise RuntimeError(f"custom op {self.op_name} (step {self.name}) returned {got}; "
                               f"its fake function said {want}")
        for r, o in zip(results, outs):
            np.copyto(o, r)


def _registered_op(name: str):
    """The op `name` in ember's registry, or None (also when ember is not imported: then
    nothing can have registered it)."""
    package = (__package__ or "").rpartition(".")[0] or "ember"
    registry = sys.modules.get(f"{package}.ir.registry")
    op = None if registry is None else registry.OPS.get(name)
    return op if getattr(op, "reference", None) is not None else None


_ST_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
              "BOOL": np.bool_, "C64": np.complex64}


def _safetensors_in_place(data, path, member: str = "weights.safetensors") -> dict:
    """{name: numpy view of its bytes (no copy), in its shape} of safetensors bytes; one
    not 64-byte aligned (a file rewritten by another tool) is copied."""
    if not len(data):
        return {}
    try:
        size = int.from_bytes(bytes(data[:8]), "little")
        header = json.loads(bytes(data[8:8 + size]))
        body = np.frombuffer(data, np.uint8, offset=8 + size)
        out = {}
        for name, info in header.items():
            if name == "__metadata__" or name.startswith("_pad"):
                continue
            begin, end = info["data_offsets"]
            dtype = np.dtype(_ST_DTYPES[info["dtype"]])
            if not (0 <= begin <= end <= body.size) or (end - begin) % dtype.itemsize:
                raise ValueError(f"tensor {name} is out of bounds")
            flat = body[begin:end].view(dtype)
            if flat.ctypes.data % ALIGN:
                flat = aligned_copy(flat)
            out[name] = flat.reshape(info["shape"])
        return out
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ArtifactError(f"{path}: unreadable {member} ({err})") from None


def _winograd_convs(step_tables: list) -> dict:
    """{"u<step>": its conv step} of the conv steps that run by Winograd."""
    convs = {}
    for steps in step_tables:
        for desc in steps or ():
            if isinstance(desc, dict) and desc.get("kind") == "conv" and "wino_packed" in desc:
                convs[desc["wino_packed"]] = desc
    return convs


def _place_weights(members: dict, names: list, convs: dict, path) -> dict:
    """{name: array} of the plan's weights: the weights member's where they are in the
    memory map; the Winograd-transformed weights ("u<step>") where they are in the
    Winograd member, each checked bit for bit against the transform of its conv's
    direct-conv panels ("p<step>", covered by the weights member's SHA-256), or derived
    here when the artifact does not store them. Raises ArtifactError before anything
    runs when a stored one differs (a corrupt member)."""
    stored = _safetensors_in_place(members["weights.safetensors"], path)
    transformed = _safetensors_in_place(members[WINOGRAD_MEMBER], path, WINOGRAD_MEMBER) \
        if WINOGRAD_MEMBER in members else {}
    placed, wino = {}, []
    for name in names:
        if name in stored:
            placed[name] = stored[name]
            continue
        desc = convs.get(name)
        packed = stored.get(desc.get("packed")) if desc is not None else None
        if packed is None or packed.dtype != np.float32 or packed.ndim != 3:
            raise ArtifactError(f"{path}: the weights have no tensor {name}")
        wino.append((name, desc, packed, transformed.get(name)))
    if wino:
        placed.update(_winograd_weights(wino, path))
    return placed


WINOGRAD_JOB_FLOATS = 1 << 20        # U floats per job of the threads below


def _winograd_weights(convs: list, path) -> dict:
    """{u name: array} for (name, conv step, direct panels, stored U or None): stored
    ones compared with the transform, missing ones computed, in jobs of panels over
    cpu_count() threads (NumPy releases the GIL)."""
    ww = _lite_sibling("winograd_weights", "Winograd weight transform")
    out, jobs = {}, []
    for name, desc, packed, u in convs:
        try:
            nr, c_out = int(desc["wino_nr"]), int(desc["c_out"])
            packed = ww.as_width(packed, c_out, nr)
        except (KeyError, TypeError, ValueError) as err:
            raise ArtifactError(f"{path}: unreadable plan (conv step {desc.get('name')!r}: "
                                f"{err!r})") from None
        panels, k, _ = packed.shape
        compare = u is not None
        if not compare:
            u = aligned_empty(ww.PATCH * ww.PATCH * panels * k // 9 * nr, np.float32) \
                .reshape(ww.PATCH * ww.PATCH * panels, k // 9, nr)
        out[name] = u
        per = max(1, WINOGRAD_JOB_FLOATS // max(1, 36 * k // 9 * nr))
        jobs += [(name, packed, u, p, min(p + per, panels), compare)
                 for p in range(0, panels, per)]

    def run(job):
        name, packed, u, begin, end, compare = job
        return ww.transform_panels(packed, u, begin, end, compare)
    ok = parallel_map(run, jobs, min(cpu_count(), 8))
    for (name, _, _, _, _, compare), good in zip(jobs, ok):
        if not good and compare:
            raise ArtifactError(f"{path}: member {WINOGRAD_MEMBER}: {name} is not the "
                                "Winograd transform of its conv's weights (corrupt)")
        if not good:
            raise ArtifactError(f"{path}: the weights of {name}'s conv are not finite, "
                                "so it has no Winograd form (corrupt plan)")
    return out


def aligned_copy(a: np.ndarray) -> np.ndarray:
    out = aligned_empty(a.size, a.dtype)
    out[...] = a
    return out


def _load_library(data: bytes, path):
    """The shared library, written to a private temporary file for the loader."""
    fd, name = tempfile.mkstemp(prefix="ember-", suffix=".so")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return ctypes.CDLL(name, mode=ctypes.RTLD_LOCAL)
    except OSError as err:
        raise ArtifactError(f"{path}: the shared library does not load ({err})") from None
    finally:
        os.unlink(name)        # the mapping stays valid; nothing is left on disk


def target_kind(manifest: dict) -> str:
    target = manifest.get("target") if isinstance(manifest, dict) else None
    return target.get("kind", "cpu") if isinstance(target, dict) else "cpu"


def load_package(path, check_features: bool = True, model_name: str | None = None) -> LiteModel:
    """Load an artifact written by ember.aot.compile_and_package (see module doc); a
    target="cuda" artifact loads through runtime/lite_cuda.py (CudaLiteModel).
    `model_name`: which model of a package holding several (AOTInductor's model_name)."""
    if _peek_target(path, model_name) == "cuda":
        manifest, members = read_members(path, model_prefix(path, model_name))
        return _lite_sibling("lite_cuda", "CUDA runtime").CudaLiteModel(path, manifest, members)
    return LiteModel(path, check_features, model_name)


PACKAGE_INDEX = "package.json"     # a package of several models: {"models": [names]}


def package_models(path) -> list | None:
    """The model names of a package holding several, None for a one-model artifact."""
    try:
        with zipfile.ZipFile(path) as z:
            if PACKAGE_INDEX not in z.namelist():
                return None
            models = json.loads(z.read(PACKAGE_INDEX))["models"]
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError):
        return None
    return list(models) if isinstance(models, list) else None


def model_prefix(path, model_name: str | None) -> str:
    """Where `model_name`'s members sit in the file ("" for a one-model artifact)."""
    models = package_models(path)
    if models is None:
        if model_name not in (None, "model"):
            raise ArtifactError(f"{path}: holds one model; model_name={model_name!r} names "
                                "none (leave it out)")
        return ""
    if model_name is None and len(models) == 1:
        model_name = models[0]
    if model_name not in models:
        raise ArtifactError(f"{path}: holds the models {', '.join(models)}; pass "
                            f"model_name= one of them (got {model_name!r})")
    return f"{model_name}/"


def _peek_target(path, model_name: str | None = None) -> str:
    """The manifest's target kind, or "cpu" when it cannot be read (LiteModel then says
    what is wrong)."""
    try:
        prefix = model_prefix(path, model_name)
        with zipfile.ZipFile(path) as z:
            return target_kind(json.loads(z.read(prefix + "manifest.json")))
    except Exception:   # noqa: BLE001 - reported by the full check
        return "cpu"


def _lite_sibling(name: str, what: str):
    """runtime/<name>.py, this file's sibling, as _lite_int8 loads lite_int8."""
    if __package__:
        import importlib
        return importlib.import_module(f".{name}", __package__)
    import importlib.util
    where = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    if not os.path.exists(where):
        raise ArtifactError(f"{where} (the {what} that comes with this runtime) is missing")
    module = sys.modules.get(f"ember_{name}")
    if module is None:
        spec = importlib.util.spec_from_file_location(f"ember_{name}", where)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.ArtifactError = ArtifactError
        sys.modules[f"ember_{name}"] = module
    return module


def _main(argv) -> int:
    """python lite.py model.ember --input name=file.npy ... -o out.npz"""
    import argparse
    parser = argparse.ArgumentParser(prog="lite.py", description=_main.__doc__)
    parser.add_argument("artifact")
    parser.add_argument("--input", action="append", default=[])
    parser.add_argument("-o", "--output", required=True)
    ns = parser.parse_args(argv)
    try:
        model = load_package(ns.artifact)
        given = dict(item.split("=", 1) for item in ns.input)
        arrays = [np.load(given[spec["name"]]) for spec in model.inputs]
        outs = model(*arrays)
    except (ArtifactError, KeyError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    np.savez(ns.output, **{spec["name"]: o for spec, o in zip(model.outputs, outs)})
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
