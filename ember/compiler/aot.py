"""ember.aot: an ExportedProgram -> one versioned artifact file, and loading it back.

    ep = ember.export(model, (x,))
    ember.aot.compile_and_package(ep, "model.ember")        # target="cpu"
    run = ember.aot.load_package("model.ember")
    (y,) = run(x)                                          # numpy or ember Tensors in

compile_and_package builds the inference plan exactly as ember.compile does
(frontend/compile.py: the pipeline, then PlanBuilder) with a backend that also
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
no Python fallback. Converted (int8) graphs package through compiler/aot_quantized.py.
Only the CPU target exists so far.
"""
from __future__ import annotations

import hashlib
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
from ..codegen.llvm.emit import PARALLEL_THRESHOLD, KernelEmitter, compile_kernel
from ..codegen.llvm.gemm import config as gemm_config, gemm_module, tile_for
from ..codegen.llvm.conv import padding_pairs
from ..codegen.llvm import cache
from ..codegen.llvm.jit import optimize
from ..codegen.llvm.target import _REQUIRED, host_isa, target_for
from ..frontend.compile import CompileStats, CpuBackend, PlanBuilder, _with_fusion
from ..frontend.tensor import Tensor
from ..ir.errors import ArtifactError, LoweringError
from ..ir.graph import Graph, Node
from ..ir.printer import print_graph
from ..passes import PassContext, run_passes
from ..ir.quantized import QuantizedArray
from ..runtime import lite
from .aot_quantized import quantized_step, _quantized_qparams, _quantized_weights
from .export import ExportedProgram


class _Described:
    """A plan step's callable (so the plan still runs in-process) and its description."""

    def __init__(self, fn, desc: dict, modules: list | None = None):
        self.fn, self.desc, self.modules = fn, desc, modules or []

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


