"""ember.aot: packaging, the lite runtime in a fresh process without the compiler,
and refusal of corrupt or mismatched artifacts (a bounded fuzz included)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import ember
from ember.runtime import lite

LITE_FILE = lite.__file__
BLOCKED = ("llvmlite", "lark", "networkx", "triton", "torch")


@pytest.fixture(scope="module")
def mlp_artifact(tmp_path_factory):
    """A small MLP packaged once: (path, input, ember.compile's result)."""
    model = ember.models.mlp(in_features=20, hidden=(24, 16), num_classes=5, seed=3)
    model.eval()
    x = ember.tensor(np.random.default_rng(0).standard_normal((6, 20), dtype=np.float32))
    path = tmp_path_factory.mktemp("aot") / "mlp.ember"
    ember.aot.compile_and_package(ember.export(model, (x,)), path)
    with ember.no_grad():
        want = ember.compile(model)(x).numpy()
    return path, x.numpy(), want


def test_mlp_equals_compiled_bit_for_bit(mlp_artifact):
    path, x, want = mlp_artifact
    run = ember.aot.load_package(path)
    got = run(x)
    assert isinstance(got, ember.Tensor)
    np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(run(ember.tensor(x)).numpy(), want)   # and again


def test_cnn_with_conv_epilogues_equals_compiled(rng, tmp_path):
    model = ember.models.small_cnn(seed=1)
    model.eval()
    x = ember.tensor(rng.standard_normal((2, 1, 10, 10), dtype=np.float32))
    path = tmp_path / "cnn.ember"
    ember.aot.compile_and_package(ember.export(model, (x,)), path)
    with ember.no_grad():
        want = ember.compile(model)(x).numpy()
        eager = model(x).numpy()
    got = ember.aot.load_package(path)(x).numpy()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, eager, rtol=1e-4, atol=1e-5)


def test_transformer_layer_batched_matmuls_equal_compiled(rng, tmp_path):
    ember.manual_seed(4)
    layer = ember.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64,
                                             dropout=0.0, batch_first=True).eval()
    x = ember.tensor(rng.standard_normal((2, 6, 32), dtype=np.float32))
    path = tmp_path / "layer.ember"
    ember.aot.compile_and_package(ember.export(layer, (x,)), path)
    with zipfile.ZipFile(path) as z:
        kinds = {s["kind"] for s in json.loads(z.read("plan.json"))["steps"]}
    assert {"bgemm", "gemm", "kernel", "view"} <= kinds
    with ember.no_grad():
        want = ember.compile(layer)(x).numpy()
    np.testing.assert_array_equal(ember.aot.load_package(path)(x).numpy(), want)


def test_result_structure_and_two_inputs(rng, tmp_path):
    class Pair(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = ember.nn.Linear(4, 3)

        def forward(self, x, y):
            h = self.fc(x)
            return {"sum": h + y, "parts": (h.relu(), y * 2)}
    model = Pair()
    x = ember.tensor(rng.standard_normal((5, 4), dtype=np.float32))
    y = ember.tensor(rng.standard_normal((5, 3), dtype=np.float32))
    path = tmp_path / "pair.ember"
    ember.aot.compile_and_package(ember.export(model, (x, y)), path)
    got = ember.aot.load_package(path)(x, y)
    with ember.no_grad():
        want = ember.compile(model)(x, y)
    assert set(got) == {"sum", "parts"} and isinstance(got["parts"], tuple)
    np.testing.assert_array_equal(got["sum"].numpy(), want["sum"].numpy())
    for g, w in zip(got["parts"], want["parts"]):
        np.testing.assert_array_equal(g.numpy(), w.numpy())


def test_text_classifier_with_embedding(tmp_path):
    model = ember.models.transformer_classifier(vocab_size=50, d_model=16, nhead=2,
                                                num_layers=1).eval()
    tokens = ember.randint(0, 50, (2, 5))
    path = tmp_path / "text.ember"
    ember.aot.compile_and_package(ember.export(model, (tokens,)), path)
    with ember.no_grad():
        want = ember.compile(model)(tokens).numpy()
    run = ember.aot.load_package(path)
    np.testing.assert_array_equal(run(tokens).numpy(), want)
    with pytest.raises(IndexError, match="embedding"):
        run(np.full((2, 5), 50, np.int64))


def test_manifest_members(mlp_artifact):
    path, _, _ = mlp_artifact
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("manifest.json"))
    assert names == set(lite.MEMBERS)
    assert manifest["format_version"] == lite.FORMAT_VERSION
    assert manifest["ember_version"] == ember.__version__
    assert manifest["inputs"] == [{"name": "input", "dtype": "float32", "shape": [6, 20]}]
    assert manifest["outputs"][0]["shape"] == [6, 5]
    assert set(manifest["members"]) == set(lite.MEMBERS) - {"manifest.json"}
    assert manifest["target"]["required_features"]


