"""Small configurations of every built-in model (fast to build and run), shared by
the fx and IR tests: name -> (build the model, make a random input)."""
from __future__ import annotations

import ember

BUILTIN_MODELS = {
    "mlp": (lambda: ember.models.mlp(12, (8, 6), 3), lambda: ember.randn(2, 12)),
    "small_cnn": (lambda: ember.models.small_cnn(1, 4), lambda: ember.randn(2, 1, 8, 8)),
    "resnet18": (lambda: ember.models.resnet18(num_classes=5),
                 lambda: ember.randn(1, 3, 16, 16)),
    "resnet50": (lambda: ember.models.resnet50(num_classes=5),
                 lambda: ember.randn(1, 3, 16, 16)),
    "transformer_classifier": (
        lambda: ember.models.transformer_classifier(vocab_size=20, d_model=16, nhead=2,
                                                    num_layers=1, dim_feedforward=16,
                                                    max_len=8),
        lambda: ember.randint(0, 20, (2, 6))),
}


def build(name: str):
    """The model in eval mode (dropout off, batch-norm running stats) and an input."""
    make_model, make_input = BUILTIN_MODELS[name]
    model = make_model()
    model.eval()
    return model, make_input()
