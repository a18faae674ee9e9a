"""Recurrent layers: RNN, LSTM, GRU and their cells, as torch.nn defines them.

Parameters carry PyTorch's names and shapes, so a torch state_dict loads unchanged:
`weight_ih_l{k}{suffix}` (gate_size, layer_input_size), `weight_hh_l{k}{suffix}`
(gate_size, real_hidden_size), `bias_ih_l{k}{suffix}`, `bias_hh_l{k}{suffix}` (gate_size),
and for LSTM with proj_size > 0 `weight_hr_l{k}{suffix}` (proj_size, hidden_size); suffix
is '' or '_reverse'. Gate order is torch's (LSTM: i, f, g, o; GRU: r, z, n), every
weight starts uniform in +-1/sqrt(hidden_size).

The time loop is Python over ember ops (linear, sigmoid, tanh, ...): autograd, tracing
and ember.compile see an unrolled loop of cell ops. A PackedSequence input runs padded
with a per-step mask (a sequence stops updating its state after its length, and its
outputs there are zero), which gives torch's results for both directions.
"""
from __future__ import annotations

import math
import warnings

from ....ir import autocast as autocast_policy
from ....ir.errors import ShapeError
from ....ir.registry import OPS
from ...factories import zeros
from .. import functional as F, init
from ._util import new_param
from .module import Module

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


# --- one step of each cell --------------------------------------------------------------------
def _rnn_step(x, h, w_ih, w_hh, b_ih, b_hh, relu: bool):
    pre = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    return pre.relu() if relu else pre.tanh()


def _lstm_step(x, state, w_ih, w_hh, b_ih, b_hh, w_hr=None):
    h, c = state
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, -1)
    c_next = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h_next = o.sigmoid() * c_next.tanh()
    if w_hr is not None:
        h_next = F.linear(h_next, w_hr)
    return h_next, c_next


def _gru_step(x, h, w_ih, w_hh, b_ih, b_hh):
    i_r, i_z, i_n = F.linear(x, w_ih, b_ih).chunk(3, -1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, -1)
    r = (i_r + h_r).sigmoid()
    z = (i_z + h_z).sigmoid()
    n = (i_n + r * h_n).tanh()
    return (1 - z) * n + z * h


