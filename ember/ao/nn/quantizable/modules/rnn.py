"""Quantizable LSTM (torch.ao.nn.quantizable.LSTM / LSTMCell).

An nn.LSTM cannot be observed: its gates are computed inside one fused op. This LSTM is
the same computation spelled out in modules, with torch.ao's submodule names so that
state_dicts and reprs match:

    LSTM.layers[i]            _LSTMLayer: one layer, both directions
      .layer_fw / .layer_bw   _LSTMSingleLayer: runs `cell` over the sequence
        .cell                 LSTMCell ("QuantizableLSTMCell"):
          igates, hgates      nn.Linear: x @ W_ih.T + b_ih, h @ W_hh.T + b_hh
          gates               FloatFunctional: igates + hgates
          input_gate, forget_gate, output_gate (Sigmoid), cell_gate (Tanh)
          fgate_cx, igate_cgate, fgate_cx_igate_cgate, ogate_cy  FloatFunctional:
                              c' = f * c + i * g,  h' = o * tanh(c')

`prepare` observes every Linear and FloatFunctional; `convert` turns them into quantized
Linear / QFunctional, and the sigmoid/tanh then run on quantized tensors with torch's
fixed output qparams. The hidden state the LSTM starts from is zeros, quantized with scale
1.0 and zero point 0 when the input is quantized (as torch.ao does).
"""
from __future__ import annotations

import numbers
import warnings

from .....frontend import nn
from .....frontend.tensor import Tensor
from ...quantized.functional_modules import FloatFunctional

_GATE_NAMES = ("input", "forget", "cell", "output")


def _ops():
    """The tensor functions, from the package root (loaded by the time a module runs)."""
    import ember
    return ember


