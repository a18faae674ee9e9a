"""Shared by tests/compile/test_compile_suite_*.py: the kind of user programs PyTorch's
dynamo suite compiles (Python features inside functions and forwards, graph breaks,
recompiles, the compile API), each run four ways and compared:

  torch eager                     the values (the oracle)
  torch.compile(backend=counter)  the semantics of compiling (equal to torch eager), and
                                  the number of graphs where a case asks for it
  ember eager                     equal to torch eager
  ember.compile(**kwargs)         equal to torch eager (and to torch's graph count, with a
                                  counting backend, where a case asks for it)

A case is `program(lib) -> callable` (a function or a module built with `lib`) and the
calls' arguments as specs: numpy arrays become `lib.tensor`s, `G(array)` one that requires
grad, containers (lists, tuples, dicts, namedtuples) are rebuilt around them, other values
pass as they are. Modules get torch's weights (copied by name), so every run computes on the
same numbers. With `grad=True` each call's floating outputs are summed and backpropagated
and the inputs' and parameters' gradients compared. An exception is compared by kind: ember
must raise the builtin class torch's error is (or derives from)."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
import torch._dynamo.testing

import ember
import ember._dynamo.testing

RTOL = 1e-4
ATOL = 1e-5


def case_registry():
    """A suite file's table of programs: `CASES, case = case_registry()`, then
    `@case(*calls, **check_kwargs)` on each program(lib) -> fn registers it by name."""
    cases = {}

    def case(*calls, **kw):
        def register(program):
            cases[program.__name__] = (program, calls, kw)
            return program
        return register
    return cases, case


class G(NamedTuple):
    """An argument tensor that requires grad."""
    value: Any


class T(NamedTuple):
    """An argument tensor that is the transpose of a contiguous one (non-contiguous)."""
    value: Any


def arr(*shape, seed=0, dtype="float32", low=None):
    """A reproducible array: normal values, or integers in [low, 5) for integer dtypes."""
    rng = np.random.default_rng(seed + 17 * len(shape) + sum(shape))
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0 if low is None else low, 5, size=shape).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return rng.random(shape) > 0.5
    return rng.standard_normal(shape).astype(dtype)


def build(spec, lib):
    """The spec's arguments for lib (fresh tensors each time)."""
    if isinstance(spec, G):
        return lib.tensor(spec.value).requires_grad_(True)
    if isinstance(spec, T):
        return lib.tensor(spec.value).t()
    if isinstance(spec, np.ndarray):
        return lib.tensor(spec)
    if isinstance(spec, tuple) and hasattr(spec, "_fields"):
        return type(spec)(*(build(v, lib) for v in spec))
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return dataclasses.replace(spec, **{f.name: build(getattr(spec, f.name), lib)
                                           for f in dataclasses.fields(spec)})
    if isinstance(spec, (list, tuple)):
        return type(spec)(build(v, lib) for v in spec)
    if isinstance(spec, dict):
        return {k: build(v, lib) for k, v in spec.items()}
    return spec


