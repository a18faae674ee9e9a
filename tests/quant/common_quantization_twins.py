"""PyTorch's quantization test models (torch.testing._internal.common_quantization) as a
user porting them would: each class's source (inspect.getsource) with `torch` rewritten
to `ember`, executed in a namespace where every name the file imports from torch is
looked up under ember's same path.

A case is (model class, flow). Both twins are built with the same float weights (torch's,
loaded into ember through state_dict, plus plain tensor attributes such as
FunctionalLinear's) and run through the flow torch's tests use on that model:

- eager_ptq   prepare / calibrate / convert (QuantWrapper or fuse_modules first where
              torch's tests do)
- eager_qat   prepare_qat / train-mode forward / convert
- dynamic     quantize_dynamic
- fuse        fuse_modules (eval) or the model's own fuse method
- fx_ptq      prepare_fx / calibrate / convert_fx, and convert_to_reference_fx
- fx_qat      prepare_qat_fx / train-mode forward / convert_fx
- fx_dynamic  prepare_fx with a dynamic qconfig / convert_fx
- fuse_fx     fuse_fx (eval)

and compared: the outputs (after prepare, and after convert within one quantization
step of torch's), the converted modules' class names and repr, and state_dict keys.
`run_case` returns a list of failure strings (empty: the case passes).
"""
from __future__ import annotations

import ast
import collections.abc
import functools
import importlib
import inspect
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import domain_oracles  # noqa: E402 - common_quantization imports torchvision

domain_oracles.import_torchvision()
import torch  # noqa: E402
import torch.testing._internal.common_quantization as CQ  # noqa: E402

import ember  # noqa: E402

_TORCH_NAME = re.compile(r"\btorch\b")


# --- the ember twin of common_quantization's namespace --------------------------------

def _ember_module(torch_module_name: str):
    return importlib.import_module("ember" + torch_module_name[len("torch"):])


def _ember_object(name: str, obj):
    """What `from ember.<same path> import name` gives a user for torch's `obj`."""
    if inspect.ismodule(obj):
        if obj.__name__.split(".")[0] != "torch":
            return obj
        return _ember_module(obj.__name__)
    origin = getattr(obj, "__module__", None) or ""
    if not origin.startswith("torch") and not (
            type(obj).__module__ or "").startswith("torch"):
        return obj
    homes = [origin] if origin.startswith("torch") else []
    homes += ["torch.ao.quantization", "torch.ao.quantization.quantize_fx",
              "torch.ao.quantization.quantization_mappings", "torch.nn"]
    for home in homes:
        try:
            space = _ember_module(home)
        except ImportError:
            continue
        if hasattr(space, name):
            return getattr(space, name)
    raise AttributeError(f"ember has no {name} (torch's from {origin})")


class _Missing:
    """A name ember lacks: using it raises naming it."""

    def __init__(self, name, why):
        self.name, self.why = name, why

    def __call__(self, *a, **k):
        raise NameError(f"{self.name}: {self.why}")

    def __getattr__(self, attr):
        raise NameError(f"{self.name}: {self.why}")


def ember_namespace() -> dict:
    ns = {"__name__": "ember_common_quantization", "Any": typing.Any,
          "Callable": collections.abc.Callable, "ember": ember}
    for name, obj in vars(CQ).items():
        if name.startswith("__") or (inspect.isclass(obj) and obj.__module__ == CQ.__name__):
            continue
        try:
            ns[name] = _ember_object(name, obj)
        except (AttributeError, ImportError) as e:
            ns[name] = _Missing(name, str(e))
    for cls in model_classes():
        src = _TORCH_NAME.sub("ember", _class_source(cls)[1])
        exec(compile(src, f"<ember {cls.__name__}>", "exec"), ns)
    return ns


def model_classes() -> list:
    """common_quantization's nn.Module classes, in file order."""
    out = [c for c in vars(CQ).values() if inspect.isclass(c)
           and c.__module__ == CQ.__name__ and issubclass(c, torch.nn.Module)]
    return sorted(out, key=lambda c: _class_source(c)[0])


