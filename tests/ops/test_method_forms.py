"""Every op that is also a Tensor method, called as a method on both sides: `x.op(...)`
against torch's `x.op(...)` on the op's samples. The receiver is the argument the schema
names `self` (not always the first: `x.where(condition, y)` is where(condition, x, y)), so
a binding that passes the receiver in the wrong place is caught as a wrong value."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ember.ir.registry import OPS, Tag

from tests.oracle import assert_close, kwargs_to_torch, to_ember_value, to_torch_value

METHOD_OPS = sorted((op for op in OPS.values()
                     if op.method and op.namespace == "" and op.samples is not None
                     and not op.has_tag(Tag.QUANTIZED) and op.schema.args
                     and any(a.name == "self" for a in op.schema.args)
                     and hasattr(torch.Tensor, op.python_name)),
                    key=lambda op: op.name)


def _receiver_and_rest(op, args):
    """(self, the other positional arguments in schema order)."""
    names = [a.name for a in op.schema.args][:len(args)]
    if "self" not in names:
        return None, None
    at = names.index("self")
    return args[at], list(args[:at]) + list(args[at + 1:])


def _values(v):
    return list(v) if isinstance(v, (tuple, list)) else [v]


@pytest.mark.parametrize("op", METHOD_OPS, ids=lambda op: op.name)
def test_method_form_matches_torch(op, rng):
    checked = 0
    for sample in op.samples(rng):
        receiver, rest = _receiver_and_rest(op, sample.args)
        if not isinstance(receiver, np.ndarray):
            continue
        e_self, t_self = to_ember_value(receiver), to_torch_value(receiver)
        e_rest, t_rest = to_ember_value(rest), to_torch_value(rest)
        if op.has_tag(Tag.INPLACE):
            e_self, t_self = e_self.clone(), t_self.clone()
        try:
            t_out = getattr(t_self, op.python_name)(*t_rest, **kwargs_to_torch(sample.kwargs))
        except (RuntimeError, TypeError, ValueError, IndexError):
            continue                  # torch's method takes another form of these arguments
        if isinstance(t_out, torch.Tensor) and t_out.is_quantized:
            continue
        e_out = getattr(e_self, op.python_name)(*e_rest, **sample.kwargs)
        for i, (e, t) in enumerate(zip(_values(e_out), _values(t_out))):
            if isinstance(t, torch.Tensor):
                assert_close(e, t, rtol=1e-4, atol=1e-5,
                             what=f"{op.name} as a method, {sample} output {i}")
        checked += 1
    if checked == 0:
        pytest.skip(f"{op.name}: no sample has a tensor receiver that torch's method accepts")