def _leaves(value, out):
    """The tensors in a nested result, in order."""
    if isinstance(value, (torch.Tensor, ember.Tensor)):
        out.append(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _leaves(getattr(value, f.name), out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _leaves(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _leaves(v, out)
    return out


def describe(v):
    """What a program sees of a result, without the library's own types: floats as
    arrays for a tolerant comparison, the rest exactly."""
    if isinstance(v, (torch.Tensor, ember.Tensor)):
        data = v.detach().cpu()
        dtype = str(v.dtype).split(".")[-1]
        return ("tensor", dtype, tuple(v.shape), np.asarray(data.tolist(), dtype=object)
                if data.is_complex() else np.asarray(data.float().tolist()
                                                     if dtype == "bfloat16" else data.tolist()))
    if isinstance(v, (torch.dtype, ember.dtype)):
        return ("dtype", str(v).split(".")[-1])
    if isinstance(v, (torch.device, ember.device)):
        return ("device", v.type)
    if isinstance(v, (torch.Size, ember.Size)):
        return ("Size", tuple(v))
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return (type(v).__name__, {f.name: describe(getattr(v, f.name))
                                   for f in dataclasses.fields(v)})
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        return (type(v).__name__, {k: describe(x) for k, x in zip(v._fields, v)})
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [describe(x) for x in v])
    if isinstance(v, dict):
        return ("dict", [(k, describe(x)) for k, x in v.items()])
    if isinstance(v, set):
        return ("set", sorted(describe(x) for x in v))
    if isinstance(v, str):
        return v.replace("torch", "LIB").replace("ember", "LIB")
    return v


def assert_same(got, want, where, rtol=RTOL, atol=ATOL):
    """got and want (descriptions) are equal: arrays to tolerance, the rest exactly."""
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{where}: {got!r} != {want!r}"
        assert got.shape == want.shape, f"{where}: shape {got.shape} != {want.shape}"
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(got.astype(want.dtype), want, rtol=rtol, atol=atol,
                                       err_msg=where, equal_nan=True)
        else:
            np.testing.assert_array_equal(got, want, err_msg=where)
    elif isinstance(want, tuple) and isinstance(got, tuple) and len(got) == len(want):
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]", rtol, atol)
    elif isinstance(want, list) and isinstance(got, list) and len(got) == len(want):
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]", rtol, atol)
    elif isinstance(want, dict) and isinstance(got, dict) and got.keys() == want.keys():
        for k in want:
            assert_same(got[k], want[k], f"{where}.{k}", rtol, atol)
    elif isinstance(want, float) and isinstance(got, float):
        assert math.isclose(got, want, rel_tol=rtol, abs_tol=atol) or (
            math.isnan(got) and math.isnan(want)), f"{where}: {got} != {want}"
    else:
        assert type(got) is type(want) and got == want, f"{where}: {got!r} != {want!r}"


def weights_of(module):
    """A module's parameters and buffers as arrays, by name (None for a function)."""
    if not isinstance(module, (torch.nn.Module, ember.nn.Module)):
        return None
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def copy_weights(state, dst):
    """dst (a module of either library) gets the arrays of weights_of() by name."""
    if state is None or not isinstance(dst, (torch.nn.Module, ember.nn.Module)):
        return
    lib = ember if isinstance(dst, ember.nn.Module) else torch
    dst.load_state_dict({k: lib.tensor(v) for k, v in state.items()})


