"""ember.aot: an ExportedProgram -> one versioned artifact file, and loading it back.

    ep = ember.export(model, (x,))
    ember.aot.compile_and_package(ep, "model.ember")        # target="cpu"
    run = ember.aot.load_package("model.ember")
    (y,) = run(x)                                          # numpy or ember Tensors in

compile_and_package builds the inference plan exactly as ember.compile does
(compiler/compile.py: the pipeline, then PlanBuilder) with a backend that also
describes each step it makes, then writes what the lite runtime (runtime/lite.py)
needs to run the plan without the compiler:

  manifest.json        format name and version, ember version, target (ISA, LLVM CPU
                       and features, the CPU flags the code needs), inputs/outputs
                       (names, dtypes, shapes), SHA-256 of every other member
  graph.ir             the graph after the pipeline, as textual IR (for reading)
  weights.safetensors  the plan's constants (folded weights), "c<slot>"
  memory_plan.json     one arena: each persistent buffer's slot, offset and geometry
  plan.json            the step table: kernel / gemm / conv / view steps over slots
  model.so             every kernel's machine code (LLVM, object files linked with
                       the system `cc -shared`); symbols are prefixed per module

Steps ember.compile would run eagerly (ops with no native kernel, grouped convs,
batched matmuls) are refused with a LoweringError naming the op: the artifact has
no Python fallback. Custom ops (ember.library.custom_op) are the exception: recorded
by name, called by the loading process between native segments (docs/aot.md).
Converted (int8) graphs package through compiler/aot_quantized.py: their quantized
steps are host steps too (runtime/lite_int8.py's drivers between native segments).
An exported program with a dynamic dimension (ember.export's dynamic_shapes) of a
bounded range packages one straight-line program per size (`_package_dynamic`), the
runtime picking one by the input's size. target="cuda" writes cubins and a launch
table instead of the shared library (compiler/aot_cuda.py).
"""
from __future__ import annotations

import hashlib
import math
import json
import os
import shutil
import subprocess
import tempfile
import time
import zipfile

import numpy as np

from ..codegen.extern import _bound, _pair, conv_epilogue_kernel, extern_kernel, \
    tensor_inputs
from ..codegen.llvm import implicit_conv as conv_impl
from ..codegen.llvm import winograd
from ..codegen.llvm.emit import KernelEmitter, compile_kernel
from ..codegen.llvm.gemm import config as gemm_config, gemm_kernel, gemm_module, panels_of, \
    tile_for
from ..codegen.native_entry import RUNTIME_C, EntryEmitter
from ..codegen.llvm.conv import padding_pairs
from ..codegen.llvm import cache
from ..codegen.llvm.jit import optimize
from ..codegen.llvm.target import _REQUIRED, host_isa, target_for
from .compile import CompileStats, CpuBackend, PlanBuilder, _with_fusion, cpu_pass_options
from ..frontend.tensor import Tensor
from ..ir.errors import ArtifactError, LoweringError
from ..ir.graph import Graph, Node
from ..ir.meta import TensorMeta
from ..ir.ops.pooling import PoolParams
from ..ir.printer import print_graph
from ..ir.quantized import QuantizedArray
from ..passes import PassContext, run_passes
from ..runtime import lite
from .aot_quantized import fuse_clamps, quantized_step, _quantized_qparams, _quantized_weights
from .export import ExportedProgram, custom_op_names
from .native_program import PARALLEL_KERNEL_WORK, ProgramBuilder
from .plan_probe import np_dtype_name, run_with_probes


class _Described:
    """A plan step's callable (so the plan still runs in-process) and its description;
    `panels`: a GEMM's or conv's constant weights already packed by its extern."""

    def __init__(self, fn, desc: dict, modules: list | None = None):
        self.fn, self.desc, self.modules = fn, desc, modules or []
        self.panels = None

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


