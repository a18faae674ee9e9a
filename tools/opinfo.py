"""Run PyTorch's own OpInfo database (op_db) against ember.

Each OpInfo entry is mapped by name, as a user porting code would: `torch.X` ->
`ember.X`, `torch.nn.functional.X` -> `ember.nn.functional.X`, `torch.linalg/fft/special/
masked.X` -> the same path under ember, `torch.signal.windows.X` ->
`ember.signal.windows.X`, and method-only entries -> `ember.Tensor.X`. For each entry
and dtype, every `sample_inputs` case is converted to ember tensors and the results
compared with torch's; with `--grad`, float64 gradients (a fixed random cotangent) too.

    python tools/opinfo.py                       # summary over every entry
    python tools/opinfo.py addcmul nn.functional.glu --verbose   # named entries, details
    python tools/opinfo.py --missing             # names ember lacks
    python tools/opinfo.py --json out.json       # the per-entry record, as data

Needs torch (the test oracle) and expecttest; ember itself never imports torch.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import traceback
import warnings

import numpy as np

warnings.filterwarnings("ignore")

# ops whose values are random or uninitialized: only shapes and dtypes are compared
RANDOM_OPS = {
    "bernoulli", "multinomial", "normal", "uniform", "cauchy", "exponential", "geometric",
    "log_normal", "rand_like", "randn_like", "randint_like", "randint", "randn", "rand",
    "nn.functional.dropout", "nn.functional.dropout2d", "nn.functional.dropout3d",
    "nn.functional.dropout1d", "nn.functional.alpha_dropout",
    "nn.functional.feature_alpha_dropout", "nn.functional.rrelu", "empty", "empty_like",
    "new_empty", "new_empty_strided", "empty_strided", "empty_permuted",
    "nn.functional.fractional_max_pool2d", "nn.functional.fractional_max_pool3d",
    "torch.empty", "svd_lowrank", "pca_lowrank", "resize_", "resize_as_",
}
# entries whose op is `wrapper_set_seed(torch.Tensor.<name>_, ...)`: ember's <name>_ method
INPLACE_SAMPLERS = {"uniform", "cauchy", "exponential", "geometric", "log_normal"}
# entries outside the scope of the CPU float/complex surface (sparse, CUDA-only, private)
OUT_OF_SCOPE_PREFIXES = ("sparse.", "jiterator_", "torch._scaled_mm", "torch.ops.aten.",
                         "_", "to_sparse")

# results unique only up to sign/phase (eigenvectors, singular vectors): compared through
# the OpInfo sample's output_process_fn_grad, the projection PyTorch's gradcheck uses
GAUGE_OPS = {"linalg.eig", "linalg.eigh", "linalg.svd", "svd", "linalg.svd_lowrank",
             "svd_lowrank", "pca_lowrank", "linalg.eigvals", "lu", "linalg.lu"}
# sorting/selection ops whose index output is unspecified among equal values
TIE_OPS = {"sort", "argsort", "topk", "kthvalue", "mode", "median", "nanmedian", "msort",
           "max.reduction_with_dim", "min.reduction_with_dim", "max", "min", "cummax",
           "cummin", "unique", "sort.stable"}

# matrix functions, compared with a tolerance relative to the result's norm (their float32
# entries carry the rounding of the largest ones; torch's differ from float64 by as much)
NORMWISE_OPS = {"matrix_exp", "linalg.matrix_exp"}

DTYPE_NAMES = ("float32", "float64", "complex64", "int64", "bool")
# `--dtypes all`: also these, where torch supports them for the entry
EXTRA_DTYPE_NAMES = ("float16", "bfloat16", "int32", "int16", "int8", "uint8", "complex128")
# (rtol, atol) by the result's NumPy dtype name: half precision differs from torch in the
# last bits of its 10 (float16) or 7 (bfloat16) mantissa bits (4 units in the last place:
# torch accumulates half-precision sums and products in float32, ember may round between)
TOLERANCES = {"float16": (4e-3, 1e-3), "bfloat16": (3.2e-2, 1e-2),
              "float32": (1e-4, 1e-5), "complex64": (1e-4, 1e-5)}

# entries whose OpInfo `op` is a lambda taking (input, n) for torch's (n, input) signature:
# ember's function is called in torch's order
SWAPPED_FIRST_TWO = {"polygamma", "special.polygamma"}
# entries (name or name.variant) whose OpInfo `op` is a lambda around the public function
ARG_ADAPTERS = {
    "nn.functional.embedding": lambda fn: lambda weight, idx, *a, **k: fn(idx, weight, *a, **k),
    "linalg.pinv.singular": lambda fn: lambda a, b: fn(a @ b.mT),
    "einsum": lambda fn: lambda tensors, equation: fn(equation, tensors),
    "svd_lowrank": lambda fn: lambda a, b, **k: fn(a @ b.mT, **k),
    "pca_lowrank": lambda fn: lambda a, b, **k: fn(a @ b.mT, **k),
}


def _ember():
    import ember  # noqa: PLC0415 - imported late so --help works without it
    return ember


def resolve(name: str):
    """The ember callable a user would reach for OpInfo entry `name`, or None."""
    ember = _ember()
    parts = name.split(".")
    if parts[:2] == ["nn", "functional"]:
        base, rest = "ember.nn.functional", parts[2:]
    elif parts[:2] == ["signal", "windows"]:
        base, rest = "ember.signal.windows", parts[2:]
    elif parts[0] in ("linalg", "fft", "special", "masked"):
        base, rest = f"ember.{parts[0]}", parts[1:]
    else:
        base, rest = "ember", parts
    try:
        obj = importlib.import_module(base)
    except ImportError:
        return None
    for p in rest:
        obj = getattr(obj, p, None)
        if obj is None:
            break
    if obj is not None and name in SWAPPED_FIRST_TWO:
        fn = obj
        return lambda x, n, *a, **k: fn(n, x, *a, **k)
    if (obj is None or isinstance(obj, ember.dtype)) and len(parts) == 1:
        # method-only entries (Tensor.double, Tensor.int, ...) share names with dtypes
        method = getattr(ember.Tensor, name, None)
        if isinstance(method, property):          # T, mT, H, mH: attributes
            return lambda self: getattr(self, name)
        if method is not None:
            return lambda self, *a, **k: getattr(self, name)(*a, **k)
        if name in INPLACE_SAMPLERS and hasattr(ember.Tensor, name + "_"):
            return lambda self, *a, **k: getattr(self.clone(), name + "_")(*a, **k)
    return obj


def resolve_inplace(name: str):
    """`lambda x, *a: x.clone().<name>_(*a)`, or None where ember lacks the method."""
    if not hasattr(_ember().Tensor, name + "_"):
        return None
    return lambda self, *a, **k: getattr(self.clone(), name + "_")(*a, **k)


# --- torch <-> ember values ---------------------------------------------------------
def to_ember(v, requires_grad=False):
    import torch
    ember = _ember()
    if isinstance(v, torch.Tensor):
        if v.layout == torch.strided and _ALIASED and \
                v.untyped_storage().data_ptr() in _ALIASED:
            t = _aliased_twin(v)
            if requires_grad and v.requires_grad:
                t = t.detach().requires_grad_(True)
            return t
        if v._base is not None and not v.is_conj() and not v.is_neg():
            view = _view_to_ember(v, requires_grad)
            if view is not None:
                return view
        if v.dim() > 64 or v.device.type == "meta":
            # no values to copy (meta) or beyond NumPy's dims: ember's own factory says
            # whether it makes such a tensor
            return ember.empty(tuple(v.shape), dtype=to_ember(v.dtype), device=str(v.device))
        t = ember.tensor(_torch_numpy(v))
        if requires_grad and v.requires_grad:
            t.requires_grad_(True)
        return t
    if isinstance(v, torch.dtype):
        return getattr(ember, str(v).split(".")[-1])
    if isinstance(v, torch.device):
        return str(v)
    if isinstance(v, torch.memory_format):
        return getattr(ember, str(v).split(".")[-1])
    if isinstance(v, torch.Size):
        return tuple(v)
    if isinstance(v, torch.nn.Module):
        return _module_to_ember(v)
    if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):
        return type(v)(to_ember(x, requires_grad) for x in v)
    if isinstance(v, dict):
        return {k: to_ember(x, requires_grad) for k, x in v.items()}
    return v


def _torch_numpy(v):
    """A torch tensor's values as NumPy (bfloat16 through ml_dtypes: torch has no
    NumPy bfloat16)."""
    import torch
    v = v.detach().resolve_conj().resolve_neg()
    if v.dtype == torch.bfloat16:
        import ml_dtypes  # noqa: PLC0415 - ember's own bfloat16 dependency
        return v.float().numpy().astype(ml_dtypes.bfloat16)
    return v.numpy()


def _module_to_ember(module):
    """A torch.nn module passed as an argument (e.g. a distance_function) -> the ember.nn
    module of the same class name with the same public options; else left as is."""
    ember = _ember()
    cls = getattr(ember.nn, type(module).__name__, None)
    if cls is None or any(True for _ in module.parameters()):
        return module
    twin = cls.__new__(cls)
    ember.nn.Module.__init__(twin)
    for key, value in vars(module).items():
        if not key.startswith("_"):
            setattr(twin, key, to_ember(value))
    return twin
def _view_to_ember(v, requires_grad):
    """A torch view as the same view of an ember copy of its base, so that ops reading
    the storage (as_strided, storage_offset) see what torch's see."""
    ember = _ember()
    base = v._base.detach()
    if base.dtype != v.dtype or base.is_conj() or base.is_neg():
        return None
    base = ember.tensor(_torch_numpy(base))
    if requires_grad and v.requires_grad:
        base.requires_grad_(True)
    view = ember.as_strided(base, tuple(v.shape), tuple(v.stride()), v.storage_offset())
    # only where the view really reads its base's storage that way
    same = np.array_equal(view.detach().numpy(), _torch_numpy(v), equal_nan=True)
    return view if same else None


