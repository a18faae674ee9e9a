"""Run PyTorch's own OptimizerInfo database (optim_db) against ember.optim.

Every OptimizerInfo entry names an optimizer class; ember's class of the same name in
`ember.optim` is checked against it. For each of the entry's CPU configs (its
`optim_inputs_func`, plus one config per implementation flag it supports: foreach,
fused where torch fuses on CPU, differentiable) and each parameter dtype (float32,
float64, and complex128 where the entry supports complex), torch and ember start from the
same parameters and take several `step(closure)` calls; the closure computes the same
deterministic loss's gradients for both sides (torch computes them, so only the optimizer
is under test). After every step the parameters, the closure's loss, the per-parameter
state (keys, values, a tensor 'step' where torch keeps one) and the param_groups (keys
and values) must match torch's. Then the state_dict is checked twice: torch's state_dict
loaded into a fresh ember optimizer, and ember's own state_dict loaded into a fresh one,
must both continue exactly as torch continues. Each entry's `optim_error_inputs_func`
inputs must raise (or warn) torch's exception type, and an [api] record checks param
groups with their own lr, add_param_group, zero_grad and the step/state_dict hooks.

Every torch.optim.lr_scheduler class (and swa_utils.SWALR) runs over an SGD-with-momentum
(or Adam) optimizer with two param groups for many steps: each group's lr (and momentum
or betas, which CyclicLR/OneCycleLR cycle), get_last_lr() and the state_dict must match
torch's, and a scheduler resumed from torch's or ember's state_dict must continue as
torch's does. swa_utils.AveragedModel (SWA and EMA averages) and update_bn are compared
on a Linear + BatchNorm1d model.

    python tools/optiminfo.py                    # summary over every entry
    python tools/optiminfo.py Adam SGD -v        # named entries, every failure
    python tools/optiminfo.py lr_scheduler -v    # the LR schedulers and swa_utils only
    python tools/optiminfo.py --json out.json    # the per-config record, as data
    python tools/optiminfo.py --write-expected tests/optim/optiminfo_expected.txt \
                              --write-docs docs/training.md

Needs torch (the test oracle) and expecttest; ember itself never imports torch.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import traceback
import warnings

import numpy as np

warnings.filterwarnings("ignore")

DTYPES = ("float32", "float64")
STEPS = 4            # steps before the state_dict checks
MORE_STEPS = 2       # steps after loading a state_dict
# (rtol, atol) by parameter dtype: the update's arithmetic is the same, its rounding may
# differ in the last bits (and compounds over the steps)
TOLERANCES = {"float32": (2e-5, 2e-6), "float64": (1e-9, 1e-12),
              "complex128": (1e-9, 1e-12)}


# optimizers whose trajectories amplify rounding: LBFGS takes up to 20 quasi-Newton
# iterations a step, each through dot products whose summation order (and so last bits)
# differs between libraries, and its curvature pairs feed back into every later direction
TOLERANCE_SCALE = {"LBFGS": 100.0}
# ...and whose tensors are compared normwise: LBFGS near convergence stores curvature
# pairs of tiny differences, whose small entries carry the rounding of the large ones
NORMWISE = {"LBFGS"}
_normwise = [False]
_scale = [1.0]       # the scale of the entry being checked


def _torch():
    import torch
    return torch


def _ember():
    import ember
    return ember


# --- conversion -------------------------------------------------------------------------
def to_ember(v, memo=None):
    """torch values (tensors, Parameters, containers) as ember values; a tensor met twice
    becomes the same ember tensor twice (identity matters to param groups)."""
    torch, ember = _torch(), _ember()
    memo = {} if memo is None else memo
    if isinstance(v, torch.Tensor):
        if id(v) not in memo:
            if v.is_sparse:
                value = ember.tensor(v.detach().to_dense().numpy().copy()).to_sparse()
            else:
                value = ember.tensor(v.detach().numpy().copy())
            if isinstance(v, torch.nn.Parameter):
                value = ember.nn.Parameter(value, requires_grad=v.requires_grad)
            if v.grad is not None:
                value.grad = ember.tensor(v.grad.numpy().copy())
            memo[id(v)] = value
        return memo[id(v)]
    if isinstance(v, dict):
        return {k: to_ember(x, memo) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(to_ember(x, memo) for x in v)
    return v


def _is_tensor(v) -> bool:
    return hasattr(v, "detach") and hasattr(v, "shape") and not isinstance(v, np.ndarray)


def as_numpy(v):
    if getattr(v, "is_sparse", False):
        v = v.to_dense()
    if _is_tensor(v):
        return np.asarray(v.detach().numpy())
    return np.asarray(v)


def close(actual, expected, dtype_name) -> str | None:
    """None when equal within the dtype's tolerance, else why not."""
    a, e = as_numpy(actual), as_numpy(expected)
    if e.dtype == np.float32:       # float32 state (a step size) of a float64 parameter
        dtype_name = "float32"
    rtol, atol = (tol * _scale[0] for tol in TOLERANCES[dtype_name])
    if a.shape != e.shape:
        return f"shape {a.shape} vs torch {e.shape}"
    if a.size == 0:
        return None
    if _normwise[0]:
        atol = atol + rtol * float(np.max(np.abs(e)))
    if np.allclose(a.astype(e.dtype) if a.dtype != e.dtype and e.dtype.kind in "fc" else a,
                   e, rtol=rtol, atol=atol, equal_nan=True):
        return None
    diff = np.max(np.abs(a.astype(np.complex128) - e.astype(np.complex128)))
    return f"max abs diff {diff:.3g}"


