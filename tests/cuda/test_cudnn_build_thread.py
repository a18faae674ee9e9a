"""cuDNN plans built on a thread of their own (EMBER_CUDNN_BUILD_THREAD=1,
runtime/cuda/cudnn.start_builds): a compile hands the plans its first call needs to the
builder thread and conv_plan collects each where it is first used, with the same plan,
result and failure memory as a build on the caller's thread. cuDNN is
tests/cuda/fake_cudnn.py (no GPU: the real frontend has never run this path)."""
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("torch")

from ember.compiler import compile_cuda  # noqa: E402
from ember.runtime.cuda import cudnn as runtime_cudnn, driver  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import fake_cudnn  # noqa: E402
from test_cudnn_plan_cache import _run, _spec  # noqa: E402


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("EMBER_CUDNN_PLAN_CACHE", "0")     # every plan built, none read
    fake_cudnn.install(monkeypatch)
    for name, value in (("executed", []), ("engines", list(fake_cudnn.ENGINES))):
        monkeypatch.setattr(fake_cudnn, name, value)
    monkeypatch.setattr(runtime_cudnn, "_building", {})
    contexts = []          # (thread, device) of each context made current by a build
    monkeypatch.setattr(driver, "context",
                        lambda index=0: contexts.append((threading.get_ident(), index)))
    builds = []            # the thread of each build
    real = fake_cudnn.pygraph.build_plans
    monkeypatch.setattr(fake_cudnn.pygraph, "build_plans",
                        lambda self, policy: (builds.append(threading.get_ident()),
                                              real(self, policy))[1])
    return builds, contexts


def _other_spec():
    import dataclasses
    return dataclasses.replace(_spec(), epilogue="relu")


def test_plans_are_built_on_the_builder_thread_and_collected_where_used(fake, monkeypatch):
    builds, contexts = fake
    monkeypatch.setenv("EMBER_CUDNN_BUILD_THREAD", "1")
    specs = [_spec(), _other_spec()]
    compile_cuda._build_cudnn_plans(specs, 0)
    me = threading.get_ident()
    threaded = runtime_cudnn.conv_plan(specs[0], 0)
    assert runtime_cudnn.conv_plan(specs[0], 0) is threaded        # collected once
    runtime_cudnn.finish_builds()
    assert not runtime_cudnn._building
    assert len(builds) == 2 and me not in builds
    assert {t for t, _ in contexts} == set(builds) and {i for _, i in contexts} == {0}
    assert threaded.workspace is not None                     # allocated on collection
    got = _run(threaded)
    # the same spec built on this thread (switch off, fresh process) computes the same
    monkeypatch.setenv("EMBER_CUDNN_BUILD_THREAD", "0")
    runtime_cudnn._plans.clear()
    compile_cuda._build_cudnn_plans([specs[0]], 0)
    assert builds[-1] == me and not runtime_cudnn._building
    serial = runtime_cudnn.conv_plan(specs[0], 0)
    assert serial.graph.candidate == threaded.graph.candidate
    np.testing.assert_array_equal(_run(serial), got)


def test_a_plan_cudnn_refuses_is_remembered_as_refused(fake, monkeypatch):
    builds, _ = fake
    monkeypatch.setenv("EMBER_CUDNN_BUILD_THREAD", "1")
    monkeypatch.setattr(fake_cudnn, "engines", ["eng7_k2=0_k3=1"])    # none builds
    monkeypatch.setattr(fake_cudnn.pygraph, "get_workspace_size",
                        lambda self: (_ for _ in ()).throw(RuntimeError("no plan built")))
    runtime_cudnn.start_builds([_spec()], 0)
    with pytest.raises(runtime_cudnn.CudnnUnsupported, match="no plan built"):
        runtime_cudnn.conv_plan(_spec(), 0)
    assert (_spec(), 0) in runtime_cudnn._failed and not runtime_cudnn._building
    with pytest.raises(runtime_cudnn.CudnnUnsupported):
        runtime_cudnn.conv_plan(_spec(), 0)
    assert len(builds) == 1                                    # not built again
    assert runtime_cudnn.start_builds([_spec()], 0) == 0


def test_a_run_waits_for_a_build_in_progress_on_its_handle(fake, monkeypatch):
    """The builder thread and the caller share a handle: a plan's run waits while a build
    is inside cuDNN (a handle is never used by two threads at once)."""
    monkeypatch.setenv("EMBER_CUDNN_BUILD_THREAD", "1")
    ready = runtime_cudnn.conv_plan(_spec(), 0)         # built here, before the thread
    inside, release, order = threading.Event(), threading.Event(), []
    real = fake_cudnn.pygraph.build_plans

    def slow_build(self, policy):
        inside.set()
        release.wait(5)
        order.append("build done")
        return real(self, policy)
    monkeypatch.setattr(fake_cudnn.pygraph, "build_plans", slow_build)
    runtime_cudnn.start_builds([_other_spec()], 0)
    assert inside.wait(5)
    runner = threading.Thread(target=lambda: (_run(ready), order.append("run done")))
    runner.start()
    runner.join(0.2)
    assert order == []                                    # the run waits for the build
    release.set()
    runner.join(5)
    assert order == ["build done", "run done"]
    runtime_cudnn.finish_builds()
    assert (_other_spec(), 0) in runtime_cudnn._plans


def test_benchmark_specs_stay_with_the_caller(fake, monkeypatch):
    monkeypatch.setenv("EMBER_CUDNN_BUILD_THREAD", "1")
    assert runtime_cudnn.start_builds([_spec(benchmark=True)], 0) == 0
    assert not runtime_cudnn._building
