"""The dynamic linear's native input pass (codegen/llvm/qgemm_input.py: the input's range,
then its quantization) and the dynamic linear built on it, against torch's dynamic
quantization and torch.ao's dynamic Linear."""
import numpy as np
import pytest
import torch

import ember
from ember.runtime import threads as thread_pool
from ember.codegen.llvm import qgemm as Q
from ember.codegen.llvm import qgemm_input as QI
from ember.ir import dtypes
from ember.ir.ops.quantized import dynamic_input_qparams
from ember.ir.quantized import quantize_array

pytestmark = pytest.mark.skipif(not QI.available() or Q.active_config() is not Q.VNNI,
                                reason="the native input pass needs AVX-512")


@pytest.fixture(autouse=True)
def _x86_engine():
    """torch.ao's numerics depend on its process-wide engine (qnnpack's dynamic Linear does
    not reduce the range), which other tests in the same worker may have left changed:
    compare against the x86 engine, ember's default, whatever ran before."""
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = "x86"
    yield
    torch.backends.quantized.engine = before


def _torch_dynamic(x: np.ndarray):
    """torch's per-call quantization of a dynamic linear's input (0..127: reduce_range)."""
    t = torch.quantize_per_tensor_dynamic(torch.from_numpy(x), torch.quint8, True)
    return t.int_repr().numpy(), np.float32(t.q_scale()), t.q_zero_point()


@pytest.mark.parametrize("shape", [(1,), (5, 3), (7, 333), (64, 1024), (3, 100000)])
@pytest.mark.parametrize("kind", ["normal", "relu", "negative", "zeros", "wide"])
def test_input_pass_matches_torch(shape, kind):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    x = {"normal": x, "relu": np.maximum(x, 0), "negative": -np.abs(x) - 1,
         "zeros": np.zeros_like(x), "wide": x * 1e4}[kind]
    q, scale, zero_point = QI.quantize_dynamic_input(x)
    t_q, t_scale, t_zp = _torch_dynamic(x)
    assert (np.float32(scale), zero_point) == (t_scale, t_zp)
    np.testing.assert_array_equal(q, t_q)
    # and the reference's own steps, bit for bit
    ref_scale, ref_zp = dynamic_input_qparams(x)
    assert (scale, zero_point) == (ref_scale, ref_zp)
    np.testing.assert_array_equal(q, quantize_array(x, ref_scale, ref_zp, dtypes.quint8).int_repr)


def test_input_pass_rounds_halves_as_the_reference():
    """Values whose x * (1 / scale) + zp lies on or next to a half-integer (the float32
    fast path's fallback to float64)."""
    scale_x = np.float32(127.0 / 127.0)     # range [0, 127] -> scale 1, zero point 0
    halves = np.arange(0, 127, dtype=np.float32) + np.float32(0.5)
    near = np.concatenate([halves, np.nextafter(halves, np.float32(0)),
                           np.nextafter(halves, np.float32(200))])
    x = np.concatenate([near, [np.float32(0), np.float32(127) * scale_x]]).astype(np.float32)
    q, scale, zero_point = QI.quantize_dynamic_input(x)
    np.testing.assert_array_equal(q, quantize_array(x, scale, zero_point, dtypes.quint8).int_repr)
    np.testing.assert_array_equal(q, _torch_dynamic(x)[0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_input_pass_leaves_nan_and_inf_to_the_reference(bad):
    x = np.ones((4, 40), np.float32)
    x[2, 33] = bad
    assert QI.quantize_dynamic_input(x) is None
    assert QI.quantize_dynamic_input(np.zeros((0, 4), np.float32)) is None


@pytest.mark.parametrize("in_f,out_f,batch", [(30, 10, 3), (1024, 96, 64), (64, 4096, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_dynamic_linear_matches_torch_ao(in_f, out_f, batch, bias):
    rng = np.random.default_rng(in_f + out_f)
    t_model = torch.nn.Sequential(torch.nn.Linear(in_f, out_f, bias=bias), torch.nn.ReLU(),
                                  torch.nn.Linear(out_f, 7))
    e_model = ember.nn.Sequential(ember.nn.Linear(in_f, out_f, bias=bias), ember.nn.ReLU(),
                                  ember.nn.Linear(out_f, 7))
    e_model.load_state_dict({k: ember.tensor(v.detach().numpy())
                             for k, v in t_model.state_dict().items()})
    t_q = torch.ao.quantization.quantize_dynamic(t_model, {torch.nn.Linear}, dtype=torch.qint8)
    e_q = ember.ao.quantization.quantize_dynamic(e_model, {ember.nn.Linear},
                                                 dtype=ember.qint8)
    for _ in range(2):      # the second call runs the kept parameter block
        x = rng.standard_normal((batch, in_f)).astype(np.float32)
        with torch.no_grad(), ember.no_grad():
            t_out = t_q(torch.from_numpy(x)).numpy()
            e_out = e_q(ember.tensor(x)).numpy()
        np.testing.assert_allclose(e_out, t_out, rtol=1e-5, atol=1e-5)


def test_dynamic_linear_sees_its_bias_changed_in_place():
    lin = ember.nn.Linear(64, 64)
    q = ember.ao.quantization.quantize_dynamic(ember.nn.Sequential(lin), {ember.nn.Linear},
                                               dtype=ember.qint8)
    x = ember.tensor(np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32))
    with ember.no_grad():
        before = q(x).numpy()
        q[0].bias.add_(1.0)
        after = q(x).numpy()
    np.testing.assert_allclose(after, before + 1.0, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("np_dtype,t_dtype,zero_point", [(np.uint8, torch.quint8, 3),
                                                          (np.int8, torch.qint8, -5)])
def test_quantize_kernel_rounds_halves_as_torch(np_dtype, t_dtype, zero_point):
    """quantize_per_tensor's native kernel (qelementwise: float32 rounding, float64 near
    halves) on values landing on and next to half-integers, and on spread-out ones."""
    from ember.codegen.llvm import qelementwise as QE
    scale = 0.25
    halves = (np.arange(-300, 300, dtype=np.float32) + np.float32(0.5)) * np.float32(scale)
    spread = np.random.default_rng(0).standard_normal(5000).astype(np.float32) * 40
    for x in (halves, np.nextafter(halves, np.float32(1e3)),
              np.nextafter(halves, np.float32(-1e3)), spread):
        t = torch.quantize_per_tensor(torch.from_numpy(x), scale, zero_point, t_dtype)
        np.testing.assert_array_equal(QE.quantize(x, scale, zero_point, np_dtype),
                                      t.int_repr().numpy())


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bad", [None, np.nan, np.inf])
def test_large_input_pass_on_one_and_two_threads(threads, bad):
    """Above the parallel threshold: the range rows of every worker merged (a NaN or an
    infinity in the second worker's half seen), or one thread's direct calls."""
    x = np.random.default_rng(7).standard_normal((3, 100000)).astype(np.float32)
    if bad is not None:
        x[2, 99990] = bad
    before = thread_pool._THREAD_LIMIT[0]       # (None: no limit; get_num_threads would
    ember.set_num_threads(threads)               # leave the pool's size as a limit behind)
    try:
        got = QI.quantize_dynamic_input(x)
    finally:
        thread_pool._THREAD_LIMIT[0] = before
    if bad is not None:
        assert got is None
        return
    q, scale, zero_point = got
    assert (scale, zero_point) == dynamic_input_qparams(x)
    np.testing.assert_array_equal(q, quantize_array(x, scale, zero_point, dtypes.quint8).int_repr)
