"""passes/recompute.py: in a whole training-step graph the backward recomputes cheap
forward values (BatchNorm's x - mean and x-hat) from values the forward writes anyway
(the convolution's output, the statistics) instead of having the forward kernels write
them. The kernels write fewer bytes, and compiled steps equal eager ones (torch-checked
eager BatchNorm training is the reference of tests/cuda and tests/compile)."""
from __future__ import annotations

import copy

import pytest

import ember
from ember import nn
from ember.ir.fused import FusedGroup
from ember.ir.meta import TensorMeta
from ember.passes.manager import PassContext, run_passes
from train_step_checks import assert_sgd_steps_match_eager

PIPELINE = "normalize,simplify,decompose,simplify,cse,dce,recompute,fuse"


def _net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                         nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1, bias=False),
                         nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 5)).to(memory_format=ember.channels_last)


def _step_graph(model, recompute: bool):
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = ember.compile_train_step(model, nn.CrossEntropyLoss(), opt)
    for group in opt.param_groups:
        step.rule.init_state(opt, group)
    x = ember.randn(4, 3, 8, 8).contiguous(memory_format=ember.channels_last)
    graph, constants, _ = step._trace((x, ember.randint(0, 5, (4,))))
    ctx = PassContext(constants=dict(constants), options={"recompute": recompute},
                      inference=False)
    report = run_passes(graph, PIPELINE, ctx)
    return graph, report


def _kernel_bytes_written(graph) -> int:
    total = 0
    for node in graph.nodes:
        if node.op == "call_function" and isinstance(node.target, FusedGroup):
            vals = node.meta["val"]
            for v in vals if isinstance(vals, (tuple, list)) else [vals]:
                total += v.nbytes if isinstance(v, TensorMeta) else 0
    return total


def test_batch_norm_intermediates_are_recomputed_not_written():
    ember.manual_seed(0)
    model = _net()
    plain, _ = _step_graph(copy.deepcopy(model), recompute=False)
    graph, report = _step_graph(copy.deepcopy(model), recompute=True)
    full = 4 * 8 * 8 * 8 * 4          # one float32 activation of the net
    assert report.changes("recompute") > 0
    # per BatchNorm, x - mean and x-hat are no longer written by the forward kernel
    assert _kernel_bytes_written(plain) - _kernel_bytes_written(graph) >= 2 * 2 * full


def test_pass_does_nothing_unless_asked():
    ember.manual_seed(0)
    _, report = _step_graph(_net(), recompute=False)
    assert report.changes("recompute") == 0


@pytest.mark.parametrize("recompute", [True, False])
def test_compiled_steps_equal_eager_steps(recompute):
    ember.manual_seed(0)
    assert_sgd_steps_match_eager(_net(), (4, 3, 8, 8), steps=3, rtol=1e-4, atol=1e-5,
                                 options={"recompute": recompute})
