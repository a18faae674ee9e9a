"""Implicit-GEMM convs are shape-generic by default (the "conv" family of
source.GENERIC_FAMILIES): a channels-last conv whose channels per group are a multiple of
BLOCK_K walks K one tap at a time, so its channel count, spatial sizes and strides are
runtime arguments and resnet's layers of one kernel size, stride and tile share a body.
Each kernel runs in Triton's interpreter (TRITON_INTERPRET=1, or the GPU with
TRITON_INTERPRET=0) against torch and bit for bit against its literal form (the same
products summed in the same order)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton_device import dev, host, torch  # noqa: E402  (TRITON_INTERPRET=1 unless given)

import numpy as np  # noqa: E402

from ember.codegen.triton import cache  # noqa: E402
from ember.codegen.triton.gemm import ConvProblem, GemmConfig, generate_gemm  # noqa: E402

SMALL = GemmConfig(block_m=16, block_n=16, block_k=16, group_m=2, num_warps=1, num_stages=1)


def _code(generated) -> str:
    return generated.source.split("@triton.jit", 1)[1]


def _conv(n, c, h, w, cout, k, stride, padding, seed, monkeypatch, literal=False, taps=None):
    """(generated kernel, output) of a channels-last conv; `taps` (kh, kw) reads the
    weight as a strided view of the first taps of a k x k weight (a strided conv's input
    gradient reads its phases' taps so)."""
    if literal:
        monkeypatch.setenv("EMBER_TRITON_LITERAL_SIZES", "1")
    else:
        monkeypatch.delenv("EMBER_TRITON_LITERAL_SIZES", raising=False)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    full = rng.standard_normal((cout, c, k, k)).astype(np.float32)
    kh, kw = taps or (k, k)
    wt = full[:, :, :kh, :kw]
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))          # NHWC storage
    w_cl = np.ascontiguousarray(full.transpose(0, 2, 3, 1))       # OHWI storage of `full`
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w + 2 * padding - kw) // stride + 1
    problem = ConvProblem((n, c, h, w), (h * w * c, 1, w * c, c), (cout, c, kh, kw),
                          (k * k * c, 1, k * c, c), (ho * wo * cout, 1, wo * cout, cout),
                          (stride, stride), (padding, padding), precision="ieee")
    gen = generate_gemm(problem, SMALL, name="conv")
    out = dev(np.full(n * ho * wo * cout, np.nan, np.float32))
    cache.launch(gen, [dev(x_cl.reshape(-1)), dev(w_cl.reshape(-1)), out])
    got = host(out).reshape(n, ho, wo, cout).transpose(0, 3, 1, 2)
    want = torch.nn.functional.conv2d(torch.tensor(x).double(), torch.tensor(wt).double(),
                                      stride=stride, padding=padding)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
    return gen, got


def test_layers_of_other_channels_and_sizes_share_one_body(monkeypatch):
    """3x3 stride-1 layers at 16 and 32 input channels, other output channels, spatial
    sizes and batches: one text, the channel count an argument and no runtime division;
    bit for bit the literal form."""
    gens = [_conv(2, 16, 6, 5, 16, 3, 1, 1, 0, monkeypatch)[0]]
    gen, got = _conv(1, 32, 7, 7, 48, 3, 1, 1, 1, monkeypatch)
    literal, want = _conv(1, 32, 7, 7, 48, 3, 1, 1, 1, monkeypatch, literal=True)
    np.testing.assert_array_equal(got, want)
    assert "tap = (tl.umulhi(k0" in _code(gen) and "tap" not in _code(literal)
    gens.append(gen)
    assert len({_code(g) for g in gens}) == 1
    assert not any(op in _code(gens[0]) for op in ("// ks", "% ks", "% M", "% N"))
    assert gens[0].key() == gens[1].key()       # the sizes Triton specializes: multiples of 16


def test_strided_layers_and_tap_views_are_their_own_structures(monkeypatch):
    strided = [_conv(2, 16, 8, 8, 32, 3, 2, 1, 3, monkeypatch)[0],
               _conv(1, 32, 9, 7, 64, 3, 2, 1, 4, monkeypatch)[0]]
    assert _code(strided[0]) == _code(strided[1])
    # an input-gradient phase: 2x1 taps of a 3x3 weight read in place (not OHWI-dense)
    phase, got = _conv(2, 16, 6, 6, 16, 3, 1, 1, 5, monkeypatch, taps=(2, 1))
    _, want = _conv(2, 16, 6, 6, 16, 3, 1, 1, 5, monkeypatch, literal=True, taps=(2, 1))
    np.testing.assert_array_equal(got, want)
    assert "tap" in _code(phase) and _code(phase) != _code(strided[0])


def test_what_stays_literal(monkeypatch):
    """The stem's 3 channels (not a multiple of BLOCK_K) keep packed taps and literal
    sizes; EMBER_TRITON_LITERAL_FAMILIES=conv keeps the family literal alone."""
    stem, _ = _conv(1, 3, 7, 7, 16, 7, 2, 3, 6, monkeypatch)
    assert not stem.launch.sizes and "tap" not in _code(stem)
    monkeypatch.setenv("EMBER_TRITON_LITERAL_FAMILIES", "conv")
    literal, _ = _conv(1, 16, 5, 5, 16, 3, 1, 1, 0, monkeypatch)
    assert not literal.launch.sizes and "tap" not in _code(literal)