@functools.lru_cache(maxsize=None)
def _class_blocks() -> dict:
    """{name: (first line, source)} of the classes common_quantization defines at module
    level, from one parse of the file: inspect.getsource(cls) parses the whole file again
    for each class on Python < 3.13 (76 classes, twice: ~14 s of CPU a worker). The lines
    and blocks are inspect's own: the first decorator's line, then inspect.getblock."""
    lines = inspect.getsourcelines(CQ)[0]           # a module's: its file, not parsed
    out: dict = {}

    def scan(body):
        for node in body:
            if isinstance(node, ast.ClassDef):
                first = (node.decorator_list[0] if node.decorator_list else node).lineno
                out.setdefault(node.name, (first, "".join(inspect.getblock(lines[first - 1:]))))
            elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for part in ("body", "orelse", "finalbody"):      # if / try / with blocks
                    scan(getattr(node, part, []))
                for handler in getattr(node, "handlers", []):
                    scan(handler.body)
    scan(ast.parse("".join(lines)).body)
    return out


def _class_source(cls) -> tuple:
    """(first line, source) of a common_quantization class, as inspect.getsourcelines."""
    found = _class_blocks().get(cls.__name__)
    if found is None:                               # not at module level: inspect's way
        lines, start = inspect.getsourcelines(cls)
        found = (start, "".join(lines))
    return found


_NS: dict | None = None


def namespace() -> dict:
    global _NS
    if _NS is None:
        _NS = ember_namespace()
    return _NS


# --- the twins -----------------------------------------------------------------------

def to_ember(x):
    if isinstance(x, torch.Tensor):
        return ember.tensor(x.detach().numpy())
    if isinstance(x, (tuple, list)):
        return type(x)(to_ember(v) for v in x)
    return x


def to_numpy(x) -> list:
    """A model output (tensor, quantized tensor, tuple, nested) as a flat list of arrays."""
    if isinstance(x, (tuple, list)):
        return [a for v in x for a in to_numpy(v)]
    if x is None:
        return []
    if getattr(x, "is_quantized", False):
        x = x.dequantize()
    if isinstance(x, torch.Tensor):
        return [x.detach().numpy()]
    return [np.asarray(x.detach().numpy())]


def share_weights(t_model, e_model) -> None:
    """ember's twin gets torch's state_dict and plain tensor attributes."""
    e_model.load_state_dict({k: to_ember(v) for k, v in t_model.state_dict().items()})
    e_mods = dict(e_model.named_modules())
    for name, t_mod in t_model.named_modules():
        e_mod = e_mods.get(name)
        if e_mod is None:
            continue
        for attr, v in vars(t_mod).items():
            if isinstance(v, torch.Tensor) and not attr.startswith("_"):
                setattr(e_mod, attr, to_ember(v))


def _qnames(space: str) -> object:
    return importlib.import_module(space + ".ao.quantization")


@dataclass
class Case:
    model: str
    flow: str
    inputs: Callable          # () -> tuple of torch inputs (seeded by the caller)
    args: Callable = lambda q: ()  # (torch|ember ao.quantization) -> constructor args
    fuse: object = None        # list of module-name lists, or a method name
    wrap: bool = False         # QuantWrapper(model) with default_qconfig, as torch's tests
    qconfig: str | None = None  # the top-level qconfig name to set (eager flows)
    dynamic_spec: object = None  # quantize_dynamic's qconfig_spec: a set of nn class names
    skip: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.model}-{self.flow}"


def build_twins(case: Case):
    ns = namespace()
    torch.manual_seed(0)
    t_model = getattr(CQ, case.model)(*case.args(_qnames("torch")))
    e_model = ns[case.model](*case.args(_qnames("ember")))
    share_weights(t_model, e_model)
    return t_model, e_model


# --- running a flow on one twin ------------------------------------------------------

def _space(model):
    return "torch" if isinstance(model, torch.nn.Module) else "ember"


def _no_grad(space):
    return torch.no_grad() if space == "torch" else ember.no_grad()


def _run(model, inputs):
    with _no_grad(_space(model)):
        return model(*inputs)


def _fuse(model, case, qat=False):
    space = _space(model)
    q = _qnames(space)
    if isinstance(case.fuse, str):
        getattr(model, case.fuse)()
    elif case.fuse:
        fuse = q.fuse_modules_qat if qat else q.fuse_modules
        model = fuse(model, case.fuse)
    return model


