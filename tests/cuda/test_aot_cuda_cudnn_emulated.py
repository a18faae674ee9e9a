"""CUDA artifacts carry ember.compile's cuDNN convolutions: where the in-process plan runs
a convolution on cuDNN (cuDNN timed faster for the shape), the artifact records the
convolution (direction, geometry, dtype, TF32/determinism flags, bias) and the engine
config cuDNN's heuristics chose (its tag), and the lite CUDA runtime rebuilds the graph
and builds exactly that engine config at load. The manifest lists the cuDNN frontend in
`requires`; a machine without it, with another cuDNN version, or whose cuDNN lists no
such engine config is refused with an ArtifactError before anything is loaded.

No GPU here: cuDNN is tests/cuda/fake_cudnn.py (the frontend's calls recorded, a plan's
execution computed with torch on emulated memory), the kernels run under Triton's
interpreter (test_aot_cuda_emulated.py). On a GPU, test_aot_cuda_gpu.py runs the real
library."""
import copy
import json
import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.compiler import aot_cuda  # noqa: E402
from ember.compiler.compile_cuda import CudaBackend, CudnnConvStep  # noqa: E402
from ember.frontend import cudnn_conv  # noqa: E402
from ember.ir.errors import ArtifactError  # noqa: E402
from ember.runtime import lite, lite_cuda  # noqa: E402

import fake_cudnn  # noqa: E402
from test_aot_cuda_emulated import ConvNet, InterpretingDriver, _package  # noqa: E402
from test_aot_cuda_splits_emulated import _in_process_kernels  # noqa: E402
from test_compile_cuda import EMULATED, device  # noqa: E402,F401

pytestmark = pytest.mark.skipif(not EMULATED, reason="emulated CUDA only (a GPU runs "
                                "test_aot_cuda_gpu.py with the real cuDNN)")


@pytest.fixture
def cudnn_wins(device):  # noqa: F811
    """cuDNN (the stand-in) loads and is timed faster than Triton for every convolution;
    this host counts as an sm_90 GPU for packaging's choice."""
    # its own patch context, undone before the emulated device is: the shared `monkeypatch`
    # is set up after `device` and so restored after it, which left the emulation's
    # never-cuDNN `usable` in place for every later test of the process
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake_cudnn.install(monkeypatch)
        monkeypatch.setattr(cudnn_conv, "usable", lambda: True)
        monkeypatch.setattr(cudnn_conv, "timings", lambda spec, index: (1.0, 0.5))
        monkeypatch.setattr(cudnn_conv, "_capturing", lambda index: False)
        monkeypatch.setattr(aot_cuda, "_has_gpu", lambda: True)
        choose = CudaBackend._cudnn_spec

        def as_on_a_gpu(self, problem, timed, epilogue):
            """Emulated plans build with precompile off, where CudaBackend makes no cuDNN
            choice; on a GPU it is on."""
            was, self.precompile = self.precompile, True
            try:
                return choose(self, problem, timed, epilogue)
            finally:
                self.precompile = was
        monkeypatch.setattr(CudaBackend, "_cudnn_spec", as_on_a_gpu)
        monkeypatch.setattr(aot_cuda, "default_arch", lambda: 90)
        monkeypatch.setattr(fake_cudnn, "executed", [])
        monkeypatch.setattr(fake_cudnn, "engines", list(fake_cudnn.ENGINES))
        yield


def _case():
    ember.manual_seed(0)
    model = ConvNet().eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6), dtype=np.float32)
    return model, x


def _packaged_kernels(plan: dict) -> list:
    return [("cudnn", plan["cudnn"][launch["cudnn"]]["describe"]) if "cudnn" in launch
            else plan["kernels"][launch["kernel"]]["source_key"] for launch in plan["launches"]]