class LSTMCell(nn.Module):
    """One LSTM step, made of observable pieces (see the module docstring).
    `split_gates=True` keeps one Linear pair and one add per gate (ModuleDicts keyed
    input/forget/cell/output) instead of one 4*hidden Linear that is chunked."""

    _FLOAT_MODULE = nn.LSTMCell

    def __init__(self, input_dim: int, hidden_dim: int, bias: bool = True, device=None,
                 dtype=None, *, split_gates: bool = False):
        super().__init__()
        self.input_size, self.hidden_size = input_dim, hidden_dim
        self.bias, self.split_gates = bias, split_gates
        if not split_gates:
            self.igates = nn.Linear(input_dim, 4 * hidden_dim, bias=bias)
            self.hgates = nn.Linear(hidden_dim, 4 * hidden_dim, bias=bias)
            self.gates = FloatFunctional()
        else:
            self.igates = nn.ModuleDict({g: nn.Linear(input_dim, hidden_dim, bias=bias)
                                         for g in _GATE_NAMES})
            self.hgates = nn.ModuleDict({g: nn.Linear(hidden_dim, hidden_dim, bias=bias)
                                         for g in _GATE_NAMES})
            self.gates = nn.ModuleDict({g: FloatFunctional() for g in _GATE_NAMES})
        self.input_gate = nn.Sigmoid()
        self.forget_gate = nn.Sigmoid()
        self.cell_gate = nn.Tanh()
        self.output_gate = nn.Sigmoid()
        self.fgate_cx = FloatFunctional()
        self.igate_cgate = FloatFunctional()
        self.fgate_cx_igate_cgate = FloatFunctional()
        self.ogate_cy = FloatFunctional()
        # the qparams of the zero state initialize_hidden makes for a quantized input
        self.initial_hidden_state_qparams = (1.0, 0)
        self.initial_cell_state_qparams = (1.0, 0)
        self.hidden_state_dtype = _ops().quint8
        self.cell_state_dtype = _ops().quint8

    def _get_name(self) -> str:
        return "QuantizableLSTMCell"

    def forward(self, x, hidden=None):
        if hidden is None or hidden[0] is None or hidden[1] is None:
            hidden = self.initialize_hidden(x.shape[0], x.is_quantized)
        hx, cx = hidden
        if not self.split_gates:
            gates = self.gates.add(self.igates(x), self.hgates(hx))
            i, f, g, o = gates.chunk(4, 1)
        else:
            i, f, g, o = (self.gates[k].add(self.igates[k](x), self.hgates[k](hx))
                          for k in _GATE_NAMES)
        i, f = self.input_gate(i), self.forget_gate(f)
        g, o = self.cell_gate(g), self.output_gate(o)
        cy = self.fgate_cx_igate_cgate.add(self.fgate_cx.mul(f, cx),
                                           self.igate_cgate.mul(i, g))
        hy = self.ogate_cy.mul(o, _ops().tanh(cy))
        return hy, cy

    def initialize_hidden(self, batch_size: int, is_quantized: bool = False):
        ember = _ops()
        h = ember.zeros((batch_size, self.hidden_size))
        c = ember.zeros((batch_size, self.hidden_size))
        if is_quantized:
            h = ember.quantize_per_tensor(h, *self.initial_hidden_state_qparams,
                                          self.hidden_state_dtype)
            c = ember.quantize_per_tensor(c, *self.initial_cell_state_qparams,
                                          self.cell_state_dtype)
        return h, c

    @classmethod
    def from_params(cls, wi, wh, bi=None, bh=None, split_gates: bool = False):
        """A cell with these input/hidden weights and biases (W_ih: [4*hidden, input])."""
        if (bi is None) != (bh is None):
            raise ValueError("LSTMCell.from_params: give both biases (bi, bh) or neither")
        cell = cls(wi.shape[1], wh.shape[1], bias=bi is not None, split_gates=split_gates)
        for w, b, linears in ((wi, bi, cell.igates), (wh, bh, cell.hgates)):
            if not split_gates:
                _set_linear(linears, w, b)
                continue
            w_parts = w.chunk(4, 0)
            b_parts = b.chunk(4, 0) if b is not None else (None,) * 4
            for linear, w_part, b_part in zip(linears.values(), w_parts, b_parts):
                _set_linear(linear, w_part, b_part)
        return cell

    @classmethod
    def from_float(cls, other, use_precomputed_fake_quant=False, split_gates=False):
        if type(other) is not cls._FLOAT_MODULE:
            raise TypeError(f"quantizable LSTMCell.from_float expects nn.LSTMCell, got "
                            f"{type(other).__name__}")
        if not hasattr(other, "qconfig"):
            raise ValueError("quantizable LSTMCell.from_float: the float module must have "
                             "a qconfig")
        observed = cls.from_params(other.weight_ih, other.weight_hh, other.bias_ih,
                                   other.bias_hh, split_gates=split_gates)
        _give_linears_qconfig(observed, other.qconfig)
        return observed


def _set_linear(linear, weight, bias) -> None:
    linear.weight = nn.Parameter(weight.detach())
    if bias is not None:
        linear.bias = nn.Parameter(bias.detach())


def _give_linears_qconfig(cell: LSTMCell, qconfig) -> None:
    cell.qconfig = qconfig
    for linears in (cell.igates, cell.hgates):
        linears.qconfig = qconfig
        for linear in linears.modules():
            linear.qconfig = qconfig


class _LSTMSingleLayer(nn.Module):
    """One direction of one layer: the cell run over the sequence (dim 0)."""

    def __init__(self, input_dim: int, hidden_dim: int, bias: bool = True, device=None,
                 dtype=None, *, split_gates: bool = False):
        super().__init__()
        self.cell = LSTMCell(input_dim, hidden_dim, bias=bias, split_gates=split_gates)

    def forward(self, x, hidden=None):
        outputs = []
        for step in range(x.shape[0]):
            hidden = self.cell(x[step], hidden)
            outputs.append(hidden[0])
        return _ops().stack(outputs, 0), hidden

    @classmethod
    def from_params(cls, *args, **kwargs):
        cell = LSTMCell.from_params(*args, **kwargs)
        layer = cls(cell.input_size, cell.hidden_size, cell.bias,
                    split_gates=cell.split_gates)
        layer.cell = cell
        return layer


