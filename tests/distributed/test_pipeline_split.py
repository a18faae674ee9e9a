"""pipeline(): stages split from the traced graph (pipe_split, split_spec, split_by_cost),
checked in one process against the unsplit model; tests/distributed/scripts/pipeline.py
runs such a split through the GPipe/1F1B schedules on 2 ranks."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import ember
import ember.nn as nn
from ember.distributed.pipelining import SplitPoint, pipe_split, pipeline, split_by_cost


class MarkedMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 16), nn.Linear(16, 16)
        self.c, self.d = nn.Linear(16, 16), nn.Linear(16, 3)

    def forward(self, x):
        x = self.b(self.a(x).tanh()).relu()
        pipe_split()
        return self.d(self.c(x).tanh())


def _deep_mlp():
    return nn.Sequential(nn.Linear(6, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                         nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 2))


def _x(seed=0, dtype=np.float64):
    return ember.tensor(np.random.default_rng(seed).standard_normal((5, 6)).astype(dtype))


def _same_outputs_and_grads(model, pipe, x):
    ref = model(x)
    ref.sum().backward()
    ref_grads = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    out = pipe(x)
    out.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-12)
    for p, g in zip(model.parameters(), ref_grads):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-12)


def test_pipe_split_marker_makes_two_stages_equal_to_the_model():
    ember.manual_seed(0)
    model = MarkedMLP().double()
    pipe = pipeline(model, (_x(),))
    assert pipe.num_stages == 2
    first = {id(p) for p in pipe.get_stage_module(0).parameters()}
    assert first == {id(p) for p in [*model.a.parameters(), *model.b.parameters()]}
    _same_outputs_and_grads(model, pipe, _x(1))
    # eagerly, pipe_split() does nothing
    np.testing.assert_allclose(model(_x(2)).detach().numpy(),
                               pipe(_x(2)).detach().numpy(), rtol=1e-12)


def test_split_spec_splits_before_and_after_submodules():
    ember.manual_seed(0)
    model = _deep_mlp().double()
    pipe = pipeline(model, (_x(),), split_spec={"2": SplitPoint.BEGINNING,
                                               "4": SplitPoint.END})
    assert pipe.num_stages == 3
    kinds = [[type(m).__name__ for m in pipe.get_stage_module(i).children()]
             for i in range(3)]
    assert kinds == [["Linear", "Tanh"], ["Linear", "Tanh", "Linear"], ["Tanh", "Linear"]]
    _same_outputs_and_grads(model, pipe, _x(3))


def _brute_force_best(costs, valid, stages):
    best = None
    for cuts in itertools.combinations(valid, stages - 1):
        bounds = [-1, *cuts, len(costs) - 1]
        worst = max(sum(costs[a + 1:b + 1]) for a, b in zip(bounds, bounds[1:]))
        best = worst if best is None else min(best, worst)
    return best


@pytest.mark.parametrize("by,stages", [("params", 2), ("params", 3), ("flops", 2),
                                       ("flops", 3)])
def test_split_by_cost_balances_stages_optimally(by, stages):
    from ember.distributed.pipelining import split as S
    ember.manual_seed(0)
    model = _deep_mlp().double()
    pipe = pipeline(model, (_x(),), split_policy=split_by_cost(stages, by=by))
    assert pipe.num_stages == stages
    _same_outputs_and_grads(model, pipe, _x(4))
    # the chosen stages' largest cost is the optimum over every single-value split
    gm = S._trace(model, None)
    S._propagate_shapes(gm, (_x(),))
    nodes = [n for n in gm.graph.nodes if n.op not in ("placeholder", "get_attr", "output")]
    costs = [S._node_cost(gm, n, by) for n in nodes]
    valid = S._single_value_cuts(gm, nodes)
    assert valid == list(range(len(nodes) - 1))        # a chain: every cut is one value
    if by == "params":
        got = max(sum(p.numel() for p in pipe.get_stage_module(i).parameters())
                  for i in range(stages))
        assert got == _brute_force_best(costs, valid, stages)
    cuts = S._best_cuts(costs, valid, stages)
    bounds = [-1, *cuts, len(costs) - 1]
    assert max(sum(costs[a + 1:b + 1]) for a, b in zip(bounds, bounds[1:])) == \
        _brute_force_best(costs, valid, stages)


def test_flops_cost_of_a_linear_layer():
    from ember.distributed.pipelining import split as S
    model = nn.Sequential(nn.Linear(6, 10), nn.Tanh())
    gm = S._trace(model, None)
    S._propagate_shapes(gm, (ember.randn(5, 6),))
    linear, tanh = [n for n in gm.graph.nodes if n.op == "call_module"]
    assert S._node_cost(gm, linear, "flops") == 2 * 5 * 10 * 6
    assert S._node_cost(gm, tanh, "flops") == 5 * 10


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        h = self.a(x)
        pipe_split()
        return self.b(h) + x          # the input is needed after the split


def test_splits_that_pass_more_than_one_value_are_refused():
    with pytest.raises(ValueError, match=r"stage 1 needs 2 values .* ember's stages pass "
                                         "one tensor"):
        pipeline(Residual(), (ember.randn(2, 4),))
    with pytest.raises(ValueError, match="points where one value is live, too few"):
        pipeline(Residual(), (ember.randn(2, 4),), split_policy=split_by_cost(2))


def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="no split point was found"):
        pipeline(_deep_mlp(), (_x(dtype=np.float32),))
    with pytest.raises(ValueError, match="stage 1 is empty"):
        pipeline(MarkedMLP(), (_x(dtype=np.float32),), split_spec={"c": SplitPoint.BEGINNING})
    with pytest.raises(ValueError, match="Invalid stage index 2"):
        pipeline(MarkedMLP(), (_x(dtype=np.float32),)).get_stage_module(2)
    with pytest.raises(ValueError, match="by must be 'params' or 'flops'"):
        split_by_cost(2, by="memory")


def test_stage_modules_keep_the_models_parameter_names():
    """As torch's pipeline keeps them (torch 2.13 gives these names for this split):
    a stage's state_dict keys are the model's, so checkpoints move between them."""
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(),
                          nn.Linear(8, 2))
    pipe = pipeline(model, (_x(),), split_spec={"2": SplitPoint.BEGINNING,
                                                "4": SplitPoint.BEGINNING})
    names = [sorted(dict(pipe.get_stage_module(i).named_parameters()))
             for i in range(pipe.num_stages)]
    assert names == [["0.bias", "0.weight"], ["2.bias", "2.weight"], ["4.bias", "4.weight"]]
    whole = model.state_dict()
    for i in range(pipe.num_stages):
        stage = pipe.get_stage_module(i)
        for name, p in stage.named_parameters():
            assert p is dict(model.named_parameters())[name]      # shared, not copied
        stage.load_state_dict({k: whole[k] * 0 for k in stage.state_dict()})
    assert all(float(p.abs().sum()) == 0 for p in model.parameters())
