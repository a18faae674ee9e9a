"""The layout pass's `entry_channels` option (the CPU drivers pass the conv's padded-copy
bound): a few-channel input that only padded convs read is left as it is (the conv copies
it into a padded channels-last buffer itself) and those convs' outputs go channels-last in
their epilogue; values never change, and ember.compile's results equal torch's."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.ir.meta import channels_last
from ember.ir.registry import OPS
from ember.passes import PassError
from tests.passes.test_layout import conversions, run_layout

F = ember.nn.functional


def _w(*shape):
    return ember.randn(*shape) * 0.3


W1, W2, B = _w(8, 3, 3, 3), _w(8, 8, 3, 3), _w(8)


def stem(x, padding=1):
    y = F.relu(F.conv2d(x, W1, B, padding=padding))
    return F.relu(F.conv2d(y, W2, padding=1))


def _placeholder_converted(graph) -> bool:
    return any(n.args[0].op == "placeholder" for n in conversions(graph))


def test_few_channel_input_is_not_converted():
    x = ember.randn(2, 3, 9, 10)
    graph = run_layout(stem, [x], entry_channels=15)
    assert not _placeholder_converted(graph)
    first = next(n for n in graph.nodes if getattr(n.target, "name", "") == "conv2d")
    (reader,) = first.users                  # the epilogue's conversion to channels-last
    assert reader.target is OPS["contiguous"] and \
        reader.kwargs["memory_format"] is channels_last
    second = [n for n in graph.nodes if getattr(n.target, "name", "") == "conv2d"][1]
    assert second.meta["val"].is_contiguous(channels_last)


@pytest.mark.parametrize("channels,padding,option", [(3, 1, 0), (3, 0, 15), (16, 1, 15)])
def test_input_converted_otherwise(channels, padding, option):
    """Without the option, for an unpadded conv (it reads its input in place, so NHWC
    pays), and for more channels than the bound."""
    w1 = _w(8, channels, 3, 3)

    def fn(x):
        y = F.relu(F.conv2d(x, w1, B, padding=padding))
        return F.relu(F.conv2d(y, W2, padding=1))
    graph = run_layout(fn, [ember.randn(2, channels, 9, 10)], entry_channels=option)
    assert _placeholder_converted(graph)


def test_lone_conv_keeps_the_conversion():
    """A region with no other conv: the input is converted as before (nothing else would
    read a channels-last output)."""
    graph = run_layout(lambda x: F.relu(F.conv2d(x, W1, B, padding=1)),
                       [ember.randn(2, 3, 9, 10)], entry_channels=15)
    assert _placeholder_converted(graph)


def test_bad_option_is_refused():
    with pytest.raises(PassError, match="entry_channels"):
        run_layout(stem, [ember.randn(1, 3, 5, 5)], entry_channels=-1)


def test_compiled_stem_matches_torch(rng):
    import torch
    x = rng.standard_normal((3, 3, 17, 12), dtype=np.float32)
    compiled = ember.compile(stem)
    got = [compiled(ember.tensor(x)).numpy() for _ in range(2)]    # loop, then native
    np.testing.assert_array_equal(got[1], got[0])
    assert not _placeholder_converted(compiled.graph)
    t = [torch.from_numpy(w.numpy()) for w in (W1, W2, B)]
    tx = torch.from_numpy(x)
    want = torch.relu(torch.nn.functional.conv2d(
        torch.relu(torch.nn.functional.conv2d(tx, t[0], t[2], padding=1)), t[1], padding=1))
    np.testing.assert_allclose(got[0], want.numpy(), rtol=1e-4, atol=1e-4)
