"""Dynamically quantized LSTM and GRU (torch.ao.nn.quantized.dynamic.LSTM / GRU): the
recurrent layers with qint8 weights. Every gate matmul is the dynamic int8 linear
(`quantized_linear_dynamic`: the input or hidden state quantized per call from its own
range to 0..127, as torch's fbgemm path with reduce_range does), bias added in float;
as torch's CPU kernel does, LSTM / GRU project a layer's whole input sequence in one such
call (one range over all steps), then quantize the hidden state step by step;
the gate nonlinearities and the cell update stay float, as in torch.

The modules reuse ember.nn's RNN machinery (layers, directions, batch_first, packed
sequences, initial states); only the cell step differs. The state follows torch.ao's
layout so its state_dicts load here: LSTM / GRU keep one `PackedParameter` per layer and
direction in `_all_weight_values` (state_dict key `_all_weight_values.<i>.param`: the
(w_ih, w_hh, b_ih, b_hh) tuple), the cells save `_packed_weight_ih` / `_packed_weight_hh`
as (weight, bias) tuples. The float module's names (`weight_ih_l0`, `weight_ih`, ...)
still read the quantized tensors.
"""
from __future__ import annotations

from .....frontend import nn
from .....frontend.nn.modules.rnn import RNNBase, RNNCellBase, _stack, _where
from .._state import QParamsState

_SLOTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _packed_tuple(value, n: int, key: str) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise RuntimeError(f"load_state_dict: {key} must be a tuple of {n} tensors "
                           f"({'weight, bias' if n == 2 else 'w_ih, w_hh, b_ih, b_hh'}), "
                           f"got {type(value).__name__}")
    return tuple(value)


class PackedParameter(QParamsState, nn.Module):
    """One layer-direction's weights of a dynamic LSTM / GRU, saved as torch.ao saves
    them: a single `param` entry, the (w_ih, w_hh, b_ih, b_hh) tuple."""

    _SAVES_QPARAMS = False
    _STATE_TENSORS = ("param",)
    _HIDDEN_BUFFERS = _SLOTS

    def __init__(self, w_ih, w_hh, b_ih=None, b_hh=None):
        super().__init__()
        for name, value in zip(_SLOTS, (w_ih, w_hh, b_ih, b_hh)):
            self.register_buffer(name, value)

    @property
    def param(self) -> tuple:
        return tuple(getattr(self, name) for name in _SLOTS)

    def _state_tensors(self) -> dict:
        return {"param": self.param}

    def _load_state_tensors(self, values: dict) -> None:
        for name, value in zip(_SLOTS, _packed_tuple(values["param"], 4, "param")):
            self._buffers[name] = value


def _linear(x, w, b):
    from . import dynamic_linear
    return dynamic_linear(x, w, b)


def _lstm_step(x_proj, state, w_hh, b_hh):
    """One LSTM step from the input's projection `x_proj` (x W_ih^T + b_ih)."""
    h, c = state
    gates = x_proj + _linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, -1)
    c_next = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return [o.sigmoid() * c_next.tanh(), c_next]


