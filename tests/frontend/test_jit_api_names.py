"""torch.jit's user API beyond trace: save/load round trip, trace_module, freeze,
ScriptModule/ScriptFunction isinstance checks, fork/wait, jit.isinstance, Attribute —
with torch.jit's behaviour on the same programs."""
import io
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest
import torch

import ember


class Net(ember.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = ember.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x).relu()

    def scale(self, x):
        return x * 2


def _x():
    return ember.tensor(np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32))


def test_traced_types_answer_isinstance_as_torch():
    m = Net()
    traced = ember.jit.trace(m, (_x(),))
    fn = ember.jit.trace(lambda a: a + 1, (_x(),))
    assert isinstance(traced, ember.jit.ScriptModule)
    assert not isinstance(traced, ember.jit.ScriptFunction)
    assert isinstance(fn, ember.jit.ScriptFunction)
    assert not isinstance(m, ember.jit.ScriptModule)
    tm = torch.nn.Linear(4, 3)
    assert isinstance(torch.jit.trace(tm, torch.ones(2, 4)), torch.jit.ScriptModule)
    assert not isinstance(tm, torch.jit.ScriptModule)


def test_save_load_round_trip_with_extra_files():
    m = Net()
    x = _x()
    traced = ember.jit.trace(m, (x,))
    buffer = io.BytesIO()
    ember.jit.save(traced, buffer, _extra_files={"config.txt": "lr=0.1"})
    buffer.seek(0)
    extra = {"config.txt": ""}
    loaded = ember.jit.load(buffer, _extra_files=extra)
    assert extra["config.txt"] == b"lr=0.1"     # bytes, as torch.jit.load gives them
    assert isinstance(loaded, ember.jit.ScriptModule)
    np.testing.assert_array_equal(loaded(x).detach().numpy(), m(x).detach().numpy())
    with pytest.raises(ValueError, match="ember.jit.save"):
        buf = io.BytesIO()
        ember.save({"w": ember.ones(1)}, buf)
        buf.seek(0)
        ember.jit.load(buf)


def test_trace_module_traces_named_methods():
    m = Net()
    x = _x()
    out = ember.jit.trace_module(m, {"forward": (x,), "scale": (x,)})
    np.testing.assert_array_equal(out(x).detach().numpy(), m(x).detach().numpy())
    np.testing.assert_array_equal(out.scale(x).numpy(), (x * 2).numpy())


def test_freeze_requires_eval_and_fixes_parameters():
    m = Net()
    for freeze, module in ((ember.jit.freeze, m), (torch.jit.freeze,
                                                   torch.jit.script(torch.nn.Linear(2, 2)))):
        with pytest.raises(RuntimeError, match="eval mode"):
            freeze(module)
    frozen = ember.jit.freeze(m.eval())
    assert all(not p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in m.parameters())
    x = _x()
    np.testing.assert_array_equal(frozen(x).detach().numpy(), m(x).detach().numpy())
    optimized = ember.jit.optimize_for_inference(Net())
    assert not optimized.training and isinstance(optimized, ember.jit.ScriptModule)


def test_fork_wait_returns_the_result():
    future = ember.jit.fork(lambda a, b: a + b, ember.ones(2), b=ember.ones(2))
    assert future.done()
    np.testing.assert_array_equal(ember.jit.wait(future).numpy(), [2.0, 2.0])

    def fails():
        raise ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        ember.jit.wait(ember.jit.fork(fails))


@pytest.mark.parametrize("obj,kind", [
    ([1, 2], List[int]), ([1, "a"], List[int]), ({"a": 1}, Dict[str, int]),
    ({"a": "b"}, Dict[str, int]), (None, Optional[int]), (3, Optional[int]),
    ((1, "a"), Tuple[int, str]), ((1, 2), Tuple[int, str]), ([], List[int]), (3.0, int)])
def test_jit_isinstance_matches_torch(obj, kind):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = torch.jit.isinstance(obj, kind)
    assert ember.jit.isinstance(obj, kind) == expected


def test_decorators_and_annotations():
    a = ember.jit.Attribute(3, int)
    t = torch.jit.Attribute(3, int)
    assert (a.value, a.type) == (t.value, t.type)

    @ember.jit.interface
    class Proto:
        def run(self, x):
            pass
    assert Proto.__name__ == "Proto"
    f = ember.jit.script_if_tracing(lambda x: x * 3)
    assert f(2) == 6
    assert issubclass(ember.jit.Error, RuntimeError)
    previous = ember.jit.set_fusion_strategy([("DYNAMIC", 3)])
    assert previous == torch.jit.set_fusion_strategy(previous)
    assert ember.jit.set_fusion_strategy(previous) == [("DYNAMIC", 3)]
    assert ember.jit.onednn_fusion_enabled() == torch.jit.onednn_fusion_enabled()