def compare_values(actual, expected, dtype_name, where: str) -> list[str]:
    """Recursive comparison of state values (tensors, numbers, lists, dicts)."""
    if (expected is None) != (actual is None):
        return [f"{where}: {actual!r:.60} vs torch {expected!r:.60}"]
    if _is_tensor(expected) or _is_tensor(actual):
        if isinstance(expected, (bool, str)) or isinstance(actual, (bool, str)):
            return [f"{where}: {type(actual).__name__} vs torch {type(expected).__name__}"]
        why = close(actual, expected, dtype_name)
        return [f"{where}: {why}"] if why else []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {type(actual).__name__} vs torch dict"]
        out = _key_diff(actual, expected, where)
        for k in expected:
            if k in actual:
                out += compare_values(actual[k], expected[k], dtype_name, f"{where}[{k!r}]")
        return out
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return [f"{where}: {actual!r:.60} vs torch {expected!r:.60}"]
        out = []
        for i, (a, e) in enumerate(zip(actual, expected)):
            out += compare_values(a, e, dtype_name, f"{where}[{i}]")
        return out
    if isinstance(expected, float) and isinstance(actual, (int, float)) and \
            not isinstance(actual, bool):
        return [] if np.isclose(actual, expected, rtol=TOLERANCES[dtype_name][0] * _scale[0],
                                atol=0, equal_nan=True) else \
            [f"{where}: {actual!r} vs torch {expected!r}"]
    if actual != expected or type(actual) is not type(expected) and \
            not (isinstance(actual, (int, float)) and isinstance(expected, (int, float))):
        return [f"{where}: {actual!r:.60} vs torch {expected!r:.60}"]
    return []


def _key_diff(actual: dict, expected: dict, where: str) -> list[str]:
    missing = sorted(map(str, set(expected) - set(actual)))
    extra = sorted(map(str, set(actual) - set(expected)))
    out = []
    if missing:
        out.append(f"{where}: keys missing {missing}")
    if extra:
        out.append(f"{where}: extra keys {extra}")
    return out


def compare_state(e_opt, t_opt, e_params, t_params, dtype_name, where) -> list[str]:
    out = []
    for i, (ep, tp) in enumerate(zip(e_params, t_params)):
        t_state = t_opt.state.get(tp, {})
        e_state = e_opt.state.get(ep, {})
        out += compare_values(e_state, t_state, dtype_name, f"{where} state[{i}]")
        if "step" in t_state and _is_tensor(t_state["step"]):
            step = e_state.get("step")
            if not _is_tensor(step):
                out.append(f"{where} state[{i}]['step']: {type(step).__name__}, torch keeps "
                           f"a tensor")
            elif str(step.dtype).split(".")[-1] != str(t_state["step"].dtype).split(".")[-1] \
                    or tuple(step.shape) != tuple(t_state["step"].shape):
                out.append(f"{where} state[{i}]['step']: {step.dtype}{tuple(step.shape)} vs "
                           f"torch {t_state['step'].dtype}{tuple(t_state['step'].shape)}")
    return out


def compare_groups(e_groups, t_groups, dtype_name, where) -> list[str]:
    if len(e_groups) != len(t_groups):
        return [f"{where}: {len(e_groups)} param_groups vs torch {len(t_groups)}"]
    out = []
    for i, (eg, tg) in enumerate(zip(e_groups, t_groups)):
        out += _key_diff(eg, tg, f"{where} param_groups[{i}]")
        for k in tg:
            if k in eg and k != "params":
                out += compare_values(eg[k], tg[k], "float64", f"{where} param_groups[{i}]"
                                      f"[{k!r}]")
    return out


