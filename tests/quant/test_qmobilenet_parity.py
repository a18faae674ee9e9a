"""A mobilenet_v2-shaped model (torchvision's structure, built in ember: 1x1 expand, 3x3
depthwise, 1x1 project, ReLU6, residual adds) through FX post-training quantization gives
torch.ao's int8 outputs bit for bit. The float calibration passes of the two libraries
differ in the last float32 bits (their float convolutions sum in other orders), so the
observers' scales can differ by an ulp; torch.ao's converted state_dict (weights and every
qparam) is loaded into ember's converted model to compare the int8 arithmetic alone. The
fbgemm engine runs every torch.ao layer through fbgemm, whose requantization ember's
kernels reproduce (on the x86 engine torch.ao gives convolutions with at most 100 groups
to oneDNN, which rounds near ties its own way)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.vision.models import mobilenet_v2
from quant_twins import converted_twins, share_random_weights
from test_qstate_torch_dict import _to_ember
from tests.domain_oracles import import_torchvision

pytestmark = pytest.mark.filterwarnings("ignore")

# torchvision's first blocks at a reduced depth: depthwise convs of 32, 96, 144, 192 and
# 384 channels, strides 1 and 2, residual adds
SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2], [6, 64, 1, 1]]


@pytest.fixture
def fbgemm_engine():
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = "fbgemm"
    yield
    torch.backends.quantized.engine = before


def test_mobilenet_v2_int8_is_bit_exact_with_torch_ao(fbgemm_engine):
    tv = import_torchvision()
    if tv is None:
        pytest.skip("torchvision is not installed")
    rng = np.random.default_rng(0)
    t_model = tv.models.mobilenet_v2(num_classes=10, inverted_residual_setting=SETTING).eval()
    e_model = mobilenet_v2(num_classes=10, inverted_residual_setting=SETTING).eval()
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((2, 3, 32, 32)).astype(np.float32) for _ in range(2)]
    t_q, e_q = converted_twins(t_model, e_model, calib, backend="fbgemm")
    e_q.load_state_dict({k: _to_ember(v) for k, v in t_q.state_dict().items()})
    depthwise = [m for m in e_q.modules()
                 if type(m).__name__.startswith("Conv") and getattr(m, "groups", 1) > 1]
    assert len(depthwise) >= 5
    x = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad(), ember.no_grad():
        want = t_q(torch.from_numpy(x)).numpy()
        got = e_q(ember.tensor(x)).numpy()
        compiled = ember.compile(e_q)(ember.tensor(x)).numpy()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(compiled, want)