class PackagingBackend(CpuBackend):
    """CpuBackend whose kernels and externs carry what the artifact needs of them;
    eager fallbacks are marked so packaging can refuse them by name."""

    def __init__(self):
        self.isa = host_isa()

    def kernel(self, lowered):
        compiled = compile_kernel(lowered.kernel)
        module = str(KernelEmitter(lowered.kernel).build())
        parallel = compiled.work >= PARALLEL_THRESHOLD and compiled.split_extent >= 2
        desc = {"kind": "kernel", "symbol": lowered.kernel.name,
                "split_extent": compiled.split_extent, "split_align": compiled.split_align,
                "parallel": bool(parallel)}
        return _Described(compiled, desc, [("kernel", module, (lowered.kernel.name,))])

    def extern(self, node: Node, constant=None):
        fn = extern_kernel(node, constant)
        if fn is None:
            return None
        name = node.target.name
        if name in ("linear", "matmul", "mm"):
            desc = self._gemm(node, constant)
            if desc is not None:
                return _Described(fn, desc)
        elif name == "conv2d" and _bound(node)["groups"] == 1 and \
                len(node.meta["val"].shape) == 4:
            return _Described(fn, self._conv(_bound(node), relu=False, residual=False))
        return _Described(fn, {"kind": "unsupported", "op": name})

    def fused_extern(self, graph: Graph, constant=None):
        found = conv_epilogue_kernel(graph, constant)
        if found is None:
            return None
        fn, inputs = found
        ops = [n for n in graph.nodes if n.op.value == "call_function"]
        names = [n.target.name for n in ops]
        desc = self._conv(_bound(ops[0]), relu="relu" in names, residual="add" in names)
        return _Described(fn, desc), inputs

    def eager(self, node: Node):
        what = getattr(node.target, "name", str(node.target))
        quantized = quantized_step(node)
        if quantized is not None:
            return _Described(super().eager(node), quantized)
        if what == "embedding" and len(tensor_inputs(node)) == 2:
            # rows of the weight: the lite runtime's np.take (a copy, as eager's is)
            return _Described(super().eager(node), {"kind": "embedding", "op": what})
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
        module = str(gemm_module(cfg))
        return {"kind": "gemm", "op": name, "transpose_b": transpose, "mr": mr, "nr": nr,
                "workspace_floats": cfg.workspace_floats, "prepack": bool(prepack),
                "has_bias": name == "linear" and isinstance(_bound(node)["bias"], Node),
                "_module": ("gemm", module, ("gemm_rows", "gemm_cols")),
                "rows": "gemm_rows", "cols": "gemm_cols"}

    def _batched_gemm(self, n: int) -> dict:
        """matmul with batch dims (extern._batched_gemm -> gemm_batched)."""
        mr, nr = tile_for(self.isa, n)
        cfg = gemm_config(self.isa, mr, nr)
        return {"kind": "bgemm", "op": "matmul", "mr": mr, "nr": nr,
                "workspace_floats": cfg.workspace_floats,
                "_module": ("gemm", str(gemm_module(cfg)), ("gemm_rows", "gemm_cols",
                                                            "gemm_batch")),
                "rows": "gemm_rows", "cols": "gemm_cols", "batch": "gemm_batch"}

    def _conv(self, args: dict, relu: bool, residual: bool) -> dict:
        w = args["weight"].meta["val"]
        kernel = tuple(w.shape[2:])
        stride, dilation = _pair(args["stride"]), _pair(args["dilation"])
        pads = padding_pairs(args["padding"], kernel, dilation, stride)
        mr, nr = tile_for(self.isa, w.shape[0])
        cfg = gemm_config(self.isa, mr, nr)
        return {"kind": "conv", "kernel": list(kernel), "stride": list(stride),
                "dilation": list(dilation), "padding": [list(p) for p in pads],
                "has_bias": isinstance(args["bias"], Node), "relu": relu,
                "residual": residual, "c_out": int(w.shape[0]), "mr": mr, "nr": nr,
                "kc": conv_impl.KC, "nc": conv_impl.NC, "max_kc": conv_impl.MAX_KC,
                "small_channels": conv_impl.SMALL_CHANNELS,
                "_module": ("conv", str(conv_impl.conv_module(cfg)), ("conv_rows", "pad_nhwc")),
                "rows": "conv_rows", "pad": "pad_nhwc"}


# --- packaging ---------------------------------------------------------------------------------
def compile_and_package(exported: ExportedProgram, package_path, target: str = "cpu",
                        options: dict | None = None, pipeline: str = "default-inference"):
    """Compile `exported` for `target` and write one artifact to `package_path`;
    returns the path. See the module doc for what the file holds."""
    if target != "cpu":
        raise LoweringError(f"ember.aot.compile_and_package: target {target!r} is not "
                            "supported yet (only 'cpu')")
    if not isinstance(exported, ExportedProgram):
        raise TypeError("ember.aot.compile_and_package: expected an ExportedProgram from "
                        f"ember.export, got {type(exported).__name__}")
    graph = _copy_graph(exported.graph)
    backend = PackagingBackend()
    ctx = PassContext(constants=dict(exported.state_dict), options=dict(options or {}),
                      inference=True)
    run_passes(graph, _with_fusion(pipeline), ctx)
    plan = PlanBuilder(graph, ctx.constants, CompileStats(), backend,
                       freeze_constants=True).build()
    views = _view_geometry(plan, exported)
    qparams = _quantized_qparams(plan, exported)
    table, modules = _step_table(plan, views)
    quantized_weights = _quantized_weights(plan, table, qparams)
    constants = _weights(plan, table)
    constants.update(quantized_weights)
    members = {
        "graph.ir": print_graph(graph).encode(),
        "weights.safetensors": _safetensors(constants),
        "memory_plan.json": json.dumps(_memory_plan(plan), indent=1).encode(),
        "plan.json": json.dumps({"n_slots": plan.n_slots, "input_slots": plan.input_slots,
                                 "output_slots": _flat_outputs(plan.output_slots),
                                 "steps": table}, indent=1).encode(),
        "model.so": _shared_library(modules, backend.isa),
    }
    manifest = _manifest(exported, backend.isa, members)
    configs = {d["config"] for d in table if d["kind"] in ("qgemm", "qgemm_dynamic")}
    extra = {"vnni": ["avx512_vnni"], "amx": ["amx_int8", "amx_tile"]}
    for name in sorted(configs):
        manifest["target"]["required_features"] += extra.get(name, [])
    _write_zip(package_path, manifest, members)
    return str(package_path)