# --- the problem: same parameters, same gradients ---------------------------------------
class Problem:
    """A small least-squares-through-tanh loss on a weight (3, 4) and a bias (3,); torch
    computes loss and gradients for both sides, so only the optimizers differ."""

    def __init__(self, dtype_name: str, seed: int = 0, sparse: bool = False,
                 matrices_only: bool = False):
        torch = _torch()
        self.sparse = sparse          # gradients as sparse COO tensors (SparseAdam)
        self.matrices_only = matrices_only    # the bias a constant (Muon: 2-D only)
        self.dtype = getattr(torch, dtype_name)
        rng = np.random.default_rng(seed)
        complex_ = dtype_name.startswith("complex")

        def draw(*shape):
            a = rng.standard_normal(shape)
            if complex_:
                a = a + 1j * rng.standard_normal(shape)
            return torch.tensor(a, dtype=self.dtype)
        self.init = [draw(3, 4) * 0.5, draw(3) * 0.5]
        self.x, self.target = draw(5, 4), draw(5, 3) * 0.5
        self.complex = complex_

    def _trained(self):
        return self.init[:1] if self.matrices_only else self.init

    def torch_params(self):
        torch = _torch()
        return [torch.nn.Parameter(p.clone()) for p in self._trained()]

    def ember_params(self):
        ember = _ember()
        return [ember.nn.Parameter(ember.tensor(p.numpy().copy())) for p in self._trained()]

    def _loss(self, w, b=None):
        if b is None:
            b = self.init[1]
        r = self.x @ w.T + b
        if self.complex:
            return ((r - self.target).abs() ** 2).sum() + 0.05 * (w.abs() ** 4).sum()
        return ((r.tanh() - self.target) ** 2).sum() + 0.05 * (w ** 4).sum()

    def torch_closure(self, params, grads: bool = True):
        def closure():
            for p in params:
                p.grad = None
            loss = self._loss(*params)
            loss.backward()
            if self.sparse:
                for p in params:
                    p.grad = p.grad.to_sparse()
            return loss
        return closure

    def ember_closure(self, params):
        torch, ember = _torch(), _ember()

        def closure():
            leaves = [torch.tensor(np.asarray(p.detach().numpy()), requires_grad=True)
                      for p in params]
            loss = self._loss(*leaves)
            loss.backward()
            for p, leaf in zip(params, leaves):
                p.grad = ember.tensor(leaf.grad.numpy().copy())
                if self.sparse:
                    p.grad = p.grad.to_sparse()
            return ember.tensor(loss.detach().numpy().copy())
        return closure


# --- one config -------------------------------------------------------------------------
def configs(info) -> list:
    """The entry's CPU configs with torch's implementation-flag variants, plus foreach=True
    (torch runs its foreach kernels on CPU too when asked)."""
    torch = _torch()
    from torch.testing._internal.common_optimizers import \
        _get_optim_inputs_including_global_cliquey_kwargs
    out = list(_get_optim_inputs_including_global_cliquey_kwargs("cpu", torch.float64, info))
    if "foreach" in info.supported_impls:
        for inp in info.optim_inputs_func(device="cpu"):
            kwargs = dict(copy.deepcopy(inp.kwargs), foreach=True)
            out.append(type(inp)(params=None, kwargs=kwargs, desc=f"{inp.desc} & foreach"))
    return out


def _run_steps(opt, closure, n):
    out = []
    for _ in range(n):
        out.append(opt.step(closure))
    return out


def check_config(info, ember_cls, inp, dtype_name) -> list[str]:
    """Failures (empty when ember matches torch) for one config and dtype."""
    torch = _torch()
    problem = Problem(dtype_name, sparse=info.only_supports_sparse_grads,
                      matrices_only=info.optim_cls.__name__ == "Muon")
    t_params, e_params = problem.torch_params(), problem.ember_params()
    kwargs = inp.kwargs
    t_closure, e_closure = problem.torch_closure(t_params), problem.ember_closure(e_params)
    # construction
    try:
        t_opt = info.optim_cls(t_params, **copy.deepcopy(kwargs))
    except Exception as exc:  # noqa: BLE001 - torch refuses: ember must refuse alike
        return _same_refusal(lambda: ember_cls(e_params, **to_ember(kwargs)), exc,
                             "construction")
    try:
        e_opt = ember_cls(e_params, **to_ember(kwargs))
    except Exception as exc:  # noqa: BLE001
        return [f"construction raised {type(exc).__name__}: {exc}"]
    failures = compare_state(e_opt, t_opt, e_params, t_params, dtype_name, "init")
    for step in range(STEPS):
        try:
            t_loss = t_opt.step(t_closure)
        except Exception as exc:  # noqa: BLE001
            return failures + _same_refusal(lambda: e_opt.step(e_closure), exc,
                                            f"step {step}")
        try:
            e_loss = e_opt.step(e_closure)
        except Exception as exc:  # noqa: BLE001
            return failures + [f"step {step} raised {type(exc).__name__}: {exc}"]
        where = f"step {step}"
        if (e_loss is None) != (t_loss is None) or t_loss is not None and \
                close(e_loss, t_loss, dtype_name):
            failures.append(f"{where}: closure loss {e_loss} vs torch {t_loss}")
        for i, (ep, tp) in enumerate(zip(e_params, t_params)):
            why = close(ep, tp, dtype_name)
            if why:
                failures.append(f"{where} param {i}: {why}")
        failures += compare_state(e_opt, t_opt, e_params, t_params, dtype_name, where)
        if failures:            # the trajectory left torch's: later steps say no more
            return failures + compare_groups(e_opt.param_groups, t_opt.param_groups,
                                             dtype_name, where)
    failures += compare_groups(e_opt.param_groups, t_opt.param_groups, dtype_name,
                               f"after {STEPS} steps")
    return failures + check_state_dicts(info, ember_cls, problem, kwargs, t_opt, e_opt,
                                        t_params, e_params, dtype_name)


