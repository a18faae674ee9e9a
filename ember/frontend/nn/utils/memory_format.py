"""nn.utils.convert_conv2d_weight_memory_format / _3d: every convolution's weight in a
module tree is stored in the given memory format (channels_last), as PyTorch's helpers."""
from __future__ import annotations

from ...autograd import no_grad


def _convert(module, memory_format, conv_types):
    if isinstance(module, conv_types):
        with no_grad():
            weight = module.weight.detach().contiguous(memory_format=memory_format)
            module.weight.data = weight
    for child in module.children():
        _convert(child, memory_format, conv_types)
    return module


def convert_conv2d_weight_memory_format(module, memory_format):
    from ..modules.conv import Conv2d, ConvTranspose2d
    return _convert(module, memory_format, (Conv2d, ConvTranspose2d))


def convert_conv3d_weight_memory_format(module, memory_format):
    from ..modules.conv import Conv3d, ConvTranspose3d
    return _convert(module, memory_format, (Conv3d, ConvTranspose3d))


def skip_init(module_cls, *args, **kwargs):
    """The module built on the meta device (no initialization runs), then given
    uninitialized storage on `device` (default CPU), as PyTorch's skip_init."""
    import inspect
    if "device" not in inspect.signature(module_cls).parameters:
        raise RuntimeError("Module must support a 'device' arg to skip initialization")
    final_device = kwargs.pop("device", "cpu")
    kwargs["device"] = "meta"
    return module_cls(*args, **kwargs).to_empty(device=final_device)
