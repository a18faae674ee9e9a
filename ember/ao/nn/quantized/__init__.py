"""ember.ao.nn.quantized: quantized modules (torch.ao.nn.quantized): the static ones
eager-mode `convert` swaps in (modules.py), FloatFunctional / QFunctional, and the
dynamic ones (`dynamic`)."""
from . import dynamic  # noqa: F401
from .functional_modules import FloatFunctional, FXFloatFunctional, QFunctional  # noqa: F401,E402
from .modules import (Quantize, DeQuantize, Linear, Conv1d, Conv2d, Conv3d,  # noqa: F401
                      ReLU6, Dropout, Hardswish, ELU, LayerNorm, BatchNorm2d, Embedding,
                      EmbeddingBag, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d,
                      BatchNorm3d, GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,
                      LeakyReLU, Softmax, PReLU)
# LSTM / MultiheadAttention: the converted quantizable modules (rnn.py, activation.py)
from .rnn import LSTM  # noqa: F401,E402
from .activation import MultiheadAttention  # noqa: F401,E402
