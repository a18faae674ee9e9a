"""Artifacts with a dynamic sequence length whose model builds constants from it (a
causal mask buffer sliced to T, arange(T) positions): each size's own constants are
stored in the package, the native programs and the lite runtime agree with torch at
every T of the range, the example's and others."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import ember
from ember.cli import main
from ember.export import Dim

VOCAB, BLOCK, C, HEADS = 11, 8, 8, 2


def _gpt(lib):
    """A nanoGPT-style block: learned positions indexed by arange(T), causal attention
    masked by a registered `bias` buffer sliced [:, :, :T, :T]; `lib` is torch or ember."""
    nn, F = lib.nn, lib.nn.functional

    class Gpt(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(VOCAB, C), nn.Embedding(BLOCK, C)
            self.attn, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.head = nn.Linear(C, VOCAB, bias=False)
            self.register_buffer("bias", lib.tril(lib.ones(BLOCK, BLOCK))
                                 .view(1, 1, BLOCK, BLOCK))

        def forward(self, idx):
            b, t = idx.size()
            pos = lib.arange(0, t, dtype=lib.long)
            x = self.wte(idx) + self.wpe(pos)
            q, k, v = self.attn(x).split(C, dim=2)
            q, k, v = (z.view(b, t, HEADS, C // HEADS).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // HEADS))
            att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
            y = F.softmax(att, dim=-1) @ v
            return self.head(x + self.proj(y.transpose(1, 2).contiguous().view(b, t, C)))
    return Gpt()


def _hf(lib):
    """An HF-style encoder: position ids arange(T) expanded to the batch, a causal mask
    built by torch.tril(torch.ones(T, T))."""
    nn = lib.nn

    class Hf(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(VOCAB, C), nn.Embedding(BLOCK, C)
            self.norm, self.out = nn.LayerNorm(C), nn.Linear(C, VOCAB)

        def forward(self, input_ids):
            t = input_ids.shape[1]
            position_ids = lib.arange(t).unsqueeze(0).expand_as(input_ids)
            h = self.norm(self.tok(input_ids) + self.pos(position_ids))
            mask = lib.tril(lib.ones(t, t))
            scores = (h @ h.transpose(-1, -2)).masked_fill(mask == 0, -1e9).softmax(-1)
            return self.out(scores @ h)
    return Hf()


def _pair(build):
    torch.manual_seed(0)
    ref = build(torch).eval()
    model = build(ember).eval()
    model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in ref.state_dict().items()})
    return ref, model


@pytest.mark.parametrize("build", [_gpt, _hf], ids=["nanogpt", "hf"])
def test_a_dynamic_length_with_length_dependent_constants_packages_and_matches_torch(
        build, tmp_path):
    ref, model = _pair(build)
    ep = ember.export.export(model, (ember.zeros(2, 5, dtype=ember.int64),),
                             dynamic_shapes=({1: Dim("T", min=2, max=BLOCK)},))
    path = ember.aot.compile_and_package(ep, str(tmp_path / "m.ember"))
    loaded = ember.aot.load_package(path)
    lite = ember.runtime.lite.load_package(path)
    rng = np.random.default_rng(0)
    for t in (5, 2, 7, BLOCK, 1, 3):     # 5: the traced size; 1: torch runs it too
        ids = rng.integers(0, VOCAB, (2, t))
        with torch.no_grad():
            want = ref(torch.from_numpy(ids)).numpy()
        np.testing.assert_allclose(loaded(ember.tensor(ids)).numpy(), want,
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(lite(ids)[0], want, rtol=1e-4, atol=1e-5)
    names = set(lite.named_weights)
    assert any(n.startswith("s7.") for n in names) and any(n.startswith("s3.") for n in names)


def test_an_unbounded_length_stores_constants_per_native_size_and_falls_back_between(
        tmp_path):
    """Dim("T", min=2): native programs at the powers of two, each with its own
    positions; a length between them runs through the artifact's exported program."""
    class Positions(ember.nn.Module):
        def forward(self, x):
            return x * 2 + ember.arange(x.shape[1], dtype=ember.float32)

    ep = ember.export.export(Positions(), (ember.ones(2, 3),),
                             dynamic_shapes=({1: Dim("T", min=2)},))
    path = ember.aot.compile_and_package(ep, str(tmp_path / "positions.ember"))
    loaded = ember.aot.load_package(path)
    assert {"s3.", "s16.", "s1024."} <= {n[:n.index(".") + 1] for n in
                                        ember.runtime.lite.load_package(path).named_weights}
    for t in (3, 16, 5, 100):        # 5 and 100: no native program, the exported one
        x = np.random.default_rng(t).random((2, t), dtype=np.float32)
        np.testing.assert_allclose(loaded(ember.tensor(x)).numpy(),
                                   x * 2 + np.arange(t, dtype=np.float32), rtol=1e-6)


_FACTORY = """
import importlib.util
import numpy as np
import ember

def make():
    spec = importlib.util.spec_from_file_location("gpt_models", {test!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module._gpt(ember)
    model.load_state_dict({{k: ember.tensor(v) for k, v in np.load({weights!r}).items()}})
    return model
"""


def test_ember_compile_dynamic_then_ember_run_at_a_length_not_traced(tmp_path):
    """`ember compile --dynamic idx:1:2-8` of a nanoGPT file, `ember run` at T = 6."""
    ref = _pair(_gpt)[0]
    np.savez(tmp_path / "w.npz", **{k: v.numpy() for k, v in ref.state_dict().items()})
    (tmp_path / "gpt.py").write_text(_FACTORY.format(test=__file__,
                                                     weights=str(tmp_path / "w.npz")))
    path = str(tmp_path / "gpt.ember")
    result = CliRunner().invoke(main, ["compile", f"{tmp_path / 'gpt.py'}:make", "--input",
                                       "idx:1x4:int64", "--dynamic", f"idx:1:2-{BLOCK}",
                                       "-o", path])
    assert result.exit_code == 0, result.output
    ids = np.random.default_rng(1).integers(0, VOCAB, (1, 6))
    np.save(tmp_path / "ids.npy", ids)
    result = CliRunner().invoke(main, ["run", path, "--input", f"idx={tmp_path / 'ids.npy'}",
                                       "-o", str(tmp_path / "out.npz")])
    assert result.exit_code == 0, result.output
    (got,) = np.load(tmp_path / "out.npz").values()
    with torch.no_grad():
        want = ref(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_per_size_weights_a_runtime_finds_by_name_are_refused_naming_them():
    """Winograd (`u<step>`) or int8 (`pq...`) weights that differ per size are not
    stored per size (their runtimes look them up by name): refused, naming the first."""
    from ember.compiler import aot

    def plan(u):
        b = aot._Built()
        b.constants = {"c0": np.ones(3, np.float32), "u4": np.full((2, 2), u, np.float32)}
        return b
    built = {2: plan(0.0), 3: plan(1.0)}
    with pytest.raises(ember.ir.errors.LoweringError,
                       match=r"weights at size 3 differ .*\(u4: float32\[2, 2\] against "
                             r"float32\[2, 2\]\).*not as int8 or Winograd"):
        aot._entry_weights(built, built[2])
    built = {2: plan(0.0), 3: plan(0.0)}
    weights, stored = aot._entry_weights(built, built[2])
    assert list(stored) == ["c0", "u4"] and list(weights[3]) == ["c0", "u4"]