def check_state_dicts(info, ember_cls, problem, kwargs, t_opt, e_opt, t_params, e_params,
                      dtype_name) -> list[str]:
    """torch's state_dict and ember's own, each loaded into a fresh ember optimizer, must
    continue as torch continues."""
    ember = _ember()
    failures = []
    t_sd, e_sd = t_opt.state_dict(), e_opt.state_dict()
    failures += compare_values(
        {k: v for k, v in e_sd["state"].items()}, dict(t_sd["state"]), dtype_name,
        "state_dict()['state']")
    failures += compare_groups(e_sd["param_groups"], t_sd["param_groups"], dtype_name,
                               "state_dict()")
    resumed = []
    for label, sd in (("torch's state_dict", to_ember(t_sd)),
                      ("ember's state_dict", copy.deepcopy(e_sd))):
        params = [ember.nn.Parameter(ember.tensor(p.detach().numpy().copy()))
                  for p in t_params]
        try:
            opt = ember_cls(params, **to_ember(kwargs))
            opt.load_state_dict(sd)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"loading {label} raised {type(exc).__name__}: {exc}")
            continue
        resumed.append((label, opt, params))
    # torch's own optimizer resumed from its state_dict is the reference (loading casts
    # float state such as NAdam's mu_product to the parameter's dtype)
    t_params = [p.detach().clone().requires_grad_() for p in t_params]
    t_opt = info.optim_cls(t_params, **copy.deepcopy(kwargs))
    t_opt.load_state_dict(t_sd)
    _run_steps(t_opt, problem.torch_closure(t_params), MORE_STEPS)
    for label, opt, params in resumed:
        try:
            _run_steps(opt, problem.ember_closure(params), MORE_STEPS)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"steps after loading {label} raised {type(exc).__name__}: {exc}")
            continue
        for i, (ep, tp) in enumerate(zip(params, t_params)):
            why = close(ep, tp, dtype_name)
            if why:
                failures.append(f"after loading {label}, {MORE_STEPS} steps: param {i}: {why}")
        failures += compare_state(opt, t_opt, params, t_params, dtype_name,
                                  f"after loading {label}")
    return failures


def _same_refusal(ember_call, torch_exc, stage) -> list[str]:
    try:
        ember_call()
    except Exception as exc:  # noqa: BLE001
        if isinstance(exc, type(torch_exc)):
            return []
        return [f"{stage}: raised {type(exc).__name__} where torch raises "
                f"{type(torch_exc).__name__} ({torch_exc})"]
    return [f"{stage}: torch raises {type(torch_exc).__name__} ({torch_exc}); ember did not"]


# --- the API around the update -----------------------------------------------------------
def check_api(info, ember_cls) -> list[str]:
    """Param groups with their own lr, add_param_group, a parameter without a gradient,
    zero_grad both ways, step/state_dict/load_state_dict hooks: as torch behaves."""
    torch, ember = _torch(), _ember()
    problem = Problem("float64", sparse=info.only_supports_sparse_grads,
                      matrices_only=info.optim_cls.__name__ == "Muon")
    t_params, e_params = problem.torch_params(), problem.ember_params()
    shape = (2, 2) if problem.matrices_only else (2,)
    t_extra = [torch.nn.Parameter(torch.ones(shape, dtype=torch.float64)) for _ in range(2)]
    e_extra = [ember.nn.Parameter(ember.ones(shape, dtype=ember.float64)) for _ in range(2)]
    groups = info.supports_param_groups and not info.step_requires_closure

    def build(cls, params, extra):
        if groups:
            lr = cls([params[0]]).defaults["lr"]
            if len(params) == 1:          # (a parameter without a gradient, alone)
                return cls([{"params": [params[0]]}, {"params": [extra[0]], "lr": lr * 0.5}])
            return cls([{"params": [params[0], extra[0]]},
                        {"params": [params[1]], "lr": lr * 0.5}])
        return cls(params)
    t_opt, e_opt = build(info.optim_cls, t_params, t_extra), build(ember_cls, e_params,
                                                                   e_extra)
    t_calls, e_calls = [], []
    for opt, calls in ((t_opt, t_calls), (e_opt, e_calls)):
        opt.register_step_pre_hook(lambda o, a, k, calls=calls: calls.append("step_pre"))
        opt.register_step_post_hook(lambda o, a, k, calls=calls: calls.append("step_post"))
        opt.register_state_dict_pre_hook(lambda o, calls=calls: calls.append("sd_pre"))
        opt.register_state_dict_post_hook(
            lambda o, sd, calls=calls: calls.append("sd_post"))
        opt.register_load_state_dict_pre_hook(
            lambda o, sd, calls=calls: calls.append("load_pre"))
        opt.register_load_state_dict_post_hook(lambda o, calls=calls: calls.append("load_post"))
    t_closure, e_closure = problem.torch_closure(t_params), problem.ember_closure(e_params)
    failures = []
    for step in range(3):
        if step == 1 and groups:          # a new group, its parameter with a gradient
            t_opt.add_param_group({"params": [t_extra[1]]})
            e_opt.add_param_group({"params": [e_extra[1]]})
            t_extra[1].grad = torch.full(shape, 0.5, dtype=torch.float64)
            e_extra[1].grad = ember.full(shape, 0.5, dtype=ember.float64)
            if problem.sparse:
                t_extra[1].grad = t_extra[1].grad.to_sparse()
                e_extra[1].grad = e_extra[1].grad.to_sparse()
        t_opt.step(t_closure)
        e_opt.step(e_closure)
        for i, (ep, tp) in enumerate(zip(e_params + e_extra, t_params + t_extra)):
            why = close(ep, tp, "float64")
            if why:
                failures.append(f"step {step} param {i}: {why}")
        failures += compare_state(e_opt, t_opt, e_params + e_extra, t_params + t_extra,
                                  "float64", f"step {step}")
        failures += compare_groups(e_opt.param_groups, t_opt.param_groups, "float64",
                                   f"step {step}")
        if failures:
            return failures
    t_opt.load_state_dict(t_opt.state_dict())
    e_opt.load_state_dict(e_opt.state_dict())
    if e_calls != t_calls:
        failures.append(f"hook calls {e_calls} vs torch {t_calls}")
    for set_to_none in (False, True):
        t_opt.zero_grad(set_to_none=set_to_none)
        e_opt.zero_grad(set_to_none=set_to_none)
        for i, (ep, tp) in enumerate(zip(e_params + e_extra, t_params + t_extra)):
            if (ep.grad is None) != (tp.grad is None) or \
                    tp.grad is not None and close(ep.grad, tp.grad, "float64"):
                failures.append(f"zero_grad(set_to_none={set_to_none}): param {i} grad "
                                f"{ep.grad} vs torch {tp.grad}")
    return failures