_BLOCKER = """
import importlib.abc, importlib.util, sys
BLOCKED = {blocked!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('blocked in the lite-runtime test: ' + name)
sys.meta_path.insert(0, Blocker())
spec = importlib.util.spec_from_file_location('ember_lite', {lite!r})
lite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lite)
"""


def test_lite_runtime_in_fresh_process_without_compiler(mlp_artifact, tmp_path):
    """Load and run with llvmlite, lark, networkx, triton and torch unimportable; the
    result equals ember.compile's bit for bit and nothing ember-compiler was imported."""
    path, x, want = mlp_artifact
    np.save(tmp_path / "x.npy", x)
    script = _BLOCKER.format(blocked=BLOCKED, lite=LITE_FILE) + f"""
import numpy as np
model = lite.load_package({str(path)!r})
(y,) = model(np.load({str(tmp_path / 'x.npy')!r}))
np.save({str(tmp_path / 'y.npy')!r}, y)
heavy = [m for m in sys.modules if m.split('.')[0] in BLOCKED or m.split('.')[0] == 'ember']
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


def test_lite_script_entry(mlp_artifact, tmp_path):
    path, x, want = mlp_artifact
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([sys.executable, LITE_FILE, str(path), "--input",
                           f"input={tmp_path / 'x.npy'}", "-o", str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["output"], want)


# --- refusals --------------------------------------------------------------------------------
def _rewrite(src, dst, *, drop=(), manifest=None, replace=None):
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    if manifest is not None:
        data = json.loads(members["manifest.json"])
        manifest(data)
        members["manifest.json"] = json.dumps(data).encode()
    for name, data in (replace or {}).items():
        members[name] = data
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in members.items():
            if name not in drop:
                z.writestr(name, data)
    return dst


def test_refuses_other_format_version(mlp_artifact, tmp_path):
    bad = _rewrite(mlp_artifact[0], tmp_path / "v.ember",
                   manifest=lambda m: m.update(format_version=lite.FORMAT_VERSION + 1))
    v = lite.FORMAT_VERSION
    readable = ", ".join(map(str, lite.READABLE_VERSIONS))
    with pytest.raises(ember.ArtifactError, match=f"format version {v + 1}; this runtime "
                                                  f"reads versions {readable}"):
        ember.aot.load_package(bad)


def test_reads_a_version_2_artifact(mlp_artifact, tmp_path):
    """Version 2 (before the int8 claiming schedule) has the same layout for float plans."""
    path, x, want = mlp_artifact
    old = _rewrite(path, tmp_path / "v2.ember", manifest=lambda m: m.update(format_version=2))
    np.testing.assert_array_equal(np.asarray(ember.aot.load_package(old)(x)), want)


def test_refuses_missing_member(mlp_artifact, tmp_path):
    bad = _rewrite(mlp_artifact[0], tmp_path / "m.ember", drop=("plan.json",))
    with pytest.raises(ember.ArtifactError, match="missing member plan.json"):
        ember.aot.load_package(bad)


def test_refuses_changed_member(mlp_artifact, tmp_path):
    with zipfile.ZipFile(mlp_artifact[0]) as z:
        weights = bytearray(z.read("weights.safetensors"))
    weights[-1] ^= 0x10
    bad = _rewrite(mlp_artifact[0], tmp_path / "w.ember",
                   replace={"weights.safetensors": bytes(weights)})
    with pytest.raises(ember.ArtifactError, match="weights.safetensors fails its SHA-256"):
        ember.aot.load_package(bad)


def test_refuses_missing_cpu_features(mlp_artifact, tmp_path):
    bad = _rewrite(mlp_artifact[0], tmp_path / "f.ember", manifest=lambda m: m["target"].update(
        required_features=["avx2", "imaginary_simd"]))
    with pytest.raises(ember.ArtifactError, match=r"this CPU lacks \['imaginary_simd'\]"):
        ember.aot.load_package(bad)
    manifest, _ = lite.read_members(mlp_artifact[0])
    with pytest.raises(ember.ArtifactError, match="lacks"):
        lite.check_cpu(manifest, "x.ember", flags=set())


def test_refuses_truncated_and_non_artifacts(mlp_artifact, tmp_path):
    data = mlp_artifact[0].read_bytes()
    cut = tmp_path / "cut.ember"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(ember.ArtifactError, match="not a readable ember artifact"):
        ember.aot.load_package(cut)
    with pytest.raises(ember.ArtifactError, match="not an ember artifact"):
        ember.aot.load_package(_rewrite(mlp_artifact[0], tmp_path / "o.ember",
                                        manifest=lambda m: m.update(format="other")))


def test_wrong_input_is_refused(mlp_artifact):
    run = ember.aot.load_package(mlp_artifact[0])
    with pytest.raises(ember.ArtifactError, match=r"input 'input' must be float32\[6, 20\]"):
        run(np.zeros((5, 20), np.float32))
    with pytest.raises(ember.ArtifactError, match="takes 1 input"):
        run()


def test_fuzz_flipped_and_truncated_bytes(mlp_artifact, tmp_path):
    """Random byte flips and truncations: each load either refuses with ArtifactError or
    (a flip in bytes nothing depends on, e.g. a zip timestamp) gives the exact result.
    Runs in a subprocess so a crash would show as a failure, not kill the test run."""
    path, x, want = mlp_artifact
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", want)
    script = f"""