def _builtin_kinds(exc: BaseException) -> tuple:
    """The builtin exception classes in exc's MRO, most derived first (what user code
    can catch it as)."""
    return tuple(c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins")


class Outcome(NamedTuple):
    results: list        # per call: the description of the result, or ("raises", kind)
    grads: list          # per call: {name: description} of the gradients
    state: Any           # the description of what `observe(fn, args)` reports after the calls


def _grads_of(fn, args_list):
    grads = {}
    for i, args in enumerate(args_list):
        for j, t in enumerate(_leaves(args, [])):
            if t.requires_grad and t.grad is not None:
                grads[f"arg{i}.{j}"] = describe(t.grad)
    if isinstance(fn, (torch.nn.Module, ember.nn.Module)):
        for name, p in fn.named_parameters():
            grads[name] = describe(p.grad) if p.grad is not None else None
    return grads


def run(program, calls, lib, compile_with=None, grad=False, reference=None,
        observe=None, seed=None):
    """Call program(lib) (compiled with `compile_with(fn)` if given) on each call's
    arguments; what it returned, raised, and the gradients."""
    if seed is not None:
        lib.manual_seed(seed)
    fn = program(lib)
    if reference is not None:
        copy_weights(reference, fn)
    initial = weights_of(fn)
    target = compile_with(fn) if compile_with else fn
    results, grads, args_all = [], [], []
    for spec in calls:
        args = build(spec, lib)
        args_all.append(args)
        kwargs = {}
        if isinstance(args, dict):
            args, kwargs = (), args
        try:
            out = target(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - compared by kind with torch's
            results.append(("raises", _builtin_kinds(exc), str(exc)))
            continue
        results.append(describe(out))
        if grad:
            outs = [t for t in _leaves(out, []) if t.requires_grad and t.is_floating_point()]
            if outs:
                sum(o.sum() for o in outs).backward()
            grads.append(_grads_of(fn, [args]))
    state = describe(observe(fn, args_all)) if observe else None
    return initial, Outcome(results, grads, state)


def _compare(got: Outcome, want: Outcome, label, rtol, atol):
    assert len(got.results) == len(want.results)
    for i, (g, w) in enumerate(zip(got.results, want.results)):
        if isinstance(w, tuple) and w and w[0] == "raises":
            assert isinstance(g, tuple) and g[:1] == ("raises",), \
                f"{label} call {i}: torch raised {w[1][0]}: {w[2]}, ember returned {g!r}"
            assert w[1][0] in g[1], \
                f"{label} call {i}: torch raised {w[1][0]}, ember {g[1][0]}: {g[2]}"
            continue
        if isinstance(g, tuple) and g and g[0] == "raises":
            raise AssertionError(f"{label} call {i} raised {g[1][0]}: {g[2]}")
        assert_same(g, w, f"{label} call {i}", rtol, atol)
    assert len(got.grads) == len(want.grads), label
    for i, (g, w) in enumerate(zip(got.grads, want.grads)):
        assert sorted(g) == sorted(w), f"{label} grads of call {i}: {sorted(g)} != {sorted(w)}"
        for k in w:
            assert_same(g[k], w[k], f"{label} grad {k} of call {i}", rtol, atol)
    if want.state is not None:
        assert_same(got.state, want.state, f"{label} state", rtol, atol)


def check(program: Callable, *calls, grad=False, compile_kwargs=None, counts=False,
          observe=None, random_seed=None, rtol=RTOL, atol=ATOL, torch_compile_kwargs=None):
    """Run the case four ways and compare (module docstring). counts=True also compiles
    with the counting backends and compares the graph counts (frame_count) with torch's.
    random_seed: the program draws random numbers after manual_seed(random_seed); each
    library's compiled run must equal its own eager run, and ember's results have torch's
    shapes and dtypes (the generators differ)."""
    compile_kwargs = dict(compile_kwargs or {})
    tkw = dict(torch_compile_kwargs if torch_compile_kwargs is not None else compile_kwargs)
    tkw.pop("backend", None)
    torch._dynamo.reset()
    ember._dynamo.reset()
    t_fn, t_eager = run(program, calls, torch, grad=grad, observe=observe, seed=random_seed)
    t_count = torch._dynamo.testing.CompileCounter()
    _, t_comp = run(program, calls, torch, lambda f: torch.compile(f, backend=t_count, **tkw),
                    grad=grad, reference=t_fn, observe=observe, seed=random_seed)
    _compare(t_comp, t_eager, "torch.compile against torch eager", rtol, atol)
    _, e_eager = run(program, calls, ember, grad=grad, reference=t_fn, observe=observe,
                     seed=random_seed)
    _, e_comp = run(program, calls, ember, lambda f: ember.compile(f, **compile_kwargs),
                    grad=grad, reference=t_fn, observe=observe, seed=random_seed)
    if random_seed is None:
        _compare(e_eager, t_eager, "ember eager against torch eager", rtol, atol)
        _compare(e_comp, t_eager, "ember.compile against torch eager", rtol, atol)
    else:
        _compare(e_comp, e_eager, "ember.compile against ember eager", rtol, atol)
        assert _shapes(e_eager.results) == _shapes(t_eager.results)
    if counts:
        e_count = ember._dynamo.testing.CompileCounter()
        kw = {k: v for k, v in compile_kwargs.items() if k != "backend"}
        _, e_counted = run(program, calls, ember,
                           lambda f: ember.compile(f, backend=e_count, **kw),
                           grad=grad, reference=t_fn, observe=observe, seed=random_seed)
        if random_seed is None:
            _compare(e_counted, t_eager, "ember.compile(counting backend)", rtol, atol)
        assert e_count.frame_count == t_count.frame_count, \
            f"graphs: ember {e_count.frame_count}, torch {t_count.frame_count}"
    return t_eager, e_comp


def _shapes(results):
    def walk(d):
        if isinstance(d, tuple) and d and d[0] == "tensor":
            return d[:3]
        if isinstance(d, (list, tuple)):
            return type(d)(walk(x) for x in d)
        if isinstance(d, dict):
            return {k: walk(v) for k, v in d.items()}
        return d
    return walk(results)


def raises_both(make: Callable, kind: type, *words):
    """make(lib) raises kind for both libraries, each message holding `words` (as
    written, 'LIB' standing for the library's name)."""
    import pytest
    for lib in (torch, ember):
        torch._dynamo.reset()
        ember._dynamo.reset()
        with pytest.raises(kind) as info:
            make(lib)
        msg = str(info.value)
        for w in words:
            w = w.replace("LIB", lib.__name__)
            assert w in msg, f"{lib.__name__}: {w!r} not in {msg!r}"
