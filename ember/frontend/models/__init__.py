"""ember.models: reference models built from a seed, with torchvision's state_dict keys.

`ember.models.resnet18(num_classes=1000, seed=0)` seeds ember's generator, then builds;
the same seed gives the same weights. save_weights/load_weights use safetensors.
"""
from .vision import mlp, small_cnn, resnet18, resnet50, ResNet, BasicBlock, Bottleneck  # noqa
from .text import TransformerClassifier, transformer_classifier  # noqa: F401
from .weights import save_weights, load_weights  # noqa: F401