def load_package(path, check_features: bool = True):
    """The artifact at `path` as a callable (AOTInductor's aoti_load_package): takes
    ember Tensors or numpy arrays, one per exported input; returns Tensors in the
    exported result's structure."""
    return PackagedModel(lite.load_package(path, check_features))


class PackagedModel:
    """ember-side wrapper of a LiteModel: Tensors in, Tensors out."""

    def __init__(self, model: "lite.LiteModel"):
        self.lite = model

    @property
    def manifest(self) -> dict:
        return self.lite.manifest

    def __call__(self, *args):
        """Tensors (or arrays) in, one per exported input; the exported result's
        structure out (a Tensor, a tuple, a dict ... of Tensors)."""
        from ..frontend.compile_guards import LEAF, unflatten
        from .export import _spec_from_json
        arrays = [a._values() if isinstance(a, Tensor) else np.asarray(a) for a in args]
        outs = [Tensor._adopt(o) for o in self.lite(*arrays)]
        structure = self.lite.manifest.get("output_structure")
        if structure is None:
            return outs[0] if len(outs) == 1 else tuple(outs)
        return unflatten(_spec_from_json(structure, LEAF), outs)


def _copy_graph(graph: Graph) -> Graph:
    """A deep copy (passes rewrite in place; the ExportedProgram stays as exported)."""
    from ..ir.parser import parse
    copy = parse(print_graph(graph))
    for mine, theirs in zip(copy.placeholders, graph.placeholders):
        mine.meta.update({k: v for k, v in theirs.meta.items() if k != "val"})
    return copy


def _view_geometry(plan, exported: ExportedProgram) -> dict:
    """Each view step's (offset, shape, strides) in elements, measured by running the
    plan once on zeros: what numpy's view of the actual buffers was."""
    seen = {}

    def recording(step):
        fn = step.fn

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
        step.fn = run
        return fn
    originals = {id(s): recording(s) for s in plan.steps
                 if isinstance(s.fn, _Described) and s.fn.desc["kind"] == "view"}
    inputs = [np.zeros(s.shape, np.dtype(_np_name(s.dtype))) for s in exported.user_inputs]
    try:
        plan.run(inputs)
    finally:
        for s in plan.steps:
            if id(s) in originals:
                s.fn = originals[id(s)]
    return seen


def _np_name(dtype_name: str) -> str:
    return {"bool": "bool", "bfloat16": "float32"}.get(dtype_name, dtype_name)


