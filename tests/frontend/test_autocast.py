"""ember.autocast: a disabled region (timm's efficientvit) runs unchanged; enabling
mixed precision is refused rather than silently ignored."""
from __future__ import annotations

import pytest

import ember


def test_disabled_autocast_is_a_plain_region():
    x = ember.ones(2)
    with ember.autocast(device_type="cpu", enabled=False):
        assert not ember.is_autocast_enabled()
        y = x * 2
    assert y.dtype == ember.float32

    @ember.autocast("cpu", enabled=False)
    def double(t):
        return t * 2
    assert double(x).tolist() == [2.0, 2.0]


def test_enabled_autocast_and_bad_device_raise():
    with pytest.raises(NotImplementedError, match="automatic mixed precision is not "
                                                  "supported"):
        ember.autocast("cpu")
    with pytest.raises(RuntimeError, match="unsupported device type 'tpu'"):
        ember.autocast("tpu", enabled=False)
