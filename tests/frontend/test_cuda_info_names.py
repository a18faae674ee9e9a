"""ember.cuda's device queries and context managers, on a machine without a GPU (CI) and,
where one exists, against torch.cuda."""
import pytest
import torch

import ember


def test_queries_agree_with_torch():
    assert ember.cuda.is_bf16_supported() == torch.cuda.is_bf16_supported()
    assert len(ember.cuda.get_rng_state_all()) == len(torch.cuda.get_rng_state_all())
    assert ember.cuda.FloatTensor is ember.cuda.FloatTensor
    assert not isinstance(ember.ones(2), ember.cuda.FloatTensor)
    if not ember.cuda.is_available():
        with pytest.raises(ember.DeviceError, match="not available"):
            ember.cuda.get_device_properties(0)
        with pytest.raises(ember.DeviceError):
            ember.cuda.init()


@pytest.mark.cuda
@pytest.mark.skipif(not ember.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_device_properties_agree_with_the_other_queries():
    props = ember.cuda.get_device_properties(0)
    assert props.name == ember.cuda.get_device_name(0)
    assert (props.major, props.minor) == ember.cuda.get_device_capability(0)
    assert props.total_memory == ember.cuda.mem_get_info(0)[1]
    assert props.multi_processor_count > 0 and props.warp_size == 32
    assert ember.cuda.is_tf32_supported() == (props.major >= 8)
    assert ember.cuda.is_bf16_supported()


def test_device_context_managers():
    with ember.cuda.device(0) as d:
        assert d.idx == 0
    with ember.cuda.device(None) as d:
        assert d.idx == -1
    with ember.cuda.device_of(ember.ones(1)) as d:
        assert d.idx == -1
    with pytest.raises(ember.DeviceError, match="device 0 only"):
        ember.cuda.device(1)
