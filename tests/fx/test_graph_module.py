"""GraphModule as torch.fx users rely on it: deep copies, pickles and to_folder()
packages that import and compute what the original does; ember.fx reachable after a
plain `import ember`."""
from __future__ import annotations

import copy
import importlib
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest

import ember
import ember.fx as fx
import ember.nn as nn

F = ember.nn.functional
CONSTANT = ember.randn(4)


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(ember.randn(4))
        self.register_buffer("shift", ember.randn(4))

    def forward(self, x):
        return x * self.scale + self.shift


class Model(nn.Module):
    """Methods, operators, ember and nn.functional calls, a math call, a tensor
    constant, nested containers, a layer whose repr rebuilds it and one whose does not."""

    def __init__(self):
        super().__init__()
        self.inner = Inner()
        self.lin = nn.Linear(4, 4)
        self.seq = nn.Sequential(nn.ReLU(), nn.Linear(4, 4), nn.BatchNorm1d(4))

    def forward(self, x):
        y = F.gelu(self.inner(x)) + CONSTANT
        y = ember.relu(self.seq(self.lin(y))).exp() - 1
        return y / math.sqrt(x.shape[-1])


def values(t):
    return t.detach().numpy()


@pytest.fixture
def model():
    m = Model()
    m.eval()
    return m


def test_to_folder_round_trip(model, tmp_path, monkeypatch):
    gm = fx.symbolic_trace(model)
    gm.to_folder(str(tmp_path / "exported_model"), "Exported")
    source = (tmp_path / "exported_model" / "module.py").read_text()
    assert "def __init__(self):" in source and "def forward(self, x):" in source
    assert "from math import sqrt as math_sqrt" in source
    monkeypatch.syspath_prepend(str(tmp_path))
    package = importlib.import_module("exported_model")
    rebuilt = package.Exported()
    rebuilt.eval()
    x = ember.randn(3, 4)
    np.testing.assert_allclose(values(rebuilt(x)), values(model(x)), rtol=1e-6)
    assert set(rebuilt.state_dict()) >= set(gm.state_dict())


def test_to_folder_refuses_a_function_it_cannot_import(tmp_path):
    def local_helper(x):
        return x
    graph = fx.Graph()
    graph.output(graph.call_function(local_helper, (graph.placeholder("x"),)))
    with pytest.raises(ember.EmberError, match="local_helper.* cannot be imported by name"):
        fx.GraphModule(nn.Module(), graph).to_folder(str(tmp_path / "bad"))


def test_deepcopy_and_pickle_keep_function_and_operator_targets(model):
    gm = fx.symbolic_trace(model)
    x = ember.randn(3, 4)
    for clone in (copy.deepcopy(gm), pickle.loads(pickle.dumps(gm))):
        np.testing.assert_allclose(values(clone(x)), values(model(x)), rtol=1e-6)
        assert clone.code == gm.code
        assert [n.target for n in clone.graph.nodes] == [n.target for n in gm.graph.nodes]


def test_code_names_public_functions():
    gm = fx.symbolic_trace(Model())
    assert "ember.nn.functional.gelu(add)" in gm.code
    assert "ember.relu(seq_2)" in gm.code
    assert "exp = relu.exp();  relu = None" in gm.code
    assert "frontend" not in gm.code


def test_print_readable_is_a_class():
    text = fx.symbolic_trace(lambda x: x + 1).print_readable(print_output=False)
    assert text.splitlines()[:2] == ["class <lambda>(ember.nn.Module):",
                                     "    def forward(self, x):"]


def test_submodules_are_attributes_after_import_ember():
    code = ("import sys, ember\n"
            "assert 'ember.fx' not in sys.modules and 'llvmlite' not in sys.modules\n"
            "gm = ember.fx.symbolic_trace(lambda x: x.relu())\n"
            "assert ember.jit.trace and ember.func.vmap and ember.utils.checkpoint.checkpoint\n"
            "assert ember.compile is ember.compiler.compile.compile\n"
            "assert 'ml_dtypes' not in sys.modules\n"
            "print(gm.code)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=str(__import__("pathlib").Path(ember.__file__)
                                            .parent.parent))
    assert "relu = x.relu()" in out.stdout
