"""Run a small model on the out-of-tree device, eagerly and compiled with its backend.

    PYTHONPATH=.:examples/out_of_tree_device python3 examples/out_of_tree_device/model_on_device.py
"""
from __future__ import annotations

import ember
import ember_numdev  # noqa: F401  (registers the 'numdev' device and compile backend)


class SmallNet(ember.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = ember.nn.Linear(8, 16)
        self.fc2 = ember.nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(ember.relu(self.fc1(x)) * 2.0)


def main():
    ember.manual_seed(0)
    model = SmallNet()
    x = ember.randn(5, 8)
    reference = model(x)
    on_device = model.to("numdev")
    eager = on_device(x.to("numdev"))
    compiled = ember.compile(on_device, backend="numdev")(x.to("numdev"))
    print("eager   max |diff| vs CPU:", float((eager.cpu() - reference).abs().max()))
    print("compiled max |diff| vs CPU:", float((compiled.cpu() - reference).abs().max()))
    print("device kernels called:", ember_numdev.kernels.CALLS)


if __name__ == "__main__":
    main()
