"""Shared by tests/quant/test_quantize_fx_suite_*.py: run one model through torch.ao's
and ember.ao's FX flows on the same float weights and calibration data, and describe
the resulting graphs in one vocabulary (node kinds torch.ao's tests check:
quantize_per_tensor, quantized module classes, dequantize), so the two compare."""
from __future__ import annotations

import copy
import importlib
import warnings

import numpy as np
import torch

import ember
from quant_twins import share_random_weights

warnings.filterwarnings("ignore")
LIBS = (torch, ember)


def api(lib):
    """(ao.quantization, quantize_fx, fx.custom_config) of torch or ember."""
    base = f"{lib.__name__}.ao.quantization"
    return (importlib.import_module(base), importlib.import_module(f"{base}.quantize_fx"),
            importlib.import_module(f"{base}.fx.custom_config"))


def twins(make, seed=0):
    """make(torch) and make(ember) in eval mode with the same random float weights."""
    t, e = make(torch), make(ember)
    share_random_weights(t, e, np.random.default_rng(seed))
    return t.eval(), e.eval()


def tensor(lib, arr):
    return torch.from_numpy(arr) if lib is torch else ember.tensor(arr)


def batches(shape, n=3, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def _target_name(node) -> str:
    target = node.target
    if isinstance(target, str):
        return target
    qualified = getattr(target, "_qualified_op_name", None)     # torch.ops.quantized.add
    if qualified:
        return qualified.replace("::", "_")
    name = getattr(target, "name", None) or getattr(target, "__name__", str(target))
    if name in ("quantized_add", "quantized_mul") and node.args and node.args[-1] is True:
        name += "_relu"             # ember's op takes the fused relu as a flag
    return name


def node_kinds(gm) -> list:
    """(op, what it calls) per compute node: module class names, function / op names and
    method names; placeholders, get_attrs and the output left out."""
    modules = dict(gm.named_modules(remove_duplicate=False))   # shared observers too
    kinds = []
    for node in gm.graph.nodes:
        op = getattr(node.op, "value", node.op)
        if op == "call_module":
            kinds.append((op, type(modules[str(node.target)]).__name__))
        elif op in ("call_function", "call_method"):
            kinds.append((op, _target_name(node)))
    return kinds


def count(gm, op, name) -> int:
    return sum(1 for k in node_kinds(gm) if k == (op, name))


def flow(make, mapping, shape, *, seed=0, prepare=None, convert=None, qat=False,
         reference=False, calib=None, inputs=None):
    """Per library (torch, ember): (prepared, converted, output on a fresh batch).
    `mapping(lib, aq)` gives the qconfig mapping (or dict); `prepare(lib, aq, cc)` /
    `convert(lib, aq, cc)` the custom configs; `inputs(lib, arr)` the call arguments."""
    t_model, e_model = twins(make, seed)
    calib = calib or batches(shape)
    x_new = batches(shape, n=1, seed=seed + 7)[0]
    inputs = inputs or (lambda lib, arr: (tensor(lib, arr),))
    out = {}
    for lib, model in ((torch, t_model), (ember, e_model)):
        aq, qfx, cc = api(lib)
        if qat:
            model.train()
        prep_fn = qfx.prepare_qat_fx if qat else qfx.prepare_fx
        pcc = prepare(lib, aq, cc) if prepare else None
        prepared = prep_fn(model, mapping(lib, aq), inputs(lib, calib[0]),
                           prepare_custom_config=pcc)
        for c in calib:
            prepared(*inputs(lib, c))
        if qat:
            prepared.eval()
        ccc = convert(lib, aq, cc) if convert else None
        conv_fn = qfx.convert_to_reference_fx if reference else qfx.convert_fx
        converted = conv_fn(copy.deepcopy(prepared) if lib is torch else prepared,
                            convert_custom_config=ccc)
        with torch.no_grad(), ember.no_grad():
            y = converted(*inputs(lib, x_new))
        out[lib.__name__] = (prepared, converted, to_numpy(y))
    return out["torch"], out["ember"]


def to_numpy(y):
    if isinstance(y, (tuple, list)):
        return [to_numpy(v) for v in y]
    return y.detach().numpy()


def qparams(gm) -> dict:
    """name -> value of every 0-d scale / zero-point buffer of a converted model, and
    scale / zero_point of its quantized modules."""
    found = {}
    for name, buf in gm.named_buffers():
        if name.endswith(("_scale_0", "_zero_point_0")) or "_scale_" in name or "_zero_point_" in name:
            found[name] = float(buf)
    for name, mod in gm.named_modules():
        if ".ao.nn." in type(mod).__module__ and hasattr(mod, "scale") and hasattr(mod, "zero_point"):
            try:
                found[f"{name}.scale"] = float(mod.scale)
                found[f"{name}.zero_point"] = float(mod.zero_point)
            except (TypeError, RuntimeError):
                pass
    return found


def assert_same(t, e, *, atol=None, kinds=True, keys=True, params=True):
    """torch.ao's and ember's results of `flow` agree: node kinds, state_dict keys,
    qparams and outputs (within `atol`, default one output quantization step)."""
    (t_prep, t_q, t_y), (e_prep, e_q, e_y) = t, e
    if kinds:
        assert node_kinds(e_q) == node_kinds(t_q)
    if keys:
        assert list(e_q.state_dict()) == list(t_q.state_dict())
    if params:
        tp, ep = qparams(t_q), qparams(e_q)
        assert ep.keys() == tp.keys()
        for k in tp:
            np.testing.assert_allclose(ep[k], tp[k], rtol=1e-6, err_msg=k)
    if atol is None:
        atol = 1e-5
    np.testing.assert_allclose(np.asarray(e_y), np.asarray(t_y), atol=atol)
