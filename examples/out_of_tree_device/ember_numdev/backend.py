"""The device's compile backend: `compiler_fn(gm, example_inputs) -> callable`, as
torch.compile calls one. It reads the traced graph once and returns a runner that calls
the device's kernels directly for the ops the device claims (skipping ember's dispatch)
and ember's ops for the rest."""
from __future__ import annotations

import ember

from . import kernels

# what the last compilation saw (a test reads it)
LAST: dict = {}


class DeviceInterpreter(ember.fx.Interpreter):
    """Runs the graph node by node; claimed call_function targets go to kernels.OPS."""

    def call_function(self, target, args, kwargs):
        kernel = kernels.OPS.get(_op_name(target))
        on_device = any(isinstance(a, ember.Tensor) and a.device.type == "numdev"
                        for a in args)
        if kernel is not None and on_device and not kwargs and not ember.is_grad_enabled():
            return kernel(*args)
        return super().call_function(target, args, kwargs)


def _op_name(target) -> str:
    """'relu' for ember's op objects (their .name) and for functions (operator.add)."""
    name = getattr(target, "name", None)
    return name if isinstance(name, str) else getattr(target, "__name__", str(target))


def numdev_compiler(gm, example_inputs):
    LAST["graph"] = gm.graph
    LAST["ops"] = [_op_name(n.target) for n in gm.graph.nodes if n.op == "call_function"]
    LAST["inputs"] = [tuple(t.shape) for t in example_inputs]
    interpreter = DeviceInterpreter(gm)
    return lambda *args: interpreter.run(*args)
