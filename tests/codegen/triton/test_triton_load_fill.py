"""Masked loads of 8- and 16-bit integers whose fill (`other`) has the element's top bit set.

Triton 3.6 (the H100's) builds the register word of a vectorized masked load from the fill
sign-extended to 64 bits and OR-ed with itself shifted by the element width, so uint8 131
becomes the word 0xffffff83: lanes 131, 255, 255, 255 (the interpreter, and Triton 3.9,
fill every lane). That made the int8 implicit-GEMM conv read 255 instead of the input zero
point 131 in three of every four padded channels: the H100's "427 of 1512 outputs differ,
by up to 66" is what `_padded_reference` below gives on the qgemm test's operands. The
generators now select such fills after a load filling 0 (source.masked_load).

Here: the emulated fill word against the rule that decides the select (every 8- and 16-bit
value), the conv's padding read through the emulated word (wrong exactly where a window
covers padding), the generated sources (no such fill reaches a load's `other`), and the
padded reads themselves against torch (interpreter; the GPU with TRITON_INTERPRET=0)."""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton_device import torch  # noqa: E402  (TRITON_INTERPRET=1 unless given)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import ember  # noqa: E402
from ember.codegen.lowering import lower_group  # noqa: E402
from ember.codegen.triton import source  # noqa: E402
from ember.codegen.triton.gemm import GemmConfig  # noqa: E402
from ember.codegen.triton.qgemm import conv_problem, generate_qgemm, linear_problem  # noqa
from ember.codegen.triton.source import fill_needs_select  # noqa: E402
from ember.ir import dtypes  # noqa: E402
from ember.ir.meta import meta_of  # noqa: E402
from ember.ir.ops.quantized import quantized_conv2d  # noqa: E402
from ember.ir.quantized import QuantizedArray  # noqa: E402
from ember.ir.symbolic import build_graph  # noqa: E402
from test_triton_kernels import run_fn  # noqa: E402

SMALL = GemmConfig(block_m=16, block_n=16, block_k=32, group_m=2, num_warps=1, num_stages=1)


def triton36_fill_lanes(fill: int, bits: int) -> list[int]:
    """The lanes (as unsigned element values) of the 32-bit word Triton 3.6 fills a masked
    vector load with: the fill sign-extended, OR-ed with itself shifted by `bits`."""
    value = int(np.array(fill).astype(f"uint{bits}").astype(f"int{bits}"))   # signless bits
    word = value
    for shift in range(bits, 32, bits):
        word |= value << shift
    word &= 0xFFFFFFFF
    return [(word >> s) & ((1 << bits) - 1) for s in range(0, 32, bits)]


@pytest.mark.parametrize("dtype", [dtypes.int8, dtypes.uint8, dtypes.int16, dtypes.uint16])
def test_the_select_rule_is_exactly_the_fills_triton36_packs_wrong(dtype):
    bits = 8 * dtype.itemsize
    info = np.iinfo(dtype.np_dtype)
    for fill in range(int(info.min), int(info.max) + 1):
        lanes = triton36_fill_lanes(fill, bits)
        wrong = lanes != [fill % (1 << bits)] * len(lanes)
        # all-ones (int8 -1, uint8 255) packs right by luck; the rule selects it anyway
        all_ones = fill % (1 << bits) == (1 << bits) - 1
        assert fill_needs_select(fill, dtype) == (wrong or all_ones), fill
    assert not fill_needs_select(-1.5, dtypes.float16)       # float fills are packed right
    assert not fill_needs_select(-3, dtypes.int32)


def _padded_reference(x, w, bias, stride, padding, dilation, groups, lanes):
    """quantized_conv2d's reference with padded input channel c reading lanes[c % 4]."""
    n, cin, h, wd = x.int_repr.shape
    ph, pw = padding
    xp = np.empty((n, cin, h + 2 * ph, wd + 2 * pw), np.uint8)
    xp[:] = np.asarray([lanes[c % len(lanes)] for c in range(cin)], np.uint8)[:, None, None]
    xp[:, :, ph:ph + h, pw:pw + wd] = x.int_repr
    padded = QuantizedArray(xp, dtypes.quint8, x.scale, x.zero_point)
    return quantized_conv2d.reference(padded, w, bias, stride, (0, 0), dilation, groups, 0.3,
                                      64, False).int_repr


