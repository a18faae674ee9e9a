"""ember.compile's signature is torch.compile's: keywords, modes, backends, the decorator
forms, disable, and what a compiled function reports before its first call."""
import inspect

import numpy as np
import pytest

import ember
from ember.compiler.compile_options import COMPILE_MODES


def test_signature_matches_torch_compile():
    torch = pytest.importorskip("torch")
    ours = inspect.signature(ember.compile).parameters
    theirs = inspect.signature(torch.compile).parameters
    for name in ("model", "fullgraph", "dynamic", "backend", "mode", "options", "disable"):
        assert name in ours and ours[name].kind == theirs[name].kind, name
        if name != "backend":        # torch's default backend is "inductor", ours "llvm"
            assert ours[name].default == theirs[name].default, name


@pytest.mark.parametrize("mode", COMPILE_MODES)
def test_every_mode_compiles_and_decorates(mode):
    @ember.compile(mode=mode)
    def f(x):
        return (x * 2).relu().sum(-1)
    x = ember.randn(3, 5)
    np.testing.assert_allclose(f(x).numpy(), (x * 2).relu().sum(-1).numpy(), rtol=1e-6)


def test_plain_decorator_and_keywords_accepted():
    @ember.compile
    def f(x):
        return x + 1
    g = ember.compile(lambda x: x * 3, fullgraph=True, dynamic=False, backend="llvm")
    x = ember.randn(4)
    np.testing.assert_allclose(f(x).numpy(), (x + 1).numpy())
    np.testing.assert_allclose(g(x).numpy(), (x * 3).numpy())


def test_disable_returns_the_function_itself():
    fn = lambda x: x + 1  # noqa: E731
    assert ember.compile(fn, disable=True) is fn
    assert ember.compile(disable=True)(fn) is fn


@pytest.mark.parametrize("kwargs, error, text", [
    ({"fulgraph": True}, TypeError, "unexpected keyword argument 'fulgraph'.*fullgraph, "
                                    "dynamic, backend, mode, options, disable"),
    ({"mode": "fastest"}, ValueError, r"unknown mode 'fastest'.*'reduce-overhead', "
                                      r"'max-autotune', 'max-autotune-no-cudagraphs'"),
    ({"backend": "tvm"}, ValueError, r"unknown backend 'tvm'.*'llvm'"),
    ({"mode": "default", "options": {}}, ValueError, "either mode or options"),
    ({"fullgraph": "yes"}, TypeError, "fullgraph must be a bool"),
    ({"dynamic": 1.5}, TypeError, "dynamic must be None, True or False"),
])
def test_bad_arguments_list_the_known_ones(kwargs, error, text):
    with pytest.raises(error, match=text):
        ember.compile(lambda x: x, **kwargs)


def test_stats_before_the_first_call():
    f = ember.compile(lambda x: x.exp())
    assert f.stats.kernels == 0 and f.stats.fallbacks == []
    with pytest.raises(ember.EmberError, match="nothing is compiled yet"):
        f.graph
    f(ember.randn(3))
    assert f.stats.kernels == 1
