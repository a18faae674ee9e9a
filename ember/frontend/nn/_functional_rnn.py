"""torch's functional RNN entry points (`torch.lstm`, `torch.gru`, `torch.rnn_tanh`,
`torch.rnn_relu`) and SyncBatchNorm's statistics ops (`torch.batch_norm_stats`,
`batch_norm_elemt`, `batch_norm_gather_stats_with_counts`, `batch_norm_backward_reduce`,
`batch_norm_backward_elemt`), written with ember ops (autograd and tracing see them).

The RNN functions run nn.RNNBase's own layer loop over a flat parameter list in torch's
order (per layer, per direction: w_ih, w_hh, then b_ih, b_hh when `has_biases`, then
w_hr for an LSTM with projections).
"""
from __future__ import annotations

from ...ir.registry import OPS
from .modules.rnn import RNNBase


class _FlatRNN:
    """What RNNBase's layer loop reads, from the functional arguments."""
    _run_layers = RNNBase._run_layers
    _run_direction = RNNBase._run_direction
    _cell = RNNBase._cell
    _suffixes = RNNBase._suffixes
    _directions = RNNBase._directions

    def __init__(self, mode, num_layers, dropout, train, bidirectional):
        self.mode, self.num_layers = mode, num_layers
        self.dropout, self.training, self.bidirectional = float(dropout), train, bidirectional


def _weights(rnn: _FlatRNN, params, has_biases: bool) -> dict:
    per = 2 + 2 * bool(has_biases)
    units = rnn.num_layers * rnn._directions
    params = list(params)
    projected = len(params) == units * (per + 1)
    if len(params) != units * per and not projected:
        raise RuntimeError(f"{rnn.mode.lower()}: expected {units * per} parameters for "
                           f"{rnn.num_layers} layer(s), has_biases={has_biases}, "
                           f"bidirectional={rnn.bidirectional}, got {len(params)}")
    kinds = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if has_biases else []) + \
        (["weight_hr"] if projected else [])
    weights, i = {}, 0
    for layer in range(rnn.num_layers):
        for suffix in rnn._suffixes():
            for kind in kinds:
                weights[f"{kind}_l{layer}{suffix}"] = params[i]
                i += 1
    return weights


def _run(mode, input, states, params, has_biases, num_layers, dropout, train,
         bidirectional, batch_first):
    if not hasattr(states[0], "ndim"):      # torch's PackedSequence form: (data, batch_sizes)
        raise NotImplementedError(f"ember.{mode.lower()}(data, batch_sizes, ...) (the packed "
                                  f"form) is not supported; use nn.{mode.split('_')[0]} with "
                                  f"a PackedSequence")
    rnn = _FlatRNN(mode, num_layers, dropout, train, bidirectional)
    weights = _weights(rnn, params, has_biases)
    x = input.transpose(0, 1) if batch_first else input
    output, final = rnn._run_layers(x, list(states), None, weights)
    if batch_first:
        output = output.transpose(0, 1)
    return output, final


def lstm(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
         batch_first):
    """torch.lstm: (output, h_n, c_n) of a multi-layer LSTM over flat parameters."""
    output, (h, c) = _run("LSTM", input, hx, params, has_biases, num_layers, dropout,
                          train, bidirectional, batch_first)
    return output, h, c


def gru(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
        batch_first):
    """torch.gru: (output, h_n)."""
    return _run("GRU", input, [hx], params, has_biases, num_layers, dropout, train,
                bidirectional, batch_first)


def rnn_tanh(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
             batch_first):
    """torch.rnn_tanh: (output, h_n)."""
    return _run("RNN_TANH", input, [hx], params, has_biases, num_layers, dropout, train,
                bidirectional, batch_first)


def rnn_relu(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
             batch_first):
    """torch.rnn_relu: (output, h_n)."""
    return _run("RNN_RELU", input, [hx], params, has_biases, num_layers, dropout, train,
                bidirectional, batch_first)


# --- SyncBatchNorm's statistics ops ---------------------------------------------------------
def _reduce_dims(input) -> list:
    return [d for d in range(input.ndim) if d != 1]


def _per_channel(t, input):
    """A (C,) tensor shaped to broadcast over `input`'s channel dimension."""
    return t.reshape([1, -1] + [1] * (input.ndim - 2))


def batch_norm_stats(input, eps):
    """(mean, invstd) per channel: invstd = 1 / sqrt(biased variance + eps)."""
    dims = _reduce_dims(input)
    mean = input.mean(dims)
    var = OPS["var"](input, dims, correction=0)
    return mean, (var + eps).rsqrt()


def batch_norm_elemt(input, weight, bias, mean, invstd, eps):
    """(input - mean) * invstd * weight + bias, per channel."""
    out = (input - _per_channel(mean, input)) * _per_channel(invstd, input)
    if weight is not None:
        out = out * _per_channel(weight, input)
    if bias is not None:
        out = out + _per_channel(bias, input)
    return out


def batch_norm_gather_stats_with_counts(input, mean, invstd, running_mean, running_var,
                                        momentum, eps, counts):
    """Combine per-process (mean, invstd, count) rows into the global (mean, invstd), and
    update the running statistics (unbiased variance) in place."""
    counts = counts.to(mean.dtype).reshape(-1, 1)
    total = counts.sum()
    global_mean = (mean * counts).sum(0) / total
    var_rows = (invstd.reciprocal() ** 2 - eps)           # each process's biased variance
    m2 = (counts * (var_rows + (mean - global_mean) ** 2)).sum(0)
    var = m2 / total
    from ..autograd.grad_mode import no_grad
    with no_grad():
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(global_mean.to(running_mean.dtype) * momentum)
        if running_var is not None:
            unbiased = m2 / (total - 1)
            running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype) * momentum)
    return global_mean, (var + eps).rsqrt()


def batch_norm_backward_reduce(grad_out, input, mean, invstd, weight, input_g, weight_g,
                               bias_g):
    """(sum_dy, sum_dy_xmu, grad_weight, grad_bias) per channel; the last three as
    requested by the flags (None otherwise, as torch's undefined tensors)."""
    dims = _reduce_dims(input)
    sum_dy = grad_out.sum(dims)
    sum_dy_xmu = (grad_out * (input - _per_channel(mean, input))).sum(dims)
    grad_weight = sum_dy_xmu * invstd if weight_g else None
    grad_bias = sum_dy if bias_g else None
    if not input_g:
        sum_dy = sum_dy_xmu = None
    return sum_dy, sum_dy_xmu, grad_weight, grad_bias


def batch_norm_backward_elemt(grad_out, input, mean, invstd, weight, sum_dy, sum_dy_xmu,
                              count):
    """The input gradient from the reduced sums over every process's `count` rows."""
    total = count.sum().to(input.dtype) if hasattr(count, "sum") else float(sum(count))
    mean_dy = _per_channel(sum_dy / total, input)
    mean_dy_xmu = _per_channel(sum_dy_xmu / total, input)
    inv = _per_channel(invstd, input)
    xmu = input - _per_channel(mean, input)
    grad = grad_out - mean_dy - xmu * inv * inv * mean_dy_xmu
    scale = inv if weight is None else inv * _per_channel(weight, input)
    return grad * scale


TOP_LEVEL = {f.__name__: f for f in (
    lstm, gru, rnn_tanh, rnn_relu, batch_norm_stats, batch_norm_elemt,
    batch_norm_gather_stats_with_counts, batch_norm_backward_reduce,
    batch_norm_backward_elemt)}
