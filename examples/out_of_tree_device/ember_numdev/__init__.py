"""ember_numdev: an out-of-tree device for ember, registered by a package.

    import ember, ember_numdev
    model = model.to("numdev")
    y = model(x.to("numdev"))                             # eager, on the device
    fast = ember.compile(model, backend="numdev")         # the device's compile backend

The device keeps its tensors in its own memory (memory.py: NumPy buffers behind integer
handles, or CuPy on a GPU), claims a few ops (kernels.py) and lets ember run the rest
through the CPU. Its compile backend (backend.py) receives the model as an fx GraphModule
and runs claimed ops straight on device kernels.
"""
from __future__ import annotations

import ember
from ember.utils.backend_registration import register_backend, register_device

from . import backend, kernels
from .memory import MEMORY

DEVICE = "numdev"

if DEVICE not in ember.utils.backend_registration.registered_devices():
    register_device(DEVICE, allocator=MEMORY.allocate, to_host=MEMORY.to_host,
                    from_host=MEMORY.from_host, free=MEMORY.free, ops=kernels.OPS)
    register_backend(backend.numdev_compiler, name=DEVICE)

__all__ = ["DEVICE", "MEMORY", "kernels", "backend"]
