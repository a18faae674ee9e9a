"""int8 convolutions on AMX tiles (codegen/llvm/qgemm_amx.py) with what the VNNI kernels
have: the padding read in the kernel (each A row's runs copied from the unpadded image,
the zero point outside it), the prepared call (lite_int8.QAmxCall: claimed row tiles, a
kept block and scratch), the conv runners and the fused residual add
(qgemm_amx_u8_add). Bit for bit the NumPy reference's integers, on the geometries the
VNNI border tiles are tested on (tests/quant/test_qconv_kernel_pad.py)."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.codegen import quantized as CQ
from ember.codegen.llvm import qgemm_amx as QA
from ember.ir.ops import OPS
from ember.runtime import lite_int8 as lite
from tests.quant.test_qconv_kernel_pad import GEOMETRIES, _activation, _weight

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(not QA.available(), reason="no AMX-INT8 tiles here")]


@pytest.fixture
def in_kernel(monkeypatch):
    """Every padded run-layout conv pads in the kernel (whatever its run's length);
    counts the gathers made so."""
    made = []
    real = lite.conv_gather_unpadded
    monkeypatch.setattr(lite, "PAD_IN_KERNEL_MIN_RUN", 4)
    monkeypatch.setattr(lite, "conv_gather_unpadded",
                        lambda *args: made.append(args) or real(*args))
    return made


@pytest.mark.parametrize("shape, oc, kernel, stride, padding, dilation, channels_last",
                         GEOMETRIES)
@pytest.mark.parametrize("zero_point", [0, 131, 255])
def test_amx_padding_in_the_kernel_equals_the_reference(rng, in_kernel, shape, oc, kernel,
                                                        stride, padding, dilation,
                                                        channels_last, zero_point):
    x = _activation(rng, shape, zero_point, channels_last)
    args = [x, _weight(rng, oc, shape[1], *kernel), rng.standard_normal(oc).astype(np.float32),
            list(stride), list(padding), list(dilation), 1, 0.05, 90, True]
    got = CQ.conv2d(*args, cache={}, cfg=QA.AMX)
    assert len(in_kernel) == 1
    np.testing.assert_array_equal(got.int_repr, OPS["quantized_conv2d"].reference(*args).int_repr)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("oc", [40, 64])       # a ragged last column block, whole ones
def test_amx_runners_and_the_fused_residual_add_equal_the_reference(rng, threads, oc):
    if CQ.gemm_config() is not QA.AMX:
        pytest.skip("eager mode's GEMM here is not AMX (EMBER_QGEMM / EMBER_ISA)")
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    try:
        for shape, padding in (((3, 64, 11, 9), [1, 1]), ((2, 32, 6, 6), [0, 0])):
            x = _activation(rng, shape, 120, True)
            other = _activation(rng, (shape[0], oc) + shape[2:], 77, True)
            args = [x, _weight(rng, oc, shape[1], 3, 3) if padding[0] else
                    _weight(rng, oc, shape[1], 1, 1), rng.standard_normal(oc).astype(np.float32),
                    [1, 1], padding, [1, 1], 1, 0.07, 60, True]
            cache = {}
            runner = CQ.conv_runner(args, cache)
            fused = CQ.conv_runner(args, cache, residual=(other, 0.09, 40, True))
            want = OPS["quantized_conv2d"].reference(*args).int_repr
            want_add = OPS["quantized_conv2d_add"].reference(*args, other, 0.09, 40,
                                                             True).int_repr
            for _ in range(3):      # the kept block and scratch, called again
                np.testing.assert_array_equal(runner(x.int_repr, args[2]).int_repr, want)
                np.testing.assert_array_equal(
                    fused(x.int_repr, args[2], other.int_repr).int_repr, want_add)
            assert runner(x.int_repr, args[2] + 1) is None      # another bias: full path
    finally:
        ember.set_num_threads(before)


# the AMX conv kernel's blocking (qgemm_amx._emit): 16-row halves read in place from the
# input where they lie on one output row inside the image (whole 64-byte k steps), the
# others packed; row blocks of several row tiles walked over each weight panel
BLOCKING = [  # batch, in channels, out channels, kernel, stride, padding, image
    (2, 64, 40, 3, 1, 1, 37),      # halves in place and at the edges, ragged column block
    (1, 128, 72, 3, 2, 1, 35),     # stride 2 (rows 2 * c apart), odd row count
    (3, 64, 96, 1, 2, 0, 34),      # a 1x1 downsample (one 64-byte segment)
    (1, 64, 64, 3, 1, 0, 20),      # no padding: every half on one row in place
    (2, 3, 64, 7, 2, 3, 40),       # the stem: 24-byte runs, packed
    (1, 100, 48, 3, 1, 1, 18),     # runs of 300 bytes: k steps across runs, packed
    (2, 256, 80, 3, 1, 1, 9),      # large k, rows of 9 (no half on one row)
    # stride-1 "same" convs reading their padding (direct 2: k steps in place per row)
    (3, 64, 40, 3, 1, 1, 13),      # odd batch, rows of 13: halves across rows and images
    (1, 128, 96, 3, 1, 1, 12),     # 18 k steps: two k blocks, three column blocks
    (2, 256, 40, 3, 1, 1, 5),      # 36 k steps, rows of 5: per half, k blocks
    (1, 64, 32, 5, 1, 2, 12),      # two pixels of padding: steps two rows / columns out
    (1, 64, 64, 3, 1, 2, 9),       # output larger than the input: per half (direct 1)
    (1, 64, 48, 3, 2, 1, 16),      # stride 2 with padding: per half
]


def _conv_args(rng, batch, cin, cout, k, stride, pad, hw):
    x = _activation(rng, (batch, cin, hw, hw), 117, cin != 3)
    return [x, _weight(rng, cout, cin, k, k), rng.standard_normal(cout).astype(np.float32),
            [stride] * 2, [pad] * 2, [1, 1], 1, 0.06, 70, True]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("block_tiles", [0, 3])      # 0: a block per row tile
@pytest.mark.parametrize("geometry", BLOCKING)
def test_amx_conv_blocking_equals_the_reference(rng, monkeypatch, threads, block_tiles,
                                                geometry):
    if CQ.gemm_config() is not QA.AMX:
        pytest.skip("eager mode's GEMM here is not AMX (EMBER_QGEMM / EMBER_ISA)")
    if block_tiles:      # row blocks whatever the weight's size
        monkeypatch.setattr(lite, "AMX_BLOCK_WEIGHT_MIN", 0)
        monkeypatch.setattr(lite, "AMX_BLOCK_TILES", block_tiles)
    args = _conv_args(rng, *geometry)
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    try:
        runner = CQ.conv_runner(args, {})
        got = runner(args[0].int_repr, args[2]).int_repr
    finally:
        ember.set_num_threads(before)
    np.testing.assert_array_equal(got, OPS["quantized_conv2d"].reference(*args).int_repr)


def test_amx_in_place_halves_are_chosen_where_they_apply():
    """amx_in_place: whole 64-byte steps within runs (offsets along the window), else
    packed rows (the stem's 24-byte runs, runs of 300 bytes, linear rows)."""
    x = np.zeros((1, 10, 10, 64), np.uint8)
    gather = lite.conv_gather(x, (3, 3), (1, 1), (1, 1), (8, 8), 192)
    direct, offs = lite.amx_in_place(gather, 3 * 192 // 4)
    assert direct == 1
    np.testing.assert_array_equal(offs, [0, 64, 128, 640, 704, 768, 1280, 1344, 1408])
    stem = lite.conv_gather(np.zeros((1, 10, 10, 3), np.uint8), (7, 7), (2, 2), (1, 1),
                            (2, 2), 24)
    assert lite.amx_in_place(stem, 48)[0] == 0
    assert lite.amx_in_place(lite.linear_gather(np.zeros((4, 64), np.uint8), 16), 16)[0] == 0


@pytest.mark.parametrize("threads", [1, 2])
def test_amx_blocked_residual_add_equals_the_reference(rng, monkeypatch, threads):
    if CQ.gemm_config() is not QA.AMX:
        pytest.skip("eager mode's GEMM here is not AMX (EMBER_QGEMM / EMBER_ISA)")
    monkeypatch.setattr(lite, "AMX_BLOCK_WEIGHT_MIN", 0)
    monkeypatch.setattr(lite, "AMX_BLOCK_TILES", 2)
    args = _conv_args(rng, 2, 64, 48, 3, 1, 1, 19)
    other = _activation(rng, (2, 48, 19, 19), 33, True)
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    try:
        fused = CQ.conv_runner(args, {}, residual=(other, 0.08, 50, False))
        got = fused(args[0].int_repr, args[2], other.int_repr).int_repr
    finally:
        ember.set_num_threads(before)
    want = OPS["quantized_conv2d_add"].reference(*args, other, 0.08, 50, False).int_repr
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("linear, k_block", [(False, 0), (True, 0), (True, 4)])
@pytest.mark.parametrize("geometry", [(3, 64, 40, 3, 1, 1, 13), (2, 128, 96, 3, 1, 1, 7)])
def test_amx_steps_in_place_and_k_blocks_equal_the_reference(rng, monkeypatch, threads,
                                                             linear, k_block, geometry):
    """direct 2 against halves packed whole (direct 1), k blocks of 4 steps (a ragged
    last one) against whole k, the fused residual add through each."""
    if CQ.gemm_config() is not QA.AMX:
        pytest.skip("eager mode's GEMM here is not AMX (EMBER_QGEMM / EMBER_ISA)")
    monkeypatch.setattr(lite, "AMX_LINEAR", linear)
    monkeypatch.setattr(lite, "AMX_LINEAR_MIN_WIDTH", 1)     # rows of 7 too
    monkeypatch.setattr(lite, "AMX_K_BLOCK", k_block or 4)
    monkeypatch.setattr(lite, "AMX_K_BLOCK_MIN", 4 if k_block else 1 << 30)
    args = _conv_args(rng, *geometry)
    batch, _, cout, _, _, _, hw = geometry
    other = _activation(rng, (batch, cout, hw, hw), 33, True)
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    try:
        got = CQ.conv_runner(args, {})(args[0].int_repr, args[2]).int_repr
        fused = CQ.conv_runner(args, {}, residual=(other, 0.08, 50, True))
        got_add = fused(args[0].int_repr, args[2], other.int_repr).int_repr
    finally:
        ember.set_num_threads(before)
    np.testing.assert_array_equal(got, OPS["quantized_conv2d"].reference(*args).int_repr)
    want = OPS["quantized_conv2d_add"].reference(*args, other, 0.08, 50, True).int_repr
    np.testing.assert_array_equal(got_add, want)


def test_amx_dilated_rows_read_in_place_equal_the_reference(rng):
    """direct 2 with dilation along H (the step's input row ky * 2 - 2 from the output's)."""
    if CQ.gemm_config() is not QA.AMX:
        pytest.skip("eager mode's GEMM here is not AMX (EMBER_QGEMM / EMBER_ISA)")
    x = _activation(rng, (2, 64, 10, 12), 140, True)
    args = [x, _weight(rng, 40, 64, 3, 3), rng.standard_normal(40).astype(np.float32),
            [1, 1], [2, 1], [2, 1], 1, 0.06, 70, True]
    got = CQ.conv_runner(args, {})(x.int_repr, args[2]).int_repr
    np.testing.assert_array_equal(got, OPS["quantized_conv2d"].reference(*args).int_repr)


def test_amx_steps_read_in_place_where_windows_follow_rows(monkeypatch):
    """amx_in_place's direct 2 (stride 1, the output the input's size, the padding read
    in the kernel): each step's input row and first / last column after the offsets;
    direct 1 where the host padded or the stride is 2; k blocks only past 9 steps and
    a tile a row block."""
    x = np.zeros((2, 12, 12, 128), np.uint8)
    gather = lite.conv_gather_unpadded(x, (3, 3), (1, 1), (1, 1), (12, 12), 384, (1, 1), 9)
    direct, table = lite.amx_in_place(gather, 3 * 384 // 4, pads_read=True)
    assert direct == 2 and len(table) == 4 * 18
    offs, dy, first, last = table.reshape(4, 18)
    np.testing.assert_array_equal(offs[:7], [0, 64, 128, 192, 256, 320, 1536])
    np.testing.assert_array_equal(dy, np.repeat([-1, 0, 1], 6))
    np.testing.assert_array_equal(first, np.tile([-1, -1, 0, 0, 1, 1], 3))
    np.testing.assert_array_equal(last, first)
    assert lite.amx_in_place(gather, 3 * 384 // 4)[0] == 1        # pads not in the block
    strided = lite.conv_gather_unpadded(x, (3, 3), (2, 2), (1, 1), (6, 6), 384, (1, 1), 9)
    assert lite.amx_in_place(strided, 3 * 384 // 4, pads_read=True)[0] == 1
    monkeypatch.setattr(lite, "AMX_LINEAR_MIN_WIDTH", 13)         # rows of 12: per half
    assert lite.amx_in_place(gather, 3 * 384 // 4, pads_read=True)[0] == 1
    assert lite.amx_k_block(3 * 384 // 4, 7, 7) == lite.AMX_K_BLOCK
    assert lite.amx_k_block(3 * 192 // 4, 7, 7) == 0           # 9 steps
    assert lite.amx_k_block(3 * 384 // 4, 7, 2) == 0           # row blocks


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("col_split, quiet", [(False, True), (True, True), (True, False)])
@pytest.mark.parametrize("geometry, residual", [((2, 128, 96, 3, 1, 1, 7), False),
                                                ((3, 64, 40, 3, 1, 1, 9), True)])
def test_amx_column_split_equals_the_reference(rng, monkeypatch, threads, col_split, quiet,
                                               geometry, residual):
    """Row blocks split between the threads by claimed column blocks (qgemm_amx.
    _column_claims; counters in the block's tail, zero each call) or whole (row claims;
    also a split call's on a busy host): the same integers, called three times, at one
    and two threads."""
    if CQ.gemm_config() is not QA.AMX:
        pytest.skip("eager mode's GEMM here is not AMX (EMBER_QGEMM / EMBER_ISA)")
    monkeypatch.setattr(lite, "AMX_BLOCK_WEIGHT_MIN", 0)
    monkeypatch.setattr(lite, "AMX_BLOCK_TILES", 2)
    monkeypatch.setattr(lite, "AMX_COL_SPLIT", col_split)
    monkeypatch.setattr(lite, "cpu_count", lambda: 2)      # the split's choice as on 2 cores
    monkeypatch.setattr(lite, "amx_col_split_now", lambda: quiet)
    chosen = []
    real = lite.amx_col_split
    monkeypatch.setattr(lite, "amx_col_split", lambda *a: chosen.append(real(*a)) or chosen[-1])
    args = _conv_args(rng, *geometry)
    oc, hw = geometry[2], geometry[-1]
    other = _activation(rng, (geometry[0], oc, hw, hw), 33, True)
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    try:
        if residual:
            run = CQ.conv_runner(args, {}, residual=(other, 0.08, 50, False))
            want = OPS["quantized_conv2d_add"].reference(*args, other, 0.08, 50, False)
            got = [run(args[0].int_repr, args[2], other.int_repr) for _ in range(3)]
        else:
            run = CQ.conv_runner(args, {})
            want = OPS["quantized_conv2d"].reference(*args)
            got = [run(args[0].int_repr, args[2]) for _ in range(3)]
    finally:
        ember.set_num_threads(before)
    assert chosen and set(chosen) == {col_split}     # (a first sight may time two calls)
    for g in got:
        np.testing.assert_array_equal(g.int_repr, want.int_repr)