class PackagingBackend(CpuBackend):
    """CpuBackend whose kernels and externs carry what the artifact needs of them;
    eager fallbacks are marked so packaging can refuse them by name."""

    def __init__(self, in_process: bool = False):
        """in_process: describe steps for an entry point compiled into this process
        (symbols name the loaded kernels' addresses) instead of for an artifact (LLVM
        module texts to compile into its shared library)."""
        self.isa = host_isa()
        self.in_process = in_process

    def kernel(self, lowered):
        compiled = compile_kernel(lowered.kernel)
        parallel = compiled.work >= PARALLEL_KERNEL_WORK and compiled.split_extent >= 2
        desc = {"kind": "kernel", "symbol": lowered.kernel.name,
                "split_extent": compiled.split_extent, "split_align": compiled.split_align,
                "parallel": bool(parallel)}
        pool = _lone_max_pool(lowered)
        if pool is not None:
            desc["max_pool"] = pool
        if self.in_process:
            desc["symbol"] = loaded_symbol(compiled.fn)
            return _Described(compiled, desc)
        module = str(KernelEmitter(lowered.kernel).build())
        return _Described(compiled, desc, [("kernel", module, (lowered.kernel.name,))])

    def extern(self, node: Node, constant=None):
        fn = extern_kernel(node, constant)
        if fn is None:
            return None
        name = node.target.name
        if getattr(fn, "index_desc", None) is not None:
            return self._index(fn)
        if name in ("linear", "matmul", "mm"):
            desc = self._gemm(node, constant)
            if desc is not None:
                return self._with_panels(_Described(fn, desc))
        elif name == "conv2d" and _bound(node)["groups"] == 1 and \
                len(node.meta["val"].shape) == 4:
            return self._with_panels(_Described(fn, self._conv(_bound(node), relu=False,
                                                               residual=False)))
        return _Described(fn, {"kind": "unsupported", "op": name})

    def _index(self, fn) -> "_Described":
        """A gather/scatter kernel (codegen/index_plan.py): its symbol, and the call's
        description the native program computes the geometry from."""
        from ..codegen.index_plan import kernel_spec
        from ..codegen.llvm.index_ops import index_kernel, index_module
        desc = {k: v for k, v in fn.index_desc.items() if k != "name"}
        spec = kernel_spec(desc)
        desc["kind"] = "index"
        if self.in_process:
            return _Described(fn, {**desc, "symbol": loaded_symbol(index_kernel(spec))})
        return _Described(fn, {**desc, "symbol": spec.name,
                               "_module": ("index", str(index_module(spec)), (spec.name,))})

    def _with_panels(self, described: "_Described") -> "_Described":
        """In process: the weights the extern already packed (its closure's PackedB or
        PreparedConv), so the entry point reuses them instead of packing a second copy."""
        if not self.in_process:
            return described
        fn = described.fn
        cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ())) \
            if hasattr(fn, "__code__") else {}
        held = cells.get("packed") or cells.get("prepared")
        held = held.cell_contents if held is not None else None
        panels = getattr(held, "panels", None)
        panels = getattr(held, "wp", None) if panels is None else panels
        if isinstance(panels, np.ndarray) and panels.ndim == 3 and \
                panels.shape[2] == described.desc["nr"]:
            described.panels = panels
        wino = held.winograd() if "wino" in described.desc and hasattr(held, "winograd") \
            else None
        if wino is not None:
            described.wino_panels = wino.u
        return described

    def fused_extern(self, graph: Graph, constant=None):
        found = conv_epilogue_kernel(graph, constant)
        if found is None:
            return None
        fn, inputs = found
        ops = [n for n in graph.nodes if n.op.value == "call_function"]
        names = [n.target.name for n in ops]
        desc = self._conv(_bound(ops[0]), relu="relu" in names, residual="add" in names)
        return self._with_panels(_Described(fn, desc)), inputs

    def eager(self, node: Node):
        what = getattr(node.target, "name", str(node.target))
        # int8 steps: host steps of an artifact (in process, the Python loop runs them)
        quantized = None if self.in_process else quantized_step(node)
        if quantized is not None:
            if quantized["kind"] != "unsupported":
                quantized["results"] = _custom_op_results(node)    # its integer array
            return _Described(super().eager(node), quantized)
        if getattr(node.target, "custom", None) is not None:
            # a custom op: the artifact names it; the loading process must register it
            return _Described(super().eager(node), {
                "kind": "custom_op", "op": what, "args": _custom_op_args(node),
                "results": _custom_op_results(node),
                "tuple": isinstance(node.meta.get("val"), (tuple, list))})
        if what == "embedding" and len(tensor_inputs(node)) == 2:
            # rows of the weight: the lite runtime's np.take (a copy, as eager's is)
            return _Described(super().eager(node), {"kind": "embedding", "op": what})
        if what == "full" and not tensor_inputs(node):
            fill = _fill_desc(node)
            if fill is not None:     # a large zeros(N, F) the fold pass left: a fill
                return _Described(super().eager(node), fill)
        return _Described(super().eager(node), {"kind": "unsupported", "op": what})

    def view(self, op, rest: tuple):
        return _Described(super().view(op, rest), {"kind": "view", "op": op.name})

    # -- externs --------------------------------------------------------------------------
    def _gemm(self, node: Node, constant) -> dict | None:
        ins = tensor_inputs(node)
        a, b = (n.meta["val"] for n in ins[:2])
        name = node.target.name
        if name == "matmul" and len(b.shape) > 2 and len(a.shape) >= 2:
            return self._batched_gemm(node.meta["val"].shape[-1])
        if len(b.shape) != 2 or len(a.shape) < 2:
            return None
        transpose = name == "linear"
        n = b.shape[0] if transpose else b.shape[1]
        mr, nr = tile_for(self.isa, n)
        cfg = gemm_config(self.isa, mr, nr)
        frozen = constant(ins[1]) if constant is not None and name != "mm" else None
        prepack = frozen is not None and frozen.ndim == 2 and frozen.dtype == np.float32
        return {"kind": "gemm", "op": name, "transpose_b": transpose, "mr": mr, "nr": nr,
                "workspace_floats": cfg.workspace_floats, "prepack": bool(prepack),
                "has_bias": name == "linear" and isinstance(_bound(node)["bias"], Node),
                **self._gemm_symbols(cfg, ("rows", "cols"))}

    def _gemm_symbols(self, cfg, entries) -> dict:
        if self.in_process:
            kernel = gemm_kernel(self.isa, cfg.mr, cfg.nr)
            return {e: loaded_symbol(getattr(kernel, e)) for e in entries}
        return {"_module": ("gemm", str(gemm_module(cfg)), tuple(f"gemm_{e}" for e in entries)),
                **{e: f"gemm_{e}" for e in entries}}

    def _batched_gemm(self, n: int) -> dict:
        """matmul with batch dims (extern._batched_gemm -> gemm_batched)."""
        mr, nr = tile_for(self.isa, n)
        cfg = gemm_config(self.isa, mr, nr)
        return {"kind": "bgemm", "op": "matmul", "mr": mr, "nr": nr,
                "workspace_floats": cfg.workspace_floats,
                **self._gemm_symbols(cfg, ("rows", "cols", "batch"))}

    def _conv(self, args: dict, relu: bool, residual: bool) -> dict:
        w = args["weight"].meta["val"]
        kernel = tuple(w.shape[2:])
        stride, dilation = _pair(args["stride"]), _pair(args["dilation"])
        pads = padding_pairs(args["padding"], kernel, dilation, stride)
        mr, nr = conv_impl.conv_tile(self.isa, w.shape[1], w.shape[0])
        cfg = gemm_config(self.isa, mr, nr)
        return {"kind": "conv", "kernel": list(kernel), "stride": list(stride),
                "dilation": list(dilation), "padding": [list(p) for p in pads],
                "has_bias": isinstance(args["bias"], Node), "relu": relu,
                "residual": residual, "c_out": int(w.shape[0]), "mr": mr, "nr": nr,
                "kc": conv_impl.KC, "nc": conv_impl.NC, "max_kc": conv_impl.MAX_KC,
                "whole_k_floats": conv_impl.WHOLE_K_FLOATS,
                "panel_floats": conv_impl.PANEL_FLOATS,
                "small_channels": conv_impl.SMALL_CHANNELS, **self._conv_symbols(cfg),
                **self._winograd(kernel, stride, dilation, int(w.shape[1]), int(w.shape[0]))}

    def _winograd(self, kernel, stride, dilation, c_in: int, c_out: int) -> dict:
        """A conv whose geometry and channels Winograd takes (llvm/winograd.py; the
        native program checks the layouts): its GEMM tile and `wino_tiles` symbol."""
        if not winograd.applies(self.isa, kernel, stride, dilation, c_in, c_out,
                                (winograd.OUT, winograd.OUT), 1, 1):
            return {}
        cfg = winograd.wino_config(self.isa, c_out)
        desc = {"wino_mr": cfg.mr, "wino_nr": cfg.nr,
                "wino_workspace_floats": winograd.workspace_floats(cfg, c_in, c_out),
                "wino_chunk": winograd.chunk_tiles(c_in, c_out, cfg.mr)}
        if self.in_process:
            return {**desc, "wino": loaded_symbol(winograd.wino_kernel(self.isa, cfg.mr,
                                                                        cfg.nr)[1])}
        return {**desc, "wino": "wino_tiles",
                "_wino_module": ("wino", str(winograd.wino_module(cfg)), ("wino_tiles",))}

    def _conv_symbols(self, cfg) -> dict:
        if self.in_process:
            kernels = conv_impl.conv_kernels(self.isa, cfg.mr, cfg.nr)
            return {"rows": loaded_symbol(kernels.rows), "pad": loaded_symbol(kernels.pad),
                    "single_channel": loaded_symbol(kernels.single_channel),
                    "conv_pool": loaded_symbol(kernels.conv_pool),
                    "cols": loaded_symbol(kernels.cols)}
        return {"_module": ("conv", str(conv_impl.conv_module(cfg)),
                            ("conv_rows", "pad_nhwc", "conv_c1", "conv_pool_rows", "conv_cols")),
                "rows": "conv_rows", "pad": "pad_nhwc", "single_channel": "conv_c1",
                "conv_pool": "conv_pool_rows", "cols": "conv_cols"}


def _lone_max_pool(lowered) -> dict | None:
    """A kernel that is one float32 max_pool2d (dilation 1) of its one input: its
    window, which lets the native program pool a conv's rows as the conv computes them
    (compiler/native_program.py: _conv_pool)."""
    if len(lowered.inputs) != 1 or len(lowered.outputs) != 1:
        return None
    node = lowered.outputs[0]
    if getattr(node, "op", None) is None or node.op.value != "call_function" or \
            getattr(node.target, "name", None) != "max_pool2d" or \
            node.args[0] is not lowered.inputs[0]:
        return None
    x, out = node.args[0].meta.get("val"), node.meta.get("val")
    if not isinstance(x, TensorMeta) or len(x.shape) != 4 or x.dtype.name != "float32":
        return None
    args = _bound(node)
    p = PoolParams(x, args["kernel_size"], args["stride"], args["padding"],
                   args["dilation"], args["ceil_mode"])
    if p.d != (1, 1) or tuple(out.shape[2:]) != p.out:
        return None
    return {"kernel": list(p.k), "stride": list(p.s), "padding": list(p.p)}


# --- packaging ---------------------------------------------------------------------------------
def compile_and_package(exported: ExportedProgram, package_path, target: str = "cpu",
                        options: dict | None = None, pipeline: str = "default-inference"):
    """Compile `exported` for `target` and write one artifact to `package_path`;
    returns the path. See the module doc for what the file holds."""
    if target not in ("cpu", "cuda"):
        raise LoweringError(f"ember.aot.compile_and_package: target {target!r} is not "
                            "supported ('cpu' or 'cuda')")
    if isinstance(exported, dict):
        return _package_several(exported, package_path, target, options, pipeline)
    if not isinstance(exported, ExportedProgram):
        raise TypeError("ember.aot.compile_and_package: expected an ExportedProgram from "
                        f"ember.export, got {type(exported).__name__}")
    if exported.value_checks or exported.excluded_sizes:
        raise LoweringError("ember.aot.compile_and_package: the exported program checks "
                            "values read with .item() (torch._check) or sizes its code "
                            "compared unequal to a constant when it runs; artifacts do not "
                            "carry those checks yet")
    if exported.dim_exprs and target == "cuda":
        raise LoweringError(
            "ember.aot.compile_and_package: the exported program has "
            f"{len(exported.range_constraints)} independent dynamic sizes "
            f"({', '.join(exported.range_constraints)}); a CUDA artifact takes one dynamic "
            "size shared by its dynamic dims: export with one Dim")
    if target == "cuda":                  # cubins and a launch table (compiler/aot_cuda.py)
        from .aot_cuda import package_cuda
        return package_cuda(exported, package_path, options, pipeline)
    exported, state = _functional_program(exported)
    options = dict(options or {})
    wino_mode = options.pop(WINOGRAD_OPTION, "stored")
    if wino_mode not in ("stored", "derived"):
        raise LoweringError(f"ember.aot.compile_and_package: options['{WINOGRAD_OPTION}'] "
                            f"must be 'stored' or 'derived', got {wino_mode!r}")
    backend = PackagingBackend()
    if exported.symbolic_graph is not None and not exported.dim_exprs:
        return _package_dynamic(exported, package_path, backend, options, pipeline,
                                wino_mode, state)
    one = _build(exported, exported.graph, None, backend, options, pipeline, ([], {}))
    one.memory.update(layout=one.layout)
    several = bool(exported.dim_exprs)
    members = {
        "graph.ir": print_graph(one.graph).encode(),
        **_weight_members(one.constants, one.table, wino_mode),
        "memory_plan.json": json.dumps(one.memory, indent=1).encode(),
        "plan.json": json.dumps({**one.slots(), "steps": one.table,
                                 "entry": one.entry_json()}, indent=1).encode(),
        "model.so": _shared_library(one.modules, backend.isa, one.entry_ir),
    }
    if several:
        # several dynamic sizes: a native program at the example sizes, the exported
        # program for the others (ember.aot.load_package compiles those)
        members[FALLBACK_MEMBER] = _exported_bytes(exported)
    manifest = _manifest(exported, backend.isa, members, state)
    if several:
        manifest["dynamic_sizes"] = {str(k): repr(v) for k, v in
                                     exported.range_constraints.items()}
    _require_int8_features(manifest, one.table)
    _write_zip(package_path, manifest, members)
    return str(package_path)


