"""ember.compile on layout-sensitive graphs: permutes, reductions, broadcasts, layer_norm and
softmax on shapes with size-1 (and size-0) dims, compiled (LLVM) against eager.

The regression cases are the smallest graphs that gave wrong values before their fix; the
property test builds random graphs of the same ops to find the next one."""
import warnings

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from tests.op_samples import assert_arrays_close


def _assert_compiled_equals_eager(fn, *tensors, tol=1e-4):
    with ember.no_grad():
        want = fn(*tensors)
        got = ember.compile(fn)(*tensors)
    assert tuple(got.shape) == tuple(want.shape) and got.dtype == want.dtype
    assert_arrays_close(got.numpy(), want.numpy(), rtol=tol, atol=tol)


def _centered_channels_last(x):
    """A reduction over channels of a channels-last view, permuted back to NCHW."""
    nhwc = x.permute(0, 2, 3, 1)
    return (nhwc - nhwc.sum(3, keepdim=True) / x.shape[1]).permute(0, 3, 1, 2)


@pytest.mark.parametrize("shape", [(2, 8, 1, 1), (2, 8, 2, 2), (2, 8, 1, 3)])
def test_reduce_broadcast_permute_back(shape):
    # [2,8,1,1]: the permuted-back output [2,8,1,1] has the rank of the keepdim result
    # [2,1,1,1], and the kernel stored it as that (one channel of eight): wrong values
    _assert_compiled_equals_eager(_centered_channels_last, ember.randn(*shape))


def _layer_norm_2d(x, weight, bias):
    """ConvNeXt's LayerNorm2d: layer_norm over channels of a channels-last view."""
    y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), weight, bias, 1e-6)
    return y.permute(0, 3, 1, 2)


@pytest.mark.parametrize("spatial", [1, 2])
def test_layer_norm_2d(spatial):
    # was NaN at 1x1 (the same store of a [N,C,1,1] output as a keepdim result)
    c = 768 if spatial == 1 else 16
    _assert_compiled_equals_eager(_layer_norm_2d, ember.randn(2, c, spatial, spatial),
                                  ember.randn(c), ember.randn(c))


def test_relu_keeps_nan():
    # the kernel computed `x > 0 ? x : 0`, which maps NaN to 0; PyTorch's relu keeps NaN
    x = ember.tensor([float("nan"), -1.0, 2.0, 0.0])
    _assert_compiled_equals_eager(lambda t: t.relu() * 2, x)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_over_an_empty_dim(name):
    # eager (NumPy's max has no identity) and the decomposition (amax) raised; torch gives []
    import torch
    fn = getattr(ember, name)
    assert tuple(fn(ember.randn(2, 0, 3), 1).shape) == \
        tuple(getattr(torch, name)(torch.randn(2, 0, 3), 1).shape)
    _assert_compiled_equals_eager(lambda t: fn(t, 1), ember.randn(2, 0, 3))


def test_flatten_of_an_empty_tensor_in_a_kernel():
    # the reshape-as-view stride rule indexed past the end of its size list for 0 elements
    _assert_compiled_equals_eager(lambda t: t.flatten(0).sum(0) + 1, ember.randn(1, 4, 0))


# --- random graphs --------------------------------------------------------------------------
# A program is a list of steps, each applied to the latest value (and, for binary steps, an
# earlier one whose shape broadcasts with it). Programs are drawn against the shapes an eager
# run produces, and replayed by `_run_program` on ember (eager, compiled) and on torch.
_REDUCTIONS = ("sum", "mean", "amax")
_BINARY = ("add", "sub", "mul", "maximum", "div_pos")
_UNARY = ("relu", "tanh", "sigmoid", "softplus", "relu6", "hardtanh", "leaky_relu", "elu", "gelu",
          "silu")
_STEPS = ("permute", "reduce", "center", "binary", "unary", "layer_norm", "softmax",
          "log_softmax", "view")
# movement ops: (name, how to apply it, which shapes allow it)
_VIEWS = ("transpose", "unsqueeze", "squeeze", "flatten", "expand", "contiguous", "slice")


def _broadcast_shape(a, b):
    """The broadcast of two shapes, or None when they do not broadcast."""
    out = []
    for x, y in zip((1,) * (len(b) - len(a)) + tuple(a), (1,) * (len(a) - len(b)) + tuple(b)):
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return tuple(out)


def _apply(lib, F, step, values, weights):
    """One step of a program on `lib` (ember or torch); returns the new value."""
    kind, p = step
    x = values[-1]
    if kind == "permute":
        return x.permute(*p["dims"])
    if kind == "reduce":
        return getattr(lib, p["op"])(x, p["dims"], keepdim=p["keepdim"])
    if kind == "center":
        return x - getattr(lib, p["op"])(x, p["dims"], keepdim=True)
    if kind == "binary":
        other = values[p["other"]]
        if p["op"] == "div_pos":
            return x / (other.abs() + 1)
        return getattr(lib, p["op"])(x, other)
    if kind == "unary":
        return getattr(F, p["op"])(x)
    if kind == "view":
        return _view(x, p)
    if kind == "layer_norm":
        w, b = (weights[i] if i is not None else None for i in p["weights"])
        return F.layer_norm(x, p["normalized_shape"], w, b)
    return getattr(lib, kind)(x, p["dim"])