def _wrap(model, case, qat=False):
    q = _qnames(_space(model))
    if case.extra.get("emb_qconfig"):
        getattr(model, case.extra["emb_qconfig"]).qconfig = q.float_qparams_weight_only_qconfig
    if case.wrap:
        model = q.QuantWrapper(model)
    if case.qconfig:
        model.qconfig = getattr(q, case.qconfig) if not case.qconfig.startswith("get_") \
            else getattr(q, case.qconfig.split(":")[0])(case.qconfig.split(":")[1])
    return model


def flow_outputs(model, case: Case, calib: list, evals: list) -> dict:
    """Run `case.flow` on one twin; {stage: (output on each eval input, final model)}."""
    space = _space(model)
    q = _qnames(space)
    qfx = importlib.import_module(space + ".ao.quantization.quantize_fx")
    conv = (lambda xs: xs) if space == "torch" else to_ember
    calib = [conv(c) for c in calib]
    evals = [conv(e) for e in evals]
    out = {}

    def record(stage, m):
        out[stage] = ([_run(m, e) for e in evals], m)

    flow = case.flow
    if flow == "eager_ptq":
        model = _wrap(_fuse(model.eval(), case), case)
        model = q.prepare(model)
        for c in calib:
            _run(model, c)
        record("prepared", model)
        record("converted", q.convert(model))
    elif flow == "eager_qat":
        model = _wrap(_fuse(model.train(), case, qat=True), case)
        model = q.prepare_qat(model)
        for c in calib:
            _run(model, c)
        model.eval()
        record("prepared", model)
        record("converted", q.convert(model))
    elif flow == "dynamic":
        spec = None
        if case.dynamic_spec:
            nn_space = importlib.import_module(space + ".nn")
            spec = {getattr(nn_space, n) for n in case.dynamic_spec}
        record("converted", q.quantize_dynamic(model.eval(), spec, dtype=getattr(
            importlib.import_module(space), "qint8")))
    elif flow == "fuse":
        record("fused", _fuse(model.eval(), case))
    elif flow in ("fx_ptq", "fx_qat", "fx_ref", "fx_dynamic"):
        example = calib[0]
        if flow == "fx_qat":
            model.train()
            mapping = q.get_default_qat_qconfig_mapping("fbgemm")
            prepared = qfx.prepare_qat_fx(model, mapping, example)
        else:
            model.eval()
            mapping = (q.QConfigMapping().set_global(q.default_dynamic_qconfig)
                       if flow == "fx_dynamic" else q.get_default_qconfig_mapping("fbgemm"))
            prepared = qfx.prepare_fx(model, mapping, example)
        for c in calib:
            _run(prepared, c)
        prepared.eval()
        record("prepared", prepared)
        convert = qfx.convert_to_reference_fx if flow == "fx_ref" else qfx.convert_fx
        record("converted", convert(prepared))
    elif flow == "fuse_fx":
        record("fused", qfx.fuse_fx(model.eval()))
    else:
        raise ValueError(f"unknown flow {flow}")
    return out


# --- comparing -----------------------------------------------------------------------

def _step(t_out) -> float:
    """One quantization step of torch's output: its scale when quantized, else the
    8-bit step of its range (the range the last observer saw, about)."""
    if getattr(t_out, "is_quantized", False):
        if t_out.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            return float(t_out.q_scale())
        return float(t_out.q_per_channel_scales().max())
    a = to_numpy(t_out)
    hi = max([float(x.max()) for x in a if x.size] + [0.0])
    lo = min([float(x.min()) for x in a if x.size] + [0.0])
    return max(hi - lo, 1e-6) / 255