def test_the_triton36_fill_word_breaks_the_conv_exactly_where_windows_cover_padding(rng):
    """The H100 failure, emulated: channel runs read as 32-bit words fill their padding
    with 131, 255, 255, 255; outputs whose window covers no padding stay right."""
    x_zp, stride, padding = 131, (1, 1), (1, 1)
    x = QuantizedArray(rng.integers(0, 256, (2, 8, 9, 7)).astype(np.uint8), dtypes.quint8,
                       0.02, x_zp)
    w = QuantizedArray(rng.integers(-128, 128, (12, 8, 3, 3)).astype(np.int8), dtypes.qint8,
                       0.004, 0)
    bias = rng.standard_normal(12).astype(np.float32)
    want = quantized_conv2d.reference(x, w, bias, stride, padding, (1, 1), 1, 0.3, 64,
                                      False).int_repr
    assert np.array_equal(_padded_reference(x, w, bias, stride, padding, (1, 1), 1, [x_zp]),
                          want)                                   # a right fill: same result
    emulated = _padded_reference(x, w, bias, stride, padding, (1, 1), 1,
                                 triton36_fill_lanes(x_zp, 8))
    border = np.ones(want.shape[2:], bool)
    border[1:-1, 1:-1] = False                                    # windows over padding
    differs = (emulated != want).any(axis=(0, 1))
    assert np.array_equal(differs, border)


def _load_fills(text: str):
    """(fill literal, element type) of every `other=` of a tl.load in generated source."""
    for m in re.finditer(r"other=(?:tl\.full\(\[\], (-?\d+), tl\.(\w+)\)|(-?\d+)\b)", text):
        yield (int(m.group(1)), m.group(2)) if m.group(1) else (int(m.group(3)), None)


def _assert_no_top_bit_fill(text: str, pointer_type: str | None = None):
    for fill, elem in _load_fills(text):
        elem = elem or pointer_type
        if elem in ("int8", "uint8", "int16", "uint16"):
            assert not fill_needs_select(fill, getattr(dtypes, elem)), (fill, elem, text)


@pytest.mark.parametrize("x_zp", [0, 117, 127, 128, 131, 254, 255])
def test_qgemm_never_packs_a_top_bit_zero_point(x_zp):
    problem = conv_problem((2, 8, 9, 7), (504, 1, 56, 8), (12, 8, 3, 3), (756, 63, 7, 1),
                           (1, 1), (1, 1), (1, 1), 1)
    conv = generate_qgemm(problem, x_zp, 0.3, 64, True, SMALL).source
    linear = generate_qgemm(linear_problem(37, 45, 70), x_zp, 0.3, 64, False, SMALL).source
    for text in (conv, linear):
        _assert_no_top_bit_fill(text, "uint8")                    # the activation is quint8
    assert (f"tl.full([], {x_zp}, tl.uint8)" in conv) == fill_needs_select(x_zp, dtypes.uint8)


PADS = [("int8", -3), ("uint8", 200), ("int16", -1), ("uint8", 117), ("int8", 5)]


def _pad(value):
    return lambda t: ember.nn.functional.pad(t, (4, 4, 1, 0), value=value)


@pytest.mark.parametrize("dtype, value", PADS)
def test_integer_constant_pad_reads_its_fill(rng, dtype, value):
    """Rows of 32 elements padded by 4 each side: word-aligned runs that a GPU reads as
    vectors (Triton 3.6 filled their padding with value, -1, -1, -1 for int8 -3)."""
    info = np.iinfo(getattr(np, dtype))
    a = rng.integers(info.min, info.max, (3, 32), endpoint=True).astype(dtype)
    graph, _ = build_graph(_pad(value), [meta_of(ember.from_numpy(a))])
    text = source.generate(lower_group(graph, "k").kernel).source
    _assert_no_top_bit_fill(text)
    pairs, _ = run_fn(_pad(value), ember.from_numpy(a))
    want = torch.nn.functional.pad(torch.from_numpy(a), (4, 4, 1, 0), value=value).numpy()
    for ref, got in pairs:
        np.testing.assert_array_equal(got.reshape(want.shape), want)
        np.testing.assert_array_equal(ref, got)


