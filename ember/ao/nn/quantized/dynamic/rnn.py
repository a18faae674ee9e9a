"""Dynamically quantized LSTM and GRU (torch.ao.nn.quantized.dynamic.LSTM / GRU): the
recurrent layers with qint8 weights. Every gate matmul is the dynamic int8 linear
(`quantized_linear_dynamic`: the input or hidden state quantized per call from its own
range to 0..127, as torch's fbgemm path with reduce_range does), bias added in float;
the gate nonlinearities and the cell update stay float, as in torch.

The modules reuse ember.nn's RNN machinery (layers, directions, batch_first, packed
sequences, initial states); only the cell step differs. Weights are buffers under the
float module's names (`weight_ih_l0`, ... hold quantized tensors), so compare_weights
and state_dict see them where the float model has them.
"""
from __future__ import annotations

from .....frontend import nn
from .....frontend.nn.modules.rnn import RNNBase, RNNCellBase


def _linear(x, w, b):
    from . import dynamic_linear
    return dynamic_linear(x, w, b)


def _lstm_step(x, state, w_ih, w_hh, b_ih, b_hh):
    h, c = state
    gates = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, -1)
    c_next = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return [o.sigmoid() * c_next.tanh(), c_next]


def _gru_step(x, h, w_ih, w_hh, b_ih, b_hh):
    i_r, i_z, i_n = _linear(x, w_ih, b_ih).chunk(3, -1)
    h_r, h_z, h_n = _linear(h, w_hh, b_hh).chunk(3, -1)
    r = (i_r + h_r).sigmoid()
    z = (i_z + h_z).sigmoid()
    n = (i_n + r * h_n).tanh()
    return [(1 - z) * n + z * h]


class _DynamicRNN(RNNBase):
    _FLOAT_MODULE: type = nn.Module

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        from .....ao.quantization.qconfig import default_dynamic_qconfig
        from . import dynamic_weight as _quantize_weight
        if type(mod) is not cls._FLOAT_MODULE:
            raise TypeError(f"quantized dynamic {cls.__name__}.from_float expects "
                            f"nn.{cls._FLOAT_MODULE.__name__}, got {type(mod).__name__}")
        if mod.proj_size:
            raise NotImplementedError(f"quantized dynamic {cls.__name__}: proj_size > 0 is "
                                      f"not supported")
        qconfig = getattr(mod, "qconfig", None) or default_dynamic_qconfig
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        for key in ("mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first",
                    "dropout", "bidirectional", "proj_size", "training"):
            setattr(new, key, getattr(mod, key))
        new._flat_weights_names = list(mod._flat_weights_names)
        for name in mod._flat_weights_names:
            value = getattr(mod, name)
            if name.startswith("weight"):
                value = _quantize_weight(value, qconfig.weight())
            else:
                value = value.detach().clone()
            new.register_buffer(name, value)
        return new

    def _cell(self, x, state, w_ih, w_hh, b_ih, b_hh, w_hr):
        if self.mode == "LSTM":
            return _lstm_step(x, state, w_ih, w_hh, b_ih, b_hh)
        return _gru_step(x, state[0], w_ih, w_hh, b_ih, b_hh)

    def _get_name(self):
        return f"DynamicQuantized{type(self).__name__}"


class LSTM(_DynamicRNN):
    _FLOAT_MODULE = nn.LSTM


class GRU(_DynamicRNN):
    _FLOAT_MODULE = nn.GRU


# --- cells ---------------------------------------------------------------------------------------
def _rnn_cell_step(x, h, w_ih, w_hh, b_ih, b_hh, relu: bool):
    pre = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)
    return pre.relu() if relu else pre.tanh()


class _DynamicCell(RNNCellBase):
    """One step of a recurrent cell with qint8 weights (torch.ao's dynamic LSTMCell /
    GRUCell / RNNCell): both gate matmuls are the dynamic int8 linear, the rest float."""

    _FLOAT_MODULE: type = nn.Module

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        from .....ao.quantization.qconfig import default_dynamic_qconfig
        from . import dynamic_weight as _quantize_weight
        if type(mod) is not cls._FLOAT_MODULE:
            raise TypeError(f"quantized dynamic {cls.__name__}.from_float expects "
                            f"nn.{cls._FLOAT_MODULE.__name__}, got {type(mod).__name__}")
        qconfig = getattr(mod, "qconfig", None) or default_dynamic_qconfig
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.input_size, new.hidden_size, new.bias = mod.input_size, mod.hidden_size, mod.bias
        new.nonlinearity = getattr(mod, "nonlinearity", "tanh")
        for name in ("weight_ih", "weight_hh"):
            new.register_buffer(name, _quantize_weight(getattr(mod, name), qconfig.weight()))
        for name in ("bias_ih", "bias_hh"):
            value = getattr(mod, name)
            new.register_buffer(name, None if value is None else value.detach().clone())
        return new

    def _get_name(self):
        return f"DynamicQuantized{type(self).__name__}"


class RNNCell(_DynamicCell):
    _FLOAT_MODULE = nn.RNNCell

    def forward(self, input, hx=None):
        x, (h,), batched = self._batched(input, hx, 1)
        out = _rnn_cell_step(x, h, self.weight_ih, self.weight_hh, self.bias_ih,
                             self.bias_hh, self.nonlinearity == "relu")
        return out if batched else out.squeeze(0)


class LSTMCell(_DynamicCell):
    _FLOAT_MODULE = nn.LSTMCell

    def forward(self, input, hx=None):
        x, state, batched = self._batched(input, hx, 2)
        h, c = _lstm_step(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_DynamicCell):
    _FLOAT_MODULE = nn.GRUCell

    def forward(self, input, hx=None):
        x, (h,), batched = self._batched(input, hx, 1)
        (out,) = _gru_step(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if batched else out.squeeze(0)


__all__ = ["LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]