def as_numpy(v):
    import torch
    ember = _ember()
    if isinstance(v, torch.Tensor):
        if v._is_zerotensor():          # torch's lazy zero gradients (sgn of real input)
            return _torch_numpy(torch.zeros(v.shape, dtype=v.dtype))
        if v.layout != torch.strided:   # sparse gradients (Embedding(sparse=True)): values
            return _torch_numpy(v.to_dense())
        return _torch_numpy(v)
    if isinstance(v, ember.Tensor):
        return v.detach().numpy()
    if getattr(v, "is_sparse", False) and hasattr(v, "to_dense"):
        return v.to_dense().detach().numpy()
    return np.asarray(v)


def flatten(v):
    if isinstance(v, (list, tuple)):
        return [x for item in v for x in flatten(item)]
    return [v]


def compare(actual, expected, dtype_name, values=True, ties=False, normwise=False):
    """None when equal within tolerance, else a one-line reason.

    `normwise`: the tolerance is relative to the largest magnitude of the whole result (a
    matrix function's error bound: small entries carry the large ones' rounding).

    `ties`: the input has repeated values, so index outputs of sorting/selection ops
    may name either of two equal elements (torch leaves that unspecified)."""
    a_list, e_list = flatten(actual), flatten(expected)
    if len(a_list) != len(e_list):
        return f"{len(a_list)} outputs, torch has {len(e_list)}"
    for i, (a, e) in enumerate(zip(a_list, e_list)):
        if e is None or isinstance(e, (str, bool, int, float, complex)) and a == e:
            continue
        an, en = as_numpy(a), as_numpy(e)
        if an.shape != en.shape:
            return f"output {i}: shape {an.shape}, torch {en.shape}"
        if str(an.dtype) != str(en.dtype) and not (an.dtype.kind == en.dtype.kind == "f"
                                                   and not values):
            return f"output {i}: dtype {an.dtype}, torch {en.dtype}"
        if not values or an.size == 0 or ties and an.dtype == np.int64:
            continue
        # tolerance by the result's precision: single-precision results of integer
        # inputs (cosh of int64 -> float32) differ in the last bits like float32 ones
        rtol, atol = TOLERANCES.get(str(an.dtype), (1e-7, 1e-7))
        if an.dtype.kind in "fc" or str(an.dtype) == "bfloat16":
            wide = np.complex128 if an.dtype.kind == "c" else np.float64
            if normwise:
                atol = atol + rtol * float(np.nanmax(np.abs(en.astype(wide)), initial=0))
            ok = np.allclose(an.astype(wide), en.astype(wide), rtol=rtol, atol=atol,
                             equal_nan=True)
        else:
            ok = np.array_equal(an, en)
        if not ok:
            diff = np.abs(an.astype(np.complex128) - en.astype(np.complex128))
            return f"output {i}: max abs diff {np.nanmax(diff) if diff.size else 0:.3g}"
    return None