# --- error inputs -----------------------------------------------------------------------
def check_errors(info, ember_cls) -> list[str]:
    """Each error input raises (or warns) torch's exception type, at construction or at
    the first step as the entry says."""
    torch = _torch()
    from torch.testing._internal.common_optimizers import OptimizerErrorEnum
    failures = []
    for err in info.optim_error_inputs_func(device="cpu", dtype=torch.float32):
        inp = err.optimizer_error_input
        memo: dict = {}
        params, kwargs = to_ember(inp.params, memo), to_ember(inp.kwargs, memo)
        expected = err.error_type
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                opt = ember_cls(params, **kwargs)
                if err.error_on == OptimizerErrorEnum.STEP_ERROR:
                    opt.step()
                raised = None
            except Exception as exc:  # noqa: BLE001
                raised = exc
        if issubclass(expected, Warning):
            if not any(issubclass(w.category, expected) for w in caught):
                got = f"raised {type(raised).__name__}: {raised}" if raised else "no warning"
                failures.append(f"error input '{inp.desc}': {got}; torch warns "
                                f"{expected.__name__}")
        elif not isinstance(raised, expected):
            got = f"raised {type(raised).__name__}: {raised}" if raised else "no error"
            failures.append(f"error input '{inp.desc}': {got}; torch raises "
                            f"{expected.__name__}")
    return failures


# --- LR schedulers and swa_utils --------------------------------------------------------
SCHEDULER_STEPS = 24
RESUME_AT = 9        # the state_dict round trip happens after this many steps
# metrics ReduceLROnPlateau sees: improving, then a plateau, then worse
PLATEAU_METRICS = [1.0, 0.9, 0.85, 0.85, 0.86, 0.84, 0.845, 0.85, 0.85, 0.9, 0.7, 0.7,
                   0.71, 0.72, 0.73, 0.5, 0.5, 0.5, 0.5, 0.49, 0.6, 0.6, 0.6, 0.6]


def _sched(name, **kw):
    return lambda lib, opt: getattr(lib.optim.lr_scheduler, name)(opt, **kw)


def _chained(lib, opt):
    lrs = lib.optim.lr_scheduler
    return lrs.ChainedScheduler([lrs.StepLR(opt, 3, gamma=0.5), lrs.ExponentialLR(opt, 0.9)])


def _sequential(lib, opt):
    lrs = lib.optim.lr_scheduler
    return lrs.SequentialLR(opt, [lrs.LinearLR(opt, start_factor=0.1, total_iters=4),
                                  lrs.CosineAnnealingLR(opt, T_max=10, eta_min=1e-3)],
                            milestones=[4])