# --- the multi-layer modules --------------------------------------------------------------------
class RNNBase(Module):
    """What RNN, LSTM and GRU share: torch.nn.RNNBase's arguments and parameters."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None,
                 dtype=None) -> None:
        super().__init__()
        _check_arguments(mode, hidden_size, num_layers, dropout, proj_size)
        _check_types(input_size=(input_size, int), bias=(bias, bool),
                     batch_first=(batch_first, bool))
        if input_size <= 0:
            raise ValueError("input_size must be greater than zero")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.proj_size = proj_size
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size or hidden_size
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            for suffix in self._suffixes():
                layer_input = input_size if layer == 0 else real_hidden * self._directions
                shapes = [("weight_ih", (gate_size, layer_input)),
                          ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                for kind, shape in shapes:
                    name = f"{kind}_l{layer}{suffix}"
                    setattr(self, name, new_param(*shape, dtype=dtype))
                    self._flat_weights_names.append(name)
        self.reset_parameters()

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    @property
    def _flat_weights(self) -> list:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list:
        """Per layer and direction, its parameters in torch's order."""
        per = 2 + 2 * self.bias + (self.proj_size > 0)
        flat = self._flat_weights
        return [flat[i:i + per] for i in range(0, len(flat), per)]

    def flatten_parameters(self) -> None:
        """torch's cuDNN weight compaction; nothing to do here."""

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            text += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if self.batch_first is not False:
            text += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            text += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            text += f", bidirectional={self.bidirectional}"
        return text     # PyTorch's RNN repr leaves the nonlinearity out (its cells show it)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, input, hx=None):
        from ..utils.rnn import PackedSequence, _pack_in_order, pad_packed_sequence
        packed = isinstance(input, PackedSequence)
        lengths = None
        if packed:
            # run padded in the caller's batch order (hx and h_n are in that order, as
            # torch's), then pack the output as the input was packed
            indices = (input.sorted_indices, input.unsorted_indices)
            input, lengths = pad_packed_sequence(input, batch_first=False)
            batched, time_first = True, input
        else:
            batched = input.ndim == 3
            if input.ndim not in (2, 3):
                raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got "
                                 f"{input.ndim}D instead")
            time_first = input if not batched else \
                (input.transpose(0, 1) if self.batch_first else input)
            if not batched:
                time_first = input.unsqueeze(1)
        weight = self._flat_weights[0]
        # the float cells' rule (a dynamically quantized RNN brings its own cell and
        # weights of another dtype by design)
        float_cell = type(self)._cell is RNNBase._cell
        if float_cell and time_first.dtype != weight.dtype and not _any_autocast():
            w, x = weight.dtype.name, time_first.dtype.name
            raise ValueError(f"RNN input dtype {x} does not match weight dtype {w}. "
                             f"Convert input: input.to({w}), or convert model: model.to({x})")
        hx = self._initial_state(hx, time_first, batched)
        output, final = self._run_as_one_op(time_first, hx, lengths) if float_cell else \
            self._run_layers(time_first, hx, lengths)
        if packed:
            lens = [int(n) for n in lengths.numpy()]
            order = [int(i) for i in indices[0].numpy()] if indices[0] is not None \
                else list(range(len(lens)))
            return _pack_in_order(output, lens, order, *indices), final
        if not batched:
            output = output.squeeze(1)
            final = tuple(f.squeeze(1) for f in final) if isinstance(final, tuple) else \
                final.squeeze(1)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, final

    def _state_shapes(self, batch: int):
        rows = self.num_layers * self._directions
        h = (rows, batch, self.proj_size or self.hidden_size)
        return [h, (rows, batch, self.hidden_size)] if self.mode == "LSTM" else [h]

    def _initial_state(self, hx, x, batched: bool):
        """hx as a list of (layers*directions, batch, size) tensors (h, and c for LSTM)."""
        shapes = self._state_shapes(x.shape[1])
        if hx is None:
            return [zeros(*s, dtype=x.dtype, device=x.device) for s in shapes]
        states = list(hx) if self.mode == "LSTM" else [hx]
        if self.mode == "LSTM" and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("LSTM: hx must be a tuple (h_0, c_0)")
        out = []
        for state, shape, name in zip(states, shapes, ("hidden", "cell")):
            if not batched:
                if state.ndim != 2:
                    raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but "
                                       f"got {state.ndim}-D tensor")
                state = state.unsqueeze(1)
            elif state.ndim != 3:
                raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got "
                                   f"{state.ndim}-D tensor")
            if tuple(state.shape) != tuple(shape):
                raise RuntimeError(f"Expected {name} size {tuple(shape)}, got "
                                   f"{list(state.shape)}")
            out.append(state)
        return out

    def _run_as_one_op(self, x, hx: list, lengths):
        """The recurrence under autocast as torch's one op: `mkldnn_rnn_layer` (LSTM on
        CPU) or `_cudnn_rnn` (CUDA) cast input, states and weights to the autocast dtype;
        elsewhere (GRU, RNN on CPU) each linear autocasts on its own."""
        if not _any_autocast():
            return self._run_layers(x, hx, lengths)
        on_cuda = x.device.type == "cuda"
        if not (on_cuda or self.mode == "LSTM"):
            return self._run_layers(x, hx, lengths)
        name = "_cudnn_rnn" if on_cuda else "mkldnn_rnn_layer"
        weights = self._flat_weights
        with autocast_policy.as_one_op(name, x, *hx, *weights) as cast:
            x, hx, weights = cast[0], list(cast[1:1 + len(hx)]), cast[1 + len(hx):]
            return self._run_layers(x, hx, lengths, dict(zip(self._flat_weights_names,
                                                             weights)))

    def _run_layers(self, x, hx: list, lengths, weights: dict | None = None):
        weights = weights if weights is not None else \
            {name: getattr(self, name) for name in self._flat_weights_names}
        mask = _step_masks(lengths, x.shape[0], x) if lengths is not None else None
        finals: list[list] = [[] for _ in hx]
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(self._suffixes()):
                row = layer * self._directions + direction
                weights_here = [weights.get(f"{k}_l{layer}{suffix}")
                                for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh",
                                          "weight_hr")]
                state = [s[row] for s in hx]
                out, state = self._run_direction(layer_input, state, weights_here,
                                                 direction == 1, mask)
                outputs.append(out)
                for acc, s in zip(finals, state):
                    acc.append(s)
            layer_input = outputs[0] if len(outputs) == 1 else _cat(outputs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        stacked = [_stack(acc) for acc in finals]
        return layer_input, (tuple(stacked) if self.mode == "LSTM" else stacked[0])

    def _run_direction(self, x, state: list, weights: list, reverse: bool, mask):
        w_ih, w_hh, b_ih, b_hh, w_hr = weights
        steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        outputs = [None] * x.shape[0]
        for t in steps:
            new = self._cell(x[t], state, w_ih, w_hh, b_ih, b_hh, w_hr)
            if mask is not None:
                keep = mask[t]
                new = [_where(keep, n, s) for n, s in zip(new, state)]
                outputs[t] = new[0] * keep.to(new[0].dtype)
            else:
                outputs[t] = new[0]
            state = new
        return _stack(outputs), state

    def _cell(self, x, state, w_ih, w_hh, b_ih, b_hh, w_hr):
        if self.mode == "LSTM":
            return list(_lstm_step(x, state, w_ih, w_hh, b_ih, b_hh, w_hr))
        if self.mode == "GRU":
            return [_gru_step(x, state[0], w_ih, w_hh, b_ih, b_hh)]
        return [_rnn_step(x, state[0], w_ih, w_hh, b_ih, b_hh, self.mode == "RNN_RELU")]


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu)."""

    def __init__(self, *args, **kwargs) -> None:
        args = list(args)
        if len(args) > 3:                 # torch's positional form keeps nonlinearity 4th
            kwargs.setdefault("nonlinearity", args.pop(3))
        nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", *args, **kwargs)


class LSTM(RNNBase):
    """Long short-term memory; forward(input, (h_0, c_0)) -> output, (h_n, c_n)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit (torch's gate order r, z, n)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__("GRU", *args, **kwargs)


def _any_autocast() -> bool:
    from ...autocast import is_autocast_enabled
    return any(is_autocast_enabled(d) for d in ("cpu", "cuda"))


def _check_types(**values) -> None:
    """PyTorch's TypeError for an argument of the wrong type (bias=1, input_size=3.0)."""
    for name, (value, kind) in values.items():
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"{name} should be of type {kind.__name__}, got: "
                            f"{type(value).__name__}")