# entries whose dropout probability is a positional argument (index into sample.args),
# applied when the sample's `training` keyword is true
DROPOUT_ARG = {"nn.functional.multi_head_attention_forward": 9}


def _random_sample(name, sample) -> bool:
    """Samples that draw random numbers (dropout inside attention): torch's generator and
    ember's differ, so only shapes and dtypes can be compared."""
    if name in DROPOUT_ARG and sample.kwargs.get("training"):
        return (sample.args[DROPOUT_ARG[name]] or 0) > 0
    return (sample.kwargs.get("dropout_p") or 0) > 0


def _has_ties(t) -> bool:
    import torch
    return isinstance(t, torch.Tensor) and t.numel() > 1 and \
        torch.unique(t.detach().flatten()).numel() < t.numel()


def _call(fn, sample, convert):
    _ALIASED.clear()
    if convert is not _identity_convert:
        _ALIASED.update(_aliased_storages(sample))
    try:
        args = (convert(sample.input),) + tuple(convert(a) for a in sample.args)
        kwargs = {k: convert(v) for k, v in sample.kwargs.items()}
    finally:
        _ALIASED.clear()
    return fn(*args, **kwargs)


def _identity_convert(v):
    return v


# storages (by data pointer) that a sample's tensors share or only partly cover: their
# ember twins are views of one ember copy of the whole storage, so aliasing (out= that
# overlaps an input, as_strided over a partial view) survives the conversion
_ALIASED: dict = {}