def _package_several(programs: dict, package_path, target, options, pipeline) -> str:
    """Several models in one file (AOTInductor's package of several models): each one's
    artifact members under "<name>/", and package.json listing the names;
    load_package(path, model_name=name) loads one."""
    if not programs or not all(isinstance(k, str) and k and "/" not in k and
                               isinstance(v, ExportedProgram) for k, v in programs.items()):
        raise TypeError("ember.aot.compile_and_package: a package of several models takes "
                        "a dict {name: ExportedProgram} with names without '/'")
    tmp = tempfile.mkdtemp(prefix="ember-package-")
    try:
        parts = {}
        for name, program in programs.items():
            part = os.path.join(tmp, f"{name}.ember")
            compile_and_package(program, part, target, options, pipeline)
            parts[name] = part
        _merge_artifacts(package_path, parts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(package_path)


def _merge_artifacts(path, parts: dict) -> None:
    path = os.fspath(path)
    out = f"{path}.tmp{os.getpid()}"
    try:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            z.writestr(lite.PACKAGE_INDEX, json.dumps({"models": list(parts)}))
            for name, part in parts.items():
                with zipfile.ZipFile(part) as source:
                    for info in source.infolist():
                        entry = _aligned_entry(f"{name}/{info.filename}", z.fp.tell())
                        z.writestr(entry, source.read(info))
        os.replace(out, path)
    except OSError as err:
        if os.path.exists(out):
            os.unlink(out)
        raise ArtifactError(f"ember.aot: cannot write {path}: {err}") from None


def _require_int8_features(manifest: dict, table: list) -> None:
    """The CPU flags the int8 GEMM the artifact links needs (VNNI, AMX) join the
    manifest's required features."""
    configs = {d["config"] for d in table if d["kind"] in ("qgemm", "qgemm_dynamic")}
    extra = {"vnni": ["avx512_vnni"], "amx": ["amx_int8", "amx_tile"]}
    need = manifest["target"]["required_features"]
    for name in sorted(configs):
        need += [f for f in extra.get(name.split("_")[0], []) if f not in need]


class _Built:
    """One graph's plan as a native program (see _build)."""

    def slots(self) -> dict:
        return {"n_slots": self.plan.n_slots, "input_slots": self.plan.input_slots,
                "output_slots": _flat_outputs(self.plan.output_slots)}

    def entry_json(self) -> dict:
        return _entry_json(self.emitter, self.builder, self.calls, self.layout, self.outputs)


def _build(exported, source_graph, shapes, backend, options, pipeline, shared,
           prefix: str = "ember", emit: bool = True) -> _Built:
    """The pipeline, plan and native program of `source_graph` (the exported graph, or
    it at one size of a dynamic dimension: input `shapes`); LLVM modules are collected
    in `shared` (modules, index by text), so equal kernels of several plans are one."""
    b = _Built()
    b.graph = _copy_graph(source_graph)
    _pieces_as_views(b.graph)
    _conv1d_as_conv2d(b.graph)
    _inference_forms(b.graph)
    _copy_before_reshape(b.graph)
    ctx = PassContext(constants=dict(exported.tensors),
                      options=cpu_pass_options(dict(options or {})), inference=True)
    run_passes(b.graph, _with_fusion(pipeline), ctx)
    fuse_clamps(b.graph)        # an int8 conv's clamp into its epilogue (aot_quantized.py)
    b.plan = PlanBuilder(b.graph, ctx.constants, CompileStats(), backend,
                         freeze_constants=True).build()
    views = _view_geometry(b.plan, exported, shapes)
    layouts = {}            # quantized results' strides as eager lays them out
    qparams = _quantized_qparams(b.plan, exported, shapes, layouts)
    b.table, b.modules = _step_table(b.plan, views, shared)
    quantized_weights = _quantized_weights(b.plan, b.table, qparams, layouts)
    b.constants = _weights(b.plan, b.table)
    b.constants.update(quantized_weights)       # int8 weights, packed ("pq<step>...")
    b.memory = _memory_plan(b.plan)
    shapes = shapes or [s.shape for s in exported.user_inputs]
    b.inputs = [{"name": s.name, "dtype": np.dtype(np_dtype_name(s.dtype)).str,
                 "shape": list(shape)} for s, shape in zip(exported.user_inputs, shapes)]
    b.prefix = prefix
    if emit:
        _emit(b, b.constants)
    return b


def _emit(b: _Built, weights: dict, order: list | None = None) -> None:
    """`b`'s native entry point, taking `weights` (name -> array) as the extra inputs
    after the user's, in their order; `order`: the names the artifact stores them by,
    when they differ from the plan's (per-size constants of a dynamic artifact)."""
    # weights stay in the file: the loader passes pointers into its memory map
    b.builder = ProgramBuilder(b.table, weights, b.memory, b.plan.input_slots, b.inputs,
                               b.plan.n_slots, external_weights=True)
    b.calls, b.layout, b.outputs = b.builder.build(_flat_outputs(b.plan.output_slots))
    if order is not None:
        b.layout["weight_order"] = list(order)
    b.emitter = EntryEmitter(b.calls, len(b.table), b.prefix,
                             breaks=b.builder.segment_breaks())
    b.entry_ir = b.emitter.emit()


MAX_DYNAMIC_SIZES = 64      # native programs one artifact holds for a dynamic dimension
# a range longer than MAX_DYNAMIC_SIZES (or unbounded) gets native programs at the
# example size and the powers of two of the range up to this size; other sizes run
# through ember.compile from the exported program the artifact carries
NATIVE_SIZES_UP_TO = 1024


def _native_sizes(exported, options: dict) -> list[int]:
    """The sizes of the dynamic dimension that get a native program: every size of a
    range of at most MAX_DYNAMIC_SIZES, else `options["native_sizes"]` or the example
    size and the range's powers of two (module constants above)."""
    (bounds,) = exported.range_constraints.values()
    lo, hi = max(bounds.lower, 2), bounds.upper     # sizes 0 and 1: see _size_one_holds
    i, d = exported.dynamic_dims[0]
    example = exported.user_inputs[i].shape[d]
    requested = options.pop("native_sizes", None)
    if requested is not None:
        sizes = sorted({int(n) for n in requested})
        outside = [n for n in sizes if n not in bounds]
        if outside or not sizes or len(sizes) > MAX_DYNAMIC_SIZES:
            raise LoweringError(
                f"ember.aot.compile_and_package: options['native_sizes'] must be 1 to "
                f"{MAX_DYNAMIC_SIZES} sizes inside s0's range [{lo}, {hi}], got {requested}")
        return sizes
    if hi != float("inf") and hi - lo + 1 <= MAX_DYNAMIC_SIZES:
        return list(range(lo, int(hi) + 1))
    top = min(hi, max(NATIVE_SIZES_UP_TO, example))
    powers = [1 << k for k in range(64) if lo <= 1 << k <= top]
    return sorted({example, *powers})


def _first_difference(constants: dict, example: dict) -> str:
    """' (c19: bool[1, 1] against bool[8, 8])': the first constant two sizes' plans
    disagree on."""
    for name in [*constants, *example]:
        a, c = constants.get(name), example.get(name)
        if a is None or c is None or a.shape != c.shape or a.dtype != c.dtype or \
                not np.array_equal(a, c):
            def text(v):
                return "none" if v is None else f"{v.dtype}{list(v.shape)}"
            return f" ({name}: {text(a)} against {text(c)})"
    return ""


def _equal(a, c) -> bool:
    return a is not None and c is not None and a.shape == c.shape and \
        a.dtype == c.dtype and np.array_equal(a, c)


def _size_name(n: int, name: str) -> str:
    """The weights member's name of size n's own `name` ("s8.c19")."""
    return f"s{n}.{name}"


def _entry_weights(built: dict, example: _Built) -> tuple[dict, dict]:
    """({size: {name: array}} each entry's weight arguments by its plan's names, the
    weights member's arrays by stored name, in the entries' argument order): weights
    equal at every size are stored once; a constant computed from the dynamic size (a
    causal mask, arange positions, a slice of a buffer up to the length) is stored once
    per size under its size's name, every entry taking all of them as arguments (the
    lite runtime passes one weight list to every entry) and reading its own."""
    names = list(example.constants)
    for b in built.values():
        names += [k for k in b.constants if k not in names]
    shared = {k for k in names if all(_equal(b.constants.get(k), example.constants[k])
                                      for b in built.values())}
    for k in names:
        if k not in shared and not (k[0] == "c" or k[0] == "p" and k[1:2].isdigit()):
            _refuse_per_size(built, example, k)
    stored = {k: example.constants[k] for k in names if k in shared}
    stored.update({_size_name(n, k): v for n, b in built.items()
                   for k, v in b.constants.items() if k not in shared})
    weights = {}
    for n, b in built.items():
        own = {_size_name(n, k): k for k in b.constants if k not in shared}
        weights[n] = {own.get(g, g): v for g, v in stored.items()}
    return weights, stored


def _refuse_per_size(built: dict, example: _Built, name: str) -> None:
    """A weight that differs per size but has a runtime that finds it by its own name
    (int8 `pq...`, Winograd `u<step>`): not stored per size."""
    n = next(n for n, b in built.items()
             if not _equal(b.constants.get(name), example.constants.get(name)))
    raise LoweringError(
        f"ember.aot.compile_and_package: the plan's weights at size {n} differ from those "
        f"at the example size{_first_difference(built[n].constants, example.constants)}; a "
        "constant computed from the dynamic size is stored per size only as a plain or "
        "GEMM-packed array, not as int8 or Winograd-transformed weights: package a static "
        "length, or a dynamic batch")


def _package_dynamic(exported, package_path, backend, options, pipeline,
                     wino_mode: str = "stored", state: "_State | None" = None) -> str:
    """A dynamic dimension: one straight-line program per native size (`_native_sizes`),
    all in one library (entries `ember_b<n>_run`, kernels shared where their code is
    equal, weights stored once where equal at every size, else once per size:
    `_entry_weights`), the runtime picking the entry by the size. When the native
    sizes do not cover the range, the exported program itself is stored too
    (`exported.ep`): ember.aot.load_package runs the other sizes through ember.compile
    (the lite runtime alone refuses them, saying so)."""
    from ..ir.symdim import instantiate
    options = dict(options or {})
    (bounds,) = exported.range_constraints.values()
    lo, hi = max(bounds.lower, 2), bounds.upper     # sizes 0 and 1: see _size_one_holds
    native = _native_sizes(exported, options)
    dims = exported.dynamic_dims
    shared, built = ([], {}), {}
    in_range = list(native)
    if _size_one_holds(exported):
        native = [1] + native
    for n in native:
        shapes = [[n if (i, d) in dims else size for d, size in enumerate(s.shape)]
                  for i, s in enumerate(exported.user_inputs)]
        built[n] = _build(exported, instantiate(exported.symbolic_graph, n), shapes, backend,
                          options, pipeline, shared, prefix=f"ember_b{n}")
    i, d = dims[0]
    example = built[exported.user_inputs[i].shape[d]] \
        if exported.user_inputs[i].shape[d] in built else built[native[0]]
    weights, stored = _entry_weights(built, example)
    for n, b in built.items():
        _emit(b, weights[n], list(stored))
    covered = hi != float("inf") and len(in_range) == hi - lo + 1
    dynamic = {"dims": [list(x) for x in dims], "min": lo,
               "max": None if hi == float("inf") else hi}
    if 1 in built:
        dynamic["size_one"] = True
    if not covered:
        dynamic["native_sizes"] = in_range
    example.memory.update(layout=example.layout)
    entries = {str(n): {**b.entry_json(), "steps": b.table} for n, b in built.items()}
    members = {
        "graph.ir": print_graph(example.graph).encode(),
        **_weight_members(stored, example.table, wino_mode),
        "memory_plan.json": json.dumps(example.memory, indent=1).encode(),
        "plan.json": json.dumps({**example.slots(), "steps": example.table,
                                 "dynamic": dynamic, "entries": entries}).encode(),
        "model.so": _shared_library(shared[0], backend.isa,
                                    [b.entry_ir for b in built.values()]),
    }
    if not covered:
        if state is not None and state.entries:
            raise LoweringError(
                "ember.aot.compile_and_package: the model updates a buffer or an input in "
                f"place, and its dynamic range [{lo}, {'inf' if hi == float('inf') else hi}]"
                f" is longer than its native programs ({len(in_range)} sizes); the other "
                "sizes would run apart from the artifact's buffers: give the Dim a max at "
                f"most {lo + MAX_DYNAMIC_SIZES - 1} or options={{'native_sizes': [...]}} "
                "covering the range")
        members[FALLBACK_MEMBER] = _exported_bytes(exported)
    manifest = _manifest(exported, backend.isa, members, state)
    for b in built.values():
        _require_int8_features(manifest, b.table)
    manifest["dynamic"] = dynamic
    _write_zip(package_path, manifest, members)
    return str(package_path)


class _State:
    """What a program's in-place updates need of the runtime: `entries`, one per buffer
    or user input the model updates ({"kind": "buffer", "name", "input", "output"} or
    {"kind": "input", "input", "output"}: the native program's input it is read from and
    the extra result holding its new value), and `initial` (buffer name -> its value
    at packaging, the artifact's starting state)."""

    def __init__(self):
        self.entries, self.initial = [], {}


def _mutates(graph: Graph) -> bool:
    from ..frontend.fx.functionalize_graph import _is_inplace
    return any(_is_inplace(n) for n in graph.nodes)


def _functional_program(exported: ExportedProgram):
    """`exported` with its in-place ops made functional (AOTInductor packages torch's
    functionalized program the same way): `y.mul_(2)`, `y[0] = v` become out-of-place ops
    (`mul`, `select_scatter`) native kernels compute; a buffer the model updates
    (`self.count.add_(1)`) becomes an extra input the runtime feeds from the state it
    keeps, its new value an extra result written back after each call; an updated user
    input gets its new value written back into the caller's array. Returns (program,
    _State), the program unchanged when nothing is updated in place."""
    import dataclasses
    from ..frontend.fx.functionalize_graph import CannotFunctionalize, functionalize_graph
    from .export import TensorSpec
    state = _State()
    if not _mutates(exported.graph):
        return exported, state
    if exported.dim_exprs:
        raise LoweringError("ember.aot.compile_and_package: the model updates a tensor in "
                            "place and has several independent dynamic sizes; artifacts "
                            "keep such updates with one Dim (or static shapes)")
    graphs = []
    for source in (exported.graph, exported.symbolic_graph):
        if source is None:
            graphs.append(None)
            continue
        graph = _copy_graph(source)
        try:
            functionalize_graph(graph)
        except CannotFunctionalize as err:
            raise LoweringError(f"ember.aot.compile_and_package: an in-place update cannot "
                                f"be packaged: {err}") from None
        state = _State()            # the same entries from either graph
        _state_io(graph, exported, state)
        graphs.append(graph)
    specs = list(exported.input_specs)
    n_user = len(exported.user_inputs)
    for entry in state.entries:
        if entry["kind"] == "buffer":
            value = state.initial[entry["name"]]
            specs.append(TensorSpec(entry["name"], "user_input", value.dtype.name,
                                    tuple(value.shape)))
    assert len([s for s in specs if s.kind == "user_input"]) == n_user + len(state.initial)
    return dataclasses.replace(exported, graph=graphs[0], symbolic_graph=graphs[1],
                               input_specs=specs), state


def _result_nodes(value) -> list:
    """The graph's result nodes in the plan's flat order (constants left out)."""
    if isinstance(value, Node):
        return [value]
    items = value.values() if isinstance(value, dict) else \
        value if isinstance(value, (tuple, list)) else ()
    return [n for v in items for n in _result_nodes(v)]


def _state_io(graph: Graph, exported: ExportedProgram, state: _State) -> None:
    """The functionalized graph's closing `copy_(buffer or input, new value)` nodes as
    extra results (and a buffer's get_attr as an extra input), recorded in `state`."""
    from ..ir.graph import OpKind
    output = graph.output_node
    results = output.args[0]
    results = list(results) if isinstance(results, (tuple, list)) else [results]
    n_results = len(_result_nodes(results))
    placeholders = list(graph.placeholders)
    copies = [n for n in graph.nodes if n.op == OpKind.call_function and
              getattr(n.target, "name", "") == "copy_" and
              getattr(n.args[0], "op", None) in (OpKind.get_attr, OpKind.placeholder)]
    last = placeholders[-1] if placeholders else None
    for node in copies:
        target, value = node.args[0], node.args[1]
        graph.erase_node(node)
        if target.op == OpKind.get_attr:
            name = str(target.target)
            with graph.inserting_after(last) if last is not None else \
                    graph.inserting_before(graph.nodes[0]):
                last = graph.placeholder(name.replace(".", "_"))
            last.meta["val"] = target.meta["val"]
            target.replace_all_uses_with(last)
            graph.erase_node(target)
            value = last if value is target else value
            array = exported.tensors[name]
            state.initial[name] = np.array(array._values() if isinstance(array, Tensor)
                                           else array)
            entry = {"kind": "buffer", "name": name, "input": len(placeholders) +
                     len(state.initial) - 1}
        else:
            entry = {"kind": "input", "input": placeholders.index(target)}
        entry["output"] = n_results + len(state.entries)
        state.entries.append(entry)
        results.append(value)
    output.args = (tuple(results),)


FALLBACK_MEMBER = "exported.ep"     # the exported program, for sizes without a native one


def _size_one_holds(exported) -> bool:
    """A program whose ember.export runs size 1 (ExportedProgram.size_one) gets a native
    program at 1 too, when the graph at s0 = 1 passes the verifier (every op's shape
    rule agrees with its types there), as torch's AOTInductor runs batch 1."""
    from ..ir.symdim import instantiate
    from ..ir.verifier import verify
    (bounds,) = exported.range_constraints.values()
    if not exported.size_one or bounds.lower > 2:
        return False
    try:
        verify(instantiate(exported.symbolic_graph, 1))
    except Exception:       # noqa: BLE001 - an op that behaves otherwise at size 1
        return False
    return True


def _exported_bytes(exported) -> bytes:
    import io
    from .export import save
    buf = io.BytesIO()
    save(exported, buf)
    return buf.getvalue()


def _entry_json(emitter, builder, calls, layout, outputs) -> dict:
    """plan.json's `entry`: one `symbol` (ember_run) for a plan without host steps;
    with them (custom ops, int8 steps), `segments` (ember_run_0 .. ember_run_k, run in
    order) and `host_steps` (after segment j the runtime calls host step j on arena
    views: its plan step, kind and where each operand and result live)."""
    entry = {"calls": len(calls), "layout": layout, "outputs": outputs,
             "fresh": builder.fresh}
    names = emitter.entry_names()
    if builder.host_steps:
        entry["segments"] = names
        entry["host_steps"] = [{k: c[k] for k in ("step", "kind", "inputs", "outputs",
                                                  "tuple")} for c in builder.host_steps]
    else:
        entry["symbol"] = names[0]
    return entry


def load_package(path, check_features: bool = True, model_name: str | None = None):
    """The artifact at `path` as a callable (AOTInductor's aoti_load_package): takes
    ember Tensors or numpy arrays, one per exported input; returns Tensors in the
    exported result's structure. `model_name` picks one model of a package of several."""
    return PackagedModel(lite.load_package(path, check_features, model_name))


class PackagedModel:
    """ember-side wrapper of a LiteModel: Tensors in, Tensors out."""

    def __init__(self, model: "lite.LiteModel"):
        self.lite = model

    @property
    def manifest(self) -> dict:
        return self.lite.manifest

    def __call__(self, *args, **kwargs):
        """The exported call's arguments (Tensors or arrays, in the tuples, lists and
        dicts they were exported in, keywords too); the exported result's structure out
        (a Tensor, a tuple, a dict ... of Tensors). Numbers, strings and None were
        specialized at export and are passed over, as AOTInductor's loaded package does.
        A size of the dynamic dimension without a native program runs the exported
        program the artifact carries through ember.compile (compiled once per size, as
        ember.compile does)."""
        from .compile_guards import LEAF, unflatten
        from .export import _spec_from_json
        arrays = [a._values() if isinstance(a, Tensor) else np.asarray(a)
                  for a in self._tensor_leaves(args, kwargs)]
        if "dynamic_sizes" in self.lite.manifest and any(
                list(a.shape) != spec["shape"] for a, spec in
                zip(arrays, self.lite.manifest["inputs"])):
            # several dynamic sizes: the native program holds the example's shapes only
            return self._compiled_fallback()(*[Tensor._adopt(a) for a in arrays])
        try:
            outs = [Tensor._adopt(o) for o in self.lite(*arrays)]
        except lite.NoNativeProgram:
            return self._compiled_fallback()(*[Tensor._adopt(a) for a in arrays])
        structure = self.lite.manifest.get("output_structure")
        if structure is None:
            return outs[0] if len(outs) == 1 else tuple(outs)
        return unflatten(_spec_from_json(structure, LEAF), outs)


    def _tensor_leaves(self, args: tuple, kwargs: dict) -> list:
        """The tensors of (args, kwargs) in the exported inputs' order: positional
        arguments' first, then keywords' in the order forward takes them (the manifest's
        input names: `x`, or `xs_0` for a container's tensors)."""
        leaves = _leaves(args)
        if not kwargs:
            return leaves
        names = [spec["name"] for spec in self.lite.user_inputs]

        def position(key):
            found = [i for i, n in enumerate(names) if n == key or n.startswith(key + "_")]
            if not found:
                raise TypeError(f"{self.lite.path}: unexpected keyword argument {key!r} "
                                f"(the exported inputs: {', '.join(names)})")
            return found[0]
        for key in sorted(kwargs, key=position):
            leaves += _leaves(kwargs[key])
        return leaves

    def _compiled_fallback(self):
        fallback = self.__dict__.get("_fallback")
        if fallback is None:
            import io
            from .compile import compile as ember_compile
            from .export import load
            program = load(io.BytesIO(self.lite.exported_program))
            fallback = self._fallback = ember_compile(program.module())
        return fallback


def _leaves(value) -> list:
    """Tensors and arrays of a call's argument structure, in order; numbers, strings and
    None (specialized at export) are left out."""
    if isinstance(value, (Tensor, np.ndarray)):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _leaves(v)]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _leaves(v)]
    return []