def compare_outputs(stage: str, t_outs: list, e_outs: list, quantized: bool) -> list:
    fails = []
    for i, (t, e) in enumerate(zip(t_outs, e_outs)):
        ta, ea = to_numpy(t), to_numpy(e)
        if len(ta) != len(ea):
            fails.append(f"{stage}: {len(ea)} outputs, torch {len(ta)}")
            continue
        tq = [getattr(x, "is_quantized", False) for x in (t if isinstance(t, (tuple, list)) else [t])]
        eq = [getattr(x, "is_quantized", False) for x in (e if isinstance(e, (tuple, list)) else [e])]
        if tq != eq:
            fails.append(f"{stage}: output quantized={eq}, torch {tq}")
        for a, b in zip(ta, ea):
            if a.shape != b.shape:
                fails.append(f"{stage}: output shape {b.shape}, torch {a.shape}")
                continue
            tol = 1.01 * _step(t) + 1e-6 if quantized else 1e-4 * (1 + np.abs(a).max())
            err = float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0
            if not err <= tol:
                fails.append(f"{stage}: input {i} max error {err:.3g} > {tol:.3g}"
                             + (" (one quantization step)" if quantized else ""))
        if fails:
            break
    return fails


def _module_table(model) -> list:
    """(name, class name) of every module but torch's packed-params holders."""
    return [(n, type(m).__name__) for n, m in model.named_modules()
            if type(m).__name__ not in ("LinearPackedParams", "EmbeddingPackedParams")]


def _leaf_reprs(model) -> dict:
    out = {}
    for n, m in model.named_modules():
        if ".ao.nn." in type(m).__module__ and type(m).__name__ not in (
                "LinearPackedParams", "EmbeddingPackedParams"):
            out[n] = _TORCH_NAME.sub("ember", m.extra_repr())
    return out


_NUMBER = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")


def _same_repr(e_text, t_text) -> bool:
    """Equal text, floats within float32 rounding (the scales the observers compute
    from outputs that differ by an ulp where the float kernels sum in another order)."""
    if _NUMBER.sub("#", e_text) != _NUMBER.sub("#", t_text):
        return False
    return all(abs(float(a) - float(b)) <= 1e-5 * abs(float(b)) + 1e-12
               for a, b in zip(_NUMBER.findall(e_text), _NUMBER.findall(t_text)))


def compare_structure(t_model, e_model, graph: bool) -> list:
    fails = []
    t_mods, e_mods = dict(_module_table(t_model)), dict(_module_table(e_model))
    diff = [f"{n}: {e_mods.get(n)} (torch {c})" for n, c in t_mods.items()
            if e_mods.get(n) != c]
    if diff:
        fails.append("module types: " + "; ".join(diff[:4]))
    t_repr, e_repr = _leaf_reprs(t_model), _leaf_reprs(e_model)
    diff = [f"{n}: {e_repr.get(n)!r} (torch {r!r})" for n, r in t_repr.items()
            if n in e_mods and not _same_repr(e_repr.get(n, ""), r)]
    if diff:
        fails.append("repr: " + "; ".join(diff[:2]))
    t_keys, e_keys = list(t_model.state_dict()), list(e_model.state_dict())
    if graph:   # graph modules: compare as sets (attribute naming order is the tracer's)
        t_keys, e_keys = sorted(t_keys), sorted(e_keys)
    if t_keys != e_keys:
        missing = [k for k in t_keys if k not in e_keys]
        extra = [k for k in e_keys if k not in t_keys]
        fails.append(f"state_dict keys: missing {missing[:4]} extra {extra[:4]}"
                     if missing or extra else "state_dict keys: order differs")
    return fails


