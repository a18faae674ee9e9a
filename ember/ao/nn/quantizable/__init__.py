"""ember.ao.nn.quantizable (torch.ao.nn.quantizable): LSTM and MultiheadAttention rebuilt
from observable pieces, so that eager-mode `prepare` can put an observer on every
intermediate value and `convert` can swap each piece for its quantized version.

- LSTM: layers (`_LSTMLayer`, one `_LSTMSingleLayer` per direction) of `LSTMCell`s made of
  two nn.Linear (`igates`, `hgates`) and FloatFunctional adds/muls; sigmoid/tanh run on
  the observed gate values (torch's fixed-qparams quantized kernels after convert).
- MultiheadAttention: nn.MultiheadAttention with separate Linear projections (`linear_Q`,
  `linear_K`, `linear_V`, `out_proj`); the attention itself runs in float between
  DeQuantStubs and QuantStubs.

The whole flow is float -> observed (`from_float`, here) -> quantized (`from_observed` of
ember.ao.nn.quantized.LSTM / MultiheadAttention); `prepare` and `convert` do it by default
for nn.LSTM and nn.MultiheadAttention (get_default_custom_config_dict).
"""
# the quantized package first: its LSTM / MultiheadAttention subclass these, and these
# use its FloatFunctional (importing this package first would otherwise be circular)
from .. import quantized as _quantized  # noqa: F401,E402
from .modules import LSTM, LSTMCell, MultiheadAttention  # noqa: F401,E402

__all__ = ["LSTM", "LSTMCell", "MultiheadAttention"]
