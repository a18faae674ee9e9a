"""The Winograd-transformed weights of an artifact: one transform (runtime/winograd_weights.py)
for the compiler and the lite runtime, the `winograd.safetensors` member checked at load by
recomputing it, and options["winograd_weights"] = "derived" (not stored, computed at load)."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import ember
from ember.codegen.llvm import winograd
from ember.codegen.llvm.implicit_conv import pack_weights
from ember.codegen.llvm.target import Isa, host_isa
from ember.runtime import lite
from ember.runtime import winograd_weights as ww

BLOCKED = ("llvmlite", "lark", "networkx", "triton", "torch")
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])


def _reference(w: np.ndarray, nr: int) -> np.ndarray:
    """G w G^T in float64, laid out as winograd_weights lays U out."""
    c_out, c = w.shape[:2]
    u = np.einsum("ik,ockl,jl->ijco", G, w.astype(np.float64), G)   # (6, 6, C, C_out)
    panels = -(-c_out // nr)
    padded = np.zeros((6, 6, c, panels * nr))
    padded[..., :c_out] = u
    return padded.reshape(6, 6, c, panels, nr).transpose(0, 1, 3, 2, 4).reshape(
        36 * panels, c, nr)


def test_transform_is_g_w_gt():
    w = np.random.default_rng(0).standard_normal((40, 24, 3, 3), dtype=np.float32)
    got = ww.winograd_weights(pack_weights(w, 16), 40, 16)
    want = _reference(w, 16)
    assert got.shape == want.shape == (36 * 3, 24, 16) and got.ctypes.data % 64 == 0
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-7 * np.abs(want).max())
    assert not got.reshape(36, 3, 24, 16)[:, 2, :, 8:].any()      # padding past C_out


def test_transform_bits_do_not_depend_on_panel_width_chunks_or_ranges(monkeypatch):
    w = np.random.default_rng(1).standard_normal((48, 32, 3, 3), dtype=np.float32)
    whole = ww.winograd_weights(pack_weights(w, 16), 48, 16)
    np.testing.assert_array_equal(ww.winograd_weights(pack_weights(w, 8), 48, 16), whole)
    np.testing.assert_array_equal(winograd.transform_weights(w, 16), whole)
    monkeypatch.setattr(ww, "CHUNK_FLOATS", 48)
    parts = np.zeros_like(whole)
    for begin in range(3):
        assert ww.transform_panels(pack_weights(w, 16), parts, begin, begin + 1)
    np.testing.assert_array_equal(parts, whole)
    assert ww.transform_panels(pack_weights(w, 16), whole, 0, 3, compare=True)
    whole.reshape(-1)[12345] = np.nextafter(whole.reshape(-1)[12345], np.float32(np.inf))
    assert not ww.transform_panels(pack_weights(w, 16), whole, 0, 3, compare=True)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_have_no_winograd_form(bad):
    w = np.ones((32, 32, 3, 3), np.float32)
    w[5, 7, 1, 2] = bad
    assert ww.winograd_weights(pack_weights(w, 16), 32, 16) is None


# --- artifacts ----------------------------------------------------------------------------------
needs_winograd = pytest.mark.skipif(host_isa() == Isa.PORTABLE,
                                    reason="Winograd needs a vector ISA (avx2 or avx512)")


class Net(ember.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = ember.nn.Conv2d(32, 32, 3, padding=1)
        self.b = ember.nn.Conv2d(32, 48, 3, padding=1)

    def forward(self, x):
        return self.b(ember.relu(self.a(x)))


@pytest.fixture(scope="module")
def conv_net(tmp_path_factory):
    ember.manual_seed(7)
    model = Net().eval()
    x = np.random.default_rng(2).standard_normal((2, 32, 9, 10), dtype=np.float32)
    ep = ember.export(model, (ember.tensor(x),))
    where = tmp_path_factory.mktemp("wino")
    stored, derived = where / "stored.ember", where / "derived.ember"
    ember.aot.compile_and_package(ep, stored)
    ember.aot.compile_and_package(ep, derived, options={"winograd_weights": "derived"})
    with ember.no_grad():
        want = ember.compile(model)(ember.tensor(x)).numpy()
    t = torch.nn.Sequential(torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Conv2d(32, 48, 3, padding=1))
    t.load_state_dict({k.replace("a.", "0.").replace("b.", "2."): torch.from_numpy(
        np.array(v.numpy())) for k, v in model.state_dict().items()})
    with torch.no_grad():
        oracle = t(torch.from_numpy(x)).numpy()
    return stored, derived, x, want, oracle


@needs_winograd
def test_stored_and_derived_equal_compiled(conv_net):
    stored, derived, x, want, oracle = conv_net
    with zipfile.ZipFile(stored) as z:
        assert lite.WINOGRAD_MEMBER in z.namelist()
    with zipfile.ZipFile(derived) as z:
        assert lite.WINOGRAD_MEMBER not in z.namelist()
    assert derived.stat().st_size < stored.stat().st_size / 2
    for path in (stored, derived):
        got = ember.aot.load_package(path)(x).numpy()
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got, oracle, rtol=1e-4, atol=1e-4)


def _flip_in_member(src, dst, member: str, back: int):
    """A copy of `src` with one byte of `member` flipped (`back` bytes from its end)."""
    with zipfile.ZipFile(src) as z:
        info = z.getinfo(member)
    data = bytearray(src.read_bytes())
    header = info.header_offset
    start = header + 30 + int.from_bytes(data[header + 26:header + 28], "little") + \
        int.from_bytes(data[header + 28:header + 30], "little")
    data[start + info.file_size - back] ^= 0x04
    dst.write_bytes(bytes(data))
    return dst


@needs_winograd
@pytest.mark.parametrize("back", [1, 4000])
def test_flipped_byte_in_winograd_member_is_refused(conv_net, tmp_path, back):
    bad = _flip_in_member(conv_net[0], tmp_path / "bad.ember", lite.WINOGRAD_MEMBER, back)
    with pytest.raises(ember.ArtifactError, match="is not the Winograd transform"):
        lite.load_package(bad)


@needs_winograd
def test_flipped_byte_in_direct_weights_still_fails_sha(conv_net, tmp_path):
    for path in conv_net[:2]:
        bad = _flip_in_member(path, tmp_path / "bad.ember", "weights.safetensors", 100)
        with pytest.raises(ember.ArtifactError, match="weights.safetensors fails its SHA-256"):
            lite.load_package(bad)


def test_unknown_winograd_option_is_refused(conv_net, tmp_path):
    ep = ember.export(Net().eval(), (ember.tensor(conv_net[2]),))
    with pytest.raises(ember.LoweringError, match="'stored' or 'derived'"):
        ember.aot.compile_and_package(ep, tmp_path / "x.ember",
                                      options={"winograd_weights": "both"})


@needs_winograd
def test_lite_runtime_alone_checks_and_derives(conv_net, tmp_path):
    """Loaded by path with the compiler unimportable (winograd_weights.py comes along as
    a sibling file), both artifacts give ember.compile's bits."""
    stored, derived, x, want, _ = conv_net
    np.save(tmp_path / "x.npy", x)
    script = f"""
import importlib.abc, importlib.util, sys
BLOCKED = {BLOCKED!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('blocked in the lite-runtime test: ' + name)
sys.meta_path.insert(0, Blocker())
spec = importlib.util.spec_from_file_location('ember_lite', {lite.__file__!r})
lite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lite)
import numpy as np
x = np.load({str(tmp_path / 'x.npy')!r})
for i, path in enumerate([{str(stored)!r}, {str(derived)!r}]):
    (y,) = lite.load_package(path)(x)
    np.save({str(tmp_path)!r} + f'/y{{i}}.npy', y)
heavy = [m for m in sys.modules if m.split('.')[0] in BLOCKED or m.split('.')[0] == 'ember']
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"y{i}.npy"), want)


@needs_winograd
def test_fuzz_flips_in_the_weights_members(conv_net, tmp_path):
    """Random bit flips inside the two weights members of the stored artifact (where the
    Winograd check, not a SHA-256, guards most bytes): every load is refused with
    ArtifactError or, a flip in bytes nothing reads (padding), gives the exact result. In a
    subprocess, so a crash would fail the test rather than end the run."""
    stored, _, x, want, _ = conv_net
    with zipfile.ZipFile(stored) as z:
        spans = [(i.header_offset, i.header_offset + 100 + i.file_size) for i in z.infolist()
                 if i.filename in ("weights.safetensors", lite.WINOGRAD_MEMBER)]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", want)
    script = f"""
import importlib.util, random
import numpy as np
spec = importlib.util.spec_from_file_location('ember_lite', {lite.__file__!r})
lite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lite)
data = open({str(stored)!r}, 'rb').read()
x, want = np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'want.npy')!r})
rng = random.Random(99)
refused = ran = 0
for trial in range(40):
    bad = bytearray(data)
    start, end = {spans!r}[trial % 2]
    for _ in range(rng.choice((1, 1, 2))):
        bad[rng.randrange(start, min(end, len(bad)))] ^= 1 << rng.randrange(8)
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
    assert refused + ran == 40 and refused > 30
