"""torch's submodule import paths and small public modules exist under ember's name and
behave as torch's do: `import ember.cuda`, `from ember.cuda.amp import autocast`,
ember.serialization's safe-globals allowlist, ember.return_types, TorchVersion."""
import argparse
import io
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import ember


def test_cuda_paths_import_in_a_fresh_process():
    code = ("import ember.cuda, ember.cuda.amp\n"
            "from ember.cuda.amp import autocast, GradScaler\n"
            "from ember.cuda import Stream, Event\n"
            "import ember.serialization, ember.return_types, ember.types\n"
            "assert ember.cuda.amp.autocast is autocast\n"
            "print(ember.cuda.is_available())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(torch.cuda.is_available())


def test_cuda_amp_autocast_warns_as_torch():
    import ember.cuda.amp
    with pytest.warns(FutureWarning):
        ember.cuda.amp.autocast()
    with pytest.warns(FutureWarning):
        torch.cuda.amp.autocast()


def _checkpoint(obj):
    buffer = io.BytesIO()
    ember.save({"weight": ember.ones(2), "args": obj}, buffer)
    buffer.seek(0)
    return buffer


def test_weights_only_load_refuses_unlisted_globals_like_torch():
    args = argparse.Namespace(lr=0.1)
    with pytest.raises(pickle.UnpicklingError, match="add_safe_globals"):
        ember.load(_checkpoint(args))
    tbuf = io.BytesIO()
    torch.save({"args": args}, tbuf)
    tbuf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tbuf)


def test_safe_globals_allow_a_weights_only_load():
    from ember import serialization
    args = argparse.Namespace(lr=0.1, layers=[1, 2])
    before = serialization.get_safe_globals()
    with serialization.safe_globals([argparse.Namespace]):
        loaded = ember.load(_checkpoint(args))
        assert argparse.Namespace in serialization.get_safe_globals()
    assert loaded["args"] == args
    np.testing.assert_array_equal(loaded["weight"].numpy(), np.ones(2, np.float32))
    assert serialization.get_safe_globals() == before
    serialization.add_safe_globals([argparse.Namespace])
    try:
        assert ember.load(_checkpoint(args))["args"] == args
    finally:
        serialization.clear_safe_globals()
    with pytest.raises(pickle.UnpicklingError):
        ember.load(_checkpoint(args))
    assert ember.load(_checkpoint(args), weights_only=False)["args"] == args


def test_return_types_match_torch():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    for name, call in (("max", lambda m, t: m.max(t, 1)), ("sort", lambda m, t: m.sort(t)),
                       ("topk", lambda m, t: m.topk(t, 2))):
        ours, theirs = call(ember, ember.tensor(x)), call(torch, torch.tensor(x))
        assert isinstance(ours, getattr(ember.return_types, name))
        assert ours.values.shape == theirs.values.shape and len(ours) == len(theirs)
        assert type(ours).__name__ == type(theirs).__name__
        again = pickle.loads(pickle.dumps(ours))
        np.testing.assert_array_equal(again.values.numpy(), theirs.values.numpy())
    with pytest.raises(AttributeError, match="ember.return_types"):
        ember.return_types.no_such_op


@pytest.mark.parametrize("other", ["0.1", "0.1.0", "0.0.9", "0.10", "1.0", (0, 1), (0, 2, 0)])
def test_version_compares_as_a_version(other):
    from torch.torch_version import TorchVersion as TorchsVersion
    ours, theirs = ember.__version__, TorchsVersion(str(ember.__version__))
    assert isinstance(ours, str)
    for op in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__"):
        assert getattr(ours, op)(other) == getattr(theirs, op)(other), (op, other)


def test_unsafe_globals_in_checkpoint_match_torch():
    import collections
    from ember import serialization
    obj = {"args": argparse.Namespace(lr=0.1), "counts": collections.OrderedDict(a=1)}
    tbuf = io.BytesIO()
    torch.save(obj, tbuf)
    tbuf.seek(0)
    expected = torch.serialization.get_unsafe_globals_in_checkpoint(tbuf)
    assert serialization.get_unsafe_globals_in_checkpoint(_checkpoint(obj)) == expected
    with serialization.safe_globals([argparse.Namespace]):
        assert serialization.get_unsafe_globals_in_checkpoint(_checkpoint(obj)) == []


def test_top_level_fork_wait():
    future = ember.fork(lambda a: a * 2, ember.ones(2))
    assert isinstance(future, ember.Future)
    np.testing.assert_array_equal(ember.wait(future).numpy(), [2.0, 2.0])


def test_xpu_and_mps_queries_match_torch_without_those_backends():
    assert ember.xpu.is_available() is torch.xpu.is_available() is False
    assert ember.xpu.device_count() == torch.xpu.device_count() == 0
    assert ember.mps.device_count() == torch.mps.device_count() == 0
    ember.mps.manual_seed(0)
    for m in (ember, torch):
        with pytest.raises(RuntimeError, match="without MPS backend"):
            m.mps.empty_cache()
