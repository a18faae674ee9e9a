"""ember.nn layers: one file per family, all re-exported here."""
from .module import Module, RemovableHandle, StateDictError  # noqa: F401
from .linear import Identity, Linear, Bilinear  # noqa: F401
from .conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,  # noqa: F401
                   ConvTranspose3d, Unfold, Fold)
from .activation import (ReLU, ReLU6, LeakyReLU, ELU, GELU, SiLU, Softplus, Tanh,  # noqa: F401
                         Sigmoid, Softmax, LogSoftmax)
from .activation_extra import (Hardtanh, Hardswish, Hardsigmoid, SELU, CELU, Mish,  # noqa: F401
                               LogSigmoid, Softsign, Tanhshrink, GLU, Softmin, Softmax2d,
                               PReLU, Threshold, Softshrink, Hardshrink, RReLU)
from .dropout import (Dropout, Dropout1d, Dropout2d, Dropout3d, AlphaDropout,  # noqa: F401
                      FeatureAlphaDropout)
from .flatten import Flatten, Unflatten  # noqa: F401
from .pooling import (MaxPool1d, MaxPool2d, MaxPool3d, AvgPool1d, AvgPool2d,  # noqa: F401
                      AvgPool3d, AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d,
                      AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d, MaxUnpool1d,
                      MaxUnpool2d, MaxUnpool3d, LPPool1d, LPPool2d, LPPool3d,
                      FractionalMaxPool2d, FractionalMaxPool3d)
from .sparse import Embedding  # noqa: F401
from .embedding_bag import EmbeddingBag  # noqa: F401
from .normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, LayerNorm,  # noqa: F401
                            GroupNorm)
from .normalization_extra import (InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,  # noqa: F401
                                  RMSNorm, LocalResponseNorm, CosineSimilarity,
                                  PairwiseDistance)
from .container import (Sequential, ModuleList, ModuleDict, ParameterList,  # noqa: F401
                        ParameterDict)
from .loss import (MSELoss, L1Loss, SmoothL1Loss, HuberLoss, NLLLoss,  # noqa: F401
                   CrossEntropyLoss, BCELoss, BCEWithLogitsLoss, KLDivLoss)
from .loss_extra import (MarginRankingLoss, CosineEmbeddingLoss, HingeEmbeddingLoss,  # noqa: F401
                         SoftMarginLoss, MultiLabelMarginLoss, MultiLabelSoftMarginLoss,
                         MultiMarginLoss, TripletMarginLoss, TripletMarginWithDistanceLoss,
                         GaussianNLLLoss, PoissonNLLLoss, CTCLoss,
                         LinearCrossEntropyLoss)
from .transformer import (MultiheadAttention, TransformerEncoderLayer,  # noqa: F401
                          TransformerDecoderLayer, TransformerEncoder, TransformerDecoder,
                          Transformer)
from .resampling import (Upsample, UpsamplingNearest2d, UpsamplingBilinear2d,  # noqa: F401
                         PixelShuffle, PixelUnshuffle, ChannelShuffle)
from .sync_batchnorm import SyncBatchNorm  # noqa: F401
from .padding import *  # noqa: F401,F403,E402 - ZeroPad2d, ReflectionPad1d, ...
from .lazy import *  # noqa: F401,F403,E402 - LazyLinear, LazyConv2d, UninitializedParameter, ...
from .legacy_layers import DataParallel, NLLLoss2d, CrossMapLRN2d  # noqa: F401,E402
from .adaptive import AdaptiveLogSoftmaxWithLoss  # noqa: F401,E402
from .rnn import RNNBase, RNN, LSTM, GRU, RNNCellBase, RNNCell, LSTMCell, GRUCell  # noqa: F401
from . import utils  # noqa: F401,E402 - torch.nn.modules.utils (_pair, _ntuple, ...)
from . import torch_file_names  # noqa: F401,E402 - torch.nn.modules.batchnorm, ...