def _aliased_storages(sample) -> dict:
    import torch
    tensors = [t for t in flatten([sample.input, list(sample.args),
                                   list(sample.kwargs.values())])
               if isinstance(t, torch.Tensor) and t.layout == torch.strided
               and t.device.type == "cpu"]
    by_storage = {}
    for t in tensors:
        by_storage.setdefault(t.untyped_storage().data_ptr(), []).append(t)
    out = {}
    for ptr, group in by_storage.items():
        t = group[0]
        n_storage = t.untyped_storage().nbytes() // max(t.element_size(), 1)
        same_dtype = all(g.dtype == t.dtype for g in group)
        if same_dtype and n_storage and (len(group) > 1 or
                                         t.numel() != n_storage):
            out[ptr] = None                     # the ember base, made on first use
    return out


def _aliased_twin(v):
    """The ember view over the shared ember storage for torch tensor `v`."""
    import torch
    ember = _ember()
    ptr = v.untyped_storage().data_ptr()
    if _ALIASED[ptr] is None:
        n = v.untyped_storage().nbytes() // v.element_size()
        flat = torch.empty(0, dtype=v.dtype).set_(v.untyped_storage(), 0, (n,), (1,))
        _ALIASED[ptr] = ember.tensor(_torch_numpy(flat))
    return _ALIASED[ptr].as_strided(list(v.shape), list(v.stride()), v.storage_offset())


def check_values(info, fn, dtype_name, limit, reference=False):
    """(passed, failures) over sample_inputs (or, with `reference`, OpInfo's larger
    reference_inputs) in one dtype."""
    import torch
    dtype = getattr(torch, dtype_name)
    if dtype not in info.supported_dtypes("cpu"):
        return 0, []
    passed, failures = 0, []
    samples = info.reference_inputs if reference else info.sample_inputs
    for i, sample in enumerate(samples("cpu", dtype)):
        if i >= limit:
            break
        values = info.name not in RANDOM_OPS and not _random_sample(info.name, sample)
        try:
            expected = _call(info.op, sample, _identity_convert)
        except Exception:  # torch rejects it too: not a value case
            continue
        try:
            actual = _call(fn, sample, to_ember)
            if info.name in GAUGE_OPS:  # compare what is unique (OpInfo's own projection)
                actual = sample.output_process_fn_grad(actual)
                expected = sample.output_process_fn_grad(expected)
            reason = compare(actual, expected, dtype_name, values,
                             ties=info.name in TIE_OPS and _has_ties(sample.input),
                             normwise=info.name in NORMWISE_OPS)
            if reason and values and _matches_own_reference(info, sample, actual, dtype_name):
                reason = None
        except Exception as exc:  # noqa: BLE001 - recorded as the failure
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        if reason is None:
            passed += 1
        else:
            failures.append(f"{dtype_name} sample {i} {_describe(sample)}: {reason}")
    return passed, failures