class _Input:
    """Stands for the k-th tensor input of a step while its arguments are bound."""

    def __init__(self, k: int):
        self.k = k


def _custom_op_args(node: Node) -> list:
    """The op's arguments in schema order as JSON: {"input": k} for the step's k-th
    tensor input (the order the plan feeds them: args, then kwargs), literals as they are."""
    from ..ir.graph import map_arg
    counter = iter(range(1 << 30))
    args = map_arg(node.args, lambda n: _Input(next(counter)))
    kwargs = map_arg(node.kwargs, lambda n: _Input(next(counter)))
    bound = node.target.schema.bind(tuple(args), dict(kwargs))

    def encode(v):
        if isinstance(v, _Input):
            return {"input": v.k}
        if isinstance(v, (list, tuple)):
            return [encode(x) for x in v]
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        raise LoweringError(f"ember.aot: custom op {node.target.name}: argument {v!r} cannot "
                            "be stored in the artifact (Tensors, numbers, bools, strings and "
                            "lists of them can)")
    return [encode(v) for v in bound]


def _fill_desc(node: Node) -> dict | None:
    """`full(size, value)` (what constant folding leaves of a zeros/ones/full too large to
    store, e.g. a GNN's zeros(N, F) that messages are scattered into) as a `fill` step:
    the value's bytes, broadcast into the result by the entry's strided copy."""
    results = _custom_op_results(node)
    value = _bound(node).get("fill_value")
    if results is None or len(results) != 1 or isinstance(value, Node):
        return None
    dtype = np.dtype(results[0]["dtype"])
    if dtype.itemsize > 8 or any(s < 0 for s in results[0]["strides"]):
        return None
    raw = np.asarray(value).astype(dtype).tobytes().ljust(8, b"\0")
    return {"kind": "fill", "op": "full", "results": results,
            "bits": int.from_bytes(raw, "little", signed=True)}