def test_int8_max_pool_padding_reads_the_lowest_value(rng):
    """max_pool2d's padding reads int8's -128, never -1 (all-negative windows at the
    border would take -1 from a wrong fill)."""
    a = rng.integers(-128, -1, (2, 4, 8, 8)).astype(np.int8)
    pool = lambda t: ember.nn.functional.max_pool2d(t, 3, 2, 1)          # noqa: E731
    pairs, gen = run_fn(pool, ember.from_numpy(a))
    _assert_no_top_bit_fill(gen.source)
    want = torch.nn.functional.max_pool2d(torch.from_numpy(a).float(), 3, 2, 1)
    for _, got in pairs:
        np.testing.assert_array_equal(got.reshape(want.shape), want.numpy().astype(np.int8))


_PTX_FILLS = r'''
import json, re, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import ember
from ember.codegen.lowering import lower_group
from ember.codegen.triton import source
from ember.codegen.triton.cache import load
from ember.codegen.triton.gemm import GemmConfig
from ember.codegen.triton.qgemm import conv_problem, generate_qgemm
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph

small = GemmConfig(block_m=16, block_n=16, block_k=32, group_m=2, num_warps=1, num_stages=1)
conv = generate_qgemm(conv_problem((2, 8, 9, 7), (504, 1, 56, 8), (12, 8, 3, 3),
                                   (756, 63, 7, 1), (1, 1), (1, 1), (1, 1), 1),
                      131, 0.3, 64, True, small)
x = ember.zeros(4, 32, dtype=ember.int8)
graph, _ = build_graph(lambda t: ember.nn.functional.pad(t, (4, 4), value=-3), [meta_of(x)])
pad = source.generate(lower_group(graph, "k").kernel)
fills = {}
for name, kernel in (("conv", conv), ("pad", pad)):
    spec = kernel.launch
    signature = spec.signature()          # pointers, the shape-generic sizes, constexprs
    attrs = {(i,): [["tt.divisibility", 16]] for i in range(len(spec.args))}
    compiled = triton.compile(
        ASTSource(load(kernel), signature, constexprs=dict(spec.constexprs), attrs=attrs),
        target=GPUTarget("cuda", 90, 32),
        options={"num_warps": spec.num_warps, "num_stages": spec.num_stages})
    ptx = compiled.asm["ptx"]
    # the registers a predicated global load fills, and the immediates moved into them
    loaded = set()
    for regs in re.findall(r"@%p\d+ ld\.global[.\w]* \{?([^};]*)\}?, \[", ptx):
        loaded.update(r.strip() for r in regs.split(","))
    moves = re.findall(r"mov\.[ub](?:16|32) (%rs?\d+), (0x[0-9a-fA-F]+);", ptx)
    fills[name] = sorted({imm for reg, imm in moves if reg in loaded})
print(json.dumps({"triton": triton.__version__, "fills": fills}))
'''


def test_compiled_sm90_loads_fill_whole_bytes():
    """What Triton (the installed one: 3.6 on the H100) emits for sm_90: every fill word
    of a predicated load of the int8 conv and an int8 pad is a byte repeated (0 here),
    never a sign-extended constant such as 0xffffffffffffff83. Compiles in a subprocess
    (no GPU needed): a kernel decorated under the interpreter cannot be compiled."""
    import json
    import os
    import subprocess
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[3]),
                                         env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _PTX_FILLS], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, immediates in found["fills"].items():
        for imm in immediates:
            word = int(imm, 16)                  # 16- or 32-bit registers
            assert word < 2 ** 32 and word in ((word & 0xFF) * 0x0101,
                                               (word & 0xFF) * 0x01010101), (name, imm, found)