def _check_arguments(mode, hidden_size, num_layers, dropout, proj_size) -> None:
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or \
            not 0 <= dropout <= 1:
        raise ValueError("dropout should be a number in range [0, 1] representing the "
                         "probability of an element being zeroed")
    if dropout > 0 and num_layers == 1:
        warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                      f"non-zero dropout expects num_layers greater than 1, but got "
                      f"dropout={dropout} and num_layers={num_layers}", UserWarning)
    if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
        raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
    if hidden_size <= 0:
        raise ValueError("hidden_size must be greater than zero")
    if num_layers <= 0:
        raise ValueError("num_layers must be greater than zero")
    if proj_size < 0:
        raise ValueError("proj_size should be a positive integer or zero to disable "
                         "projections")
    if proj_size >= hidden_size:
        raise ValueError("proj_size has to be smaller than hidden_size")
    if proj_size and mode != "LSTM":
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")


# --- cells --------------------------------------------------------------------------------------
class RNNCellBase(Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = new_param(num_chunks * hidden_size, input_size, dtype=dtype)
        self.weight_hh = new_param(num_chunks * hidden_size, hidden_size, dtype=dtype)
        if bias:
            self.bias_ih = new_param(num_chunks * hidden_size, dtype=dtype)
            self.bias_hh = new_param(num_chunks * hidden_size, dtype=dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            text += f", nonlinearity={self.nonlinearity}"
        return text

    def _batched(self, input, hx, n_states: int):
        """(input as (N, H_in), states as (N, H) each, whether input was batched)."""
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input has inconsistent input_size: got "
                             f"{input.shape[-1]} expected {self.input_size}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            states = [zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
                      for _ in range(n_states)]
        else:
            states = list(hx) if n_states == 2 else [hx]
            for i, s in enumerate(states):
                what = f"hx[{i}]" if n_states == 2 else "hidden"
                if s.ndim not in (1, 2):
                    raise ValueError(f"{name}: Expected {what} to be 1D or 2D, got "
                                     f"{s.ndim}D instead")
            states = [s if batched else s.unsqueeze(0) for s in states]
            for i, s in enumerate(states):      # PyTorch's checks, in its words
                if s.shape[0] != x.shape[0]:
                    raise ShapeError(f"{name}: Input batch size {x.shape[0]} doesn't match "
                                     f"hidden{i} batch size {s.shape[0]}")
                if s.shape[-1] != self.hidden_size:
                    raise ShapeError(f"{name}: hidden{i} has inconsistent hidden_size: got "
                                     f"{s.shape[-1]}, expected {self.hidden_size}")
        return x, states, batched


class RNNCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)

    def forward(self, input, hx=None):
        x, (h,), batched = self._batched(input, hx, 1)
        out = _rnn_step(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                        self.nonlinearity == "relu")
        return out if batched else out.squeeze(0)


class LSTMCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        x, state, batched = self._batched(input, hx, 2)
        h, c = _lstm_step(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        x, (h,), batched = self._batched(input, hx, 1)
        out = _gru_step(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if batched else out.squeeze(0)


# --- small helpers --------------------------------------------------------------------------------
def _stack(tensors):
    return OPS["stack"](tensors, 0)


def _cat(tensors, dim):
    return OPS["cat"](tensors, dim)


def _where(mask, a, b):
    return OPS["where"](mask, a, b)


def _step_masks(lengths, steps: int, like):
    """(steps, batch, 1) booleans: is step t within sequence b's length."""
    from ...factories import arange, tensor
    lens = tensor(list(int(n) for n in lengths)).to(like.device) if not hasattr(lengths, "shape") \
        else lengths
    return (arange(steps).unsqueeze(1) < lens.unsqueeze(0)).unsqueeze(-1)