def _custom_op_results(node: Node) -> list | None:
    """Shape, strides and dtype of each of a custom op's results (what its fake function
    said; the native program gives each a buffer of its own in the arena), or None when
    they are not Tensors (the native program refuses such a step by name)."""
    val = node.meta.get("val")
    values = val if isinstance(val, (tuple, list)) else (val,)
    if not all(hasattr(v, "shape") and hasattr(v, "strides") for v in values):
        return None
    return [{"shape": list(v.shape), "strides": list(v.strides),
             "dtype": np.dtype(v.dtype.np_dtype).str} for v in values]


_PIECES = ("split", "chunk", "unbind", "split_with_sizes", "tensor_split")


def _pieces_as_views(graph: Graph) -> None:
    """`split`/`chunk`/`unbind` (one op, a list of views) as one `slice`/`select` per
    piece read: the artifact's view steps are one strided view each, and `x.chunk(4)`
    in an LSTM cell, `torch.split` of a packed projection would be refused otherwise."""
    import operator
    from ..ir.graph import OpKind
    from ..ir.registry import OPS
    for node in list(graph.nodes):
        if node.op != OpKind.call_function or getattr(node.target, "name", "") not in _PIECES:
            continue
        pieces = node.meta.get("val")
        if not isinstance(pieces, (tuple, list)) or not all(
                u.op == OpKind.call_function and u.target is operator.getitem and
                isinstance(u.args[1], int) for u in node.users):
            continue
        bound = node.target.schema.as_kwargs(node.target.schema.bind(node.args, node.kwargs))
        source = node.args[0]
        dim = bound.get("dim", 0) % len(source.meta["val"].shape)
        starts = [0]
        for piece in pieces:
            starts.append(starts[-1] + (1 if node.target.name == "unbind"
                                        else piece.shape[dim]))
        for user in list(node.users):
            i = user.args[1] % len(pieces)
            with graph.inserting_before(user):
                if node.target.name == "unbind":
                    view = graph.call_function(OPS["select"], (source, dim, i))
                else:
                    view = graph.call_function(OPS["slice"], (source, dim, starts[i],
                                                              starts[i + 1]))
            view.meta["val"] = user.meta["val"]
            user.replace_all_uses_with(view)
            graph.erase_node(user)
        graph.erase_node(node)