def test_cudnn_convolutions_packaged_and_rebuilt_as_in_process(device, cudnn_wins,  # noqa: F811
                                                               tmp_path, monkeypatch):
    model, x = _case()
    fast = ember.compile(copy.deepcopy(model).to(device), backend="triton",
                         options={"cuda_graphs": False})
    with ember.no_grad():
        want = fast(ember.tensor(x).to(device)).cpu().numpy()
    in_process = fast.last[0]
    convs = [s.fn.spec for s in in_process.steps if isinstance(s.fn, CudnnConvStep)]
    assert len(convs) == 2, [(s.name, type(s.fn).__name__) for s in in_process.steps]
    ran_in_process = list(fake_cudnn.executed)

    path = tmp_path / "conv.ember"
    sources = _package(model, x, path, monkeypatch)
    manifest, members = lite.read_members(path)
    plan = json.loads(members["plan.json"])
    assert manifest["requires"] == [lite_cuda.CUDNN_PACKAGE]
    assert manifest["target"]["cudnn_version"] == fake_cudnn.VERSION
    # the heuristics' choice: the first engine config that builds, as ember.compile's
    assert [c["engine"] for c in plan["cudnn"]] == [fake_cudnn.ENGINES[1]] * 2
    assert [c["describe"] for c in plan["cudnn"]] == [s.describe() for s in convs]
    expected = []
    for step in in_process.steps:                      # the same launches, in order
        fn = step.fn
        if isinstance(fn, CudnnConvStep):
            expected.append(("cudnn", fn.spec.describe()))
        else:
            expected += [k for k in _in_process_kernels(_One(step))]
    assert _packaged_kernels(plan) == expected

    fake_cudnn.executed.clear()
    driver = InterpretingDriver(plan, sources)
    run = lite_cuda.CudaLiteModel(path, manifest, members, driver=driver)
    assert run.graphed                      # cuDNN's launches captured with the kernels
    warm_up = list(fake_cudnn.executed)     # one run before the capture
    assert len(warm_up) == len(ran_in_process)
    fake_cudnn.executed.clear()
    for _ in range(2):
        (got,) = run(x)
        np.testing.assert_array_equal(got, want)
    assert driver.replays == 2
    # each replay ran both convolutions on the recorded engine config, as ember.compile did
    assert [e for e, _ in fake_cudnn.executed] == [e for e, _ in ran_in_process] * 2
    assert all(ws is not None for _, ws in fake_cudnn.executed)


class _One:
    """One step as a plan (for _in_process_kernels)."""

    def __init__(self, step):
        self.steps = [step]


def _artifact(tmp_path, monkeypatch) -> tuple:
    model, x = _case()
    path = tmp_path / "conv.ember"
    sources = _package(model, x, path, monkeypatch)
    manifest, members = lite.read_members(path)
    return path, manifest, members, InterpretingDriver(json.loads(members["plan.json"]),
                                                       sources)


def test_without_the_cudnn_frontend_refused_before_loading(device, cudnn_wins,  # noqa: F811
                                                         tmp_path, monkeypatch):
    path, manifest, members, driver = _artifact(tmp_path, monkeypatch)
    monkeypatch.setitem(sys.modules, "cudnn", None)          # import cudnn -> ImportError
    with pytest.raises(ArtifactError, match=lite_cuda.CUDNN_PACKAGE):
        lite_cuda.CudaLiteModel(path, manifest, members, driver=driver)
    assert driver.loaded == 0 and not driver.blocks           # nothing loaded or allocated


def test_another_cudnn_version_refused(device, cudnn_wins, tmp_path, monkeypatch):  # noqa: F811
    path, manifest, members, driver = _artifact(tmp_path, monkeypatch)
    monkeypatch.setattr(fake_cudnn, "VERSION", fake_cudnn.VERSION + 100)
    with pytest.raises(ArtifactError, match="chosen with cuDNN 91900; this machine has "
                                            "cuDNN 92000"):
        lite_cuda.CudaLiteModel(path, manifest, members, driver=driver)
    assert driver.loaded == 0


def test_an_engine_config_this_cudnn_lacks_refused(device, cudnn_wins, tmp_path,  # noqa: F811
                                                   monkeypatch):
    path, manifest, members, driver = _artifact(tmp_path, monkeypatch)
    monkeypatch.setattr(fake_cudnn, "engines", ["eng7_k2=0_k3=1", "eng2_k2=1"])
    with pytest.raises(ArtifactError, match="no engine config eng0_k2=3 for conv fprop"):
        lite_cuda.CudaLiteModel(path, manifest, members, driver=driver)