def run_case(case: Case, n_calib: int = 3) -> list:
    """The case's failures against torch (empty: it passes)."""
    if case.skip:
        return []
    t_model, e_model = build_twins(case)
    torch.manual_seed(1)
    calib = [case.inputs() for _ in range(n_calib)]
    evals = [case.inputs() for _ in range(2)]
    engine = torch.backends.quantized.engine
    torch.backends.quantized.engine = case.extra.get("engine", "fbgemm")
    try:
        t_out = flow_outputs(t_model, case, calib, evals)
    finally:
        torch.backends.quantized.engine = engine
    e_engine = ember.backends.quantized.engine
    ember.backends.quantized.engine = case.extra.get("engine", "fbgemm")
    try:
        e_out = flow_outputs(e_model, case, calib, evals)
    except Exception as e:  # noqa: BLE001 - the report names what ember raised
        return [f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"]
    finally:
        ember.backends.quantized.engine = e_engine
    fails = []
    graph = case.flow.startswith("fx") or case.flow == "fuse_fx"
    for stage, (t_res, t_final) in t_out.items():
        e_res, e_final = e_out[stage]
        quantized = stage == "converted" or (stage == "prepared" and "qat" in case.flow)
        fails += compare_outputs(stage, t_res, e_res, quantized)
        if stage in ("converted", "fused"):
            fails += compare_structure(t_final, e_final, graph)
    return fails


# --- the cases: each model with the flows torch's own tests run on it ------------------

def _rand(*shape):
    return lambda: (torch.rand(*shape),)


def _ints(high, *shape):
    return torch.randint(0, high, shape, dtype=torch.int64)


_FX = ("fx_ptq", "fx_ref", "fx_qat", "fuse_fx")
_FUSION_CONV = [["conv1", "bn1", "relu1"]]


def _model_cases() -> list:
    c = []

    def add(model, flows, inputs=None, **kw):
        for flow in flows:
            c.append(Case(model, flow, inputs or (lambda m=model: getattr(
                CQ, m)().get_example_inputs()), **kw))

    # plain models with example inputs: FX graph mode, as test_quantize_fx.py runs them
    for m in ("SingleLayerLinearModel", "TwoLayerLinearModel", "LinearModelWithSubmodule",
              "LinearReluModel", "LinearReluLinearModel", "LinearReluAddModel",
              "LinearAddModel", "ConvModel", "TwoLayerConvModel", "ConvBnModel",
              "ConvBnReLUModel", "ConvReluModel", "ConvReluConvModel", "ConvReluAddModel",
              "ConvTransposeModel", "FunctionalLinear", "SingleLayerFunctionalLinearModel",
              "TwoLayerFunctionalLinearModel", "FunctionalLinearAddModel",
              "FunctionalLinearReluModel", "FunctionalLinearReluLinearModel",
              "FunctionalConv2d", "SingleLayerFunctionalConvModel",
              "TwoLayerFunctionalConvModel", "FunctionalConvReluModel",
              "FunctionalConvReluConvModel", "LinearTanhModel", "ConvBnAddReluModel"):
        add(m, _FX)
    add("LinearBnLeakyReluModel", _FX, _rand(2, 5))    # training BatchNorm1d needs batch > 1
    for m in ("SingleLayerLinearModel", "TwoLayerLinearModel", "LinearReluLinearModel",
              "LinearModelWithSubmodule"):
        add(m, ("fx_dynamic", "dynamic"))
    # eager models that carry their own qconfig and stubs (test_quantize_eager_ptq.py)
    for m, args in (("AnnotatedSingleLayerLinearModel", ("fbgemm",)),
                    ("AnnotatedConvModel", ("fbgemm",)),
                    ("AnnotatedConvBnModel", ()), ("AnnotatedConvBnReLUModel", ("fbgemm",)),
                    ("AnnotatedTwoLayerLinearModel", ()),
                    ("AnnotatedNestedModel", ("fbgemm",)), ("AnnotatedSubNestedModel", ()),
                    ("AnnotatedCustomConfigNestedModel", ()),
                    ("AnnotatedSkipQuantModel", ("fbgemm",)), ("QuantStubModel", ())):
        shape = (2, 3, 5, 5) if "Conv" in m else (4, 5)
        add(m, ("eager_ptq",), _rand(*shape), args=lambda q, a=args: a)
    add("AnnotatedConvBnReLUModel", ("eager_ptq",), _rand(2, 3, 5, 5),
        args=lambda q: ("fbgemm",), fuse="fuse_model", extra={"id": "fused"})
    add("AnnotatedConvBnReLUModel", ("eager_qat",), _rand(2, 3, 5, 5),
        args=lambda q: ("fbgemm",), fuse="fuse_model",
        qconfig="get_default_qat_qconfig:fbgemm")
    add("AnnotatedSkipQuantModel", ("eager_ptq",), _rand(4, 5), args=lambda q: ("fbgemm",),
        fuse="fuse_modules", extra={"id": "fused"})
    # fbgemm has no per-channel ConvTranspose: torch's tests run it under qnnpack
    add("AnnotatedConvTransposeModel", ("eager_ptq",), _rand(2, 3, 5, 5),
        args=lambda q: ("qnnpack",), extra={"engine": "qnnpack"})
    add("QuantSubModel", ("dynamic",), _rand(4, 5))
    add("ActivationsTestModel", ("eager_ptq",), lambda: (torch.rand(2, 3, 4, 4) - 0.5,))
    add("NormalizationTestModel", ("eager_ptq",), _rand(4, 5), qconfig="default_qconfig")
    add("SingleLayerLinearDynamicModel", ("dynamic",), _rand(4, 5))
    add("NestedModel", ("dynamic", "fx_ptq", "fx_dynamic"), _rand(4, 5))
    add("InnerModule", ("fuse", "fx_ptq"), _rand(4, 5), fuse="fuse_modules")
    add("SkipQuantModel", ("eager_ptq",), _rand(4, 5), fuse="fuse_modules", wrap=True,
        qconfig="default_qconfig")
    for m in ("TwoLayerLinearModel", "LinearReluModel", "ConvModel", "ConvBnReLUModel",
              "TwoLayerConvModel"):
        ex = (lambda m=m: getattr(CQ, m)().get_example_inputs())
        add(m, ("eager_ptq",), ex, wrap=True, qconfig="default_qconfig")
        add(m, ("eager_qat",), ex, wrap=True, qconfig="get_default_qat_qconfig:fbgemm")
    # dynamic RNNs
    for kind in ("LSTM", "GRU"):
        add("RNNDynamicModel", ("dynamic",), _rand(3, 2, 2), args=lambda q, k=kind: (k,),
            extra={"id": kind})
    for kind in ("LSTMCell", "GRUCell", "RNNReLU", "RNNTanh"):
        add("RNNCellDynamicModel", ("dynamic",), _rand(3, 2), args=lambda q, k=kind: (k,),
            extra={"id": kind})
    add("LSTMwithHiddenDynamicModel", ("dynamic",),
        lambda: (torch.rand(3, 2, 2), (torch.rand(1, 2, 2), torch.rand(1, 2, 2))),
        dynamic_spec={"LSTM"})
    # QAT models (test_quantize_eager_qat.py)
    add("ManualLinearQATModel", ("eager_qat",), _rand(4, 5), args=lambda q: ("fbgemm",))
    add("ManualDropoutQATModel", ("eager_qat",), _rand(4, 5), args=lambda q: ("fbgemm",),
        skip="QAT calibrates in training mode, where Dropout's random masks come from "
             "torch's and ember's different generators")
    add("ManualLinearDynamicQATModel", ("dynamic",), _rand(4, 5))
    add("ManualConvLinearQATModel", ("eager_qat",), _rand(2, 3, 10, 10))
    add("ManualConvLinearSymmQATModel", ("eager_qat",), _rand(2, 3, 10, 10),
        extra={"engine": "qnnpack"},
        skip="torch's own convert fails on it in this build (qnnpack's quantized conv "
             "rejects the qint8 activations its symmetric qconfig asks for)")
    add("ManualEmbeddingBagLinear", ("eager_qat",),
        lambda: (_ints(10, 8), torch.tensor([0, 3], dtype=torch.int64)))
    add("DeFusedEmbeddingBagLinear", ("eager_qat",), lambda: (_ints(10, 2, 4),))
    # fusion models (fuse_modules, then the eager flows)
    add("ModelForFusion", ("fuse", "eager_ptq"), _rand(2, 3, 1, 19),
        args=lambda q: (q.default_qconfig,),
        fuse=[["conv3", "bn3", "relu4"], ["conv1", "bn1", "relu1"], ["sub1.conv", "sub1.bn"],
              ["conv2", "relu2"], ["bn2", "relu3"]])
    add("ModelForFusion", ("eager_qat",), _rand(2, 3, 1, 19),
        args=lambda q: (q.default_qat_qconfig,),
        fuse=[["conv3", "bn3", "relu4"], ["conv1", "bn1", "relu1"], ["sub1.conv", "sub1.bn"]])
    seq_fuse = [["conv1", "relu1"], ["features.0.0", "features.0.1", "features.0.2"],
                ["features.1.0", "features.1.1", "features.1.2"],
                ["features.2.0", "features.2.1", "features.2.2"],
                ["classifier.0", "classifier.1"]]
    add("ModelWithSequentialFusion", ("fuse", "eager_ptq"), _rand(2, 3, 10, 10),
        fuse=seq_fuse, qconfig="default_qconfig")
    add("ModelWithSequentialFusion", ("eager_qat",), _rand(2, 3, 10, 10),
        fuse=seq_fuse, qconfig="default_qat_qconfig")
    add("ModelForFusionWithBias", ("fuse", "eager_ptq"), _rand(2, 3, 10, 10),
        fuse=[["conv1", "bn1", "relu1"], ["conv2", "bn2"]], qconfig="default_qconfig")
    add("ModelForLinearBNFusion", ("fuse", "fuse_fx", "fx_ptq"), _rand(4, 20),
        fuse=[["fc", "bn"]])
    add("ModelForConvTransposeBNFusion", ("fuse", "fuse_fx"), _rand(2, 3, 4),
        fuse=[["conv1", "bn1"], ["conv2", "bn2"], ["conv3", "bn3"]])
    add("ConvBNReLU", ("fuse", "fuse_fx"), _rand(2, 3, 4, 4), fuse=[["0", "1", "2"]])
    add("SubModelForFusion", ("fuse", "fuse_fx"), _rand(2, 2, 4, 4), fuse=[["conv", "bn"]])
    add("SubModelWithoutFusion", ("fuse", "fuse_fx"), _rand(2, 2, 4, 4),
        fuse=[["conv", "relu"]])
    # FloatFunctional models
    add("ModelWithFunctionals", ("eager_ptq",), lambda: (torch.rand(4, 4) - 0.2,),
        wrap=True, qconfig="default_qconfig")
    add("ResNetBase", ("eager_ptq",), _rand(2, 3, 6, 6), fuse="fuse_model", wrap=True,
        qconfig="default_qconfig")
    add("ResNetBase", ("eager_qat",), _rand(2, 3, 6, 6), fuse="fuse_model", wrap=True,
        qconfig="default_qat_qconfig")
    add("ResNetBase", ("fx_ptq", "fx_qat"), _rand(2, 3, 6, 6))
    add("ModelMultipleOps", ("eager_ptq",), _rand(2, 3, 8, 8), fuse=_FUSION_CONV, wrap=True,
        qconfig="default_qconfig")
    add("ModelMultipleOps", ("fx_ptq",), _rand(2, 3, 8, 8))
    add("ModelMultipleOpsNoAvgPool", ("eager_ptq",), _rand(2, 3, 16, 16), fuse=_FUSION_CONV,
        wrap=True, qconfig="default_qconfig")
    add("ModelMultipleOpsNoAvgPool", ("eager_qat",), _rand(2, 3, 16, 16), fuse=_FUSION_CONV,
        wrap=True, qconfig="default_qat_qconfig")
    # embeddings
    add("EmbeddingModule", ("eager_ptq",), lambda: (_ints(10, 2, 4),),
        extra={"emb_qconfig": "emb"})
    add("EmbeddingBagModule", ("eager_ptq",),
        lambda: (_ints(10, 8), torch.tensor([0, 3, 8]), torch.rand(8)),
        extra={"emb_qconfig": "emb"})
    add("EmbeddingWithStaticLinear", ("eager_ptq",),
        lambda: (_ints(10, 8), torch.tensor([0, 3]), torch.rand(2, 4)))
    add("EmbBagWrapper", ("eager_ptq",), lambda: (_ints(10, 8), torch.tensor([0, 3])),
        args=lambda q: (10, 4), extra={"emb_qconfig": "emb_bag"})
    add("DenseTopMLP", ("fx_ptq", "fx_dynamic", "dynamic"),
        lambda: (torch.rand(2, 5), torch.rand(2, 4)), args=lambda q: (4, 2, 5, 2, 2))
    add("SparseNNModel", ("fx_dynamic", "dynamic"),
        lambda: (_ints(10, 8), torch.tensor([0, 3]), torch.rand(2, 4)))
    return c


CASES = _model_cases()


def case_id(case: Case) -> str:
    tag = case.extra.get("id")
    return f"{case.model}[{tag}]-{case.flow}" if tag else case.id


def cases_by_id() -> dict:
    return {case_id(c): c for c in CASES}