# (config name, optimizer ("sgd": SGD with momentum, "adam"), scheduler factory)
SCHEDULERS = [
    ("StepLR", "sgd", _sched("StepLR", step_size=3, gamma=0.5)),
    ("MultiStepLR", "sgd", _sched("MultiStepLR", milestones=[2, 5, 5, 11], gamma=0.3)),
    ("ConstantLR", "sgd", _sched("ConstantLR", factor=0.5, total_iters=4)),
    ("LinearLR", "sgd", _sched("LinearLR", start_factor=0.25, end_factor=0.9,
                               total_iters=6)),
    ("ExponentialLR", "sgd", _sched("ExponentialLR", gamma=0.9)),
    ("PolynomialLR", "sgd", _sched("PolynomialLR", total_iters=8, power=2.0)),
    ("CosineAnnealingLR", "sgd", _sched("CosineAnnealingLR", T_max=7, eta_min=1e-3)),
    ("CosineAnnealingWarmRestarts", "sgd",
     _sched("CosineAnnealingWarmRestarts", T_0=3, T_mult=2, eta_min=1e-3)),
    ("LambdaLR", "sgd", _sched("LambdaLR", lr_lambda=lambda e: 0.95 ** e)),
    ("LambdaLR[per group]", "sgd",
     _sched("LambdaLR", lr_lambda=[lambda e: 0.95 ** e, lambda e: 1 / (1 + e)])),
    ("MultiplicativeLR", "sgd", _sched("MultiplicativeLR", lr_lambda=lambda e: 0.9)),
    ("ChainedScheduler", "sgd", _chained),
    ("SequentialLR", "sgd", _sequential),
    ("ReduceLROnPlateau", "sgd", _sched("ReduceLROnPlateau", factor=0.5, patience=1,
                                        threshold=0.01, cooldown=1, min_lr=1e-3)),
    ("ReduceLROnPlateau[max, abs]", "sgd",
     _sched("ReduceLROnPlateau", mode="max", threshold_mode="abs", patience=2)),
    ("CyclicLR[triangular]", "sgd", _sched("CyclicLR", base_lr=0.01, max_lr=0.1,
                                            step_size_up=3)),
    ("CyclicLR[triangular2]", "sgd", _sched("CyclicLR", base_lr=[0.01, 0.02],
                                             max_lr=0.1, step_size_up=2,
                                             step_size_down=4, mode="triangular2")),
    ("CyclicLR[exp_range]", "sgd", _sched("CyclicLR", base_lr=0.01, max_lr=0.1,
                                           step_size_up=3, mode="exp_range", gamma=0.9)),
    ("CyclicLR[adam, no momentum]", "adam",
     _sched("CyclicLR", base_lr=0.01, max_lr=0.1, step_size_up=3, cycle_momentum=False)),
    ("OneCycleLR", "sgd", _sched("OneCycleLR", max_lr=0.1, total_steps=30)),
    ("OneCycleLR[linear, three_phase]", "sgd",
     _sched("OneCycleLR", max_lr=[0.1, 0.2], total_steps=30, anneal_strategy="linear",
            three_phase=True)),
    ("OneCycleLR[adam]", "adam", _sched("OneCycleLR", max_lr=0.1, epochs=3,
                                        steps_per_epoch=10)),
    ("SWALR[cos]", "sgd",
     lambda lib, opt: lib.optim.swa_utils.SWALR(opt, swa_lr=0.05, anneal_epochs=4)),
    ("SWALR[linear]", "sgd",
     lambda lib, opt: lib.optim.swa_utils.SWALR(opt, swa_lr=[0.05, 0.01], anneal_epochs=3,
                                                anneal_strategy="linear")),
]


def _optimizer(lib, kind):
    params = [lib.nn.Parameter(lib.ones(2, dtype=lib.float64)),
              lib.nn.Parameter(lib.ones(3, dtype=lib.float64))]
    groups = [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.05}]
    if kind == "adam":
        return lib.optim.Adam(groups, lr=0.1)
    return lib.optim.SGD(groups, lr=0.1, momentum=0.9)


def _scheduler_step(sched, i):
    if type(sched).__name__ == "ReduceLROnPlateau":
        sched.step(PLATEAU_METRICS[i % len(PLATEAU_METRICS)])
    else:
        sched.step()


def _sched_state(sched) -> dict:
    """The state_dict without what cannot compare across libraries (callables)."""
    return {k: v for k, v in sched.state_dict().items()
            if not callable(v) and k not in ("_scale_fn_ref", "_scale_fn_custom")}


def _lr_values(opt, sched) -> dict:
    out = {"lr": [g["lr"] for g in opt.param_groups]}
    for key in ("momentum", "betas", "initial_lr"):
        if key in opt.param_groups[0]:
            out[key] = [g[key] for g in opt.param_groups]
    if hasattr(sched, "get_last_lr") and hasattr(sched, "_last_lr"):
        out["get_last_lr()"] = sched.get_last_lr()
    return out


def check_scheduler(kind, factory) -> list[str]:
    """lr (and momentum/betas) after every step, get_last_lr(), the state_dict, and a
    resume from torch's and from ember's state_dict, against torch."""
    torch, ember = _torch(), _ember()
    t_opt, e_opt = _optimizer(torch, kind), _optimizer(ember, kind)
    t_sched = factory(torch, t_opt)
    try:
        e_sched = factory(ember, e_opt)
    except Exception as exc:  # noqa: BLE001
        return [f"construction raised {type(exc).__name__}: {exc}"]
    failures = compare_values(_lr_values(e_opt, e_sched), _lr_values(t_opt, t_sched),
                              "float64", "after construction")
    resumed = []
    for i in range(SCHEDULER_STEPS):
        for opt in [t_opt, e_opt] + [r[1] for r in resumed]:
            opt.step()
        _scheduler_step(t_sched, i)
        for label, opt, sched in [("", e_opt, e_sched)] + resumed:
            try:
                _scheduler_step(sched, i)
            except Exception as exc:  # noqa: BLE001
                return failures + [f"{label}step {i} raised {type(exc).__name__}: {exc}"]
            failures += compare_values(_lr_values(opt, sched), _lr_values(t_opt, t_sched),
                                       "float64", f"{label}step {i}")
        if i + 1 == RESUME_AT:
            failures += compare_values(_sched_state(e_sched), _sched_state(t_sched),
                                       "float64", "state_dict()")
            for label, sd in (("torch's", to_ember(t_sched.state_dict())),
                              ("ember's", e_sched.state_dict())):
                opt = _optimizer(ember, kind)
                try:
                    sched = factory(ember, opt)        # as a training script resumes
                    opt.load_state_dict(e_opt.state_dict())
                    sched.load_state_dict(copy.deepcopy(sd))
                except Exception as exc:  # noqa: BLE001
                    failures.append(f"loading {label} state_dict raised "
                                    f"{type(exc).__name__}: {exc}")
                    continue
                resumed.append((f"resumed from {label} state_dict: ", opt, sched))
        if failures:
            return failures
    return failures