def _view(x, p):
    name, a = p["op"], p["arg"]
    if name == "transpose":
        return x.transpose(a % x.ndim, (a // 4) % x.ndim)
    if name == "unsqueeze":
        return x.unsqueeze(a % (x.ndim + 1))
    if name == "squeeze":
        return x.squeeze(a % x.ndim)
    if name == "flatten":
        return x.flatten(a % x.ndim)
    if name == "expand":                       # grow the size-1 dims to 3
        return x.expand(*[3 if s == 1 else s for s in x.shape])
    if name == "contiguous":
        return x.contiguous()
    dim = a % x.ndim                           # slice: every other element from 1
    return x.narrow(dim, 0, x.shape[dim]) if x.shape[dim] < 2 else x[(slice(None),) * dim +
                                                                       (slice(1, None, 2),)]


def _run_program(lib, F, program, x, weights):
    values = [x]
    for step in program:
        values.append(_apply(lib, F, step, values, weights))
    return values[-1]


def _draw_step(data, st, shape, shapes):
    """A step legal on a value of `shape` (`shapes`: the shapes of all values so far)."""
    ndim = len(shape)
    kinds = _STEPS if ndim else ("binary", "unary")
    kind = data.draw(st.sampled_from(kinds))
    if kind == "permute":
        return kind, {"dims": tuple(data.draw(st.permutations(range(ndim))))}
    if kind in ("reduce", "center"):
        dims = sorted(data.draw(st.sets(st.integers(0, ndim - 1), min_size=1)))
        ops = _REDUCTIONS if all(shape[d] for d in dims) else ("sum", "mean")
        return kind, {"op": data.draw(st.sampled_from(ops)), "dims": dims,
                      "keepdim": data.draw(st.booleans())}
    if kind == "binary":
        partners = [i for i, s in enumerate(shapes) if _broadcast_shape(s, shape) is not None]
        return kind, {"op": data.draw(st.sampled_from(_BINARY)),
                      "other": data.draw(st.sampled_from(partners))}
    if kind == "unary":
        return kind, {"op": data.draw(st.sampled_from(_UNARY))}
    if kind == "view":
        return kind, {"op": data.draw(st.sampled_from(_VIEWS)), "arg": data.draw(
            st.integers(0, 15))}
    if kind == "layer_norm":
        k = data.draw(st.integers(1, min(ndim, 2)))
        return kind, {"normalized_shape": tuple(shape[-k:]),
                      "affine": data.draw(st.booleans())}
    return kind, {"dim": data.draw(st.integers(-ndim, ndim - 1))}


def _input(data, st, rng):
    """A random float32 input with size-1 dims likely, a size-0 dim sometimes, a NaN
    sometimes, and a random memory layout (a permuted view of a contiguous tensor)."""
    sizes = st.sampled_from([1, 1, 2, 3]) | st.sampled_from([0, 4])
    shape = tuple(data.draw(st.lists(sizes, min_size=1, max_size=4)))
    order = data.draw(st.permutations(range(len(shape))))
    values = rng.standard_normal([shape[d] for d in order]).astype(np.float32)
    if values.size and data.draw(st.integers(0, 4)) == 0:
        values.flat[data.draw(st.integers(0, values.size - 1))] = np.nan
    stored = ember.from_numpy(values)
    inverse = [order.index(d) for d in range(len(shape))]
    return stored.permute(*inverse)


def _draw_program(data, st, x):
    """Steps drawn one at a time against the shapes eager ember gives; layer_norm weights
    become extra inputs."""
    program, weights, values = [], [], [x]
    for _ in range(data.draw(st.integers(1, 5))):
        kind, p = _draw_step(data, st, tuple(values[-1].shape), [tuple(v.shape) for v in values])
        if kind == "layer_norm":
            ids = []
            for use in (p.pop("affine"), data.draw(st.booleans())):
                ids.append(len(weights) if use else None)
                if use:
                    weights.append(ember.randn(*p["normalized_shape"]))
            p["weights"] = tuple(ids)
        program.append((kind, p))
        with ember.no_grad():
            values.append(_apply(ember, F, program[-1], values, weights))
    return program, weights


def _torch_run(program, x, weights):
    import torch
    to_torch = lambda t: torch.from_numpy(np.array(t.numpy()))  # noqa: E731
    tx = to_torch(x).as_strided(tuple(x.shape), tuple(x.stride()))
    out = _run_program(torch, torch.nn.functional, program, tx, [to_torch(w) for w in weights])
    return out.numpy()


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_EXAMPLES = int(__import__("os").environ.get("EMBER_PROPERTY_EXAMPLES", "25"))


@settings(deadline=None, max_examples=_EXAMPLES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_layout_graphs_compiled_equal_eager(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = _input(data, st, rng)
    program, weights = _draw_program(data, st, x)
    fn = lambda x, *ws: _run_program(ember, F, program, x, ws)  # noqa: E731
    with ember.no_grad(), np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # eager mean of an empty slice
        want = fn(x, *weights)
        got = ember.compile(fn)(x, *weights)
        expected = _torch_run(program, x, weights)
    note = f"input {tuple(x.shape)} strides {x.stride()}; program {program}"
    assert tuple(got.shape) == tuple(want.shape), note
    assert_arrays_close(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
    assert_arrays_close(want.numpy(), expected, rtol=1e-4, atol=1e-4)


def _matmul_plus_row_sum(m, r):
    return ember.matmul(m, r) + m.sum([1], keepdim=True)


def _conv_times_input_mean(x, w):
    return F.conv2d(x, w) * x.mean().exp()


@pytest.mark.parametrize("fn,shapes", [
    (_matmul_plus_row_sum, [(2, 4), (4, 3)]),
    (_conv_times_input_mean, [(2, 3, 8, 8), (4, 3, 3, 3)]),
])
def test_reduction_of_an_extern_operand_after_the_extern(fn, shapes):
    # the reduction kernel of the epilogue stored the [2,3] result as the [2,1] keepdim
    # one (one column of three written; found by compiled embedding_bag(mode="mean"))
    _assert_compiled_equals_eager(fn, *[ember.randn(*s) for s in shapes])
