"""torch.ao.nn.quantizable.modules: the module paths (rnn, activation)."""
from .activation import MultiheadAttention  # noqa: F401
from .rnn import LSTM, LSTMCell  # noqa: F401

__all__ = ["LSTM", "LSTMCell", "MultiheadAttention"]
