"""The int8 convolution's padded channels-last input (lite_int8.nhwc_input) equals torch's
constant pad of the NHWC integers with the zero point, on fresh and on reused buffers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ember.runtime import lite_int8 as lite


@pytest.mark.parametrize("n,c,h,w,ph,pw,cp", [
    (2, 64, 5, 7, 1, 1, 64), (3, 3, 9, 8, 3, 3, 3), (2, 5, 4, 4, 1, 1, 8),
    (1, 16, 6, 6, 2, 1, 16), (2, 8, 3, 3, 0, 1, 8), (8, 64, 46, 46, 1, 1, 64)])
def test_padded_input_equals_torch_pad(rng, n, c, h, w, ph, pw, cp):
    for zero_point in (7, 200):      # the second call may reuse the first's buffer
        nhwc = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
        x = nhwc.transpose(0, 3, 1, 2)           # channels-last, as a conv's output
        want = F.pad(torch.from_numpy(nhwc), (0, cp - c, pw, pw, ph, ph), value=zero_point)
        got = lite.nhwc_input(x, zero_point, (ph, pw), cp)
        np.testing.assert_array_equal(got, want.numpy())