def _matches_own_reference(info, sample, actual, dtype_name) -> bool:
    """Whether ember's result equals the entry's own NumPy/SciPy reference (`OpInfo.ref`,
    what PyTorch's reference tests compare with), where torch's differs from both (torch's
    bessel_j0 near a zero of J0)."""
    import torch
    ref = getattr(info, "ref", None)
    if not callable(ref):
        return False

    def arr(v):
        return _torch_numpy(v) if isinstance(v, torch.Tensor) else v
    try:
        with np.errstate(all="ignore"):
            expected = ref(arr(sample.input), *(arr(a) for a in sample.args),
                           **{k: arr(v) for k, v in sample.kwargs.items()})
        return compare(actual, expected, dtype_name) is None
    except Exception:  # noqa: BLE001 - a reference that cannot take this sample
        return False


def check_grads(info, fn, limit):
    """(passed, failures) comparing float64 gradients through a fixed cotangent."""
    import torch
    if not info.supports_autograd or torch.float64 not in info.supported_dtypes("cpu") \
            or info.name in RANDOM_OPS:
        return 0, []
    passed, failures = 0, []
    for i, sample in enumerate(info.sample_inputs("cpu", torch.float64, requires_grad=True)):
        if i >= limit:
            break
        leaves = [t for t in flatten([sample.input, list(sample.args),
                                      list(sample.kwargs.values())])
                  if isinstance(t, torch.Tensor) and t.requires_grad]
        if not leaves:
            continue
        try:
            out = sample.output_process_fn_grad(
                _call(_grad_wrapped(info, info.op), sample, _identity_convert))
            outs = [o for o in flatten(out) if isinstance(o, torch.Tensor)
                    and o.requires_grad]
            if not outs:
                continue
            gen = torch.Generator().manual_seed(i)
            cots = [torch.randn(o.shape, dtype=o.dtype, generator=gen) for o in outs]
            expected = torch.autograd.grad(outs, leaves, cots, allow_unused=True)
        except Exception:
            continue
        try:
            reason = _ember_grads_reason(info.name, _grad_wrapped(info, fn), sample, outs,
                                         cots, expected)
        except Exception as exc:  # noqa: BLE001
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        if reason is None:
            passed += 1
        else:
            failures.append(f"grad sample {i} {_describe(sample)}: {reason}")
    return passed, failures


def _grad_wrapped(info, fn):
    """`fn` through the entry's gradcheck_wrapper, as PyTorch's gradient tests call it
    (e.g. a triangular factor's unread half zeroed, a Hermitian input symmetrized)."""
    wrapper = info.gradcheck_wrapper
    if "masked" in wrapper.__name__:   # needs torch.masked's private mask helpers
        return fn
    if fn is not info.op:     # the wrapper's own torch calls (torch.diag_embed) -> ember
        wrapper = _rebound_to_ember(wrapper)
    return lambda *args, **kwargs: wrapper(fn, *args, **kwargs)


def check_errors(info, fn, limit):
    """(passed, failures): each of OpInfo's error_inputs must raise torch's exception type
    (ember's ShapeError/DTypeError are also RuntimeErrors, as torch's are)."""
    passed, failures = 0, []
    try:
        cases = list(info.error_inputs("cpu"))
    except Exception:  # noqa: BLE001 - entries whose error_inputs need CUDA or more
        return 0, []
    for i, case in enumerate(cases[:limit]):
        sample = case.sample_input
        try:
            _call(info.op, sample, _identity_convert)
            continue                      # torch no longer raises: not an error case
        except Exception:  # noqa: BLE001
            pass
        try:
            _call(fn, sample, to_ember)
            reason = f"no error (torch raises {case.error_type.__name__})"
        except case.error_type:
            reason = None
        except Exception as exc:  # noqa: BLE001
            reason = f"{type(exc).__name__} where torch raises {case.error_type.__name__}: " \
                     f"{str(exc).splitlines()[0][:120] if str(exc) else ''}"
        if reason is None:
            passed += 1
        else:
            failures.append(f"error input {i} {_describe(sample)}: {reason}")
    return passed, failures