SWA_CHECKS = ("AveragedModel[swa]", "AveragedModel[ema, use_buffers]", "update_bn")


def check_swa() -> dict[str, list[str]]:
    """AveragedModel (SWA and EMA averages, use_buffers) and update_bn, against torch."""
    torch, ember = _torch(), _ember()
    rng = np.random.default_rng(1)
    out = {}

    def model(lib):
        lib.manual_seed(0)
        return lib.nn.Sequential(lib.nn.Linear(4, 3), lib.nn.BatchNorm1d(3))

    def sync(e_mod, t_mod):
        for (_, ev), (_, tv) in zip(e_mod.state_dict().items(), t_mod.state_dict().items()):
            ev.copy_(ember.tensor(tv.detach().numpy().copy()))

    for label, kwargs in (("AveragedModel[swa]", {}),
                          ("AveragedModel[ema, use_buffers]", {"use_buffers": True,
                                                               "ema": 0.8})):
        t_mod, e_mod = model(torch), model(ember)
        sync(e_mod, t_mod)
        extra = {}
        if "ema" in kwargs:
            kwargs = dict(kwargs)
            decay = kwargs.pop("ema")
            extra = {"multi_avg_fn": None}
        t_avg = torch.optim.swa_utils.AveragedModel(
            t_mod, **kwargs, **({"multi_avg_fn": torch.optim.swa_utils.get_ema_multi_avg_fn(
                decay)} if extra else {}))
        try:
            e_avg = ember.optim.swa_utils.AveragedModel(
                e_mod, **kwargs, **({"multi_avg_fn": ember.optim.swa_utils.
                                     get_ema_multi_avg_fn(decay)} if extra else {}))
            failures = []
            for step in range(4):
                x = rng.standard_normal((6, 4))
                t_mod(torch.tensor(x, dtype=torch.float32))
                e_mod(ember.tensor(x, dtype=ember.float32))
                with torch.no_grad():
                    for p in t_mod.parameters():
                        p.mul_(0.9).add_(0.1)
                for p in e_mod.parameters():
                    p.detach().mul_(0.9).add_(0.1)
                t_avg.update_parameters(t_mod)
                e_avg.update_parameters(e_mod)
                failures += compare_values(dict(e_avg.state_dict()), dict(t_avg.state_dict()),
                                           "float32", f"update {step}: state_dict()")
                if failures:
                    break
        except Exception as exc:  # noqa: BLE001
            failures = [f"raised {type(exc).__name__}: {exc}"]
        out[label] = failures
    t_mod, e_mod = model(torch), model(ember)
    sync(e_mod, t_mod)
    data = [rng.standard_normal((5, 4)) * 2 + 1 for _ in range(3)]
    try:
        torch.optim.swa_utils.update_bn([torch.tensor(x, dtype=torch.float32) for x in data],
                                        t_mod)
        ember.optim.swa_utils.update_bn([ember.tensor(x, dtype=ember.float32) for x in data],
                                        e_mod)
        out["update_bn"] = compare_values(dict(e_mod.state_dict()), dict(t_mod.state_dict()),
                                          "float32", "state_dict() after update_bn")
    except Exception as exc:  # noqa: BLE001
        out["update_bn"] = [f"raised {type(exc).__name__}: {exc}"]
    return out


def check_schedulers(names=None) -> list[dict]:
    """One record per scheduler config and per swa_utils check."""
    records = []
    for label, kind, factory in SCHEDULERS:
        if names and label.split("[")[0] not in names:
            continue
        try:
            failures = check_scheduler(kind, factory)
        except Exception as exc:  # noqa: BLE001
            failures = [f"harness: {type(exc).__name__}: {exc}"]
        records.append({"key": f"lr_scheduler.{label}",
                        "status": "failing" if failures else "pass", "failures": failures})
    if not names or "swa_utils" in names:
        for label, failures in check_swa().items():
            records.append({"key": f"swa_utils.{label}",
                            "status": "failing" if failures else "pass",
                            "failures": failures})
    return records


# --- the table --------------------------------------------------------------------------
def entries(names=None) -> dict:
    from torch.testing._internal.common_optimizers import optim_db
    return {info.optim_cls.__name__: info for info in optim_db
            if names is None or info.optim_cls.__name__ in names}


def dtypes_for(info) -> tuple:
    return DTYPES + (("complex128",) if getattr(info, "supports_complex", False) else ())