def _insert(graph: Graph, name: str, *args, **kwargs) -> Node:
    """A node of op `name` at the graph's insertion point, its type from the op's meta."""
    from ..ir.registry import OPS
    op = OPS[name]
    node = graph.call_function(op, args, kwargs or None)
    node.meta["val"] = op.meta(*[a.meta["val"] if isinstance(a, Node) else a
                                 for a in op.schema.bind(args, kwargs)])
    return node


def _inference_forms(graph: Graph) -> None:
    """Ops without a native kernel written as ones that have: vector norms as their
    reductions (`F.normalize`, `x.norm()`), `repeat` as a broadcast copy, `expand_as`
    as `expand`. Here, not in
    the registry's decompositions, since a norm's own derivative at zero differs from
    its decomposition's (training graphs keep the op)."""
    from ..ir.graph import OpKind
    for node in list(graph.nodes):
        name = getattr(node.target, "name", "") if node.op == OpKind.call_function else ""
        rewrite = {"linalg_vector_norm": _norm_form, "norm": _norm_form,
                   "repeat": _repeat_form, "bmm": _bmm_form,
                   "upsample_nearest2d": _upsample_form,
                   "expand_as": _expand_as_form}.get(name)
        if rewrite is None:
            continue
        a = node.target.schema.as_kwargs(node.target.schema.bind(node.args, node.kwargs))
        with graph.inserting_before(node):
            out = rewrite(graph, a)
        if out is None:
            continue
        node.replace_all_uses_with(out)
        graph.erase_node(node)


def _norm_form(graph: Graph, a: dict) -> Node | None:
    x = a.get("x", a.get("self"))
    p = a.get("ord", a.get("p", 2))
    p = 2 if p in (None, "fro") else p
    if a.get("dtype") is not None or isinstance(p, str) or \
            not x.meta["val"].dtype.is_floating_point:
        return None
    dim, keep = a.get("dim"), bool(a.get("keepdim", False))
    dim = [dim] if isinstance(dim, int) else dim
    if p == 2:
        return _insert(graph, "sqrt", _insert(graph, "sum", _insert(graph, "mul", x, x),
                                              dim, keep))
    magnitude = _insert(graph, "abs", x)
    if p == 1:
        return _insert(graph, "sum", magnitude, dim, keep)
    if p in (float("inf"), float("-inf")):
        dims = list(range(x.meta["val"].ndim)) if dim is None else dim
        return _insert(graph, "amax" if p > 0 else "amin", magnitude, dims, keep)
    if p == 0:
        return None
    powered = _insert(graph, "pow", magnitude, float(p))
    return _insert(graph, "pow", _insert(graph, "sum", powered, dim, keep), 1.0 / p)


def _bmm_form(graph: Graph, a: dict) -> Node:
    """bmm as matmul with a batch dim (the batched GEMM step)."""
    return _insert(graph, "matmul", a["self"], a["mat2"])


def _upsample_form(graph: Graph, a: dict) -> Node | None:
    """Nearest upsampling by whole factors: each pixel broadcast over a (fh, fw) block."""
    x = a["self"]
    n, c, h, w = x.meta["val"].shape
    oh, ow = a["output_size"]
    if oh % h or ow % w:
        return None
    fh, fw = oh // h, ow // w
    spread = _insert(graph, "reshape", x, [n, c, h, 1, w, 1])
    return _insert(graph, "reshape", _insert(graph, "expand", spread, [n, c, h, fh, w, fw]),
                   [n, c, oh, ow])


def _expand_as_form(graph: Graph, a: dict) -> Node:
    """x.expand_as(other) (HF's `position_ids.expand_as(input_ids)`): an expand to
    other's shape, which the plan has at each packaged size."""
    return _insert(graph, "expand", a["self"], list(a["other"].meta["val"].shape))


def _repeat_form(graph: Graph, a: dict) -> Node:
    """x.repeat(r): x viewed as (1, s0, 1, s1, ...), broadcast to (r0, s0, r1, s1, ...),
    then (r0*s0, r1*s1, ...); _copy_before_reshape makes the broadcast a kernel."""
    x, repeats = a["self"], list(a["repeats"])
    shape = [1] * (len(repeats) - x.meta["val"].ndim) + list(x.meta["val"].shape)
    spread = [v for size in shape for v in (1, size)]
    wide = [v for r, size in zip(repeats, shape) for v in (r, size)]
    view = _insert(graph, "reshape", x, spread)
    return _insert(graph, "reshape", _insert(graph, "expand", view, wide),
                   [r * size for r, size in zip(repeats, shape)])


def _conv1d_as_conv2d(graph: Graph) -> None:
    """conv1d as a conv2d over a height of 1 (the artifact's native conv is 2-D): the
    input and weight get a unit dim 2, the result loses it; the same sums in the same
    order per output element."""
    from ..ir.graph import OpKind

    def call(name, *args):
        return _insert(graph, name, *args)
    for node in list(graph.nodes):
        if node.op != OpKind.call_function or getattr(node.target, "name", "") != "conv1d":
            continue
        a = node.target.schema.as_kwargs(node.target.schema.bind(node.args, node.kwargs))
        if isinstance(a["padding"], str):
            continue
        one = lambda v: list(v)[0] if isinstance(v, (list, tuple)) else v  # noqa: E731
        with graph.inserting_before(node):
            x, w = call("unsqueeze", a["input"], 2), call("unsqueeze", a["weight"], 2)
            conv = call("conv2d", x, w, a["bias"], [1, one(a["stride"])],
                        [0, one(a["padding"])], [1, one(a["dilation"])], a["groups"])
            out = call("squeeze", conv, [2])
        node.replace_all_uses_with(out)
        graph.erase_node(node)


_RESHAPES = ("reshape", "view", "flatten", "_unsafe_view", "unflatten")
# views after which a reshape may need a copy
_STRIDED = ("expand", "expand_as", "permute", "transpose", "t", "swapaxes", "swapdims",
            "movedim", "slice", "narrow")


def _copy_before_reshape(graph: Graph) -> None:
    """A reshape of an expanded, transposed or sliced tensor (`repeat_interleave`, a GQA
    attention's `k[:, :, None].expand(...).reshape(...)`, heads merged back with
    `.transpose(1, 2).reshape(b, t, c)`) may be a copy, not a view: NumPy's reshape copies
    there, and an artifact's view step cannot. A `clone` before it makes the copy a
    kernel (fused with what produces the values)."""
    from ..ir.graph import OpKind
    from ..ir.registry import OPS
    for node in list(graph.nodes):
        if node.op != OpKind.call_function or \
                getattr(node.target, "name", "") not in _RESHAPES:
            continue
        source, walk = node.args[0], node.args[0]
        expanded = False
        while isinstance(walk, Node) and walk.op == OpKind.call_function and \
                getattr(walk.target, "name", "") in ("unsqueeze", "squeeze", *_RESHAPES,
                                                     *_STRIDED):
            expanded = expanded or walk.target.name in _STRIDED
            walk = walk.args[0]
        if not expanded:
            continue
        with graph.inserting_before(node):
            copy = graph.call_function(OPS["clone"], (source,))
        copy.meta["val"] = source.meta["val"]
        node.replace_input_with(source, copy)


def _copy_graph(graph: Graph) -> Graph:
    """A deep copy (passes rewrite in place; the ExportedProgram stays as exported)."""
    from ..ir.parser import parse
    copy = parse(print_graph(graph))
    for mine, theirs in zip(copy.placeholders, graph.placeholders):
        mine.meta.update({k: v for k, v in theirs.meta.items() if k != "val"})
    return copy