def _gru_step(x_proj, h, w_hh, b_hh):
    """One GRU step from the input's projection `x_proj` (x W_ih^T + b_ih)."""
    i_r, i_z, i_n = x_proj.chunk(3, -1)
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
        packed = []
        for layer in range(mod.num_layers):
            for suffix in mod._suffixes():
                values = []
                for kind in _SLOTS:
                    value = getattr(mod, f"{kind}_l{layer}{suffix}", None)
                    if value is not None:
                        value = (_quantize_weight(value, qconfig.weight())
                                 if kind.startswith("weight") else value.detach().clone())
                    values.append(value)
                packed.append(PackedParameter(*values))
        new._all_weight_values = nn.ModuleList(packed)
        return new

    def __getattr__(self, name: str):
        # the float module's names (`weight_ih_l1_reverse`) read the packed weights
        kind, sep, where = name.partition("_l")
        if sep and kind in _SLOTS and "_all_weight_values" in self.__dict__.get("_modules", {}):
            layer, _, suffix = where.partition("_")
            if layer.isdigit() and suffix in ("", "reverse"):
                row = int(layer) * self._directions + (suffix == "reverse")
                if row < len(self._all_weight_values):
                    return getattr(self._all_weight_values[row], kind)
        return super().__getattr__(name)

    def __repr__(self) -> str:
        # torch.ao's repr leaves the packed weights out
        return f"{self._get_name()}({self.extra_repr()})"

    def _run_direction(self, x, state: list, weights: list, reverse: bool, mask):
        # torch's CPU kernel projects the whole sequence through W_ih in one dynamic linear
        # (one activation range for all steps and the batch), then steps only the hidden
        # matmuls: quantizing each step's input on its own range gives other numbers
        w_ih, w_hh, b_ih, b_hh, w_hr = weights
        x_proj = _linear(x, w_ih, b_ih)
        if mask is None:
            return super()._run_direction(x_proj, state, [None, w_hh, None, b_hh, w_hr],
                                          reverse, mask)
        return self._run_packed(x_proj, state, w_hh, b_hh, reverse, mask)

    def _run_packed(self, x_proj, state: list, w_hh, b_hh, reverse: bool, mask):
        """A packed batch's steps: torch steps only the sequences still running, so the
        hidden state's quantization range leaves finished rows out (zeroed here: zero is
        always inside the range); their state is carried over unchanged."""
        steps = range(x_proj.shape[0] - 1, -1, -1) if reverse else range(x_proj.shape[0])
        outputs = [None] * x_proj.shape[0]
        for t in steps:
            keep = mask[t]
            running = [state[0] * keep.to(state[0].dtype), *state[1:]]
            new = self._cell(x_proj[t], running, None, w_hh, None, b_hh, None)
            state = [_where(keep, n, s) for n, s in zip(new, state)]
            outputs[t] = state[0] * keep.to(state[0].dtype)
        return _stack(outputs), state

    def _cell(self, x_proj, state, w_ih, w_hh, b_ih, b_hh, w_hr):
        if self.mode == "LSTM":
            return _lstm_step(x_proj, state, w_hh, b_hh)
        return _gru_step(x_proj, state[0], w_hh, b_hh)

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


class _DynamicCell(QParamsState, RNNCellBase):
    """One step of a recurrent cell with qint8 weights (torch.ao's dynamic LSTMCell /
    GRUCell / RNNCell): both gate matmuls are the dynamic int8 linear, the rest float.
    Saved as torch.ao saves it: `_packed_weight_ih` / `_packed_weight_hh`, each the
    (weight, bias) tuple."""

    _FLOAT_MODULE: type = nn.Module
    _SAVES_QPARAMS = False
    _STATE_TENSORS = ("_packed_weight_ih", "_packed_weight_hh")
    _HIDDEN_BUFFERS = _SLOTS

    def _state_tensors(self) -> dict:
        return {"_packed_weight_ih": (self.weight_ih, self.bias_ih),
                "_packed_weight_hh": (self.weight_hh, self.bias_hh)}

    def _load_state_tensors(self, values: dict) -> None:
        for side in ("ih", "hh"):
            key = f"_packed_weight_{side}"
            if key in values:
                weight, bias = _packed_tuple(values[key], 2, key)
                self._buffers[f"weight_{side}"], self._buffers[f"bias_{side}"] = weight, bias

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
        h, c = _lstm_step(_linear(x, self.weight_ih, self.bias_ih), state, self.weight_hh,
                          self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_DynamicCell):
    _FLOAT_MODULE = nn.GRUCell

    def forward(self, input, hx=None):
        x, (h,), batched = self._batched(input, hx, 1)
        (out,) = _gru_step(_linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh,
                           self.bias_hh)
        return out if batched else out.squeeze(0)


__all__ = ["LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]
