"""torch's function forms of the quantized-tensor accessors and
quantize_per_tensor_dynamic (qparams from the tensor's own range) against torch."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

torch = pytest.importorskip("torch")
import ember  # noqa: E402

DTYPES = [(ember.quint8, torch.quint8), (ember.qint8, torch.qint8)]


def _pair(values):
    arr = np.asarray(values, np.float32)
    return ember.tensor(arr), torch.tensor(arr)


@pytest.mark.parametrize("dtypes", DTYPES, ids=["quint8", "qint8"])
@pytest.mark.parametrize("reduce_range", [False, True])
@pytest.mark.parametrize("values", [[-1.0, 0.5, 2.0, 3.3], [1.0, 2.0], [-3.0, -1.5],
                                    [0.0, 0.0], [1e-7, 2e-6, -3e-6], [-0.7, 0.3, 250.0]])
def test_quantize_per_tensor_dynamic_matches_torch(dtypes, reduce_range, values):
    e, t = _pair(values)
    qe = ember.quantize_per_tensor_dynamic(e, dtypes[0], reduce_range)
    qt = torch.quantize_per_tensor_dynamic(t, dtypes[1], reduce_range)
    assert qe.dtype == dtypes[0]
    assert ember.q_scale(qe) == qt.q_scale()
    assert ember.q_zero_point(qe) == qt.q_zero_point()
    np.testing.assert_array_equal(ember.int_repr(qe).numpy(), qt.int_repr().numpy())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=12),
       st.booleans(), st.sampled_from([0, 1]))
def test_quantize_per_tensor_dynamic_random_ranges(values, reduce_range, which):
    e, t = _pair(values)
    qe = ember.quantize_per_tensor_dynamic(e, DTYPES[which][0], reduce_range)
    qt = torch.quantize_per_tensor_dynamic(t, DTYPES[which][1], reduce_range)
    assert (qe.q_scale(), qe.q_zero_point()) == (qt.q_scale(), qt.q_zero_point())
    np.testing.assert_array_equal(qe.int_repr().numpy(), qt.int_repr().numpy())


def test_accessor_functions_match_methods_and_torch():
    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(2, 3, 4)
    scales, zps = np.array([0.1, 0.05, 0.2]), np.array([3, 0, -2])
    qe = ember.quantize_per_channel(ember.tensor(x), ember.tensor(scales), ember.tensor(zps), 1,
                                    ember.qint8)
    qt = torch.quantize_per_channel(torch.tensor(x), torch.tensor(scales), torch.tensor(zps), 1,
                                    torch.qint8)
    assert ember.q_per_channel_axis(qe) == torch.q_per_channel_axis(qt) == 1
    np.testing.assert_array_equal(ember.q_per_channel_scales(qe).numpy(),
                                  torch.q_per_channel_scales(qt).numpy())
    np.testing.assert_array_equal(ember.q_per_channel_zero_points(qe).numpy(),
                                  torch.q_per_channel_zero_points(qt).numpy())
    np.testing.assert_array_equal(ember.int_repr(qe).numpy(), torch.int_repr(qt).numpy())


def test_errors_name_the_function():
    with pytest.raises(ember.EmberError, match="q_scale: expected a quantized tensor"):
        ember.q_scale(ember.ones(2))
    with pytest.raises(ember.EmberError, match="qint32 is not supported|not supported"):
        ember.quantize_per_tensor_dynamic(ember.ones(2), ember.qint32, False)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("make", [
    lambda lib: lib.quantize_per_channel(lib.tensor([[0.1, 0.2], [0.3, 0.4]]),
                                         lib.tensor([0.1, 0.02]), lib.tensor([0, 1]), 1,
                                         lib.quint8),
    lambda lib: lib.quantize_per_tensor(lib.ones(2), lib.tensor(0.1), lib.tensor(2),
                                        lib.qint8),
    lambda lib: lib.quantize_per_tensor(lib.tensor(0.1), 0.1, 2, lib.qint8),
    lambda lib: lib.quantize_per_tensor(lib.ones(0), 0.1, 2, lib.qint32),
], ids=["per_channel", "float32_scale", "scalar", "empty"])
def test_quantized_tensor_repr_wraps_like_torch(make):
    # the qparams are suffixes that wrap at the print width (per-channel scales used to
    # stay on one long line)
    assert repr(make(ember)).replace("ember.", "torch.") == repr(make(torch))
