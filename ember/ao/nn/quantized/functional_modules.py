"""FloatFunctional (torch.ao.nn.quantized.FloatFunctional): tensor arithmetic as a module,
so that eager-mode quantization can attach an observer to the result of an add or a cat.

In a float model (torchvision's quantizable ResNet/MobileNet declare `skip_add =
nn.quantized.FloatFunctional()`) each method is the plain operation, passed through
`activation_post_process` (an Identity until an observer is attached). As in torch, the
scalar forms are not observed, and calling the module itself is an error.
"""
from __future__ import annotations

from ....frontend.nn import Identity, Module


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