def _ember_grads_reason(name, fn, sample, torch_outs, cots, expected):
    import torch
    ember = _ember()
    mapping = {}

    def convert(v):
        if isinstance(v, torch.Tensor) and v.requires_grad:
            if id(v) not in mapping:
                mapping[id(v)] = to_ember(v, requires_grad=True)
            return mapping[id(v)]
        if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):
            return type(v)(convert(x) for x in v)
        return to_ember(v)

    out = sample.output_process_fn_grad(_call(fn, sample, convert))
    outs = [o for o in flatten(out) if isinstance(o, ember.Tensor) and o.requires_grad]
    if len(outs) != len(torch_outs):
        return f"{len(outs)} differentiable outputs, torch has {len(torch_outs)}"
    leaves = list(mapping.values())
    grads = ember.autograd.grad(outs, leaves, [to_ember(c) for c in cots],
                                allow_unused=True)
    for k, (g, e) in enumerate(zip(grads, expected)):
        if e is None or g is None:
            zero = (e is not None and not e.any()) or (g is not None and not
                                                         g.detach().numpy().any())
            if (e is None) != (g is None) and not zero:     # None and zeros agree
                return f"grad {k}: {'None' if g is None else 'a value'}, torch " \
                       f"{'None' if e is None else 'a value'}"
            continue
        reason = compare(g, e, "float64", values=not _random_sample(name, sample))
        if reason:
            return f"grad {k}: {reason}"
    return None


def _describe(sample) -> str:
    import torch

    def d(v):
        if isinstance(v, torch.Tensor):
            return f"{str(v.dtype).split('.')[-1]}{list(v.shape)}"
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(d(x) for x in v[:4]) + ("..." if len(v) > 4 else "") + "]"
        return repr(v)[:30]
    args = [d(sample.input)] + [d(a) for a in sample.args]
    args += [f"{k}={d(v)}" for k, v in sample.kwargs.items()]
    return "(" + ", ".join(args) + ")"


def in_scope(name: str) -> bool:
    return not name.startswith(OUT_OF_SCOPE_PREFIXES)


def entries(names=None):
    from torch.testing._internal.common_methods_invocations import op_db
    seen = {}
    for info in op_db:
        key = entry_key({"name": info.name, "variant": info.variant_test_name})
        if names and info.name not in names and key not in names:
            continue
        seen.setdefault(key, info)
    return seen


def ported(info, fn):
    """What a user's port would call: OpInfo entries whose op is a lambda around torch
    (`lambda self, cond, other: torch.where(cond, self, other)`) reorder or fix
    arguments, so the same lambda runs with `torch` rebound to `ember`."""
    op = info.op
    wrapper = getattr(op, "__name__", "") == "<lambda>" or \
        getattr(op, "__module__", "").startswith("torch.testing")  # a helper def, same role
    if fn is None or not wrapper or not hasattr(op, "__code__"):
        return fn
    return _rebound_to_ember(op)


def _rebound_to_ember(fn):
    """The same Python function with its globals `torch` (and `F`) naming ember's."""
    import types
    if not hasattr(fn, "__code__"):
        return fn
    ember = _ember()
    scope = dict(fn.__globals__)
    scope["torch"] = ember
    if "F" in scope:
        scope["F"] = ember.nn.functional
    twin = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__,
                              fn.__closure__)
    twin.__kwdefaults__ = fn.__kwdefaults__
    return twin