def _view_geometry(plan, exported: ExportedProgram, shapes: list | None = None) -> dict:
    """Each view step's (offset, shape, strides) in elements, measured by running the
    plan once on zeros: what numpy's view of the actual buffers was."""
    seen = {}

    def probe(step, fn):
        def run(x):
            y = fn(x)
            if not isinstance(y, np.ndarray) or not isinstance(x, np.ndarray) or \
                    (y.size and not np.shares_memory(x, y)) or y.dtype != x.dtype:
                raise LoweringError(f"ember.aot: view step {step.name} did not produce a "
                                    "view of its input; it cannot be packaged")
            offset = (y.ctypes.data - x.ctypes.data)
            if offset % x.itemsize or any(s % x.itemsize for s in y.strides):
                raise LoweringError(f"ember.aot: view step {step.name} is not element-aligned")
            seen[step.name] = {"offset": offset // x.itemsize, "shape": list(y.shape),
                               "strides": [s // x.itemsize for s in y.strides]}
            return y
        return run
    run_with_probes(plan, exported.user_inputs, shapes,
                    lambda s: isinstance(s.fn, _Described) and s.fn.desc["kind"] == "view",
                    probe)
    return seen


def loaded_symbol(fn) -> str:
    """A name the JIT resolves to the loaded function `fn` (a ctypes function)."""
    import ctypes
    import llvmlite.binding as llvm
    address = ctypes.cast(fn, ctypes.c_void_p).value
    name = f"ember_loaded_{address:x}"
    llvm.add_symbol(name, address)
    return name


def _step_table(plan, views: dict | None, shared: tuple | None = None) -> tuple[list, list]:
    """plan.json's steps, and the LLVM modules (kind, text, exported symbols) they use;
    symbols are renamed 'm<i>_<name>' to keep modules apart in one library. With
    `views` None (in process), symbols stay as described and views are measured later.
    `shared`: (modules, index by text) of other plans in the same library."""
    table = []
    modules, module_index = shared if shared is not None else ([], {})

    def symbol(entry, name):
        if views is None:
            return name
        kind, text, _ = entry
        if text not in module_index:
            module_index[text] = len(modules)
            modules.append(entry)
        return f"m{module_index[text]}_{name}"
    tuples = {}            # slot -> (custom op, result count) for ops returning a tuple
    for step in plan.steps:
        fn = step.fn
        if isinstance(fn, _Described) and fn.desc["kind"] == "custom_op" and \
                fn.desc.get("tuple"):
            tuples[step.outputs[0]] = (fn.desc["op"], len(fn.desc["results"] or ()))
        item = _tuple_item(step, tuples)
        if item is not None:
            table.append(item)
            continue
        if not isinstance(fn, _Described) or fn.desc["kind"] == "unsupported":
            what = fn.desc.get("op") if isinstance(fn, _Described) else "a Python step"
            raise LoweringError(f"ember.aot: step {step.name} ({what}) has no native kernel "
                                "in ember's CPU backend, so it cannot be packaged (the "
                                "artifact runs native code only)")
        desc = {k: v for k, v in fn.desc.items() if not k.startswith("_")}
        desc.update(name=step.name, inputs=list(step.inputs), outputs=list(step.outputs))
        kind = desc["kind"]
        if kind == "kernel":
            desc["symbol"] = symbol(fn.modules[0] if fn.modules else None, desc["symbol"])
        elif kind in ("gemm", "bgemm", "conv"):
            for key in ("rows", "cols", "pad", "batch", "single_channel", "conv_pool"):
                if key in desc:
                    desc[key] = symbol(fn.desc.get("_module"), desc[key])
            if "wino" in desc:
                desc["wino"] = symbol(fn.desc.get("_wino_module"), desc["wino"])
            if kind == "gemm":
                desc["b_slot"] = step.inputs[1]
            elif kind == "conv":
                desc["w_slot"] = step.inputs[1]
                desc["bias_slot"] = step.inputs[2] if desc["has_bias"] else None
        elif kind == "view" and views is not None:
            desc.update(views[step.name])
        elif kind in ("qgemm", "qgemm_dynamic", "qadd", "quantize", "qmaxpool", "index") \
                and "symbol" in desc:
            desc["symbol"] = symbol(fn.desc.get("_module"), desc["symbol"])
        desc["out_specs"] = [_spec_json(s) for s in step.out_specs]
        table.append(desc)
    return table, modules


def _tuple_item(step, tuples: dict) -> dict | None:
    """A step taking one result of a custom op that returns a tuple (the plan's getitem,
    a plain callable on the tuple) as an `item` step; its index is what the callable
    picks from (0, 1, ..., count - 1)."""
    if isinstance(step.fn, _Described) or not any(s in tuples for s in step.inputs):
        return None
    op, count = tuples[step.inputs[0]] if step.inputs[0] in tuples else (None, 0)
    try:
        index = step.fn(tuple(range(count))) if len(step.inputs) == 1 and op else None
    except Exception:      # noqa: BLE001 - anything but an index is refused below
        index = None
    if not isinstance(index, int) or isinstance(index, bool):
        op = op or next(tuples[s][0] for s in step.inputs if s in tuples)
        raise LoweringError(f"ember.aot: step {step.name} reads the results of custom op "
                            f"{op} in a way the native program cannot follow (it takes "
                            "them one by one)")
    return {"kind": "item", "op": "getitem", "index": index, "name": step.name,
            "inputs": list(step.inputs), "outputs": list(step.outputs), "out_specs": []}


def _weights(plan, table: list) -> dict:
    """weights.safetensors' arrays: "c<slot>" for plan constants, "p<step>" for weights
    packed here for a GEMM or conv step (so loading does not pack). A constant that only
    such steps read is stored packed only."""
    constants = {slot: np.ascontiguousarray(np.asarray(v)) for slot, v in plan.constants.items()
                 if not isinstance(v, QuantizedArray)}   # int8 weights: aot_quantized packs
    arrays, packed_only = {}, {}
    for i, desc in enumerate(table):
        key = None
        ready = getattr(plan.steps[i].fn, "panels", None)      # packed by the extern
        if desc["kind"] == "gemm" and desc["prepack"] and desc["b_slot"] in constants:
            b = constants[desc["b_slot"]]
            arrays[f"p{i}"] = ready if ready is not None else \
                panels_of(b.T if desc["transpose_b"] else b, desc["nr"])
            key = desc["b_slot"]
        elif desc["kind"] == "conv" and desc["w_slot"] in constants:
            arrays[f"p{i}"] = ready if ready is not None else \
                conv_impl.pack_weights(constants[desc["w_slot"]], desc["nr"])
            key = desc["w_slot"]
            if "wino" in desc:       # the Winograd-transformed weights (llvm/winograd.py)
                u = getattr(plan.steps[i].fn, "wino_panels", None)
                if u is None:        # None again for non-finite weights: the conv stays direct
                    u = winograd.transform_weights(constants[desc["w_slot"]], desc["wino_nr"])
                if u is not None:
                    arrays[f"u{i}"] = u
                    desc["wino_packed"] = f"u{i}"
        if key is not None:
            desc["packed"] = f"p{i}"
            packed_only.setdefault(key, True)
        for position, slot in enumerate(desc["inputs"]):
            if slot in constants and not (key == slot and position == 1):
                packed_only[slot] = False
    for slot in _flat_outputs(plan.output_slots):
        packed_only[slot] = False
    arrays.update({f"c{slot}": v for slot, v in constants.items()
                   if not packed_only.get(slot, False)})
    return arrays


WINOGRAD_OPTION = "winograd_weights"      # "stored" (the default) or "derived"


def _weight_members(constants: dict, table: list, mode: str) -> dict:
    """weights.safetensors, and the Winograd-transformed weights ("u<step>") in a member
    of their own (lite.WINOGRAD_MEMBER: loading checks it by recomputing the transform
    instead of hashing it), or not at all with options["winograd_weights"] = "derived"
    (a 4x smaller artifact for a model of 3x3 convs; loading computes them, into memory
    of its own: measured slower to start on a host where fresh pages are dear)."""
    names = {d["wino_packed"] for d in table if "wino_packed" in d}
    wino = {k: v for k, v in constants.items() if k in names}
    members = {"weights.safetensors": _safetensors(
        {k: v for k, v in constants.items() if k not in wino})}
    if wino and mode == "stored":
        members[lite.WINOGRAD_MEMBER] = _safetensors(wino)
    return members


def _spec_json(spec) -> dict:
    meta = spec.meta
    return {"shape": list(meta.shape), "strides": list(meta.strides),
            "dtype": np.dtype(meta.dtype.np_dtype).str, "persistent": bool(spec.persistent)}


def _flat_outputs(slots) -> list:
    if isinstance(slots, int):
        return [slots]
    if not isinstance(slots, (tuple, list)):     # a constant result (a training step's
        return []                                # None for a value stored in place)
    out = []
    for s in slots:
        out += _flat_outputs(s)
    return out


def _memory_plan(plan) -> dict:
    """Every persistent kernel output at an offset in one arena; values the memory
    planner gave one slot share that slot's region (as Plan.prepare shares a block)."""
    sizes, buffers, order = {}, [], []
    for step in plan.steps:
        for slot, spec in zip(step.outputs, step.out_specs):
            if not spec.persistent:
                continue
            meta = spec.meta
            extent = 1 + sum((s - 1) * st for s, st in zip(meta.shape, meta.strides)) \
                if all(meta.shape) else 1
            nbytes = max(1, extent) * meta.dtype.itemsize
            key = ("arena", spec.arena) if spec.arena is not None else ("own", slot)
            if key not in sizes:
                order.append(key)
            sizes[key] = max(sizes.get(key, 0), nbytes)
            buffers.append((slot, key, nbytes, spec))
    offsets, total = {}, 0
    for key in order:
        offsets[key] = total
        total += -(-sizes[key] // lite.ALIGN) * lite.ALIGN
    return {"arena_bytes": total, "regions": len(order), "buffers": [
        {"slot": slot, "offset": offsets[key], "nbytes": nbytes,
         "shape": list(spec.meta.shape), "strides": list(spec.meta.strides),
         "dtype": np.dtype(spec.meta.dtype.np_dtype).str}
        for slot, key, nbytes, spec in buffers]}


_ST_DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "int64": "I64",
              "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
              "complex64": "C64"}


def _safetensors(arrays: dict) -> bytes:
    """The safetensors format, with every tensor's data at a multiple of 64 bytes from
    the file's data start (unused `_pad<i>` U8 entries fill the gaps, as the format has
    no holes), and the header padded with spaces so the data starts 64-aligned too: the
    loader uses the weights in place in its memory map, aligned as the kernels want."""
    if not arrays:
        return b""
    header, chunks, at = {}, [], 0
    for i, (name, array) in enumerate(arrays.items()):
        array = np.ascontiguousarray(array)
        gap = (-at) % lite.ALIGN
        if gap:
            header[f"_pad{i}"] = {"dtype": "U8", "shape": [gap], "data_offsets": [at, at + gap]}
            chunks.append(b"\0" * gap)
            at += gap
        if array.dtype.name not in _ST_DTYPES:
            raise LoweringError(f"ember.aot: weight {name} has dtype {array.dtype}, which "
                                "safetensors cannot hold")
        data = array.tobytes()
        header[name] = {"dtype": _ST_DTYPES[array.dtype.name], "shape": list(array.shape),
                        "data_offsets": [at, at + len(data)]}
        chunks.append(data)
        at += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-(8 + len(text))) % lite.ALIGN)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


