"""Batching rules for the random samplers (ir/ops/sampling.py).

randomness='different': every example draws independently. The in-place samplers'
functional forms (uniform, normal_functional, cauchy, exponential, geometric,
log_normal, random) ignore self's values, so one call on the whole batched tensor
draws independently per element; bernoulli, normal and multinomial run once per
example. randomness='same': the self-only samplers draw one example and expand it to
the batch; the others raise (their draws depend on per-example parameters).
('error', the default, is refused before any rule runs: passes/vmap.batch_call.)
"""
from __future__ import annotations

from ember.ir.ops import OPS_NS as ops
from ember.ir.registry import OPS

from .vmap import Batched, BatchingRuleError, call
from .vmap_batchdim import front, materialize
from .vmap_rules_nn import loop_rule
from .vmap_rules_shape import self_shaped_rule

SELF_ONLY_SAMPLERS = ("uniform", "normal_functional", "cauchy", "exponential", "geometric",
                      "log_normal", "random")
PARAMETER_SAMPLERS = ("bernoulli", "normal", "multinomial")


def self_only_sampler_rule(op, bound, ctx):
    x = front(bound[0])
    if ctx.randomness == "different":
        return Batched(call(op, [x] + list(bound[1:])), 0)
    one = call(op, [x.select(0, 0)] + list(bound[1:]))
    return Batched(ops.expand(ops.unsqueeze(one, 0), list(x.shape)), 0)


def parameter_sampler_rule(op, bound, ctx):
    if ctx.randomness == "different":
        return loop_rule(op, bound, ctx)
    raise BatchingRuleError(f"vmap: {op.name} with randomness='same' is not supported (its "
                            f"draws depend on each example's parameters); use "
                            f"randomness='different'{ctx.where()}")


def in_place_sampler_rule(op, bound, ctx):
    """x.uniform_() and friends on a batched x: 'different' fills the whole batched
    tensor at once; 'same' draws one example and copies it into every example."""
    if ctx.randomness == "different":
        return self_shaped_rule(op, bound, ctx)
    if op.name == "bernoulli_":
        return parameter_sampler_rule(op, bound, ctx)
    example = materialize(bound[0], ctx.batch_size).select(0, 0)
    one = call(op.functional, [example] + list(bound[1:]))
    spread = ops.expand(ops.unsqueeze(one, 0), [ctx.batch_size] + list(one.shape))
    return self_shaped_rule(OPS["copy_"], [bound[0], Batched(spread, 0), False], ctx)


RANDOM_RULES = {**{name: self_only_sampler_rule for name in SELF_ONLY_SAMPLERS},
                **{name: parameter_sampler_rule for name in PARAMETER_SAMPLERS},
                **{name + "_": in_place_sampler_rule for name in (
                    "uniform", "cauchy", "exponential", "geometric", "log_normal",
                    "bernoulli")}}
