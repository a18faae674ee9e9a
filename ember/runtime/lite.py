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
SHA-256, the format version is this runtime's, and this CPU has the features the
machine code was compiled for. docs/aot.md describes the members.

Running follows the plan table (plan.json) step by step:
- "kernel": a generated kernel, `fn(begin, end, worker, buffers)`, split over the
  outer loop across threads like the in-process plan;
- "gemm" / "bgemm" / "conv": the GEMM (2-D, and batched matmul) and implicit-GEMM
  conv entry points, driven with the same blocking, packing and thread split as
  codegen/extern.py, llvm/gemm.py and llvm/implicit_conv.py drive them in-process
  (so results are equal bit for bit). These drivers repeat codegen's Python side
  (which imports llvmlite): keep the two in step, or better, move codegen's drivers
  here and let codegen supply only the machine code;
- "view": a strided view of another value (shape, strides, element offset);
- "embedding": rows of a weight picked by an index tensor (np.take);
- "quantize", "dequantize", "qgemm", "qgemm_dynamic", "qadd", "qmaxpool", "qavgpool",
  "qreshape": a
  converted int8 graph (compiler/aot_quantized.py): integer arrays, each step's
  description carrying its operands' qparams; qgemm and qadd call the int8 kernels,
  driven by the functions below that eager mode uses too (codegen/quantized.py).
Buffers sit at the memory plan's offsets in one arena allocated at load; results
the caller keeps are fresh arrays each call.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import queue
import sys
import tempfile
import threading
import zipfile

import numpy as np

FORMAT_VERSION = 1
FORMAT_NAME = "ember-artifact"
MEMBERS = ("manifest.json", "graph.ir", "weights.safetensors", "memory_plan.json",
           "plan.json", "model.so")
ALIGN = 64

try:                       # inside the ember package: ember's own error class
    from ..ir.errors import ArtifactError
except ImportError:        # loaded on its own (no package): the same name, standalone
    class ArtifactError(Exception):
        """A corrupt, incomplete or mismatched artifact (refused before anything runs)."""