def check_entry(info, dtypes=None, verbose=False) -> list[dict]:
    """One record per (config, dtype) and one for the error inputs."""
    ember = _ember()
    name = info.optim_cls.__name__
    ember_cls = getattr(ember.optim, name, None)
    if ember_cls is None:
        return [{"key": name, "status": "missing", "failures": ["not in ember.optim"]}]
    records = []
    _scale[0] = TOLERANCE_SCALE.get(name, 1.0)
    _normwise[0] = name in NORMWISE
    for inp in configs(info):
        for dtype_name in dtypes or dtypes_for(info):
            key = f"{name}[{inp.desc}]/{dtype_name}"
            try:
                failures = check_config(info, ember_cls, inp, dtype_name)
            except Exception as exc:  # noqa: BLE001 - the harness itself must go on
                failures = [f"harness: {type(exc).__name__}: {exc}"]
                if verbose:
                    traceback.print_exc()
            records.append({"key": key, "status": "failing" if failures else "pass",
                            "failures": failures})
    try:
        failures = check_api(info, ember_cls)
    except Exception as exc:  # noqa: BLE001
        failures = [f"harness: {type(exc).__name__}: {exc}"]
    records.append({"key": f"{name} [api]", "status": "failing" if failures else "pass",
                    "failures": failures})
    try:
        failures = check_errors(info, ember_cls)
    except Exception as exc:  # noqa: BLE001
        failures = [f"harness: {type(exc).__name__}: {exc}"]
    records.append({"key": f"{name} [errors]", "status": "failing" if failures else "pass",
                    "failures": failures})
    _scale[0], _normwise[0] = 1.0, False
    return records


def summary(records) -> dict:
    """Per optimizer: configs passing / failing / missing."""
    out: dict = {}
    for r in records:
        name = r["key"].split("[")[0].split(" ")[0]
        row = out.setdefault(name, {"pass": 0, "failing": 0, "missing": 0})
        row[r["status"]] += 1
    return out


def write_expected(records, path) -> None:
    """One line per record that does not pass: `key<TAB>status<TAB>first reason`."""
    lines = ["# optim_db configs ember.optim does not pass yet, with the first reason.",
             "# Generated by `python tools/optiminfo.py --write-expected <this file>`;",
             "# tests/optim/test_optiminfo.py fails when one of these starts passing."]
    for r in records:
        if r["status"] != "pass":
            lines.append(f"{r['key']}\t{r['status']}\t{r['failures'][0][:300]}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_expected(path) -> dict[str, str]:
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                key, status, why = (line.rstrip("\n").split("\t") + ["", ""])[:3]
                out[key] = f"{status}: {why}"
    return out


def markdown_table(records) -> str:
    rows = ["| entry | records passing | failing | missing |", "|---|---|---|---|"]
    for name, row in sorted(summary(records).items(), key=lambda kv: ("." in kv[0], kv[0])):
        rows.append(f"| `{name}` | {row['pass']} | {row['failing']} | {row['missing']} |")
    total = {k: sum(r[k] for r in summary(records).values())
             for k in ("pass", "failing", "missing")}
    rows.append(f"| all | {total['pass']} | {total['failing']} | {total['missing']} |")
    return "\n".join(rows)


DOCS_BEGIN, DOCS_END = "<!-- optiminfo:begin -->", "<!-- optiminfo:end -->"


def write_docs(records, path) -> None:
    """Replace the generated table between the markers in `path` (a docs page)."""
    with open(path) as f:
        text = f.read()
    start, end = text.index(DOCS_BEGIN) + len(DOCS_BEGIN), text.index(DOCS_END)
    failing = [f"- `{r['key']}`: {r['failures'][0][:160]}" for r in records
               if r["status"] == "failing"]
    body = "\n" + markdown_table(records) + "\n"
    if failing:
        body += "\nNot passing yet:\n\n" + "\n".join(failing) + "\n"
    with open(path, "w") as f:
        f.write(text[:start] + body + text[end:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="optimizer class names (default: every entry)")
    ap.add_argument("--dtypes", help="comma-separated dtype names (default: float32,float64 "
                                     "and complex128 where supported)")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every failure")
    ap.add_argument("--json", help="write the per-config records here")
    ap.add_argument("--markdown", action="store_true", help="print the summary as a table")
    ap.add_argument("--write-docs", metavar="FILE",
                    help="replace the generated summary between the optiminfo markers "
                         "of FILE (docs/training.md)")
    ap.add_argument("--write-expected", metavar="FILE",
                    help="write every record that does not pass, with its first reason")
    args = ap.parse_args(argv)
    dtypes = tuple(args.dtypes.split(",")) if args.dtypes else None
    records = []
    todo = [(name, lambda info=info: check_entry(info, dtypes, args.verbose))
            for name, info in sorted(entries(set(args.names) or None).items())]
    if not args.names or {"lr_scheduler", "swa_utils"} & set(args.names):
        todo.append(("lr_scheduler", check_schedulers))
    for name, check in todo:
        for rec in check():
            records.append(rec)
            print(f"{rec['key']:70s} {rec['status']}", flush=True)
            if args.verbose:
                for f in rec["failures"][:8]:
                    print("    " + f)
    rows = summary(records)
    print()
    for name, row in sorted(rows.items()):
        print(f"{name:12s} pass={row['pass']:3d} failing={row['failing']:3d} "
              f"missing={row['missing']}")
    total = {k: sum(r[k] for r in rows.values()) for k in ("pass", "failing", "missing")}
    print(f"\n{len(records)} records: {total['pass']} pass, {total['failing']} failing, "
          f"{total['missing']} missing")
    if args.markdown:
        print(markdown_table(records))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    if args.write_expected:
        write_expected(records, args.write_expected)
    if args.write_docs:
        write_docs(records, args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