class _LSTMLayer(nn.Module):
    """One layer in both directions: the backward direction runs on the reversed sequence
    and the two outputs are concatenated on the feature dim."""

    def __init__(self, input_dim: int, hidden_dim: int, bias: bool = True,
                 batch_first: bool = False, bidirectional: bool = False, device=None,
                 dtype=None, *, split_gates: bool = False):
        super().__init__()
        self.batch_first, self.bidirectional = batch_first, bidirectional
        self.layer_fw = _LSTMSingleLayer(input_dim, hidden_dim, bias=bias,
                                         split_gates=split_gates)
        if bidirectional:
            self.layer_bw = _LSTMSingleLayer(input_dim, hidden_dim, bias=bias,
                                             split_gates=split_gates)

    def forward(self, x, hidden=None):
        if self.batch_first:
            x = x.transpose(0, 1)
        hidden_fw, hidden_bw = _split_directions(hidden, self.bidirectional)
        result, hidden_fw = self.layer_fw(x, hidden_fw)
        if self.bidirectional:
            result_bw, hidden_bw = self.layer_bw(x.flip(0), hidden_bw)
            result = _ops().cat([result, result_bw.flip(0)], result.dim() - 1)
            h = _ops().stack([hidden_fw[0], hidden_bw[0]], 0)
            c = _ops().stack([hidden_fw[1], hidden_bw[1]], 0)
        else:
            h, c = hidden_fw
        if self.batch_first:
            result = result.transpose(0, 1)
        return result, (h, c)

    @classmethod
    def from_float(cls, other, layer_idx: int = 0, qconfig=None, **kwargs):
        """Layer `layer_idx` of a float nn.LSTM (there is no float layer class)."""
        if not hasattr(other, "qconfig") and qconfig is None:
            raise ValueError("_LSTMLayer.from_float: the float LSTM must have a qconfig "
                             "(or pass qconfig=)")
        get = lambda name: kwargs.get(name, getattr(other, name))  # noqa: E731
        split_gates = kwargs.get("split_gates", False)
        layer = cls(get("input_size"), get("hidden_size"), get("bias"), get("batch_first"),
                    get("bidirectional"), split_gates=split_gates)
        layer.qconfig = getattr(other, "qconfig", qconfig)
        for suffix, attr in (("", "layer_fw"), ("_reverse", "layer_bw")):
            if suffix and not other.bidirectional:
                continue
            params = [getattr(other, f"{kind}_l{layer_idx}{suffix}", None)
                      for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            setattr(layer, attr, _LSTMSingleLayer.from_params(*params,
                                                              split_gates=split_gates))
        return layer


def _split_directions(hidden, bidirectional: bool):
    """(h, c) of one layer -> the forward and backward directions' (h, c) (None: zeros)."""
    if hidden is None:
        return None, None
    hx, cx = hidden
    if not bidirectional:
        return (None if hx is None and cx is None else (hx, cx)), None
    hx_fw, hx_bw = (None, None) if hx is None else (hx[0], hx[1])
    cx_fw, cx_bw = (None, None) if cx is None else (cx[0], cx[1])
    fw = None if hx_fw is None and cx_fw is None else (hx_fw, cx_fw)
    bw = (hx_bw, cx_bw) if hx_bw is not None and cx_bw is not None else None
    return fw, bw


class LSTM(nn.Module):
    """A quantizable nn.LSTM: `layers` of `_LSTMLayer` (see the module docstring). Dropout
    is not applied (a warning says so), as in torch.ao."""

    _FLOAT_MODULE = nn.LSTM

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, *,
                 split_gates: bool = False):
        super().__init__()
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or \
                not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if dropout > 0:
            warnings.warn("dropout option for quantizable LSTM is ignored. If you are "
                          "training, please, use nn.LSTM version followed by `prepare` "
                          "step.", stacklevel=2)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.training = False     # torch.ao's quantizable LSTM starts in eval mode
        sizes = [input_size] + [hidden_size * (2 if bidirectional else 1)] * (num_layers - 1)
        # torch.ao builds every layer after the first with input hidden_size and replaces
        # them in from_float; the sizes here are the ones from_float gives
        self.layers = nn.ModuleList([
            _LSTMLayer(size, hidden_size, bias, batch_first=False,
                       bidirectional=bidirectional, split_gates=split_gates)
            for size in sizes])

    def _get_name(self) -> str:
        return "QuantizableLSTM"

    def forward(self, x, hidden=None):
        if self.batch_first:
            x = x.transpose(0, 1)
        per_layer = self._layer_states(x, hidden)
        hs, cs = [], []
        for layer, state in zip(self.layers, per_layer):
            x, (h, c) = layer(x, state)
            hs.append(h)
            cs.append(c)
        ember = _ops()
        h_n, c_n = ember.stack(hs), ember.stack(cs)
        h_n = h_n.reshape(-1, h_n.shape[-2], h_n.shape[-1])
        c_n = c_n.reshape(-1, c_n.shape[-2], c_n.shape[-1])
        if self.batch_first:
            x = x.transpose(0, 1)
        return x, (h_n, c_n)

    def _layer_states(self, x, hidden) -> list:
        """Each layer's (h, c): zeros (quantized with scale 1.0, zero point 0 for a
        quantized input), the (h_0, c_0) given split per layer, or a list given per layer."""
        ember = _ops()
        directions = 2 if self.bidirectional else 1
        batch = x.shape[1]
        if hidden is None:
            zeros = ember.zeros(directions, batch, self.hidden_size)
            if directions == 1:
                zeros = zeros.squeeze(0)
            if x.is_quantized:
                zeros = ember.quantize_per_tensor(zeros, 1.0, 0, x.dtype)
            return [(zeros, zeros)] * self.num_layers
        if not isinstance(hidden[0], Tensor):
            return list(hidden)
        shape = (self.num_layers, directions, batch, self.hidden_size)
        hx, cx = hidden[0].reshape(*shape), hidden[1].reshape(*shape)
        return [(hx[i].squeeze(0), cx[i].squeeze(0)) for i in range(self.num_layers)]

    @classmethod
    def from_float(cls, other, qconfig=None, split_gates: bool = False):
        """The observed LSTM of a float nn.LSTM: same weights, observers inserted
        (`prepare`, or `prepare_qat` for a module in training mode)."""
        if not isinstance(other, cls._FLOAT_MODULE):
            raise TypeError(f"quantizable LSTM.from_float expects nn.LSTM, got "
                            f"{type(other).__name__}")
        if not hasattr(other, "qconfig") and not qconfig:
            raise ValueError("quantizable LSTM.from_float: the float LSTM must have a "
                             "qconfig (or pass qconfig=)")
        observed = cls(other.input_size, other.hidden_size, other.num_layers, other.bias,
                       other.batch_first, other.dropout, other.bidirectional,
                       split_gates=split_gates)
        observed.qconfig = getattr(other, "qconfig", qconfig)
        for idx in range(other.num_layers):
            observed.layers[idx] = _LSTMLayer.from_float(other, idx, qconfig,
                                                         batch_first=False,
                                                         split_gates=split_gates)
        from ....quantization.quantize import prepare, prepare_qat
        if other.training:
            observed.train()
            return prepare_qat(observed, inplace=True)
        observed.eval()
        return prepare(observed, inplace=True)

    @classmethod
    def from_observed(cls, other):
        raise NotImplementedError("It looks like you are trying to convert a "
                                  "non-quantizable LSTM module. Please, see the examples "
                                  "on quantizable LSTMs.")
