"""`ember.models`: the user-facing name of ember.frontend.models."""
from ..frontend.models import *  # noqa: F401,F403
from ..frontend.models import (mlp, small_cnn, resnet18, resnet50, ResNet,  # noqa: F401
                               TransformerClassifier, transformer_classifier, save_weights,
                               load_weights)
