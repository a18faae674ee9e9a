"""Built cuDNN plans on disk (runtime/cuda/cudnn_plan_cache.py): a later process
deserializes a plan instead of running the heuristics and building it, runs it with the
same result, and builds again where the entry is missing, marked unserializable, fails to
deserialize or is damaged. cuDNN is tests/cuda/fake_cudnn.py (its serialize/deserialize
pickle the fake graph; a plan's execution computes the convolution with torch on host
memory), so no GPU is needed; on a GPU, `benchmarks/cudnn_plan_builds.py --serialize`
checks the real frontend."""
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from ember.frontend import cudnn_conv  # noqa: E402
from ember.runtime.cuda import cudnn as runtime_cudnn, cudnn_plan_cache, driver  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import fake_cudnn  # noqa: E402


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("EMBER_CUDNN_PLAN_CACHE", raising=False)
    fake_cudnn.install(monkeypatch)
    monkeypatch.setattr(driver, "device_name", lambda index=0: "Fake GPU")
    monkeypatch.setattr(driver, "capability", lambda index=0: (9, 0))
    for name, value in (("serializable", True), ("serialized", []), ("deserialized", []),
                        ("executed", []), ("engines", list(fake_cudnn.ENGINES))):
        monkeypatch.setattr(fake_cudnn, name, value)
    return tmp_path / "cudnn"


def _spec(benchmark=False):
    x = ((2, 3, 6, 6), (108, 1, 18, 3), "float32")
    w = ((4, 3, 3, 3), (27, 1, 9, 3), "float32")
    y = ((2, 4, 6, 6), (144, 1, 24, 4), "float32")
    spec = cudnn_conv.spec_for("fprop", x, w, y, (1, 1), (1, 1), (1, 1))
    if benchmark:
        import dataclasses
        spec = dataclasses.replace(spec, benchmark=4)
    return spec


def _run(plan, seed=0):
    """The plan's output on fixed random operands (host memory stands for the device)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 6, 6, 3), dtype=np.float32)       # NHWC: channels-last
    w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    y = np.zeros((2, 6, 6, 4), np.float32)
    plan.run((x.ctypes.data, w.ctypes.data, y.ctypes.data), 0)
    return y


def _fresh_process():
    """What a new process has: no plan built in memory."""
    runtime_cudnn._plans.clear()


def test_a_built_plan_is_stored_and_a_later_process_deserializes_it(fake):
    built = runtime_cudnn.conv_plan(_spec())
    assert len(fake_cudnn.serialized) == 1 and not fake_cudnn.deserialized
    assert len(list(fake.glob("*.plan"))) == 1
    want = _run(built)
    _fresh_process()
    loaded = runtime_cudnn.conv_plan(_spec())
    assert len(fake_cudnn.deserialized) == 1 and loaded.graph is fake_cudnn.deserialized[0]
    assert ("create_execution_plans",) not in [c[:1] for c in loaded.graph.calls]
    assert loaded.workspace_size == built.workspace_size and loaded.chosen is None
    np.testing.assert_array_equal(_run(loaded), want)
    assert [tag for tag, _ in fake_cudnn.executed] == [fake_cudnn.ENGINES[1]] * 2
    assert len(fake_cudnn.serialized) == 1          # a loaded plan is not stored again


def test_an_unserializable_plan_is_built_and_not_tried_again(fake, monkeypatch):
    monkeypatch.setattr(fake_cudnn, "serializable", False)
    want = _run(runtime_cudnn.conv_plan(_spec()))
    assert len(fake_cudnn.serialized) == 1             # one attempt, recorded as failed
    _fresh_process()
    plan = runtime_cudnn.conv_plan(_spec())
    assert not fake_cudnn.deserialized and len(fake_cudnn.serialized) == 1
    np.testing.assert_array_equal(_run(plan), want)


def test_a_blob_that_does_not_deserialize_is_a_miss_and_rewritten(fake, monkeypatch):
    runtime_cudnn.conv_plan(_spec())
    (path,) = fake.glob("*.plan")
    header, _, _ = path.read_bytes()[len(cudnn_plan_cache.MAGIC):].partition(b"\n")
    blob = b"not a plan"                                   # the hash matches: no warning
    import hashlib
    import json
    header = dict(json.loads(header), sha256=hashlib.sha256(blob).hexdigest())
    path.write_bytes(cudnn_plan_cache.MAGIC + json.dumps(header).encode() + b"\n" + blob)
    _fresh_process()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = runtime_cudnn.conv_plan(_spec())
    assert not fake_cudnn.deserialized and len(fake_cudnn.serialized) == 2
    _fresh_process()
    runtime_cudnn.conv_plan(_spec())                       # the rewritten entry loads
    assert len(fake_cudnn.deserialized) == 1
    np.testing.assert_array_equal(_run(plan), _run(runtime_cudnn.conv_plan(_spec())))


@pytest.mark.parametrize("damage", [lambda data: data[:-3] + b"xyz", lambda data: b"junk",
                                    lambda data: cudnn_plan_cache.MAGIC + b"{oops\n"])
def test_a_damaged_entry_warns_and_is_rebuilt(fake, damage):
    runtime_cudnn.conv_plan(_spec())
    (path,) = fake.glob("*.plan")
    path.write_bytes(damage(path.read_bytes()))
    _fresh_process()
    with pytest.warns(RuntimeWarning, match="damaged entry of the cuDNN plan cache"):
        runtime_cudnn.conv_plan(_spec())
    assert not fake_cudnn.deserialized and len(fake_cudnn.serialized) == 2


def test_benchmark_specs_and_the_off_switch_store_nothing(fake, monkeypatch):
    # timed on the call's buffers (torch.backends.cudnn.benchmark): neither loaded nor stored
    monkeypatch.setattr(runtime_cudnn, "_benchmark", lambda *args: 2)
    plan = runtime_cudnn.conv_plan(_spec(benchmark=True), 0, buffers=(1, 2, 3))
    assert plan.chosen == 2 and not fake_cudnn.serialized and not list(fake.glob("*"))
    stored = len(fake_cudnn.serialized)
    monkeypatch.setenv("EMBER_CUDNN_PLAN_CACHE", "0")
    _fresh_process()
    runtime_cudnn.conv_plan(_spec())
    assert len(fake_cudnn.serialized) == stored and not fake_cudnn.deserialized


def test_another_gpu_or_cudnn_version_misses(fake, monkeypatch):
    runtime_cudnn.conv_plan(_spec())
    _fresh_process()
    monkeypatch.setattr(driver, "device_name", lambda index=0: "Other GPU")
    runtime_cudnn.conv_plan(_spec())
    _fresh_process()
    monkeypatch.setattr(fake_cudnn, "VERSION", fake_cudnn.VERSION + 1)
    runtime_cudnn.conv_plan(_spec())
    assert not fake_cudnn.deserialized and len(list(fake.glob("*.plan"))) == 3
