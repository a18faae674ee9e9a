"""FloatFunctional (torch.ao.nn.quantized.FloatFunctional): tensor arithmetic as a module,
so that eager-mode quantization can attach an observer to the result of an add or a cat.

In a float model (torchvision's quantizable ResNet/MobileNet declare `skip_add =
nn.quantized.FloatFunctional()`) each method is the plain operation, passed through
`activation_post_process` (an Identity until an observer is attached). As in torch, the
scalar forms are not observed, and calling the module itself is an error.
"""
from __future__ import annotations

from ....frontend.nn import Identity, Module
from ._state import QParamsState


class FloatFunctional(Module):
    def __init__(self):
        super().__init__()
        self.activation_post_process = Identity()

    def forward(self, x):
        raise RuntimeError("FloatFunctional is not intended to use the 'forward'. Please use "
                           "the underlying operation")

    def add(self, x, y):
        return self.activation_post_process(x + y)

    def add_scalar(self, x, y: float):
        return x + y

    def mul(self, x, y):
        return self.activation_post_process(x * y)

    def mul_scalar(self, x, y: float):
        return x * y

    def cat(self, x, dim: int = 0):
        from .... import cat
        return self.activation_post_process(cat(x, dim=dim))

    def add_relu(self, x, y):
        from ....frontend.nn.functional import relu
        return self.activation_post_process(relu(x + y))

    def matmul(self, x, y):
        return self.activation_post_process(x @ y)


class FXFloatFunctional(Module):
    """FloatFunctional as FX graph mode sees it (prepare_fx swaps one for the other before
    tracing, as torch.ao does): the plain operations, with no `activation_post_process`,
    so the traced graph holds the add / mul / cat itself and the FX patterns quantize it
    (an add followed by a ReLU module becomes one add_relu)."""

    def forward(self, x):
        raise RuntimeError("FloatFunctional is not intended to use the 'forward'. Please use "
                           "the underlying operation")

    def add(self, x, y):
        return x + y

    def add_scalar(self, x, y: float):
        return x + y

    def mul(self, x, y):
        return x * y

    def mul_scalar(self, x, y: float):
        return x * y

    def cat(self, x, dim: int = 0):
        from .... import cat
        return cat(x, dim=dim)

    def add_relu(self, x, y):
        from ....frontend.nn.functional import relu
        return relu(x + y)

    def matmul(self, x, y):
        return x @ y


class QFunctional(QParamsState, Module):
    """FloatFunctional's converted form: the same methods on quantized tensors, each
    result quantized with the `scale` and `zero_point` calibrated on FloatFunctional's
    `activation_post_process`; each result passes through this module's own
    `activation_post_process` (an Identity, or the numeric suite's logger), as torch's
    does. add / add_relu / mul run the registry's quantized_add /
    quantized_mul (the native int8 add where codegen has one); cat is computed on the
    dequantized values."""

    def __init__(self):
        super().__init__()
        self.scale, self.zero_point = 1.0, 0
        self.activation_post_process = Identity()

    def forward(self, x):
        raise RuntimeError("Functional is not intended to use the 'forward'. Please use the "
                           "underlying operation")

    def add(self, x, y):
        from ....ir.ops.quantized import quantized_add
        return self.activation_post_process(
            quantized_add(x, y, self.scale, self.zero_point, False))

    def add_relu(self, x, y):
        from ....ir.ops.quantized import quantized_add
        return self.activation_post_process(
            quantized_add(x, y, self.scale, self.zero_point, True))

    def mul(self, x, y):
        from ....ir.ops.quantized import quantized_mul
        return self.activation_post_process(
            quantized_mul(x, y, self.scale, self.zero_point, False))

    def cat(self, x, dim: int = 0):
        from .... import cat
        from ....ir.ops.quantize import quantize_per_tensor
        return self.activation_post_process(quantize_per_tensor(
            cat([t.dequantize() for t in x], dim=dim), self.scale, self.zero_point,
            x[0].dtype))

    def matmul(self, x, y):
        from ....ir.ops.quantize import quantize_per_tensor
        return self.activation_post_process(quantize_per_tensor(
            x.dequantize() @ y.dequantize(), self.scale, self.zero_point, x.dtype))

    def add_scalar(self, x, y: float):
        """x + y with the output qparams derived from x's (not observed, as in torch)."""
        from ....ir.ops.quantized import quantized_add_scalar
        return self.activation_post_process(quantized_add_scalar(x, float(y)))

    def mul_scalar(self, x, y: float):
        from ....ir.ops.quantized import quantized_mul_scalar
        return self.activation_post_process(quantized_mul_scalar(x, float(y)))

    def extra_repr(self):
        return f"scale={self.scale}, zero_point={self.zero_point}"

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        if type(mod) is not FloatFunctional:
            raise TypeError(f"QFunctional.from_float expects a FloatFunctional, got "
                            f"{type(mod).__name__}")
        scale, zero_point = mod.activation_post_process.calculate_qparams()
        new = cls()
        new.scale, new.zero_point = float(scale._values()[0]), int(zero_point._values()[0])
        return new