def test_cudnn_off_packages_triton_convolutions(device, cudnn_wins, tmp_path,  # noqa: F811
                                                monkeypatch):
    """options={"cudnn": False}: every convolution on Triton (no cuDNN requirement), though
    ember.compile would run them on cuDNN here."""
    model, x = _case()
    path = tmp_path / "triton.ember"
    from ember.codegen.triton import device_compile
    sources = {}

    def placeholder_cubins(jobs, workers=None):
        for job in jobs:
            sources[job.kernel.key()] = job.kernel
        return [device_compile.DeviceBinary(b"\x7fELF", {
            "name": j.kernel.launch.name, "num_warps": j.kernel.launch.num_warps,
            "num_stages": 1, "num_ctas": 1, "shared": 0}) for j in jobs]
    monkeypatch.setattr(device_compile, "compile_many", placeholder_cubins)
    ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path,
                                  target="cuda", options={"cuda_arch": "sm_90", "cudnn": False})
    manifest, members = lite.read_members(path)
    plan = json.loads(members["plan.json"])
    assert "requires" not in manifest and plan["cudnn"] == []
    assert all("cudnn" not in launch for launch in plan["launches"])
    monkeypatch.setitem(sys.modules, "cudnn", None)          # not needed to load it
    run = lite_cuda.CudaLiteModel(path, manifest, members,
                                  driver=InterpretingDriver(plan, sources))
    with ember.no_grad():
        want = model(ember.tensor(x)).numpy()
    np.testing.assert_allclose(run(x)[0], want, rtol=1e-4, atol=1e-5)


def test_bad_cudnn_option_refused(tmp_path):
    model, x = _case()
    with pytest.raises(ember.ir.errors.LoweringError, match="options\\['cudnn'\\]"):
        ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)),
                                      tmp_path / "bad.ember", target="cuda",
                                      options={"cuda_arch": "sm_90", "cudnn": "always"})


def test_inspect_lists_cudnn_convolutions(device, cudnn_wins, tmp_path, monkeypatch):  # noqa: F811
    from click.testing import CliRunner
    from ember.cli_aot import main
    path, *_ = _artifact(tmp_path, monkeypatch)
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert lite_cuda.CUDNN_PACKAGE in result.output
    assert result.output.count(f"cuDNN {fake_cudnn.ENGINES[1]}") == 2


def test_unknown_requirement_refused(device, cudnn_wins, tmp_path, monkeypatch):  # noqa: F811
    path, manifest, members, driver = _artifact(tmp_path, monkeypatch)
    manifest = dict(manifest, requires=manifest["requires"] + ["tensorrt"])
    with pytest.raises(ArtifactError, match="requires tensorrt, which this runtime does "
                                            "not know"):
        lite_cuda.CudaLiteModel(path, manifest, members, driver=driver)
    assert driver.loaded == 0


