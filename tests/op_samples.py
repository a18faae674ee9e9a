"""Registry samples as test cases: parametrizations over ops' samples, and the function
that calls an op on a sample with its NumPy arrays replaced by tensors (the form
build_graph, ember.compile and the backends' tests take)."""
from __future__ import annotations

import numpy as np
import pytest

import ember


def sample_cases(ops, *, per_op: int, seed: int, numbered: bool = True) -> list:
    """`pytest.param(op, sample)` for the first `per_op` samples of each op (None and
    sample-less ops skipped), drawn from one rng in order, so ids and values are stable."""
    rng = np.random.default_rng(seed)
    cases = []
    for op in ops:
        if op is None or op.samples is None:
            continue
        for i, sample in enumerate(op.samples(rng)[:per_op]):
            cases.append(pytest.param(op, sample, id=f"{op.name}-{i}" if numbered else op.name))
    return cases


def lowering_rule_cases(*, per_op: int, seed: int) -> list:
    """`sample_cases` over every op with a lowering rule (the lowering and backend tests)."""
    from ember.codegen.lowering import RULES
    from ember.ir.registry import OPS
    return sample_cases([OPS.get(n) for n in sorted(RULES)], per_op=per_op, seed=seed)


def arrays_in(value, found: list | None = None) -> list:
    """The NumPy arrays in a sample's (args, kwargs), nested lists and dicts included."""
    found = [] if found is None else found
    if isinstance(value, np.ndarray):
        found.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            arrays_in(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            arrays_in(v, found)
    return found


def substitute(value, tensors):
    """`value` with each NumPy array replaced by the next of the `tensors` iterator."""
    if isinstance(value, np.ndarray):
        return next(tensors)
    if isinstance(value, (list, tuple)):
        return type(value)(substitute(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: substitute(v, tensors) for k, v in value.items()}
    return value


def sample_call(op, sample):
    """(fn, tensors): `fn(*tensors)` calls `op` on the sample, the arrays made tensors."""
    tensors = [ember.tensor(a) for a in arrays_in((sample.args, sample.kwargs))]

    def fn(*ts):
        args, kwargs = substitute((sample.args, sample.kwargs), iter(ts))
        return op(*args, **kwargs)
    return fn, tensors


def assert_arrays_close(got: np.ndarray, want: np.ndarray, rtol: float, atol: float):
    """Same dtype; floating values within tolerance (NaN where NaN), others exactly equal."""
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)
