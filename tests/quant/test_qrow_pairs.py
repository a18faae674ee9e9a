"""Row-pair inputs for AMX convolutions of stride 2 over few channels (resnet's stem:
codegen/llvm/qrow_pairs.py, lite_int8.row_pairs_*, codegen/quantized.py
_row_pairs_runner) and the model's input quantize fused into its stem
(fused_forward.quantize_conv_step): the layout against a NumPy reference, the runner's
integers against the NumPy conv reference (every A tile read in place, and rows that
wrap or leave the GEMM packed), the float path against quantize-then-conv, and a
converted stem model's outputs equal to the plain path's at one and two threads, first
calls included, and close to torch.ao's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ao.quantization.fx import fused_forward as FF
from ember.codegen import quantized as CQ
from ember.codegen.llvm import qelementwise as QE
from ember.codegen.llvm import qgemm_amx as QA
from ember.codegen.llvm import qrow_pairs as QP
from ember.ir.ops import OPS
from ember.runtime import lite_int8 as lite
from tests.quant.quant_twins import converted_twins, int8_layers, output_scale, \
    share_random_weights
from tests.quant.test_qconv_kernel_pad import _weight

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(not QP.available(), reason="no AVX-512 here")]
amx = pytest.mark.skipif(not QA.available(), reason="no AMX-INT8 tiles here")
torch.backends.quantized.engine = "x86"


def _row_pairs_reference(q: np.ndarray, padding, zero_point: int, hp2: int) -> np.ndarray:
    """[N, HP2, WP, 2, C]: the padded channels-last image, rows taken two by two."""
    n, c, h, w = q.shape
    ph, pw = padding
    image = np.full((n, 2 * hp2, w + 2 * pw, c), zero_point, np.uint8)
    image[:, ph:ph + h, pw:pw + w] = q.transpose(0, 2, 3, 1)
    return image.reshape(n, hp2, 2, w + 2 * pw, c).transpose(0, 1, 3, 2, 4)


@pytest.mark.parametrize("shape, padding", [((2, 3, 20, 37), (3, 3)), ((1, 1, 5, 16), (0, 1)),
                                            ((1, 4, 9, 33), (2, 0)), ((2, 2, 7, 3), (1, 2))])
@pytest.mark.parametrize("float_src", [False, True])
def test_row_pair_layout_equals_the_padded_image_by_pairs(rng, shape, padding, float_src):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    x.flat[:40] = (np.arange(40) - 20) * 0.5 * 0.0625       # halves: ties to even
    scale, zero_point = 0.0625, 70
    q = QE.quantize(x, scale, zero_point, np.uint8)
    n, c, h, w = shape
    out_hw = lite.conv_output_size(h, w, (7, 7), (2, 2), padding, (1, 1))
    pairs = lite.row_pairs_shape(n, h, w, c, (7, 7), padding, out_hw)
    call = lite.RowPairsCall(pairs, h, padding, zero_point, scale if float_src else None)
    flat = call(QP.kernel(c, float_src), ember.runtime.threads.default_pool(),
                x if float_src else q)
    size = int(np.prod(pairs))
    np.testing.assert_array_equal(flat[:size].reshape(pairs),
                                  _row_pairs_reference(q, padding, zero_point, pairs[1]))
    assert (flat[size:] == zero_point).all()


def test_row_pairs_apply_where_the_run_layout_takes_several_k_steps():
    assert lite.row_pairs_applies(3, (7, 7), (2, 2), (1, 1))        # 3 steps -> 4
    assert lite.row_pairs_applies(3, (5, 5), (2, 2), (1, 1))        # 2 -> 3
    assert not lite.row_pairs_applies(3, (3, 3), (2, 2), (1, 1))    # 1 -> 2
    assert not lite.row_pairs_applies(3, (7, 7), (1, 1), (1, 1))    # stride 1
    assert not lite.row_pairs_applies(8, (7, 7), (2, 2), (1, 1))    # 112 bytes a pair


def test_row_pairs_weight_matrix_puts_each_weight_at_its_byte(rng):
    w = rng.integers(-128, 128, (5, 3, 7, 7)).astype(np.int8)
    m = CQ.row_pairs_weight_matrix(w).reshape(5, 4, 64)
    for oc, ch, ky, kx in ((0, 0, 0, 0), (4, 2, 6, 6), (2, 1, 3, 5), (3, 0, 5, 2)):
        assert m[oc, ky // 2, kx * 6 + (ky % 2) * 3 + ch] == w[oc, ch, ky, kx]
    assert not m[:, 3, 3:42:6].any() and not m[:, :, 42:].any()     # row 7, past the window
    assert int(np.abs(m.astype(np.int64)).sum()) == int(np.abs(w.astype(np.int64)).sum())


GEOMETRIES = [  # shape, oc, kernel, stride, padding
    ((1, 3, 30, 30), 64, (7, 7), (2, 2), (3, 3)),       # the stem: every half in place
    ((2, 3, 21, 37), 40, (7, 7), (2, 2), (3, 3)),       # rows of 19: halves wrap, packed
    ((2, 3, 17, 17), 8, (5, 5), (2, 2), (2, 2)),
    ((1, 4, 12, 10), 24, (5, 5), (2, 1), (2, 0)),
]


@amx
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape, oc, kernel, stride, padding", GEOMETRIES)
def test_row_pairs_runner_equals_the_reference(rng, monkeypatch, threads, shape, oc, kernel,
                                               stride, padding):
    monkeypatch.setattr(CQ, "conv_gemm_config", lambda cfg, *args: QA.AMX)
    monkeypatch.setattr(lite, "GEMM_PARALLEL_MIN_MACS", 0)
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    try:
        xf = rng.standard_normal(shape).astype(np.float32)
        x = ember.quantize_per_tensor(ember.tensor(xf), 0.02, 131, ember.quint8)._qarray()
        bias = rng.standard_normal(oc).astype(np.float32)
        args = [x, _weight(rng, oc, shape[1], *kernel), bias, list(stride), list(padding),
                [1, 1], 1, 0.05, 90, True]
        cache = {}
        runner = CQ.conv_runner(args, cache)
        assert "conv-pairs-amx" in cache        # the row-pair runner, not the packed one
        want = OPS["quantized_conv2d"].reference(*args).int_repr
        for _ in range(3):      # the kept blocks, called again
            np.testing.assert_array_equal(runner(x.int_repr, bias).int_repr, want)
            np.testing.assert_array_equal(runner.from_float(xf, bias).int_repr, want)
        assert runner(x.int_repr, bias + 1) is None and runner.from_float(xf, bias + 1) is None
        assert runner.from_float(xf[:, :, :-1], bias) is None       # another shape
    finally:
        ember.set_num_threads(before)


def stem_model(lib):
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1), nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(16, 10))


@pytest.fixture(scope="module")
def twins():
    rng = np.random.default_rng(11)
    t_model, e_model = stem_model(torch).eval(), stem_model(ember).eval()
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((4, 3, 36, 36)).astype(np.float32) for _ in range(2)]
    return converted_twins(t_model, e_model, calib)


@amx
@pytest.mark.parametrize("threads", [1, 2])
def test_stem_model_fused_quantize_equals_the_plain_path_and_torch_ao(rng, monkeypatch,
                                                                      twins, threads):
    monkeypatch.setenv("EMBER_QGEMM", "amx")
    monkeypatch.setattr(lite, "GEMM_PARALLEL_MIN_MACS", 0)
    t_q, e_q = twins
    # the quantize + stem step (inside the stem + max pool step: test_qstem_pool.py)
    assert sum(n.target is FF.quantize_conv_step or n.target is FF.conv_pool_step and
               n.args[3] is not None for n in FF.fused_graph(e_q).nodes) == 1
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    used = []
    real = FF._from_float
    monkeypatch.setattr(FF, "_from_float", lambda *a: used.append(real(*a)) or used[-1])
    inputs = [rng.standard_normal((4, 3, 36, 36)).astype(np.float32) for _ in range(2)]

    def outputs():
        for _, layer in int8_layers(e_q, "conv2d"):      # fresh runners: first calls again
            layer._packed_weight.__dict__.pop("_kernel_cache", None)
            layer._packed_weight.__dict__.pop("_seen_call", None)
        with ember.no_grad():
            return [e_q(ember.tensor(x)).numpy().copy() for x in inputs for _ in range(3)]
    try:
        fused = outputs()
        monkeypatch.setattr(lite, "AMX_ROW_PAIRS", False)
        FF.QUANTIZE_STEM[0] = False
        plain = outputs()
    finally:
        FF.QUANTIZE_STEM[0] = True
        ember.set_num_threads(before)
    assert any(v is not None for v in used)     # the fused call ran (after the first)
    for got, want in zip(fused, plain):
        np.testing.assert_array_equal(got, want)
    t_out = t_q(torch.from_numpy(inputs[0])).detach().numpy()
    assert np.abs(t_out - fused[0]).max() <= 3.01 * output_scale(e_q)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape, k, s, p", [((4, 56, 56, 64), 3, 2, 1), ((3, 17, 19, 48), 2, 2, 0)])
def test_claimed_max_pool_equals_static_shares_and_the_reference(rng, monkeypatch, threads,
                                                                 shape, k, s, p):
    """qmaxpool_claimed (rows claimed by the threads, left running where the pool defers
    it, then joined) against the static shares' kernel and NumPy's max."""
    from ember.runtime import threads as T
    monkeypatch.setattr(T, "_host_is_quiet", lambda: True)      # workers spin: defer works
    monkeypatch.setattr(lite, "ELEMENTWISE_PARALLEL_MIN", 1)
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    pool = T.default_pool()
    try:
        x = rng.integers(0, 256, shape).astype(np.uint8)
        want = lite.max_pool2d_nhwc(x, (k, k), (s, s), (p, p))
        got = [QE.max_pool2d_nhwc(x, (k, k), (s, s), (p, p))]
        pool.open_window()
        try:
            got.append(QE.max_pool2d_nhwc(x, (k, k), (s, s), (p, p)))
        finally:
            pool.open_window(False)
        pool.join()
        monkeypatch.setattr(lite, "MAXPOOL_CLAIMS", False)
        got.append(QE.max_pool2d_nhwc(x, (k, k), (s, s), (p, p)))
    finally:
        ember.set_num_threads(before)
    for value in got:
        np.testing.assert_array_equal(value, want)
