"""ember.nn layers: one file per family, all re-exported here."""
from .module import Module, RemovableHandle, StateDictError  # noqa: F401
from .linear import Identity, Linear, Bilinear  # noqa: F401
from .conv import Conv1d, Conv2d, ConvTranspose2d  # noqa: F401
from .activation import (ReLU, ReLU6, LeakyReLU, ELU, GELU, SiLU, Softplus, Tanh,  # noqa: F401
                         Sigmoid, Softmax, LogSoftmax)
from .dropout import Dropout  # noqa: F401
from .flatten import Flatten, Unflatten  # noqa: F401
from .pooling import MaxPool2d, AvgPool2d, AdaptiveAvgPool2d  # noqa: F401
from .sparse import Embedding  # noqa: F401
from .normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, LayerNorm,  # noqa: F401
                            GroupNorm)
from .container import (Sequential, ModuleList, ModuleDict, ParameterList,  # noqa: F401
                        ParameterDict)
from .loss import (MSELoss, L1Loss, SmoothL1Loss, HuberLoss, NLLLoss,  # noqa: F401
                   CrossEntropyLoss, BCELoss, BCEWithLogitsLoss, KLDivLoss)
from .transformer import (MultiheadAttention, TransformerEncoderLayer,  # noqa: F401
                          TransformerDecoderLayer, TransformerEncoder, TransformerDecoder,
                          Transformer)
from .activation_rest import Softsign, Tanhshrink, Mish  # noqa: F401,E402