def test_fresh_process_lite_runtime_refuses_without_cudnn(device, cudnn_wins, tmp_path,  # noqa: F811
                                                          monkeypatch):
    """lite.py on its own (ember, Triton, llvmlite, lark, networkx unimportable) loads its
    CUDA sibling and that one's cuDNN graph builder by path, and refuses the artifact for
    the missing cuDNN frontend before touching the driver."""
    import subprocess
    path, *_ = _artifact(tmp_path, monkeypatch)
    script = f"""
import importlib.abc, importlib.util, sys
BLOCKED = ("llvmlite", "lark", "networkx", "triton", "ember", "cudnn")
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Blocker())
spec = importlib.util.spec_from_file_location('ember_lite', {lite.__file__!r})
lite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lite)
cuda = lite._lite_sibling("lite_cuda", "CUDA runtime")
graphs = cuda._lite_cudnn()
assert graphs.__name__ == "ember_lite_cudnn" and callable(graphs.conv_graph)
try:
    lite.load_package({str(path)!r})
except lite.ArtifactError as err:
    print("REFUSED", err)
assert not [m for m in sys.modules if m.split('.')[0] in BLOCKED]
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "REFUSED" in done.stdout and lite_cuda.CUDNN_PACKAGE in done.stdout, done.stdout


def test_cli_compile_no_cudnn(device, cudnn_wins, tmp_path, monkeypatch):  # noqa: F811
    """`ember compile --target cuda` packages ember.compile's cuDNN choices; --no-cudnn
    keeps every convolution on Triton; --no-cudnn is refused for the CPU target."""
    from click.testing import CliRunner
    from ember.cli_aot import main
    from ember.codegen.triton import device_compile
    monkeypatch.setattr(device_compile, "compile_many", lambda jobs, workers=None: [
        device_compile.DeviceBinary(b"\x7fELF", {
            "name": j.kernel.launch.name, "num_warps": j.kernel.launch.num_warps,
            "num_stages": 1, "num_ctas": 1, "shared": 0}) for j in jobs])
    (tmp_path / "model.py").write_text(
        "import ember\nfrom ember import nn\n\n"
        "def make():\n    ember.manual_seed(0)\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).eval()\n")
    found = {}
    for flags in ([], ["--no-cudnn"]):
        out = tmp_path / f"m{len(flags)}.ember"
        result = CliRunner().invoke(main, ["compile", f"{tmp_path / 'model.py'}:make",
                                           "--input", "x:2x3x6x6", "--target", "cuda",
                                           "--arch", "sm_90", *flags, "-o", str(out)])
        assert result.exit_code == 0, result.output
        found[bool(flags)] = json.loads(lite.read_members(out)[1]["plan.json"])["cudnn"]
    assert len(found[False]) == 1 and found[True] == []
    result = CliRunner().invoke(main, ["compile", f"{tmp_path / 'model.py'}:make", "--input",
                                       "x:2x3x6x6", "--no-cudnn", "-o", str(tmp_path / "c")])
    assert result.exit_code != 0 and "--no-cudnn applies to --target cuda only" in result.output


def test_engine_config_that_fails_to_build_refused(device, cudnn_wins, tmp_path,  # noqa: F811
                                                   monkeypatch):
    path, manifest, members, driver = _artifact(tmp_path, monkeypatch)

    def refuse(self, index):
        raise RuntimeError("CUDNN_STATUS_NOT_SUPPORTED")
    monkeypatch.setattr(fake_cudnn.pygraph, "build_plan_at_index", refuse)
    with pytest.raises(ArtifactError, match="cuDNN could not build conv fprop .* with engine "
                                            "config eng0_k2=3: RuntimeError: CUDNN_STATUS"):
        lite_cuda.CudaLiteModel(path, manifest, members, driver=driver)


def test_packaged_engine_is_the_one_the_in_process_build_selected(device, cudnn_wins,  # noqa: F811
                                                                  tmp_path, monkeypatch):
    """A frontend whose heuristics'-choice build settles on another config than the first
    that builds: the artifact records the config the in-process build selected (found by
    which built plan runs), and the lite runtime runs that one."""
    def last_buildable(self, policy):
        self.build_plan_at_index(len(fake_cudnn.engines) - 1)
        self.candidate = len(fake_cudnn.engines) - 1
    monkeypatch.setattr(fake_cudnn.pygraph, "build_plans", last_buildable)
    model, x = _case()
    fast = ember.compile(copy.deepcopy(model).to(device), backend="triton",
                         options={"cuda_graphs": False})
    with ember.no_grad():
        want = fast(ember.tensor(x).to(device)).cpu().numpy()
    assert {e for e, _ in fake_cudnn.executed} == {fake_cudnn.ENGINES[2]}
    path, manifest, members, driver = _artifact(tmp_path, monkeypatch)
    plan = json.loads(members["plan.json"])
    assert [c["engine"] for c in plan["cudnn"]] == [fake_cudnn.ENGINES[2]] * 2
    fake_cudnn.executed.clear()
    (got,) = lite_cuda.CudaLiteModel(path, manifest, members, driver=driver)(x)
    np.testing.assert_array_equal(got, want)
    assert {e for e, _ in fake_cudnn.executed} == {fake_cudnn.ENGINES[2]}
