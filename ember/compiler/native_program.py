"""A static-shape plan's step table -> the native program `ember_run` executes.

Every decision the Python drivers of the GEMM and implicit-GEMM conv make per call
(codegen/extern.py, llvm/gemm.py, llvm/implicit_conv.py: whether a (..., K) operand
views as a matrix or is copied, the bias fill, rows-or-columns thread split, direct
or padded conv input, residual layout, blocking constants) depends only on shapes and
strides, which are fixed here; so it is made once, and the program is a flat list of
calls with constant arguments and pointers at planned offsets
(codegen/native_entry.py writes it as LLVM IR). The one decision that depends on the
machine running it, the thread count, stays a run-time guard (`when`). A host step
(a custom op, ember.library.custom_op: Python; or an int8 step of a converted model,
run by runtime/lite_int8.py) makes no call: it ends a segment (`segment_breaks`), and
`host_steps` says where its operands and results live, for the runtime that calls it
between two native segments.

The arena (one allocation at load) holds, in order: the weights (`c<slot>` constants
and `p<step>` packed panels), the persistent buffers of the memory plan, one scratch
region (temporaries of one step at a time: copies, padded conv inputs, embedding
results), a zero-filled region (conv's bias-less epilogue and its K tail), and last the
GEMM workspace, `workspace_floats` per thread, sized at load for the threads there.
"""
from __future__ import annotations

import math

import numpy as np

from ..codegen.llvm import winograd
from ..codegen.llvm.implicit_conv import (column_items, columns_first, k_block,
                                           single_channel_fits)
from ..ir.errors import LoweringError

ALIGN = 64
# int8 steps of a converted model (compiler/aot_quantized.py): host steps, as custom ops
QUANTIZED_KINDS = ("quantize", "dequantize", "qgemm", "qgemm_dynamic", "qadd", "qmaxpool",
                   "qavgpool", "qreshape", "qclamp", "qcat", "qlut", "qmean")
SMALL_BATCH_WORK = 256 ** 3          # gemm_batched's "many small matrices" bound
# Below these a call runs on the calling thread alone: handing chunks to the pool
# (waking a worker, joining it) costs 5-30 us, more than splitting such a call saves
# (measured on a 2-core VM: a 256x256 bias + ReLU kernel 4.6 us alone, 22-33 us split
# over two threads; a 256x128 @ 128x10 GEMM 15 us alone, 31 us split)
PARALLEL_KERNEL_WORK = 1 << 18       # element-steps of a generated kernel
PARALLEL_GEMM_MACS = 1 << 21         # multiply-adds of a GEMM or an implicit-GEMM conv
POOL_IN_CONV = True                  # a max pool of a conv's output runs inside the conv


def _up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _contiguous(shape) -> list:
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= max(s, 1)
    return list(reversed(out))


def _extent(shape, strides) -> int:
    if any(s == 0 for s in shape):
        return 0
    return 1 + sum((s - 1) * st for s, st in zip(shape, strides))


class Value:
    """Where one value lives: base ('arena', ('in', i), ('out', i)), byte offset,
    shape, strides (elements) and numpy dtype."""

    def __init__(self, base, offset: int, shape, strides, dtype):
        self.base, self.offset = base, int(offset)
        self.shape, self.strides = [int(s) for s in shape], [int(s) for s in strides]
        self.dtype = np.dtype(dtype)

    @property
    def ptr(self):
        return (self.base, self.offset)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def at(self, elements: int) -> tuple:
        return (self.base, self.offset + elements * self.dtype.itemsize)

    def view(self, shape, strides, elements: int = 0) -> "Value":
        return Value(self.base, self.offset + elements * self.dtype.itemsize, shape, strides,
                     self.dtype)

    def byte_range(self) -> tuple[int, int]:
        lo = self.offset + self.dtype.itemsize * sum(
            (s - 1) * st for s, st in zip(self.shape, self.strides) if st < 0)
        hi = self.offset + self.dtype.itemsize * sum(
            (s - 1) * st for s, st in zip(self.shape, self.strides) if st > 0) + \
            self.dtype.itemsize
        return lo, hi

    def overlaps(self, other: "Value") -> bool:
        if self.base != other.base or not self.size or not other.size:
            return False
        a, b = self.byte_range(), other.byte_range()
        return a[0] < b[1] and b[0] < a[1]

    def json(self) -> dict:
        base = self.base if self.base == "arena" else list(self.base)
        return {"base": base, "offset": self.offset, "shape": self.shape,
                "strides": self.strides, "dtype": self.dtype.str}


def merge_leading(value: Value, keep: int):
    """value viewed as (prod(shape[:-keep]), *shape[-keep:]) without copying, or None
    (numpy's no-copy reshape rule: each pair of merged dims must be stride-compatible)."""
    lead, lead_strides = value.shape[:-keep], value.strides[:-keep]
    dims = [(s, st) for s, st in zip(lead, lead_strides) if s != 1]
    for (s0, st0), (s1, st1) in zip(dims, dims[1:]):
        if st0 != st1 * s1:
            return None
    stride = dims[-1][1] if dims else 0
    return value.view([math.prod(lead)] + value.shape[-keep:],
                      [stride] + value.strides[-keep:])