def check_entry(info, *, dtypes=DTYPE_NAMES, grad=True, errors=True, limit=12,
                reference=False, error_limit=None):
    fn = resolve(info.name)
    key = f"{info.name}.{info.variant_test_name}" if info.variant_test_name else info.name
    adapter = ARG_ADAPTERS.get(key) or ARG_ADAPTERS.get(info.name)
    fn = adapter(fn) if fn is not None and adapter is not None else ported(info, fn)
    if (info.name, info.variant_test_name) == ("normal", "in_place"):
        fn = resolve_inplace("normal")
    record = {"name": info.name, "variant": info.variant_test_name,
              "exists": fn is not None, "passed": 0, "failures": [], "error_failures": []}
    if fn is None:
        return record
    for dt in dtypes:
        p, f = check_values(info, fn, dt, limit, reference)
        record["passed"] += p
        record["failures"] += f
    if grad:
        p, f = check_grads(info, fn, limit)
        record["passed"] += p
        record["failures"] += f
    if errors:   # kept apart: raising torch's error type is not part of the values bar
        _, record["error_failures"] = check_errors(info, fn, error_limit or limit)
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="OpInfo names (default: every entry)")
    ap.add_argument("--missing", action="store_true", help="only list missing names")
    ap.add_argument("--no-grad", action="store_true", help="values only")
    ap.add_argument("--limit", type=int, default=12, help="samples per dtype")
    ap.add_argument("--reference", action="store_true",
                    help="values over OpInfo's reference_inputs (a superset of sample_inputs)")
    ap.add_argument("--dtypes", default=",".join(DTYPE_NAMES),
                    help="comma-separated dtype names, or 'all' (adds "
                         + ", ".join(EXTRA_DTYPE_NAMES) + ")")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every failure")
    ap.add_argument("--json", help="write the per-entry records here")
    ap.add_argument("--write-expected", metavar="FILE",
                    help="write every entry that does not pass, with its first reason "
                         "(tests/ops/opinfo_expected_failures.txt, read by the test)")
    args = ap.parse_args(argv)
    dtypes = DTYPE_NAMES + EXTRA_DTYPE_NAMES if args.dtypes == "all" else \
        tuple(d for d in args.dtypes.split(",") if d)
    todo = entries(set(args.names) or None)
    records = []
    for key, info in sorted(todo.items()):
        if not args.names and not in_scope(info.name):
            continue
        if args.missing:
            if resolve(info.name) is None:
                print(key)
            continue
        try:
            rec = check_entry(info, grad=not args.no_grad, limit=args.limit,
                              dtypes=dtypes, reference=args.reference)
        except Exception as exc:  # noqa: BLE001 - the harness itself must go on
            rec = {"name": info.name, "variant": info.variant_test_name, "exists": True,
                   "passed": 0, "failures": [f"harness: {exc!r}"], "error_failures": []}
            if args.verbose:
                traceback.print_exc()
        records.append(rec)
        status = "MISSING" if not rec["exists"] else (
            "ok" if not rec["failures"] else f"FAIL({len(rec['failures'])})")
        errors = f" error-inputs-differ={len(rec['error_failures'])}" \
            if rec.get("error_failures") else ""
        print(f"{key:50s} {status:10s} passed={rec['passed']}{errors}", flush=True)
        if args.verbose:
            for f in rec["failures"] + rec.get("error_failures", []):
                print("    " + f)
    if records:
        exist = sum(r["exists"] for r in records)
        clean = sum(r["exists"] and not r["failures"] for r in records)
        errors_ok = sum(r["exists"] and not r.get("error_failures") for r in records)
        print(f"\n{len(records)} entries: {exist} exist, {clean} pass every sample, "
              f"{len(records) - exist} missing; {errors_ok} raise torch's error types on "
              f"every error input")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    if args.write_expected:
        write_expected(records, args.write_expected)
    return 0


def entry_key(record) -> str:
    return record["name"] + (f".{record['variant']}" if record["variant"] else "")


def write_expected(records, path) -> None:
    """One line per entry that does not pass: `key<TAB>reason`."""
    lines = ["# OpInfo entries ember does not pass yet, with the first reason.",
             "# Generated by `python tools/opinfo.py --write-expected <this file>`;",
             "# tests/ops/test_opinfo.py fails when one of these starts passing."]
    for r in records:
        if r["exists"] and r.get("error_failures"):
            lines.append(f"{entry_key(r)} [errors]\t{r['error_failures'][0]}")
        if r["exists"] and not r["failures"]:
            continue
        why = "not in ember" if not r["exists"] else r["failures"][0]
        lines.append(f"{entry_key(r)}\t{why}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_expected(path) -> dict[str, str]:
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                key, _, why = line.rstrip("\n").partition("\t")
                out[key] = why
    return out


if __name__ == "__main__":
    sys.exit(main())