# --- reading and checking an artifact --------------------------------------------------------
def read_members(path) -> tuple[dict, dict]:
    """(manifest, {member: bytes}) with every check done; raises ArtifactError."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "manifest.json" not in names:
                raise ArtifactError(f"{path}: missing member manifest.json")
            manifest = json.loads(z.read("manifest.json"))
            check_format(manifest, path)
            members = {}
            for name in manifest["members"]:
                if name not in names:
                    raise ArtifactError(f"{path}: missing member {name}")
                members[name] = z.read(name)
    except ArtifactError:
        raise
    except Exception as err:    # noqa: BLE001
        # a damaged zip surfaces as almost anything zipfile, zlib or json raise
        # (BadZipFile for a CRC mismatch, zlib.error, EOFError, ValueError, ...)
        raise ArtifactError(f"{path}: not a readable ember artifact "
                            f"({type(err).__name__}: {err})") from None
    for name, digest in manifest["members"].items():
        if hashlib.sha256(members[name]).hexdigest() != digest:
            raise ArtifactError(f"{path}: member {name} fails its SHA-256 check (corrupt)")
    for name in MEMBERS:
        if name not in members and name != "manifest.json":
            raise ArtifactError(f"{path}: missing member {name}")
    return manifest, members


def check_format(manifest, path) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ArtifactError(f"{path}: not an ember artifact (manifest format "
                            f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format version {manifest.get('format_version')!r}; "
                            f"this runtime reads version {FORMAT_VERSION}")
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
        raise ArtifactError(f"{path}: compiled for CPU features {sorted(need)}; this CPU "
                            f"lacks {missing}")


def read_safetensors(data: bytes) -> dict:
    """name -> numpy array (copies, aligned) from safetensors bytes."""
    if not data:
        return {}
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    body = memoryview(data)[8 + size:]
    dtypes = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
              "BOOL": np.bool_, "C64": np.complex64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        flat = np.frombuffer(body[begin:end], dtypes[info["dtype"]])
        out[name] = aligned_copy(flat.reshape(info["shape"]))
    return out


def aligned_copy(a: np.ndarray) -> np.ndarray:
    out = aligned_empty(a.size, a.dtype).reshape(a.shape)
    out[...] = a
    return out


def aligned_empty(count: int, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    raw = np.empty(max(count, 1) * dtype.itemsize + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + count * dtype.itemsize].view(dtype)


# --- threads -----------------------------------------------------------------------------------
def cpu_count() -> int:
    forced = os.environ.get("EMBER_NUM_THREADS")
    if forced:
        return max(1, int(forced))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def split_range(n: int, parts: int, align: int = 1) -> list:
    """runtime/threads.py's split: at most `parts` chunks starting on multiples of align."""
    blocks = -(-n // align)
    parts = max(1, min(parts, blocks))
    bounds = [min(n, (blocks * i // parts) * align) for i in range(parts + 1)]
    return [(b, e) for b, e in zip(bounds, bounds[1:]) if e > b]


class Pool:
    """Worker threads running native chunks (a ctypes call releases the GIL)."""

    def __init__(self, n_threads: int):
        self.n_threads = n_threads
        self._queues = [queue.SimpleQueue() for _ in range(n_threads - 1)]
        for q in self._queues:
            threading.Thread(target=self._work, args=(q,), daemon=True).start()

    @staticmethod
    def _work(q) -> None:
        while True:
            fn, args, done, errors = q.get()
            try:
                fn(*args)
            except BaseException as e:    # re-raised by the caller
                errors.append(e)
            done.set()

    def parallel_for(self, fn, n: int, *args, align: int = 1, max_threads=None) -> None:
        threads = min(self.n_threads, max_threads or self.n_threads)
        chunks = split_range(n, threads, align)
        if n <= 0:
            return
        waits, errors = [], []
        for q, (b, e) in zip(self._queues, chunks[1:]):
            done = threading.Event()
            q.put((fn, (b, e, len(waits) + 1, *args), done, errors))
            waits.append(done)
        b, e = chunks[0]
        fn(b, e, 0, *args)
        for done in waits:
            done.wait()
        if errors:
            raise errors[0]


_POOL = None


def default_pool() -> Pool:
    global _POOL
    if _POOL is None:
        _POOL = Pool(cpu_count())
    return _POOL


# --- the steps ---------------------------------------------------------------------------------
I64, PTR, I32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int32
KERNEL_TYPE = ctypes.CFUNCTYPE(None, I64, I64, I64, PTR)
GEMM_TYPE = ctypes.CFUNCTYPE(None, *[I64] * 6, PTR, I64, I64, PTR, I64, I64, PTR, I64, I32,
                             PTR, I64, PTR)
CONV_POINTERS, CONV_DIMS = 6, 28
CONV_TYPE = ctypes.CFUNCTYPE(None, *[I64] * 3, *[PTR] * CONV_POINTERS, *[I64] * CONV_DIMS)
PAD_TYPE = ctypes.CFUNCTYPE(None, *[I64] * 3, PTR, PTR, *[I64] * 12)


def _address(lib, symbol: str) -> int:
    """The address of `symbol` in the artifact's library (for a typed CFUNCTYPE)."""
    try:
        return ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
    except AttributeError:
        raise ArtifactError(f"the artifact's library has no symbol {symbol!r}") from None


def _strided(base: np.ndarray, offset: int, shape, strides) -> np.ndarray:
    """A view of `base`'s memory starting `offset` elements past its start."""
    class _Holder:
        pass
    holder = _Holder()
    holder.__array_interface__ = {
        "shape": tuple(shape), "typestr": base.dtype.str, "version": 3,
        "data": (base.ctypes.data + offset * base.itemsize, False),
        "strides": tuple(s * base.itemsize for s in strides)}
    holder.base_ref = base
    return np.asarray(holder)


class KernelStep:
    def __init__(self, desc, lib):
        self.fn = KERNEL_TYPE(_address(lib, desc["symbol"]))
        self.extent, self.align = desc["split_extent"], desc["split_align"]
        self.parallel = desc["parallel"]

    def __call__(self, arrays, pool) -> None:
        ptrs = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        if not self.parallel:
            self.fn(0, self.extent, 0, ctypes.addressof(ptrs))
        else:
            pool.parallel_for(self.fn, self.extent, ctypes.addressof(ptrs), align=self.align)


def panels_of(b: np.ndarray, nr: int) -> np.ndarray:
    """(K, N) -> (ceil(N/nr), K, nr) zero-padded panels (the GEMM's packed B layout)."""
    k, n = b.shape
    count = -(-n // nr)
    panels = aligned_empty(count * k * nr, np.float32).reshape(count, k, nr)
    panels[...] = 0
    for j in range(count):
        cols = b[:, j * nr:(j + 1) * nr]
        panels[j, :, :cols.shape[1]] = cols
    return panels


class GemmStep:
    """out = x @ w (+ bias): linear (w given (N, K)) and 2-D matmul/mm."""

    def __init__(self, desc, lib, constants: dict, packed: dict):
        self.desc = desc
        self.rows = GEMM_TYPE(_address(lib, desc["rows"]))
        self.cols = GEMM_TYPE(_address(lib, desc["cols"]))
        self.mr, self.nr, self.ws_floats = desc["mr"], desc["nr"], desc["workspace_floats"]
        self.transpose_b, self.has_bias = desc["transpose_b"], desc["has_bias"]
        b = constants.get(desc["b_slot"])
        self.packed = packed.get(desc.get("packed"))
        if self.packed is None and b is not None and desc["prepack"]:
            self.packed = panels_of(b.T if self.transpose_b else b, self.nr)
        self.ws = None

    def __call__(self, arrays, pool) -> None:
        x, w, *rest = arrays
        out = rest[-1]
        b = None if self.packed is not None else w.T if self.transpose_b else w
        a2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        if not np.shares_memory(a2, x) and x.size:
            a2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
        out2 = out.reshape(-1, out.shape[-1])
        if self.has_bias:
            out2[...] = rest[0]
        m, k = a2.shape
        n = out2.shape[1]
        if k == 0 or m * n == 0:
            if not self.has_bias:
                out2[...] = 0.0
            return
        if self.ws is None or self.ws.size < self.ws_floats * pool.n_threads:
            self.ws = aligned_empty(self.ws_floats * pool.n_threads, np.float32)
        packed = self.packed.ctypes.data if self.packed is not None else None
        bb = self.packed[0] if self.packed is not None else b
        by_rows = m >= self.mr * pool.n_threads or m >= n
        entry, extent, align = (self.rows, m, self.mr) if by_rows else (self.cols, n, self.nr)
        pool.parallel_for(entry, extent, m, n, k, a2.ctypes.data, a2.strides[0] // 4,
                          a2.strides[1] // 4, bb.ctypes.data, bb.strides[0] // 4,
                          bb.strides[1] // 4, out2.ctypes.data, out2.strides[0] // 4,
                          int(self.has_bias), self.ws.ctypes.data, self.ws_floats, packed,
                          align=align)


BATCH_TYPE = ctypes.CFUNCTYPE(None, *[I64] * 6, PTR, I64, I64, PTR, I64, I64, PTR, I64, I32,
                              PTR, I64, PTR, I64, I64, I64)


class BatchedGemmStep:
    """matmul with batch dims: whole products per matrix, split over the batch when the
    matrices are small and many (codegen/extern.py's _batched_gemm and gemm_batched)."""

    def __init__(self, desc, lib):
        self.rows = GEMM_TYPE(_address(lib, desc["rows"]))
        self.cols = GEMM_TYPE(_address(lib, desc["cols"]))
        self.batch = BATCH_TYPE(_address(lib, desc["batch"]))
        self.mr, self.nr, self.ws_floats = desc["mr"], desc["nr"], desc["workspace_floats"]
        self.ws = None

    def workspace(self, pool) -> np.ndarray:
        if self.ws is None or self.ws.size < self.ws_floats * pool.n_threads:
            self.ws = aligned_empty(self.ws_floats * pool.n_threads, np.float32)
        return self.ws

    def __call__(self, arrays, pool) -> None:
        x, w, out = arrays
        if w.ndim == 2:
            rows = out.reshape(-1, out.shape[-1]) if out.ndim != 2 else out
            if np.shares_memory(rows, out) or not out.size:
                self.gemm(np.ascontiguousarray(x).reshape(-1, x.shape[-1]), w, rows, pool)
                return
        batch = out.shape[:-2]
        xb = np.broadcast_to(x, batch + x.shape[-2:]).reshape(-1, *x.shape[-2:])
        wb = np.broadcast_to(w, batch + w.shape[-2:]).reshape(-1, *w.shape[-2:])
        ob = out.reshape(-1, *out.shape[-2:])
        if not np.shares_memory(ob, out) and out.size:
            for index in np.ndindex(*batch):
                self.gemm(np.broadcast_to(x, batch + x.shape[-2:])[index],
                          np.broadcast_to(w, batch + w.shape[-2:])[index], out[index], pool)
            return
        self.batched(xb, wb, ob, pool)

    def batched(self, a, b, out, pool) -> None:
        count = out.shape[0]
        m, k = a.shape[1:] if count else (0, 0)
        n = b.shape[2] if count else 0
        small = m * n * k <= 256 ** 3 and count >= pool.n_threads
        if not small or k == 0 or out.strides[2] != 4 or np.may_share_memory(out, a) \
                or np.may_share_memory(out, b):
            for i in range(count):
                self.gemm(a[i], b[i], out[i], pool)
            return
        ws = self.workspace(pool)
        pool.parallel_for(self.batch, count, m, n, k, a.ctypes.data, a.strides[1] // 4,
                          a.strides[2] // 4, b.ctypes.data, b.strides[1] // 4,
                          b.strides[2] // 4, out.ctypes.data, out.strides[1] // 4, 0,
                          ws.ctypes.data, self.ws_floats, None,
                          *(z.strides[0] // 4 for z in (a, b, out)))

    def gemm(self, a, b, out, pool) -> None:
        """out = a @ b for 2-D float32 arrays (gemm.gemm's path for unpacked operands)."""
        m, k = a.shape
        n = b.shape[1]
        if out.strides[1] != 4 or out.strides[0] % 4 or np.may_share_memory(out, a) or \
                np.may_share_memory(out, b):
            tmp = np.empty((m, n), np.float32)
            self.gemm(a, b, tmp, pool)
            out[...] = tmp
            return
        if k == 0 or m * n == 0:
            out[...] = 0.0
            return
        a = a if all(s % 4 == 0 for s in a.strides) else np.ascontiguousarray(a)
        b = b if all(s % 4 == 0 for s in b.strides) else np.ascontiguousarray(b)
        ws = self.workspace(pool)
        by_rows = m >= self.mr * pool.n_threads or m >= n
        entry, extent, align = (self.rows, m, self.mr) if by_rows else (self.cols, n, self.nr)
        pool.parallel_for(entry, extent, m, n, k, a.ctypes.data, a.strides[0] // 4,
                          a.strides[1] // 4, b.ctypes.data, b.strides[0] // 4,
                          b.strides[1] // 4, out.ctypes.data, out.strides[0] // 4, 0,
                          ws.ctypes.data, self.ws_floats, None, align=align)


def pack_conv_weights(w: np.ndarray, nr: int) -> np.ndarray:
    """(C_out, C, kH, kW) -> NR-wide panels over k = (kh, kw, c) (implicit_conv's layout)."""
    c_out = w.shape[0]
    return panels_of(w.transpose(2, 3, 1, 0).reshape(-1, c_out), nr)


class ConvStep:
    """groups=1 float32 conv2d with its epilogue (bias, residual, relu)."""

    def __init__(self, desc, lib, constants: dict, packed: dict):
        self.d = desc
        self.rows = CONV_TYPE(_address(lib, desc["rows"]))
        self.pad = PAD_TYPE(_address(lib, desc["pad"]))
        self.mr, self.nr = desc["mr"], desc["nr"]
        w = constants.get(desc["w_slot"])
        self.wp = packed.get(desc.get("packed"))
        if self.wp is None and w is not None:
            self.wp = pack_conv_weights(w, self.nr)
        bias = constants.get(desc["bias_slot"]) if desc["has_bias"] else None
        self.bias = np.ascontiguousarray(bias, np.float32) if bias is not None else None
        self.zeros = np.zeros(desc["max_kc"], np.float32)
        self.scratch = None

    def __call__(self, arrays, pool) -> None:
        d = self.d
        x, w, *rest = arrays
        out = rest[-1]
        residual = rest[-2] if d["residual"] else None
        wp = self.wp if self.wp is not None else pack_conv_weights(w, self.nr)
        bias = self.bias if self.bias is not None else (
            np.ascontiguousarray(rest[0], np.float32) if d["has_bias"] else
            np.zeros(d["c_out"], np.float32))
        if residual is not None and (residual.strides != out.strides or
                                     np.may_share_memory(residual, out)):
            residual = _like(out, residual)
        n, c, h, w_ = x.shape
        (kh, kw), (sh, sw), (dh, dw) = d["kernel"], d["stride"], d["dilation"]
        (top, bottom), (left, right) = d["padding"]
        oh, ow = out.shape[2:]
        if c == 0 or out.size == 0:
            out[...] = bias[:, None, None] + (0 if residual is None else residual)
            if d["relu"]:
                np.maximum(out, 0, out=out, where=~np.isnan(out))
            return
        ph, pw = top, left
        xs = [s // 4 for s in x.strides] if all(s % 4 == 0 for s in x.strides) else None
        padded = any((top, bottom, left, right))
        direct = xs is not None and xs[1] == 1 and (c >= d["small_channels"] or not padded)
        if not direct:
            x = self._padded(x, pool)
            ph, pw, padded = 0, 0, False
            h, w_ = x.shape[1:3]
            xs = [h * w_ * c, 1, w_ * c, c]
        rows_merge = xs[3] == c and dw == 1 and not padded
        segw, seglen = (1, kw * c) if rows_merge else (kw, c)
        nseg = kh if rows_merge else kh * kw
        kc = min(d["max_kc"], d["kc"] * max(1, d["nc"] // (-(-d["c_out"] // self.nr) * self.nr)))
        spb, chunk = (max(1, kc // seglen), seglen) if seglen <= kc else (1, kc)
        os_ = [s // 4 for s in out.strides]
        res = out if residual is None else residual
        m = n * oh * ow
        dims = (m, oh * ow, ow, sh, sw, ph, pw, dh, dw, h, w_, c, xs[0], xs[2], xs[3], segw,
                nseg, seglen, spb, chunk, kh * kw * c, d["c_out"], os_[0], os_[1], os_[2],
                os_[3], int(d["relu"]), int(residual is not None))
        pool.parallel_for(self.rows, m, x.ctypes.data, wp.ctypes.data, out.ctypes.data,
                          bias.ctypes.data, res.ctypes.data, self.zeros.ctypes.data, *dims,
                          align=self.mr)

    def _padded(self, x: np.ndarray, pool) -> np.ndarray:
        if not all(s % 4 == 0 for s in x.strides):
            x = np.ascontiguousarray(x)
        n, c, h, w = x.shape
        (ph, bottom), (pw, right) = self.d["padding"]
        hp, wp = h + ph + bottom, w + pw + right
        count = n * hp * wp * c
        if self.scratch is None or self.scratch.size < count:
            self.scratch = aligned_empty(count, np.float32)
        dst = self.scratch[:count].reshape(n, hp, wp, c)
        sn, sc, sh, sw = (s // 4 for s in x.strides)
        pool.parallel_for(self.pad, n * hp, x.ctypes.data, dst.ctypes.data, n, c, h, w, ph,
                          pw, hp, wp, sn, sc, sh, sw)
        return dst


def _like(out: np.ndarray, values: np.ndarray) -> np.ndarray:
    order = np.argsort([-s for s in out.strides], kind="stable")
    fresh = np.empty([out.shape[i] for i in order], np.float32)
    view = fresh.transpose(np.argsort(order))
    view[...] = values
    return view


class EmbeddingStep:
    """embedding(weight, indices): rows of the weight (a fresh array, as eager gives)."""

    def __init__(self, desc):
        self.name = desc["name"]

    def __call__(self, weight, indices):
        try:
            return np.take(weight, indices, axis=0)
        except IndexError as err:
            raise IndexError(f"embedding (step {self.name}): {err}") from None


class ViewStep:
    def __init__(self, desc):
        self.offset, self.shape, self.strides = desc["offset"], desc["shape"], desc["strides"]

    def __call__(self, x):
        return _strided(x, self.offset, self.shape, self.strides)


# --- quantized (int8) steps ---------------------------------------------------------------------
# The host side of the int8 kernels (codegen/llvm/qgemm.py, qelementwise.py), shared with
# the in-process eager path (codegen/quantized.py calls these drivers), so the artifact
# computes exactly what eager mode computes. Values are plain integer arrays here; each
# step's description carries the qparams its operands and result have (static in a
# converted graph).

# the int64 parameter block of the qgemm kernels (pointers as addresses)
QGEMM_FIELDS = ("a", "m", "ohw", "ow", "img_stride", "row_stride", "col_stride", "kq", "offs",
                "packed", "n_blocks", "m_tiles", "nb_outer", "out", "ldo", "corr", "mult",
                "bias", "qparams")
QGEMM_TYPE = ctypes.CFUNCTYPE(None, I64, I64, I64, PTR)

try:       # in the ember package: buffers from the caching allocator (a fresh large array
    from .allocator import default_allocator     # costs its page faults on every call)

    def _empty(shape, dtype) -> np.ndarray:
        shape = tuple(int(d) for d in shape)
        return default_allocator().empty(int(np.prod(shape)), dtype).reshape(shape)
    from .threads import default_pool as _host_pool
except ImportError:      # loaded on its own
    def _empty(shape, dtype) -> np.ndarray:
        return np.empty(shape, dtype)

    _host_pool = None


def _over_images(n: int, fn) -> None:
    """fn(begin, end) over image ranges of [0, n) on the thread pool (NumPy's copies and
    ufuncs release the GIL, so the pool's threads share the work)."""
    pool = _host_pool() if _host_pool is not None else default_pool()
    pool.parallel_for(lambda begin, end, worker: fn(begin, end), n)
QADD_CHUNK = 1 << 14
QADD_TYPE = ctypes.CFUNCTYPE(None, I64, I64, I64, PTR, PTR, PTR, I64, PTR)


class Gather:
    """Where a qgemm's A rows are: row m's k group kk is at buffer + row_base(m) + offs[kk],
    row_base(m) = img * img_stride + oy * row_stride + ox * col_stride ((img, oy, ox) from
    m over the output image). A linear layer: ohw = ow = 1, rows img_stride apart."""

    def __init__(self, buffer, m, offs, ohw=1, ow=1, img_stride=0, row_stride=0, col_stride=0,
                 seg_offs=None, seg_len=0):
        self.buffer, self.m, self.offs = buffer, m, offs
        self.ohw, self.ow = ohw, ow
        self.img_stride, self.row_stride, self.col_stride = img_stride, row_stride, col_stride
        # the same k bytes as contiguous segments (seg_len bytes at each of seg_offs), for
        # kernels that copy rows whole (AMX)
        self.seg_offs = np.zeros(1, np.int64) if seg_offs is None else seg_offs
        self.seg_len = seg_len or 4 * len(offs)


def linear_gather(a: np.ndarray, kq: int) -> Gather:
    """Rows of a uint8 [M, K] matrix (copied, zero padded, when K is not kq * 4 or the rows
    are not contiguous)."""
    m, k = a.shape
    if k != kq * 4 or not a.flags.c_contiguous:
        padded = np.zeros((m, kq * 4), np.uint8)
        padded[:, :k] = a
        a = padded
    return Gather(a, m, np.arange(kq, dtype=np.int64) * 4, img_stride=a.shape[1])


def conv_output_size(h, w, kernel, stride, padding, dilation):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


def conv_k_layout(c: int, kw: int, dilation_w: int) -> tuple[int, int]:
    """How a convolution's k dimension reads the channels-last input: (cp, run).
    run > 0 (no dilation along W): k grouped by kernel row, each row's kw * c contiguous
    input bytes read as one run padded to `run` (a multiple of 4; the bytes past the
    window meet zero weights), channels unpadded (cp = c): the stem's 3 channels cost
    7 * 3 -> 24 bytes a row, not 7 * 4. run == 0: per tap, channels padded to cp (a
    multiple of 4)."""
    if dilation_w == 1:
        return c, -(-(kw * c) // 4) * 4
    return -(-c // 4) * 4, 0


def nhwc_input(x: np.ndarray, zero_point: int, padding, cp: int, slack: int = 0) -> np.ndarray:
    """A [N, C, H, W] uint8 value as channels-last, padded with its zero point (the
    quantized 0.0) spatially and in channels up to cp, with `slack` readable bytes past
    its end; x's own memory where it already is channels-last and needs none of that."""
    n, c, h, w = x.shape
    ph, pw = padding
    nhwc = x.transpose(0, 2, 3, 1)
    if ph == pw == 0 and c == cp and not slack and nhwc.flags.c_contiguous:
        return nhwc
    shape = (n, h + 2 * ph, w + 2 * pw, cp)
    size = int(np.prod(shape))
    flat = _empty((size + slack,), np.uint8)
    flat[size:] = zero_point
    buf = flat[:size].reshape(shape)

    def fill(begin, end):
        if ph or pw or c != cp:
            buf[begin:end].fill(zero_point)
        buf[begin:end, ph:ph + h, pw:pw + w, :c] = nhwc[begin:end]
    _over_images(n, fill)
    return buf


def conv_gather(x_nhwc: np.ndarray, kernel, stride, dilation, out_hw, run: int = 0) -> Gather:
    """A padded channels-last uint8 input [N, Hp, Wp, Cp] read as the implicit im2col of a
    convolution, k ordered (kh, kw, c) (conv_k_layout: runs of kernel rows, or taps)."""
    n, hp, wp, cp = x_nhwc.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    if run:
        segments, seg_len = np.arange(kh) * dh * wp * cp, run
    else:
        taps = (np.arange(kh)[:, None] * dh * wp + np.arange(kw)[None, :] * dw) * cp
        segments, seg_len = taps.reshape(-1), cp
    offs = segments[:, None] + np.arange(seg_len // 4)[None, :] * 4
    return Gather(x_nhwc, n * oh * ow, offs.reshape(-1).astype(np.int64), ohw=oh * ow, ow=ow,
                  img_stride=hp * wp * cp, row_stride=sh * wp * cp, col_stride=sw * cp,
                  seg_offs=segments.astype(np.int64), seg_len=seg_len)


def qgemm_run(fn, pool, gather: Gather, packed: np.ndarray, kq: int, n: int, mr: int, nr: int,
              corr: np.ndarray, mult: np.ndarray, bias: np.ndarray, qparams, u8_out: bool,
              threads=None) -> np.ndarray:
    """One fused int8 GEMM: [M, n] uint8 (u8_out) or float32. corr (int32), mult and bias
    (float32) are per output column, padded to a multiple of nr; qparams = (1/scale, zero
    point, lo, hi) as float64 (codegen/llvm/qgemm.py's docstring)."""
    if len(gather.offs) != kq:
        raise ValueError(f"qgemm: A has {len(gather.offs) * 4} k bytes per row, the packed "
                         f"weight {kq * 4}")
    n_pad = len(corr)
    m_pad = -(-gather.m // mr) * mr
    m_tiles, n_blocks = m_pad // mr, n_pad // nr
    out = _empty((m_pad, n_pad), np.uint8 if u8_out else np.float32)
    qp = np.asarray(qparams, np.float64)
    # task order: weight panels stay in cache while every row tile passes when that moves
    # fewer bytes than the other way round (n_blocks * |A| against m_tiles * |B|)
    nb_outer = n_blocks * gather.m * kq * 4 < m_tiles * packed.nbytes
    values = {"a": gather.buffer.ctypes.data, "m": gather.m, "ohw": gather.ohw,
              "ow": gather.ow, "img_stride": gather.img_stride,
              "row_stride": gather.row_stride, "col_stride": gather.col_stride, "kq": kq,
              "offs": gather.offs.ctypes.data, "packed": packed.ctypes.data,
              "n_blocks": n_blocks, "m_tiles": m_tiles, "nb_outer": int(nb_outer),
              "out": out.ctypes.data, "ldo": n_pad, "corr": corr.ctypes.data,
              "mult": mult.ctypes.data, "bias": bias.ctypes.data, "qparams": qp.ctypes.data}
    params = np.array([values[f] for f in QGEMM_FIELDS], np.int64)
    pool.parallel_for(fn, m_tiles * n_blocks, params.ctypes.data, max_threads=threads)
    return out[:gather.m, :n]


# AMX tiles (codegen/llvm/qgemm_amx.py): the same parameter block plus a per-thread buffer
QGEMM_AMX_FIELDS = QGEMM_FIELDS + ("kq_pad", "scratch", "scratch_stride", "tilecfg",
                                   "seg_offs", "n_segs", "seg_len")
AMX_ROWS, AMX_COLS, AMX_C_BYTES = 32, 32, 32 * 32 * 4
_AMX_STATE: list = []


def amx_permission() -> bool:
    """Ask Linux for the AMX tile state (arch_prctl(ARCH_REQ_XCOMP_PERM,
    XFEATURE_XTILEDATA)) once per process; True when granted."""
    if not _AMX_STATE:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _AMX_STATE.append(libc.syscall(158, 0x1023, 18) == 0)
        except (OSError, AttributeError):
            _AMX_STATE.append(False)
    return _AMX_STATE[0]


def amx_tile_config() -> np.ndarray:
    """ldtilecfg's 64 bytes: palette 1, eight tiles of 16 rows x 64 bytes."""
    cfg = aligned_empty(64, np.uint8)
    cfg[:] = 0
    cfg[0] = 1
    cfg[16:32].view(np.uint16)[:8] = 64
    cfg[48:56] = 16
    return cfg


_AMX_TILECFG = amx_tile_config()


def qgemm_amx_run(fn, pool, gather: Gather, packed: np.ndarray, kq_pad: int, n: int,
                  corr: np.ndarray, mult: np.ndarray, bias: np.ndarray, qparams, u8_out: bool,
                  threads=None) -> np.ndarray:
    """qgemm_run on AMX tiles: row tiles of 32 split across threads, each thread with its
    own buffer for the gathered A rows and the C tiles."""
    n_pad = len(corr)
    m_tiles = -(-gather.m // AMX_ROWS)
    out = _empty((m_tiles * AMX_ROWS, n_pad), np.uint8 if u8_out else np.float32)
    stride = -(-(AMX_ROWS * kq_pad * 4 + AMX_C_BYTES) // 64) * 64
    scratch = aligned_empty(stride * pool.n_threads, np.uint8)
    qp = np.asarray(qparams, np.float64)
    values = {"a": gather.buffer.ctypes.data, "m": gather.m, "ohw": gather.ohw,
              "ow": gather.ow, "img_stride": gather.img_stride,
              "row_stride": gather.row_stride, "col_stride": gather.col_stride,
              "kq": len(gather.offs), "offs": gather.offs.ctypes.data,
              "packed": packed.ctypes.data, "n_blocks": n_pad // AMX_COLS, "m_tiles": m_tiles,
              "nb_outer": 0, "out": out.ctypes.data, "ldo": n_pad, "corr": corr.ctypes.data,
              "mult": mult.ctypes.data, "bias": bias.ctypes.data, "qparams": qp.ctypes.data,
              "kq_pad": kq_pad, "scratch": scratch.ctypes.data, "scratch_stride": stride,
              "tilecfg": _AMX_TILECFG.ctypes.data, "seg_offs": gather.seg_offs.ctypes.data,
              "n_segs": len(gather.seg_offs), "seg_len": gather.seg_len}
    params = np.array([values[f] for f in QGEMM_AMX_FIELDS], np.int64)
    pool.parallel_for(fn, m_tiles, params.ctypes.data, max_threads=threads)
    return out[:gather.m, :n]


def qadd_run(fn, pool, a: np.ndarray, b: np.ndarray, a_qparams, b_qparams, scale: float,
             zero_point: int, relu: bool) -> np.ndarray:
    """uint8 a + b requantized to (scale, zero_point): flat buffers of one size."""
    out = _empty(a.shape, a.dtype)
    inv = np.float32(1.0) / np.float32(scale)
    qp = np.array([a_qparams[1], a_qparams[0], b_qparams[1], b_qparams[0], inv, zero_point,
                   0.0 if relu else -np.inf, 255.0], np.float64)
    pool.parallel_for(fn, -(-a.size // QADD_CHUNK), a.ctypes.data, b.ctypes.data,
                      out.ctypes.data, a.size, qp.ctypes.data)
    return out


QMAXPOOL_TYPE = ctypes.CFUNCTYPE(None, I64, I64, I64, PTR, PTR, PTR)


def quantize_run(fn, pool, x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """quantize_values by the native kernel: a contiguous float32 array to uint8/int8."""
    info = np.iinfo(dtype)
    out = _empty(x.shape, dtype)
    inv = np.float32(1.0) / np.float32(scale)
    qp = np.array([inv, zero_point, info.min, info.max], np.float64)
    pool.parallel_for(fn, -(-x.size // QADD_CHUNK), x.ctypes.data, out.ctypes.data, x.size,
                      qp.ctypes.data)
    return out


def qmaxpool_run(fn, pool, x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """uint8 max pooling of a channels-last [N, H, W, C] array (C a multiple of 64) by the
    native kernel (codegen/llvm/qelementwise.py), output pixels split across threads."""
    x = np.ascontiguousarray(x)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = _empty((n, oh, ow, c), np.uint8)
    params = np.array([h, w, c, oh, ow, kh, kw, sh, sw, ph, pw], np.int64)
    pool.parallel_for(fn, n * oh * ow, x.ctypes.data, out.ctypes.data, params.ctypes.data)
    return out


def memory_order(a: np.ndarray):
    """(flat buffer, function giving an array of a's layout from a flat buffer) for a
    contiguous or channels-last array, else None."""
    if a.flags.c_contiguous:
        return a.reshape(-1), lambda flat: flat.reshape(a.shape)
    if a.ndim == 4 and a.transpose(0, 2, 3, 1).flags.c_contiguous:
        nhwc = a.transpose(0, 2, 3, 1)
        return nhwc.reshape(-1), lambda flat: flat.reshape(nhwc.shape).transpose(0, 3, 1, 2)
    return None


def max_pool2d_nhwc(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """Max pooling of uint8 [N, H, W, C], padding with 0 (no value is below it): the max
    of the window's shifted views."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    padded = _empty((n, h + 2 * ph, w + 2 * pw, c), x.dtype) if ph or pw else x
    out = _empty((n, oh, ow, c), x.dtype)

    def window_max(begin, end):
        if ph or pw:
            padded[begin:end].fill(0)
            padded[begin:end, ph:ph + h, pw:pw + w] = x[begin:end]
        for i in range(kh):
            for j in range(kw):
                view = padded[begin:end, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
                if i == j == 0:
                    np.copyto(out[begin:end], view)
                else:
                    np.maximum(out[begin:end], view, out=out[begin:end])
    _over_images(n, window_max)
    return out


def quantize_values(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """quantize_per_tensor to uint8/int8 (ir/quantized.py quantize_array's steps)."""
    info = np.iinfo(dtype)
    inv = np.float32(1.0) / np.float32(scale)
    wide = np.asarray(x, np.float32).astype(np.float64)
    wide *= np.float64(inv)
    wide += zero_point
    q = wide.astype(np.float32)
    np.rint(q, out=q)
    np.clip(q, info.min, info.max, out=q)
    return q.astype(dtype)


def dequantize_values(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.int64) - zero_point).astype(np.float32) * np.float32(scale)


def adaptive_average(x: np.ndarray, output_size) -> np.ndarray:
    """adaptive_avg_pool2d of float32 [.., H, W] (ir/ops/pooling_adaptive.py's reference:
    an averaging matrix applied along each spatial dim)."""
    for i, o in enumerate(output_size):
        axis = x.ndim - 2 + i
        n = x.shape[axis]
        idx = np.arange(o)
        start, end = (idx * n) // o, -((-(idx + 1) * n) // o)
        cols = np.arange(n)
        mat = ((cols >= start[:, None]) & (cols < end[:, None])) / \
            np.maximum(end - start, 1)[:, None]
        x = np.moveaxis(np.tensordot(mat.astype(x.dtype), x, axes=([1], [axis])), 0, axis)
    return x


def adaptive_average_quantized(q: np.ndarray, scale: float, zero_point: int, output_size):
    """adaptive_avg_pool2d of a per-tensor quantized value: the average of the dequantized
    values, requantized with the input's qparams."""
    real = adaptive_average(np.ascontiguousarray(dequantize_values(q, scale, zero_point)),
                            output_size)
    return quantize_values(real, scale, zero_point, q.dtype)


class QuantizeStep:
    def __init__(self, desc):
        self.scale, self.zero_point = desc["scale"], desc["zero_point"]
        self.dtype = np.dtype(desc["dtype"])

    def __call__(self, x):
        return quantize_values(x, self.scale, self.zero_point, self.dtype)


class DequantizeStep:
    def __init__(self, desc):
        self.scale, self.zero_point = desc["in_qparams"][0]

    def __call__(self, q):
        return dequantize_values(q, self.scale, self.zero_point)


def _qgemm(d: dict, fn, pool, gather, packed, corr, mult, bias, qparams, u8_out: bool):
    """A qgemm step's GEMM on the kernel it was packaged for (AMX tiles or vectors)."""
    if d["config"] == "amx":
        if not amx_permission():
            raise ArtifactError(f"step {d['name']}: this process was refused the AMX tile "
                                "state (arch_prctl)")
        return qgemm_amx_run(fn, pool, gather, packed, d["kq"], d["n"], corr, mult, bias,
                             qparams, u8_out)
    return qgemm_run(fn, pool, gather, packed, d["kq"], d["n"], d["mr"], d["nr"], corr, mult,
                     bias, qparams, u8_out)


class QGemmStep:
    """quantized_linear / quantized_conv2d: the fused int8 GEMM (weights packed at
    packaging, with their per-column correction, multiplier and bias)."""

    def __init__(self, desc, lib, packed: dict, pool_fn):
        self.desc = desc
        self.fn = QGEMM_TYPE(_address(lib, desc["symbol"]))
        key = desc["packed"]
        self.packed, self.corr = packed[key], packed[key + ".corr"]
        self.mult, self.bias = packed[key + ".mult"], packed[key + ".bias"]
        self.pool_fn = pool_fn

    def __call__(self, x):
        d = self.desc
        if d["gemm"] == "linear":
            k = x.shape[-1]
            gather = linear_gather(x.reshape(-1, k), d["groups"])
        else:
            n, _, h, w = x.shape
            out_hw = conv_output_size(h, w, d["kernel"], d["stride"], d["padding"],
                                      d["dilation"])
            slack = d["run"] - d["kernel"][1] * x.shape[1] if d["run"] else 0
            gather = conv_gather(nhwc_input(x, d["x_zero_point"], d["padding"], d["cp"], slack),
                                 d["kernel"], d["stride"], d["dilation"], out_hw, d["run"])
        out = _qgemm(d, self.fn, self.pool_fn(), gather, self.packed, self.corr, self.mult,
                     self.bias, d["qparams"], True)
        out = np.ascontiguousarray(out)
        if d["gemm"] == "linear":
            return out.reshape(*x.shape[:-1], d["n"])
        return out.reshape(n, out_hw[0], out_hw[1], d["n"]).transpose(0, 3, 1, 2)


def dynamic_qparams(x: np.ndarray, qmin: int = 0, qmax: int = 127):
    """A dynamically quantized input's per-batch qparams (ir/ops/quantized.py
    dynamic_input_qparams: range including 0, 0..127 as fbgemm/x86 do)."""
    lo = min(float(np.min(x)), 0.0) if x.size else 0.0
    hi = max(float(np.max(x)), 0.0) if x.size else 0.0
    scale = (hi - lo) / (qmax - qmin)
    if scale == 0.0:
        scale = 0.1
    scale = float(np.float32(scale))
    return scale, int(min(max(qmin - round(lo / scale), qmin), qmax))


class QGemmDynamicStep:
    """quantized_linear_dynamic: the float input quantized per call, the int8 GEMM with a
    float32 epilogue (multiplier and zero-point correction made per call)."""

    def __init__(self, desc, lib, packed: dict, pool_fn):
        self.desc, self.pool_fn = desc, pool_fn
        self.fn = QGEMM_TYPE(_address(lib, desc["symbol"]))
        key = desc["packed"]
        self.packed, self.row_sums = packed[key], packed[key + ".row_sums"]
        self.scales, self.bias = packed[key + ".scales"], packed[key + ".bias"]

    def __call__(self, x):
        d = self.desc
        scale, zp = dynamic_qparams(x)
        qx = quantize_values(x, scale, zp, np.uint8)
        k = x.shape[-1]
        corr = (np.int64(zp) * self.row_sums).astype(np.int32)
        mult = (np.float32(scale) * self.scales).astype(np.float32)
        out = _qgemm(d, self.fn, self.pool_fn(), linear_gather(qx.reshape(-1, k), d["groups"]),
                     self.packed, corr, mult, self.bias,
                     (0.0, 0.0, 0.0 if d["relu"] else -np.inf, np.inf), False)
        return np.ascontiguousarray(out).reshape(*x.shape[:-1], d["n"])


class QAddStep:
    def __init__(self, desc, lib, pool_fn):
        self.desc, self.pool_fn = desc, pool_fn
        self.fn = QADD_TYPE(_address(lib, desc["symbol"]))

    def __call__(self, a, b):
        d = self.desc
        fa, fb = memory_order(a), memory_order(b)
        if fa is None or fb is None or a.strides != b.strides:
            a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
            fa, fb = memory_order(a), memory_order(b)
        out = qadd_run(self.fn, self.pool_fn(), fa[0], fb[0], *d["in_qparams"], d["scale"],
                       d["zero_point"], d["relu"])
        return fa[1](out)


class QMaxPoolStep:
    def __init__(self, desc):
        self.desc = desc

    def __call__(self, x):
        d = self.desc
        nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return max_pool2d_nhwc(nhwc, d["kernel"], d["stride"], d["padding"]).transpose(0, 3, 1, 2)


class QAvgPoolStep:
    """adaptive_avg_pool2d on a quantized value: the average of the dequantized values,
    requantized with the input's qparams (as eager does)."""

    def __init__(self, desc):
        self.desc = desc

    def __call__(self, q):
        scale, zero_point = self.desc["in_qparams"][0]
        return adaptive_average_quantized(q, scale, zero_point, self.desc["output_size"])


class QReshapeStep:
    def __init__(self, desc):
        self.shape = tuple(desc["shape"])

    def __call__(self, q):
        return np.ascontiguousarray(q).reshape(self.shape)


QUANTIZED_STEPS = ("quantize", "dequantize", "qgemm", "qgemm_dynamic", "qadd", "qmaxpool",
                   "qavgpool", "qreshape")


# --- the loaded model --------------------------------------------------------------------------
class LiteModel:
    """A loaded artifact: call with numpy arrays (one per input), get a list of arrays."""

    def __init__(self, path, check_features: bool = True):
        self.path = str(path)
        manifest, members = read_members(path)
        if check_features:
            check_cpu(manifest, path)
        try:
            self.plan = json.loads(members["plan.json"])
            self.memory = json.loads(members["memory_plan.json"])
            constants = read_safetensors(members["weights.safetensors"])
        except (ValueError, KeyError, TypeError) as err:
            raise ArtifactError(f"{path}: unreadable plan or weights ({err})") from None
        self.manifest, self.graph_text = manifest, members["graph.ir"].decode()
        self.constants = {int(k[1:]): v for k, v in constants.items() if k[0] == "c"}
        self.packed = {k: v for k, v in constants.items() if k[0] == "p"}
        self.lib = _load_library(members["model.so"], path)
        self.steps = [self._step(s) for s in self.plan["steps"]]
        self.arena = aligned_empty(self.memory["arena_bytes"], np.uint8)
        self.fixed = {}
        for buf in self.memory["buffers"]:
            dtype = np.dtype(buf["dtype"])
            flat = self.arena[buf["offset"]:].view(np.uint8)[:buf["nbytes"]].view(dtype)
            self.fixed[buf["slot"]] = _strided(flat, 0, buf["shape"], buf["strides"])
        self.pool = default_pool()

    def _step(self, s):
        kind = s["kind"]
        if kind == "kernel":
            return KernelStep(s, self.lib)
        if kind == "gemm":
            return GemmStep(s, self.lib, self.constants, self.packed)
        if kind == "conv":
            return ConvStep(s, self.lib, self.constants, self.packed)
        if kind == "bgemm":
            return BatchedGemmStep(s, self.lib)
        if kind == "view":
            return ViewStep(s)
        if kind == "embedding":
            return EmbeddingStep(s)
        if kind in QUANTIZED_STEPS:
            return self._quantized_step(s)
        raise ArtifactError(f"{self.path}: plan step {s.get('name')!r} has unknown kind {kind!r}")

    def _quantized_step(self, s):
        kind = s["kind"]
        if kind == "qgemm":
            return QGemmStep(s, self.lib, self.packed, lambda: self.pool)
        if kind == "qgemm_dynamic":
            return QGemmDynamicStep(s, self.lib, self.packed, lambda: self.pool)
        if kind == "qadd":
            return QAddStep(s, self.lib, lambda: self.pool)
        return {"quantize": QuantizeStep, "dequantize": DequantizeStep,
                "qmaxpool": QMaxPoolStep, "qavgpool": QAvgPoolStep,
                "qreshape": QReshapeStep}[kind](s)

    @property
    def inputs(self) -> list:
        return self.manifest["inputs"]

    @property
    def outputs(self) -> list:
        return self.manifest["outputs"]

    def __call__(self, *arrays) -> list:
        return self.run(arrays)

    def profile(self, *arrays, repeats: int = 5) -> list[tuple[str, str, float]]:
        """(step name, kind, median seconds) per step over `repeats` calls."""
        times: dict[int, list] = {}
        for _ in range(repeats):
            self.run(arrays, times)
        return [(d["name"], d["kind"] + (f" ({d['op']})" if "op" in d else ""),
                 sorted(times[i])[len(times[i]) // 2])
                for i, d in enumerate(self.plan["steps"])]

    def run(self, arrays, times: dict | None = None) -> list:
        """The outputs for `arrays`; with `times`, each step's seconds are appended."""
        import time
        specs = self.inputs
        if len(arrays) != len(specs):
            raise ArtifactError(f"{self.path}: takes {len(specs)} input(s) "
                                f"({', '.join(s['name'] for s in specs)}), got {len(arrays)}")
        values = [None] * self.plan["n_slots"]
        for slot, value in self.constants.items():
            values[slot] = value
        for slot, spec, a in zip(self.plan["input_slots"], specs, arrays):
            a = np.asarray(a)
            if a.dtype != np.dtype(spec["dtype"]) or list(a.shape) != list(spec["shape"]):
                raise ArtifactError(f"input '{spec['name']}' must be {spec['dtype']}"
                                    f"{list(spec['shape'])}, got {a.dtype}{list(a.shape)}")
            values[slot] = np.ascontiguousarray(a)
        for i, (desc, step) in enumerate(zip(self.plan["steps"], self.steps)):
            start = time.perf_counter() if times is not None else 0.0
            if desc["kind"] in ("view", "embedding") + QUANTIZED_STEPS:   # fns of their inputs
                values[desc["outputs"][0]] = step(*[values[s] for s in desc["inputs"]])
            else:
                outs = []
                for slot, spec in zip(desc["outputs"], desc["out_specs"]):
                    outs.append(self.fixed[slot] if spec["persistent"] else _fresh(spec))
                step([values[s] for s in desc["inputs"]] + outs, self.pool)
                for slot, arr in zip(desc["outputs"], outs):
                    values[slot] = arr
            if times is not None:
                times.setdefault(i, []).append(time.perf_counter() - start)
        return [self._result(values[s]) for s in self.plan["output_slots"]]

    def _result(self, value):
        if np.may_share_memory(value, self.arena) or \
                any(np.may_share_memory(value, c) for c in self.constants.values()):
            return np.array(value)
        return value


def _fresh(spec) -> np.ndarray:
    extent = 1 + sum((s - 1) * st for s, st in zip(spec["shape"], spec["strides"])) \
        if all(spec["shape"]) else 0
    flat = aligned_empty(max(extent, 1), spec["dtype"])
    return _strided(flat, 0, spec["shape"], spec["strides"])


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


def load_package(path, check_features: bool = True) -> LiteModel:
    """Load an artifact written by ember.aot.compile_and_package (see module doc)."""
    return LiteModel(path, check_features)


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