class ProgramBuilder:
    """Builds (calls, layout) from the step table; see the module doc."""

    def __init__(self, table: list, weights: dict, memory: dict, plan_inputs: list,
                 input_specs: list, n_slots: int, external_weights: bool = False,
                 view_fns: dict | None = None, bound=()):
        """`weights`: name -> array ('c<slot>' constants, 'p<step>' packed panels); with
        `external_weights` they are not copied into the arena but passed as extra
        inputs after the user's (in process: the plan's own arrays). `input_specs`:
        dtype, shape and (default contiguous) strides of each input. `view_fns`: step
        index -> the view's callable, to measure views whose desc has no geometry.
        `bound`: persistent output slots stored in the caller's arrays (in process: a
        training step's parameters, updated in place), passed as inputs after the
        weights, in this order; `bound_specs` gives each one's (shape, byte strides,
        dtype) for the caller to check its arrays against."""
        self.bound = {slot: j for j, slot in enumerate(bound)}
        self.bound_specs: dict[int, tuple] = {}
        self.bound_base = len(input_specs) + len(weights)
        self.table, self.calls = table, []
        self.view_fns = view_fns or {}
        self.slots: list[Value | None] = [None] * n_slots
        self.offsets: dict[str, int] = {}
        self.weight_bases: dict[str, tuple] = {}
        offset = 0
        for j, (name, array) in enumerate(weights.items()):
            if external_weights:       # the (j)th array after the user inputs
                self.weight_bases[name] = (("in", len(input_specs) + j), 0)
                strides = [s // array.itemsize for s in array.strides]
            else:                      # weights first in the arena, each 64-byte aligned
                self.offsets[name] = offset
                self.weight_bases[name] = ("arena", offset)
                offset += _up(max(1, array.nbytes))
                strides = _contiguous(array.shape)
            if name[0] == "c":
                base, at = self.weight_bases[name]
                self.slots[int(name[1:])] = Value(base, at, array.shape, strides, array.dtype)
        for i, desc in enumerate(table):    # constants stored packed only: a stand-in
            key = desc.get("b_slot") if desc["kind"] == "gemm" else desc.get("w_slot")
            if desc.get("packed") and key is not None and self.slots[key] is None:
                base, at = self.weight_bases[desc["packed"]]
                self.slots[key] = Value(base, at, [1], [1], np.float32)
        self.weights_bytes = offset
        self.buffers_offset = offset
        self.persistent = {b["slot"]: b for b in memory["buffers"]}
        self.scratch_offset = offset + _up(memory["arena_bytes"])
        self.scratch_need, self.zeros_need, self.workspace_floats = 0, 0, 0
        for i, (slot, spec) in enumerate(zip(plan_inputs, input_specs)):
            shape = spec["shape"]
            strides = spec.get("strides") or _contiguous(shape)
            self.slots[slot] = Value(("in", i), 0, shape, strides, spec["dtype"])
        self.fresh: list[dict] = []
        # host steps (Python code, called between native segments): the step, the call
        # index the segment before it ends at, its operands' and results' Values
        self.host_steps: list[dict] = []
        self.error_records: list = []           # (index step's desc, scratch offset)
        self.step = 0
        self._scratch_used = 0

    # -- layout ------------------------------------------------------------------------------
    def layout(self) -> dict:
        zeros_offset = self.scratch_offset + _up(self.scratch_need)
        return {"weights": self.offsets, "weights_bytes": self.weights_bytes,
                "weight_order": list(self.weight_bases),
                "buffers_offset": self.buffers_offset, "scratch_offset": self.scratch_offset,
                "scratch_bytes": self.scratch_need, "zeros_offset": zeros_offset,
                "zeros_bytes": self.zeros_need,
                "workspace_offset": zeros_offset + _up(self.zeros_need),
                "workspace_floats": self.workspace_floats}

    def _scratch(self, shape, strides, dtype=np.float32) -> Value:
        """A temporary of this step (regions are reused by the next step)."""
        nbytes = _up(max(1, _extent(shape, strides)) * np.dtype(dtype).itemsize)
        # the scratch region's final offset is only known at the end: record relative,
        # fixed up in build() (scratch pointers use a placeholder base)
        value = Value(("scratch",), self._scratch_used, shape, strides, dtype)
        self._scratch_used += nbytes
        self.scratch_need = max(self.scratch_need, self._scratch_used)
        return value

    def _zeros(self, floats: int) -> tuple:
        self.zeros_need = max(self.zeros_need, _up(floats * 4))
        return (("zeros",), 0)

    def _workspace(self, floats: int) -> tuple:
        self.workspace_floats = max(self.workspace_floats, floats)
        return (("workspace",), 0)

    # -- building --------------------------------------------------------------------------------
    def build(self, output_slots: list) -> tuple[list, dict, list]:
        self.output_slots, self.absorbed = set(output_slots), set()
        for self.step, desc in enumerate(self.table):
            self._scratch_used = 0
            if self.step in self.absorbed:      # computed by the step before (_conv_pool)
                continue
            kind = desc["kind"]
            try:
                (self._quantized if kind in QUANTIZED_KINDS else getattr(self, f"_{kind}"))(desc)
            except LoweringError:
                raise
            except (KeyError, IndexError, TypeError, ValueError) as err:
                raise LoweringError(f"ember.aot: step {desc['name']} ({kind}) cannot be "
                                    f"written as native code ({type(err).__name__}: {err})") \
                    from None
        layout = self.layout()
        self._fix_pointers(layout)
        for desc, offset in self.error_records:      # the record after its claimed flag
            desc["error_at"] = layout["scratch_offset"] + offset + 8
        outputs = []
        for slot in output_slots:
            value = self.slots[slot]
            if value is None:
                raise LoweringError(f"ember.aot: output slot {slot} has no value")
            outputs.append(_fixed(value, layout).json())
        for host in self.host_steps:
            for key in ("inputs", "outputs"):
                host[key] = [_fixed(v, layout).json() for v in host[key]]
        return self.calls, layout, outputs

    def segment_breaks(self) -> list:
        """The call indices where the program stops for a host step (one per host step,
        in order): segment k runs calls [breaks[k-1], breaks[k])."""
        return [host["call"] for host in self.host_steps]

    def _fix_pointers(self, layout: dict) -> None:
        bases = {("scratch",): layout["scratch_offset"], ("zeros",): layout["zeros_offset"],
                 ("workspace",): layout["workspace_offset"]}

        def fix(arg):
            if isinstance(arg, tuple) and len(arg) == 2 and arg[0] in bases:
                return ("arena", bases[arg[0]] + arg[1])
            if isinstance(arg, list) and arg and isinstance(arg[0], tuple):
                return [fix(a) for a in arg]
            return arg
        for call in self.calls:
            call["args"] = [fix(a) for a in call["args"]]

    def _output(self, desc: dict, position: int = 0) -> Value:
        slot, spec = desc["outputs"][position], desc["out_specs"][position]
        if spec["persistent"] and slot in self.bound:
            dtype = np.dtype(spec["dtype"])
            value = Value(("in", self.bound_base + self.bound[slot]), 0, spec["shape"],
                          spec["strides"], dtype)
            self.bound_specs[slot] = (tuple(spec["shape"]), tuple(
                st * dtype.itemsize for st in spec["strides"]), dtype)
        elif spec["persistent"]:
            buf = self.persistent[slot]
            value = Value("arena", self.buffers_offset + buf["offset"], spec["shape"],
                          spec["strides"], spec["dtype"])
        else:
            nbytes = max(1, _extent(spec["shape"], spec["strides"])) * \
                np.dtype(spec["dtype"]).itemsize
            value = Value(("out", len(self.fresh)), 0, spec["shape"], spec["strides"],
                          spec["dtype"])
            self.fresh.append({"slot": slot, "nbytes": nbytes, "shape": spec["shape"],
                               "strides": spec["strides"], "dtype": spec["dtype"]})
        self.slots[slot] = value
        return value

    def _input(self, desc: dict, position: int) -> Value:
        value = self.slots[desc["inputs"][position]]
        if value is None:
            raise LoweringError(f"ember.aot: step {desc['name']} reads a value no earlier "
                                "step wrote")
        return value

    def _call(self, fn, sig, args, extent=1, align=1, parallel=False, when=None):
        self.calls.append({"fn": fn, "sig": sig, "args": list(args), "extent": int(extent),
                           "align": int(align), "parallel": bool(parallel), "when": when,
                           "step": self.step})

    def _copy(self, dst: Value, src: Value) -> None:
        """dst[...] = src (src broadcast to dst's shape, as numpy assignment does)."""
        pad = dst.ndim - src.ndim
        src_strides = [0] * pad + [st if s != 1 or d == 1 else 0 for s, st, d in
                                   zip(src.shape, src.strides, dst.shape[pad:])]
        args = [dst.ptr, dst.strides, src.ptr, src_strides, dst.shape, dst.ndim,
                dst.dtype.itemsize]
        if dst.ndim >= 2 and dst.shape[0] >= 2 and dst.size >= PARALLEL_KERNEL_WORK:
            # split by rows across the pool: the transformer layer's three 1 MB copies
            # of its transposed input (one per q/k/v GEMM) and 1-4 MB bias fills ran
            # serially between parallel GEMMs
            self._call("ember_copy_rows", "copy_rows", args, extent=dst.shape[0], align=1,
                       parallel=True)
            return
        self._call("ember_copy", "copy", args)

    def _contiguous_copy(self, src: Value) -> Value:
        tmp = self._scratch(src.shape, _contiguous(src.shape), src.dtype)
        self._copy(tmp, src)
        return tmp

    # -- step kinds --------------------------------------------------------------------------------
    def _kernel(self, desc: dict) -> None:
        ins = [self._input(desc, i) for i in range(len(desc["inputs"]))]
        outs = [self._output(desc, i) for i in range(len(desc["outputs"]))]
        self._call(desc["symbol"], "kernel", [[v.ptr for v in ins + outs]],
                   extent=desc["split_extent"], align=desc["split_align"],
                   parallel=desc["parallel"])

    def _view(self, desc: dict) -> None:
        x = self._input(desc, 0)
        if "shape" not in desc:
            desc.update(measure_view(self.view_fns[self.step], x, desc["name"]))
        self.slots[desc["outputs"][0]] = x.view(desc["shape"], desc["strides"], desc["offset"])

    def _embedding(self, desc: dict) -> None:
        weight, indices = self._input(desc, 0), self._input(desc, 1)
        if weight.strides != _contiguous(weight.shape) or \
                indices.strides != _contiguous(indices.shape) or \
                indices.dtype not in (np.dtype(np.int64), np.dtype(np.int32)):
            raise LoweringError(f"ember.aot: step {desc['name']} (embedding) needs a "
                                "contiguous weight and int32/int64 contiguous indices")
        shape = indices.shape + weight.shape[1:]
        out = self._scratch_persistent(shape, weight.dtype)     # np.take's fresh array
        self.slots[desc["outputs"][0]] = out
        row_bytes = math.prod(weight.shape[1:]) * weight.dtype.itemsize
        self._call("ember_take", "take", [out.ptr, weight.ptr, weight.shape[0], row_bytes,
                                          indices.ptr, indices.size, indices.dtype.itemsize])

    def _fill(self, desc: dict) -> None:
        """full(size, value): the value's bytes (an i64 constant of the call) broadcast
        over a buffer of the step's own, by the strided copy (source stride 0)."""
        spec = desc["results"][0]
        out = self._scratch_persistent(spec["shape"], spec["dtype"], spec["strides"])
        self.slots[desc["outputs"][0]] = out
        if out.size:
            self._call("ember_copy", "fill", [out.ptr, out.strides, [int(desc["bits"])],
                                              [0] * out.ndim, out.shape, out.ndim,
                                              out.dtype.itemsize])

    def _index(self, desc: dict) -> None:
        """A gather/scatter kernel (llvm/index_ops.py) with the geometry of the operands
        where they live; a scatter first copies self into its result. The kernel's
        error record (3 int64: index, size, which index) is in this step's scratch,
        read by the runtime only when the entry stops at this step (`error_at`)."""
        from ..codegen.index_plan import geometry, kernel_spec
        from ..codegen.llvm.index_ops import parallel
        ins = [self._input(desc, i) for i in range(len(desc["inputs"]))]
        # a 0-d constant is stored as one element of shape [1]: back to 0-d
        ins = [v.view([], []) if nd == 0 and v.shape == [1] else v
               for v, nd in zip(ins, desc.get("in_ndims") or [None] * len(ins))]
        out = self._output(desc, 0)
        if desc["mode"] == "scatter":
            self._copy(out, ins[0])
        geom, dims = geometry(desc, [(v.shape, v.strides) for v in ins],
                              (out.shape, out.strides))
        desc["dims"] = dims
        data = ins[desc["data_input"]] if desc["data_input"] is not None else out
        err = self._scratch([4], [1], np.int64)
        self.error_records.append((desc, err.offset))
        self._copy(err.view([1], [1]), Value(self._zeros(2)[0], 0, [1], [1], np.int64))
        buffers = [out.ptr, data.ptr] + [ins[i].ptr for i in desc["index_inputs"]]
        if desc["reduce"] == "mean":          # int64 counts in the result's layout, zeroed
            counts = self._scratch(out.shape, out.strides, np.int64)
            self._copy(counts, Value(self._zeros(2)[0], 0, [], [], np.int64))
            buffers.append(counts.ptr)
        self._call(desc["symbol"], "index", [buffers, geom, err.ptr], extent=geom[0],
                   parallel=parallel(kernel_spec(desc), geom))

    def _custom_op(self, desc: dict) -> None:
        """A custom op (ember.library.custom_op): Python, called by the runtime between
        two native segments on views of its operands where they live; each result gets a
        buffer of its own in the arena, with the strides its fake function gave. A tuple
        of results sits in its slot as a tuple of Values (`item` steps take them)."""
        results = desc.get("results")
        if not results or len(desc["outputs"]) != 1:
            raise LoweringError(f"ember.aot: step {desc['name']} calls custom op "
                                f"{desc['op']}, whose results are not Tensors; an "
                                "artifact can call custom ops that return Tensors")
        if any(st < 0 for spec in results for st in spec["strides"]):
            raise LoweringError(f"ember.aot: custom op {desc['op']}'s result has negative "
                                "strides")
        outs = self._host_step(desc, results)
        self.slots[desc["outputs"][0]] = tuple(outs) if desc.get("tuple") else outs[0]
        self.host_steps[-1]["tuple"] = bool(desc.get("tuple"))

    def _quantized(self, desc: dict) -> None:
        """An int8 step of a converted model (quantize, qgemm, ...): host code on its
        operands where they live; each result (an integer array for a quantized value)
        gets an arena buffer of the step's shape, strides and dtype (the strides native
        kernels reading a float result were compiled for; a quantized value's are eager
        mode's layout, compiler/aot_quantized.py)."""
        results = desc.get("results")
        if not results or len(results) != len(desc["outputs"]):
            raise LoweringError(f"ember.aot: step {desc['name']} ({desc.get('op')}) has no "
                                "tensor result the artifact can hold")
        if any(st < 0 for spec in results for st in spec["strides"]):
            raise LoweringError(f"ember.aot: step {desc['name']} ({desc.get('op')}): its "
                                "result has negative strides")
        for slot, value in zip(desc["outputs"], self._host_step(desc, results)):
            self.slots[slot] = value

    def _host_step(self, desc: dict, results: list) -> list:
        """A segment break: the step runs on the host between two native segments, on
        views of its operands where they live; each result (shape, strides, dtype)
        gets a buffer of its own in the arena, which the runtime copies it into."""
        ins = [self._input(desc, i) for i in range(len(desc["inputs"]))]
        outs = [self._scratch_persistent(spec["shape"], spec["dtype"], spec["strides"])
                for spec in results]
        self.host_steps.append({"step": self.step, "kind": desc["kind"],
                                "call": len(self.calls), "inputs": ins, "outputs": outs,
                                "tuple": False})
        return outs

    def _item(self, desc: dict) -> None:
        """One result of a custom op returning a tuple."""
        results = self.slots[desc["inputs"][0]]
        if not isinstance(results, tuple):
            raise LoweringError(f"ember.aot: step {desc['name']} takes an item of a value "
                                "that is not a custom op's tuple of results")
        self.slots[desc["outputs"][0]] = results[desc["index"]]

    def _scratch_persistent(self, shape, dtype, strides=None) -> Value:
        """A buffer of its own for a value later steps read (after the memory plan's)."""
        strides = _contiguous(shape) if strides is None else list(strides)
        nbytes = _up(max(1, _extent(shape, strides)) * np.dtype(dtype).itemsize)
        value = Value("arena", self.scratch_offset, shape, strides, dtype)
        self.scratch_offset += nbytes
        return value

    def _gemm(self, desc: dict) -> None:
        """linear / 2-D matmul / mm (codegen/extern.py's _linear, _matmul, _mm)."""
        x, w = self._input(desc, 0), self._input(desc, 1)
        out = self._output(desc)
        n_in = len(desc["inputs"])
        bias = self._input(desc, 2) if desc["has_bias"] and n_in > 2 else None
        a2 = x if x.ndim == 2 else merge_leading(x, 1)
        if a2 is None:
            a2 = merge_leading(self._contiguous_copy(x), 1)
        out2 = out if out.ndim == 2 else merge_leading(out, 1)
        target = out2 if out2 is not None else self._scratch(
            [math.prod(out.shape[:-1]), out.shape[-1]],
            _contiguous([math.prod(out.shape[:-1]), out.shape[-1]]))
        if bias is not None:
            self._copy(target, bias)
        packed = desc.get("packed")
        if packed is not None:
            b_ptr, rsb, csb = self.weight_bases[packed], 0, 0
        else:
            b = w.view(w.shape[::-1], w.strides[::-1]) if desc["transpose_b"] else w
            b_ptr, rsb, csb = b.ptr, b.strides[0], b.strides[1]
        m, k = a2.shape
        n = target.shape[1]
        if k == 0 or m * n == 0:
            raise LoweringError(f"ember.aot: step {desc['name']} is an empty product "
                                f"({m}x{k} @ {k}x{n}); not supported in an artifact")
        self._gemm_call(desc, m, n, k, a2.ptr, a2.strides, b_ptr, (rsb, csb), target.ptr,
                        target.strides[0], int(bias is not None), packed is not None)
        if out2 is None:
            self._copy(out, target.view(out.shape, _contiguous(out.shape)))

    def _gemm_call(self, desc, m, n, k, a_ptr, a_strides, b_ptr, b_strides, c_ptr, ldc,
                   accumulate, packed: bool) -> None:
        """gemm.py's _run: rows when m >= mr * threads or m >= n, else columns."""
        mr, nr, ws_floats = desc["mr"], desc["nr"], desc["workspace_floats"]
        problems = desc.setdefault("problems", [])      # (m, n, k) for `ember tune`
        if [m, n, k] not in problems:
            problems.append([m, n, k])
        args = [m, n, k, a_ptr, a_strides[0], a_strides[1], b_ptr, b_strides[0], b_strides[1],
                c_ptr, ldc, accumulate, self._workspace(ws_floats), ws_floats,
                b_ptr if packed else None]
        if m >= n or m * n * k < PARALLEL_GEMM_MACS:
            self._call(desc["rows"], "gemm", args, extent=m, align=mr,
                       parallel=m * n * k >= PARALLEL_GEMM_MACS)
            return
        most = m // mr          # rows split while threads <= m // mr
        self._call(desc["rows"], "gemm", args, extent=m, align=mr, parallel=True,
                   when=[("nt_le", most)])
        self._call(desc["cols"], "gemm", args, extent=n, align=nr, parallel=True,
                   when=[("nt_gt", most)])

    def _bgemm(self, desc: dict) -> None:
        """matmul with batch dims (extern._batched_gemm, gemm.gemm_batched)."""
        x, w = self._input(desc, 0), self._input(desc, 1)
        out = self._output(desc)
        if w.ndim == 2:
            rows = merge_leading(out, 1)
            if rows is not None:
                x2 = merge_leading(x, 1) or merge_leading(self._contiguous_copy(x), 1)
                self._plain_gemm(desc, x2, w, rows)
                return
        batch = out.shape[:-2]
        xb = self._batched_operand(x, batch)
        wb = self._batched_operand(w, batch)
        ob = merge_leading(out, 2)
        if ob is None:
            for index in np.ndindex(*batch):
                self._plain_gemm(desc, _index(_broadcast(x, batch), index),
                                 _index(_broadcast(w, batch), index), _index(out, index))
            return
        self._batched(desc, xb, wb, ob)

    def _batched_operand(self, v: Value, batch) -> Value:
        b = _broadcast(v, batch)
        merged = merge_leading(b, 2)
        if merged is None:         # numpy's reshape copies here
            merged = merge_leading(self._contiguous_copy(b), 2)
        return merged

    def _batched(self, desc, a: Value, b: Value, out: Value) -> None:
        count = out.shape[0]
        m, k = a.shape[1:] if count else (0, 0)
        n = b.shape[2] if count else 0
        can_batch = m * n * k <= SMALL_BATCH_WORK and k != 0 and out.strides[2] == 1 and \
            not out.overlaps(a) and not out.overlaps(b)
        mark = len(self.calls)
        for i in range(count):
            self._plain_gemm(desc, _index(a, (i,)), _index(b, (i,)), _index(out, (i,)))
        if not can_batch:
            return
        # small and count >= threads: whole products split over the batch
        for call in self.calls[mark:]:
            call["when"] = (call["when"] or []) + [("nt_gt", count)]
        ws = desc["workspace_floats"]
        self._call(desc["batch"], "gemm_batch", [
            m, n, k, a.ptr, a.strides[1], a.strides[2], b.ptr, b.strides[1], b.strides[2],
            out.ptr, out.strides[1], 0, self._workspace(ws), ws, None,
            a.strides[0], b.strides[0], out.strides[0]],
            extent=count, align=1, parallel=True, when=[("nt_le", count)])

    def _plain_gemm(self, desc, a: Value, b: Value, out: Value) -> None:
        """gemm.gemm for unpacked operands (beta 0)."""
        m, k = a.shape
        n = b.shape[1]
        if out.strides[1] != 1 or out.overlaps(a) or out.overlaps(b):
            tmp = self._scratch([m, n], [n, 1])
            self._plain_gemm(desc, a, b, tmp)
            self._copy(out, tmp)
            return
        if k == 0 or m * n == 0:
            raise LoweringError(f"ember.aot: step {desc['name']} is an empty product; "
                                "not supported in an artifact")
        self._gemm_call(desc, m, n, k, a.ptr, a.strides, b.ptr, b.strides, out.ptr,
                        out.strides[0], 0, False)

    def _single_channel_conv(self, d: dict, x: Value, w_: int, h: int, xs: list,
                             out: Value, bias_ptr, residual) -> None:
        """A one-channel stride-1 conv over its padded copy (x, (N, Hp, Wp, 1)): conv_c1,
        LANES outputs of a channel row per vector, split over output rows."""
        n, oh, ow = out.shape[0], out.shape[2], out.shape[3]
        (kh, kw), os_ = d["kernel"], out.strides
        res = out if residual is None else residual
        dims = [n * oh * ow, oh * ow, ow, 1, 1, 0, 0, 1, 1, h, w_, 1, xs[0], xs[2], xs[3],
                1, kh, kw, 1, kw, kh * kw, d["c_out"], os_[0], os_[1], os_[2], os_[3],
                int(d["relu"]), int(residual is not None)]
        d["problems"] = [[n * oh * ow, d["c_out"], kh * kw]]
        self._call(d["single_channel"], "conv",
                   [x.ptr, self.weight_bases[d["packed"]], out.ptr, bias_ptr, res.ptr,
                    self._zeros(d["max_kc"]), *dims], extent=n * oh, align=1,
                   parallel=n * oh * ow * d["c_out"] * kh * kw >= PARALLEL_GEMM_MACS)

    def _conv(self, desc: dict) -> None:
        """groups=1 conv2d + epilogue (llvm/implicit_conv.py's PreparedConv)."""
        d = desc
        x, w = self._input(d, 0), self._input(d, 1)
        out = self._output(d)
        rest = [self._input(d, i) for i in range(2, len(d["inputs"]))]
        residual = rest[-1] if d["residual"] else None
        packed = d.get("packed")
        if packed is None:
            raise LoweringError(f"ember.aot: step {d['name']} (conv2d) has weights computed "
                                "at run time; an artifact needs constant conv weights")
        if d["has_bias"]:
            bias = rest[0]
            if bias.strides != [1] and bias.size > 1:
                bias = self._contiguous_copy(bias)
            bias_ptr = bias.ptr
        else:
            bias_ptr = self._zeros(d["c_out"])
        n, c, h, w_ = x.shape
        (kh, kw), (sh, sw), (dh, dw) = d["kernel"], d["stride"], d["dilation"]
        k = kh * kw * c
        m = n * out.shape[2] * out.shape[3]
        # the residual in the output's own buffer (the memory planner's in-place
        # epilogue): read as is when all of K is one block (no partial sums stored
        # before the epilogue reads it), else copied first like any other overlap
        in_place = residual is not None and residual.ptr == out.ptr and \
            residual.strides == out.strides and \
            k_block(k, d["c_out"], d["nr"], d["kc"], d["nc"], d["max_kc"],
                    d["whole_k_floats"], m, d["panel_floats"]) >= k
        if residual is not None and not in_place and (residual.strides != out.strides or
                                                      residual.overlaps(out)):
            tmp = self._scratch(out.shape, out.strides)
            self._copy(tmp, residual)
            residual = tmp
        (top, bottom), (left, right) = d["padding"]
        oh, ow = out.shape[2:]
        if c == 0 or out.size == 0:
            raise LoweringError(f"ember.aot: step {d['name']} (conv2d) is empty; not "
                                "supported in an artifact")
        ph, pw = top, left
        xs = list(x.strides)
        if "wino_packed" in d and winograd.layout_applies((oh, ow), xs[1], out.strides[1]):
            self._winograd(d, x, out, bias_ptr, residual, ph, pw)
            return
        padded = any((top, bottom, left, right))
        direct = xs[1] == 1 and (c >= d["small_channels"] or not padded)
        if not direct:
            hp, wp = h + top + bottom, w_ + left + right
            dst = self._scratch([n, hp, wp, c], _contiguous([n, hp, wp, c]))
            self._call(d["pad"], "pad", [x.ptr, dst.ptr, n, c, h, w_, top, left, hp, wp,
                                         *xs], extent=n * hp, align=1,
                       parallel=n * hp * wp * c >= PARALLEL_KERNEL_WORK)
            x = dst
            ph, pw, padded = 0, 0, False
            h, w_ = hp, wp
            xs = [h * w_ * c, 1, w_ * c, c]
        if "single_channel" in d and xs[3] == 1 and \
                single_channel_fits(c, (sh, sw), (dh, dw), out.strides):
            self._single_channel_conv(d, x, w_, h, xs, out, bias_ptr, residual)
            return
        pool = self._pool_after(d, x, residual)
        rows_merge = xs[3] == c and dw == 1 and not padded
        segw, seglen = (1, kw * c) if rows_merge else (kw, c)
        nseg = kh if rows_merge else kh * kw
        kc = k_block(kh * kw * c, d["c_out"], d["nr"], d["kc"], d["nc"], d["max_kc"],
                     d["whole_k_floats"], m, d["panel_floats"])
        spb, chunk = (max(1, kc // seglen), seglen) if seglen <= kc else (1, kc)
        os_ = out.strides
        res = out if residual is None else residual
        m = n * oh * ow
        dims = [m, oh * ow, ow, sh, sw, ph, pw, dh, dw, h, w_, c, xs[0], xs[2], xs[3], segw,
                nseg, seglen, spb, chunk, kh * kw * c, d["c_out"], os_[0], os_[1], os_[2],
                os_[3], int(d["relu"]), int(residual is not None)]
        zeros = self._zeros(d["max_kc"])
        d["problems"] = [[m, d["c_out"], kh * kw * c]]   # its implicit GEMM, for `ember tune`
        if pool is not None:
            self._conv_pool(d, pool, dims, [x.ptr, self.weight_bases[packed], None, bias_ptr,
                                            res.ptr, zeros])
            return
        args = [x.ptr, self.weight_bases[packed], out.ptr, bias_ptr, res.ptr, zeros, *dims]
        parallel = m * d["c_out"] * kh * kw * c >= PARALLEL_GEMM_MACS
        if "cols" in d and columns_first(m, kh * kw * c, d["c_out"], d["nr"],
                                         d["panel_floats"], d["whole_k_floats"]):
            # few rows: panel by panel, as PreparedConv (the same K blocks)
            items, row_blocks, block_rows = column_items(m, d["c_out"], d["mr"], d["nr"])
            self._call(d["cols"], "conv_cols", args + [row_blocks, block_rows], extent=items,
                       align=1, parallel=parallel)
            return
        self._call(d["rows"], "conv", args, extent=m, align=d["mr"], parallel=parallel)


    def _winograd(self, d: dict, x: Value, out: Value, bias_ptr, residual, ph, pw) -> None:
        """A 3x3 stride-1 conv by Winograd F(4x4, 3x3) (llvm/winograd.py; PreparedConv
        makes the same choice): one call over the output's 4x4 tiles."""
        n, c, h, w_ = x.shape
        oh, ow = out.shape[2:]
        th, tw = winograd.tiles(oh, ow)
        xs, os_ = x.strides, out.strides
        res = out if residual is None else residual
        floats = d["wino_workspace_floats"]
        u_stride = -(-d["c_out"] // d["wino_nr"]) * c * d["wino_nr"]    # floats per (xi, nu)
        dims = [floats, h, w_, c, d["c_out"], oh, ow, th, tw, ph, pw, xs[0], xs[2], xs[3],
                os_[0], os_[2], os_[3], int(d["relu"]), int(residual is not None),
                d["wino_chunk"], u_stride, d["nr"], n * th * tw,
                d["c_out"] // winograd.k_parts(c, d["c_out"], d["wino_nr"])]
        d["problems"] = [[n * oh * ow, d["c_out"], 9 * c]]
        self._call(d["wino"], "wino", [x.ptr, self.weight_bases[d["wino_packed"]], out.ptr,
                                       bias_ptr, res.ptr, self._workspace(floats),
                                       self.weight_bases[d["packed"]], *dims],
                   extent=winograd.items(dims), align=1,
                   parallel=n * oh * ow * d["c_out"] * 9 * c >= PARALLEL_GEMM_MACS)

    def _pool_after(self, d: dict, x: Value, residual) -> dict | None:
        """The next step, when it is a max pool (a kernel step with `max_pool`) of this
        conv's output that nothing else reads, which the conv can pool row by row
        (_conv_pool) instead of storing its whole output; else None."""
        if not POOL_IN_CONV or self.step + 1 >= len(self.table) or "conv_pool" not in d \
                or residual is not None:
            return None
        nxt, slot = self.table[self.step + 1], d["outputs"][0]
        if nxt.get("kind") != "kernel" or "max_pool" not in nxt or nxt["inputs"] != [slot] \
                or slot in self.output_slots or d["c_out"] % 16:
            return None
        if any(slot in desc.get("inputs", ()) for i, desc in enumerate(self.table)
               if i != self.step + 1):
            return None
        spec = nxt["out_specs"][0]
        if not spec["persistent"] or spec["strides"][1] != 1:
            return None
        buf = self.persistent[nxt["outputs"][0]]
        out = Value("arena", self.buffers_offset + buf["offset"], spec["shape"],
                    spec["strides"], spec["dtype"])
        if out.overlaps(x):            # pooled rows are written while the conv reads x
            return None
        return nxt

    def _conv_pool(self, d: dict, pool: dict, dims: list, pointers: list) -> None:
        """conv + max_pool2d as one call (llvm/implicit_conv.py: conv_pool_rows): each
        thread computes the conv rows its pooled rows need into a ring of kh rows in its
        workspace and pools them from there; the conv's own output is never written.
        The same bits as the two steps (the same conv sums, an exact max)."""
        self.absorbed.add(self.step + 1)
        out = self._output(pool)
        n, c_out, ow = dims[0] // dims[1], d["c_out"], dims[2]
        (pkh, pkw), (psh, psw), (pph, ppw) = (pool["max_pool"][k] for k in
                                              ("kernel", "stride", "padding"))
        ring_floats = (pkh + 1) * ow * c_out        # kh conv rows and their maximum
        ring_dims = list(dims)
        ring_dims[22:26] = [0, 1, 0, c_out]       # osn, osc, osh, osw: row ow at ow * C
        poh, pow_ = out.shape[2:]
        pointers[2] = out.ptr
        self._call(d["conv_pool"], "conv_pool", pointers + ring_dims + [
            self._workspace(ring_floats), ring_floats, poh, pow_, pkh, pkw, psh, psw, pph, ppw,
            out.strides[0], out.strides[2], out.strides[3]], extent=n * poh, align=1,
            parallel=dims[0] * c_out * dims[20] >= PARALLEL_GEMM_MACS)


def measure_view(fn, x: Value, name: str) -> dict:
    """A view step's (offset, shape, strides) in elements: `fn` applied to an array of
    x's geometry over untouched memory (numpy only computes the view's geometry)."""
    if any(st < 0 for st in x.strides):
        raise LoweringError(f"ember.aot: view step {name} reads negative strides")
    extent = max(1, _extent(x.shape, x.strides))
    raw = np.empty(extent, x.dtype)
    fake = np.lib.stride_tricks.as_strided(raw, x.shape, [s * x.dtype.itemsize
                                                          for s in x.strides])
    y = fn(fake)
    if not isinstance(y, np.ndarray) or y.dtype != x.dtype or \
            (y.size and not np.shares_memory(y, raw)):
        raise LoweringError(f"ember.aot: view step {name} did not produce a view")
    offset = y.ctypes.data - raw.ctypes.data
    if offset % x.dtype.itemsize or any(s % x.dtype.itemsize for s in y.strides) or \
            any(s < 0 for s in y.strides):
        raise LoweringError(f"ember.aot: view step {name} is not element-aligned")
    return {"offset": offset // x.dtype.itemsize, "shape": list(y.shape),
            "strides": [s // x.dtype.itemsize for s in y.strides]}


def is_dense(shape, strides) -> bool:
    """Strides laying `shape` out densely in some dimension order (no gaps, overlaps or
    negative strides): a buffer of exactly its size."""
    if len(strides) != len(shape) or any(st < 0 for st in strides):
        return False
    expected = 1
    for size, stride in sorted(zip(shape, strides), key=lambda p: (p[1], p[0])):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def _broadcast(v: Value, batch) -> Value:
    """v broadcast to batch + v.shape[-2:] (stride 0 on new or size-1 dims)."""
    tail = v.shape[-2:]
    lead, lead_strides = v.shape[:-2], v.strides[:-2]
    pad = len(batch) - len(lead)
    strides = [0] * pad + [st if s == b else 0 for s, st, b in
                           zip(lead, lead_strides, batch[pad:])]
    return v.view(list(batch) + tail, strides + v.strides[-2:])


def _index(v: Value, index) -> Value:
    elements = sum(i * st for i, st in zip(index, v.strides))
    return v.view(v.shape[len(index):], v.strides[len(index):], elements)


def _fixed(value: Value, layout: dict) -> Value:
    bases = {("scratch",): layout["scratch_offset"], ("zeros",): layout["zeros_offset"]}
    if value.base in bases:
        return Value("arena", bases[value.base] + value.offset, value.shape, value.strides,
                     value.dtype)
    return value