def _step_table(plan, views: dict) -> tuple[list, list]:
    """plan.json's steps, and the LLVM modules (kind, text, exported symbols) they use;
    symbols are renamed 'm<i>_<name>' to keep modules apart in one library."""
    table, modules, module_index = [], [], {}

    def symbol(entry, name):
        kind, text, _ = entry
        if text not in module_index:
            module_index[text] = len(modules)
            modules.append(entry)
        return f"m{module_index[text]}_{name}"
    for step in plan.steps:
        fn = step.fn
        if not isinstance(fn, _Described) or fn.desc["kind"] == "unsupported":
            what = fn.desc.get("op") if isinstance(fn, _Described) else "a Python step"
            raise LoweringError(f"ember.aot: step {step.name} ({what}) has no native kernel "
                                "in ember's CPU backend, so it cannot be packaged (the "
                                "artifact runs native code only)")
        desc = {k: v for k, v in fn.desc.items() if not k.startswith("_")}
        desc.update(name=step.name, inputs=list(step.inputs), outputs=list(step.outputs))
        kind = desc["kind"]
        if kind == "kernel":
            desc["symbol"] = symbol(fn.modules[0], desc["symbol"])
        elif kind in ("gemm", "bgemm", "conv"):
            for key in ("rows", "cols", "pad", "batch"):
                if key in desc:
                    desc[key] = symbol(fn.desc["_module"], desc[key])
            if kind == "gemm":
                desc["b_slot"] = step.inputs[1]
            elif kind == "conv":
                desc["w_slot"] = step.inputs[1]
                desc["bias_slot"] = step.inputs[2] if desc["has_bias"] else None
        elif kind == "view":
            desc.update(views[step.name])
        elif kind in ("qgemm", "qgemm_dynamic", "qadd"):
            desc["symbol"] = symbol(fn.desc["_module"], desc["symbol"])
        desc["out_specs"] = [_spec_json(s) for s in step.out_specs]
        table.append(desc)
    return table, modules


def _weights(plan, table: list) -> dict:
    """weights.safetensors' arrays: "c<slot>" for plan constants, "p<step>" for weights
    packed here for a GEMM or conv step (so loading does not pack). A constant that only
    such steps read is stored packed only."""
    constants = {slot: np.ascontiguousarray(np.asarray(v)) for slot, v in plan.constants.items()
                 if not isinstance(v, QuantizedArray)}     # int8 weights: packed, see below
    arrays, packed_only = {}, {}
    for i, desc in enumerate(table):
        key = None
        if desc["kind"] == "gemm" and desc["prepack"] and desc["b_slot"] in constants:
            b = constants[desc["b_slot"]]
            arrays[f"p{i}"] = lite.panels_of(b.T if desc["transpose_b"] else b, desc["nr"])
            key = desc["b_slot"]
        elif desc["kind"] == "conv" and desc["w_slot"] in constants:
            arrays[f"p{i}"] = lite.pack_conv_weights(constants[desc["w_slot"]], desc["nr"])
            key = desc["w_slot"]
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


def _spec_json(spec) -> dict:
    meta = spec.meta
    return {"shape": list(meta.shape), "strides": list(meta.strides),
            "dtype": np.dtype(meta.dtype.np_dtype).str, "persistent": bool(spec.persistent)}


def _flat_outputs(slots) -> list:
    if isinstance(slots, int):
        return [slots]
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


def _safetensors(arrays: dict) -> bytes:
    from safetensors.numpy import save
    return save(arrays) if arrays else b""


# --- machine code ------------------------------------------------------------------------------
def _shared_library(modules: list, isa) -> bytes:
    """Compile every module for the host target (the ISA the in-process plan used) and
    link them into one shared library with the system C compiler."""
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
        out = os.path.join(tmp, "model.so")
        done = subprocess.run([cc, "-shared", "-o", out, *objects, "-lm"],
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
        if not value.is_declaration:
            value.name = f"{prefix}{value.name}"
    mod.verify()
    mod.triple = machine.triple
    mod.data_layout = str(machine.target_data)
    optimize(mod, machine)
    obj = machine.emit_object(mod)
    cache.store(key, obj)
    return obj


def _manifest(exported: ExportedProgram, isa, members: dict) -> dict:
    from .. import __version__ as ember_version
    tgt = target_for(isa)
    return {
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
        "members": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }


def _spec_json_of(spec):
    from ..frontend.compile_guards import LEAF
    from .export import _spec_json as structure_json
    return structure_json(spec, LEAF)


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
                z.writestr(name, data)
        os.replace(tmp, path)
    except OSError as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ArtifactError(f"ember.aot: cannot write {path}: {err}") from None