import numpy as np, random, sys
sys.path.insert(0, {os.path.dirname(LITE_FILE)!r})
import lite
data = open({str(path)!r}, 'rb').read()
x, want = np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'want.npy')!r})
rng = random.Random(1234)
refused = ran = 0
for trial in range(60):
    bad = bytearray(data)
    if trial % 4 == 3:
        bad = bad[:rng.randrange(len(bad))]
    else:
        for _ in range(rng.choice((1, 1, 3))):
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
    target = {str(tmp_path / 'fuzz.ember')!r}
    open(target, 'wb').write(bad)
    try:
        (y,) = lite.load_package(target)(x)
    except lite.ArtifactError:
        refused += 1
        continue
    assert np.array_equal(y, want), ('wrong result', trial)
    ran += 1
print(refused, ran)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    refused, ran = map(int, done.stdout.split())
    assert refused + ran == 60 and refused > 30


def test_unsupported_step_is_named(tmp_path):
    class Sorter(ember.nn.Module):
        def forward(self, x):
            return ember.sort(x, dim=-1)[0] * 2
    ep = ember.export(Sorter(), (ember.randn(3, 4),))
    with pytest.raises(ember.LoweringError, match=r"sort\) has no native kernel"):
        ember.aot.compile_and_package(ep, tmp_path / "s.ember")
    assert not (tmp_path / "s.ember").exists()


def test_unknown_target_is_refused(mlp_artifact, tmp_path):
    ep = ember.export(ember.nn.Linear(2, 2), (ember.randn(1, 2),))
    with pytest.raises(ember.LoweringError, match="target 'tpu' is not supported"):
        ember.aot.compile_and_package(ep, tmp_path / "c.ember", target="tpu")