# --- machine code ------------------------------------------------------------------------------
def _shared_library(modules: list, isa, entry_ir) -> bytes:
    """Compile every module for the host target (the ISA the in-process plan used), the
    plan's entry point and the C support runtime (thread pool, copies), and link them
    into one shared library with the system C compiler."""
    import llvmlite.binding as llvm
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise LoweringError("ember.aot: no C compiler (cc) to link the shared library; "
                            "install one or set CC")
    tgt = target_for(isa)
    machine = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(
        cpu=tgt.cpu, features=tgt.features, opt=3, reloc="pic", codemodel="default")
    with tempfile.TemporaryDirectory(prefix="ember-aot-") as tmp:
        objects = []
        for i, (_, text, _) in enumerate(modules):
            path = os.path.join(tmp, f"m{i}.o")
            with open(path, "wb") as f:
                f.write(_object_code(text, f"m{i}_", machine, tgt))
            objects.append(path)
        entries = [entry_ir] if isinstance(entry_ir, str) else list(entry_ir)
        for name, data in ([(f"entry{i}.o", _object_code(text, None, machine, tgt))
                            for i, text in enumerate(entries)] +
                           [("runtime.o", _runtime_object(cc, tmp, tgt))]):
            objects.append(os.path.join(tmp, name))
            with open(objects[-1], "wb") as f:
                f.write(data)
        out = os.path.join(tmp, "model.so")
        done = subprocess.run([cc, "-shared", "-o", out, *objects, "-lm", "-lpthread"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise LoweringError(f"ember.aot: linking the shared library failed: "
                                f"{done.stderr.strip()[:500]}")
        with open(out, "rb") as f:
            return f.read()


def _object_code(text: str, prefix: str, machine, tgt) -> bytes:
    """One module's object code for a shared library (position-independent, symbols
    renamed with `prefix`), through ember's disk cache of object code (llvm/cache.py;
    its key has the IR text, the target and this use)."""
    import llvmlite.binding as llvm
    key = cache.cache_key(f"aot-shared-object {prefix}\n{text}", tgt)
    obj = cache.load(key)
    if obj is not None:
        return obj
    mod = llvm.parse_assembly(text)
    for value in list(mod.functions) + list(mod.global_variables):
        if prefix and not value.is_declaration:
            value.name = f"{prefix}{value.name}"
    mod.verify()
    mod.triple = machine.triple
    mod.data_layout = str(machine.target_data)
    optimize(mod, machine)
    obj = machine.emit_object(mod)
    cache.store(key, obj)
    return obj


def _runtime_object(cc: str, tmp: str, tgt) -> bytes:
    """codegen/native_entry.py's C support runtime as position-independent object code
    (through the same disk cache)."""
    key = cache.cache_key(f"aot-runtime-c {cc}\n{RUNTIME_C}", tgt)
    obj = cache.load(key)
    if obj is not None:
        return obj
    src, out = os.path.join(tmp, "ember_runtime.c"), os.path.join(tmp, "ember_runtime.o")
    with open(src, "w") as f:
        f.write(RUNTIME_C)
    done = subprocess.run([cc, "-O2", "-fPIC", "-pthread", "-c", src, "-o", out],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise LoweringError(f"ember.aot: compiling the runtime support failed: "
                            f"{done.stderr.strip()[:500]}")
    with open(out, "rb") as f:
        obj = f.read()
    cache.store(key, obj)
    return obj


def _manifest(exported: ExportedProgram, isa, members: dict,
              state: "_State | None" = None) -> dict:
    from .. import __version__ as ember_version
    tgt = target_for(isa)
    n_state = len(state.entries) if state is not None else 0
    if n_state and state.initial:
        members[lite.STATE_MEMBER] = _safetensors(state.initial)
    manifest = {
        "format": lite.FORMAT_NAME, "format_version": lite.FORMAT_VERSION,
        "ember_version": ember_version, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime()),
        "target": {"kind": "cpu", "isa": isa.value, "llvm_cpu": tgt.cpu,
                   "llvm_features": tgt.features,
                   "required_features": sorted(_REQUIRED[isa])},
        "inputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)}
                   for s in exported.user_inputs],
        "outputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)}
                    for s in exported.output_specs],
        "output_structure": _spec_json_of(exported.out_spec),
        "custom_ops": custom_op_names(exported.graph),
        "members": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
        # big members also per chunk: the loader checks chunks on several threads
        "chunked": {name: lite.chunk_digests(data) for name, data in members.items()
                    if len(data) > lite.CHUNK_BYTES and name != lite.WINOGRAD_MEMBER},
    }
    if n_state:
        manifest["state"] = state.entries
    return manifest


def _spec_json_of(spec):
    from .compile_guards import LEAF
    from .export import _spec_json as structure_json
    return structure_json(spec, LEAF)


def _aligned_entry(name: str, header_offset: int) -> zipfile.ZipInfo:
    """A stored member whose data starts at a multiple of 64 bytes in the file (an
    extra field of padding in its local header, as Android's zipalign does)."""
    info = zipfile.ZipInfo(name, date_time=time.gmtime()[:6])
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    start = header_offset + lite.LOCAL_HEADER + len(name.encode()) + 4
    pad = (-start) % lite.ALIGN
    info.extra = (0x6565).to_bytes(2, "little") + pad.to_bytes(2, "little") + b"\0" * pad
    return info


def _write_zip(path, manifest: dict, members: dict) -> None:
    """Written to a temporary name, then renamed: a reader never sees half a file."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        # stored, not deflated: weights barely compress, and loading then only copies
        # (each member still has the zip's CRC-32 and the manifest's SHA-256)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            z.writestr("manifest.json", json.dumps(manifest, indent=1))
            for name, data in members.items():
                z.writestr(_aligned_entry(name, z.fp.tell()), data)
        os.replace(tmp, path)
    except OSError as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ArtifactError(f"ember.aot: cannot write {path}: {err}") from None
