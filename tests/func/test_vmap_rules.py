"""Every registry op under vmap: batched results equal per-example eager results.

For each op with samples, two examples are made from each sample (the second with its
float tensors scaled) and vmapped two ways: every tensor argument batched at dim 0,
and only the first tensor batched at its last dim. The oracle is the op run eagerly
on each example, stacked. Ops without a batching rule must raise BatchingRuleError
naming the op, and the list of such ops is pinned.
"""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.func
from ember.ir.registry import OPS, Tag
from ember.passes.vmap import BatchingRuleError
from ember.passes import vmap_rules

from oracle import to_ember_value

SAMPLED = [op for op in OPS.values() if op.samples is not None and Tag.INPLACE not in op.tags
           and Tag.RANDOM not in op.tags]

# Ops that raise under vmap (with the reason the rule gives), pinned so the list only
# shrinks on purpose.
NO_RULE = {"as_strided", "as_strided_scatter", "_batch_norm_running_stat",
           # data-dependent output shapes (Tag.DYNAMIC_SHAPE): torch's vmap refuses them too
           "nonzero", "unique", "unique_consecutive", "repeat_interleave", "bincount"}


def _scaled(value):
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        return value * 1.05
    if isinstance(value, (list, tuple)):
        return type(value)(_scaled(v) for v in value)
    return value


def _stack(a, b, dim):
    if isinstance(a, np.ndarray):
        return np.stack([a, b], dim if dim >= 0 else a.ndim + 1 + dim)
    return type(a)(_stack(x, y, dim) for x, y in zip(a, b))


def _is_tensor_arg(value) -> bool:
    return isinstance(value, np.ndarray) or (isinstance(value, (list, tuple)) and value
                                             and all(isinstance(v, np.ndarray) for v in value))


def _eager(op, args, kwargs):
    return op(*to_ember_value(args), **to_ember_value(kwargs))


def _numpy(result):
    if isinstance(result, (list, tuple)):
        return [_numpy(r) for r in result]
    return result.numpy()


def _assert_batched_equal(got, per_example, name):
    if isinstance(got, (list, tuple)):
        for k, g in enumerate(got):
            _assert_batched_equal(g, [p[k] for p in per_example], name)
        return
    want = np.stack(per_example)
    got = got.numpy()
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, equal_nan=True,
                               err_msg=name)


def _check(op, sample, batch_first_only: bool):
    args = sample.args
    second = _scaled(args)
    try:
        per_example = [_numpy(_eager(op, a, sample.kwargs)) for a in (args, second)]
    except Exception:   # noqa: BLE001 - the sample itself does not run in eager: nothing to batch
        return
    tensor_positions = [i for i, a in enumerate(args) if _is_tensor_arg(a)]
    if not tensor_positions:
        return
    in_dims, batched = [], []
    for i, (a, b) in enumerate(zip(args, second)):
        first = i == tensor_positions[0]
        if i in tensor_positions and (first or not batch_first_only):
            dim = -1 if batch_first_only else 0
            in_dims.append(dim)
            batched.append(to_ember_value(_stack(a, b, dim)))
        else:
            in_dims.append(None)
            batched.append(to_ember_value(a))
    f = ember.func.vmap(lambda *xs: op(*xs, **to_ember_value(sample.kwargs)),
                        in_dims=tuple(in_dims))
    if batch_first_only:
        # only the first tensor is batched: the other examples share the first's other args
        per_example = [per_example[0], _numpy(_eager(op, [second[i] if i == tensor_positions[0]
                                                          else a for i, a in enumerate(args)],
                                                     sample.kwargs))]
    if "memory_format" in sample.kwargs and sample.kwargs["memory_format"] != "contiguous_format":
        # torch's vmap refuses a channels-last clone/contiguous (NYI); ember refuses it
        # too, when the batched value's rank no longer fits the format
        with pytest.raises(RuntimeError, match="channels_last"):
            f(*batched)
        return
    _assert_batched_equal(f(*batched), per_example, f"{op.name} {sample}")


@pytest.mark.parametrize("op", SAMPLED, ids=lambda op: op.name)
def test_vmap_matches_per_example(op, rng):
    samples = op.samples(rng)[:3]
    try:
        for sample in samples:
            _check(op, sample, batch_first_only=False)
            _check(op, sample, batch_first_only=True)
    except BatchingRuleError as e:
        assert op.name in NO_RULE, f"{op.name} has no batching rule: {e}"
        assert op.name in str(e)
    except ember.ShapeError as e:      # refused while tracing, before any rule runs
        assert op.has_tag(Tag.DYNAMIC_SHAPE) and "data-dependent" in str(e), str(e)


def test_ops_without_batching_rules_are_few_and_named():
    missing = sorted(op.name for op in OPS.values()
                     if getattr(vmap_rules.rule_for(op), "reason", None) is not None
                     and Tag.INPLACE not in op.tags and op.schema.tensor_arg_indices
                     and Tag.QUANTIZED not in op.tags)   # vmap takes no quantized tensors
    assert missing == sorted(NO_RULE), f"ops with no batching rule: {missing}"


@pytest.mark.parametrize("fill, same_ok", [
    (lambda t: t.uniform_(-1, 1), True), (lambda t: t.exponential_(), True),
    (lambda t: t.normal_(), True), (lambda t: t.random_(0, 1000), True),
    (lambda t: ember.bernoulli(t.sigmoid()), False), (lambda t: t.bernoulli_(0.5), False)],
    ids=["uniform_", "exponential_", "normal_", "random_", "bernoulli", "bernoulli_"])
def test_vmap_randomness_of_samplers(fill, same_ok):
    x = ember.zeros(4, 3)
    with pytest.raises(BatchingRuleError, match="random"):
        ember.func.vmap(lambda t: fill(t.clone()))(x)
    different = ember.func.vmap(lambda t: fill(t.clone()), randomness="different")(x)
    assert different.shape == (4, 3)
    assert len({tuple(r) for r in different.numpy().tolist()}) > 1
    if not same_ok:
        with pytest.raises(BatchingRuleError, match="same"):
            ember.func.vmap(lambda t: fill(t.clone()), randomness="same")(x)
        return
    same = ember.func.vmap(lambda t: fill(t.clone()), randomness="same")(x).numpy()
    assert all(row == same.tolist()[0] for row in same.tolist())


def test_looped_ops_are_listed():
    """The slow per-example fallback is used only for the ops listed (with reasons)."""
    looped = sorted(op.name for op in OPS.values() if vmap_rules.rule_for(op) is
                    vmap_rules.loop_rule)
    assert looped == sorted(vmap_rules.LOOPED)
