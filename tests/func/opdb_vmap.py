"""vmap over PyTorch's OpInfo samples (op_db), the check of functorch's
`test_op_has_batch_rule` re-expressed for ember: for an entry and one float64 sample,
two examples (the sample and a copy with its float tensors scaled) are stacked and the
op is vmapped over them; the result must equal the op run eagerly on each example.

Two ways of batching: "all": every tensor argument batched at dim 0; "input": only the
sample's input batched, at its last dim (dim 0 for a 0-d input), the other arguments
shared. Used by
test_func_suite_opdb.py; `python tests/func/opdb_vmap.py` surveys every entry."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import opinfo  # noqa: E402

# entries never vmapped here: random values, uninitialized memory, in-place resizing,
# data-dependent output shapes (torch's vmap refuses them too), Python (non-tensor)
# results, physical strides
SKIP = opinfo.RANDOM_OPS | {
    "nonzero", "nonzero_static", "unique", "unique_consecutive", "masked_select",
    "repeat_interleave", "bincount", "argwhere", "histogram", "histogramdd",
    "item", "tolist", "equal", "allclose", "as_strided", "as_strided_scatter",
    "as_strided_copy", "as_strided_partial_views", "new_empty", "new_empty_strided",
    "empty_like", "storage", "data_ptr", "resize_",
}


def resolve(info):
    """The ember callable for an entry, as tools/opinfo.check_entry builds it."""
    fn = opinfo.resolve(info.name)
    key = f"{info.name}.{info.variant_test_name}" if info.variant_test_name else info.name
    adapter = opinfo.ARG_ADAPTERS.get(key) or opinfo.ARG_ADAPTERS.get(info.name)
    return adapter(fn) if fn is not None and adapter is not None else opinfo.ported(info, fn)


def first_samples(info, count=1):
    import torch
    out = []
    if torch.float64 not in info.supported_dtypes("cpu"):
        return out
    # the generator itself: OpInfo.sample_inputs wraps it in a tracker that inspects the
    # whole call stack per sample, which under pytest costs ~0.4 s an entry
    torch.manual_seed(0)
    for sample in info.sample_inputs_func(info, "cpu", torch.float64, False):
        out.append(sample)
        if len(out) == count:
            break
    return out


def _is_tensor(v) -> bool:
    import torch
    return isinstance(v, torch.Tensor)


def _scaled(v):
    import torch
    if isinstance(v, torch.Tensor) and v.is_floating_point():
        return v.detach() * 1.05
    if isinstance(v, (list, tuple)) and any(_is_tensor(x) for x in v):
        return type(v)(_scaled(x) for x in v)
    return v


def _ember_plain(v):
    """A torch value as ember's (plain contiguous copies: no aliasing kept)."""
    import ember
    import torch
    if isinstance(v, torch.Tensor):
        return ember.tensor(opinfo.as_numpy(v.detach().resolve_conj().resolve_neg()))
    if isinstance(v, (list, tuple)) and any(_is_tensor(x) for x in v):
        return type(v)(_ember_plain(x) for x in v)
    return opinfo.to_ember(v)


def _has_tensor(v) -> bool:
    return _is_tensor(v) or (isinstance(v, (list, tuple)) and any(_is_tensor(x) for x in v))


def _stack(a, b, dim):
    import ember
    if isinstance(a, (list, tuple)):
        return type(a)(_stack(x, y, dim) for x, y in zip(a, b))
    return ember.stack([a, b], dim)


def examples(sample, mode):
    """(example 0, example 1, in_dims) as lists of torch values: tensor kwargs become
    trailing positional arguments (vmap passes kwargs unbatched)."""
    tensor_kw = sorted(k for k, v in sample.kwargs.items() if _has_tensor(v))
    first = [sample.input, *sample.args] + [sample.kwargs[k] for k in tensor_kw]
    if mode == "all":
        second = [_scaled(v) for v in first]
        dims = [0 if _has_tensor(v) else None for v in first]
    else:
        second = [_scaled(first[0])] + first[1:]
        dims = [_input_dim(first[0])] + [None] * (len(first) - 1)
    other_kw = {k: v for k, v in sample.kwargs.items() if k not in tensor_kw}
    return first, second, dims, tensor_kw, other_kw


def _input_dim(value) -> int:
    """The input's last dim, or dim 0 where a tensor in it is 0-d."""
    tensors = value if isinstance(value, (list, tuple)) else [value]
    return -1 if all(t.dim() > 0 for t in tensors if _is_tensor(t)) else 0


def _leaves(result):
    import ember
    from ember.ir.symbolic import SymbolicTensor
    if isinstance(result, (ember.Tensor, SymbolicTensor)):
        return [result]
    if isinstance(result, (list, tuple)):
        return [x for r in result for x in _leaves(r)]
    raise TypeError(f"non-tensor output {type(result).__name__}")


def check(info, sample, mode) -> str | None:
    """None when vmap over two examples equals the per-example results, else why not;
    raises `Unsuited` for samples this check cannot use."""
    import ember
    import ember.func
    fn = resolve(info)
    first, second, dims, tensor_kw, other_kw = examples(sample, mode)
    if mode == "input" and not _has_tensor(first[0]):
        raise Unsuited("the input is not a tensor")
    if not any(_has_tensor(v) for v in first):
        raise Unsuited("no tensor arguments")
    n_pos = len(first) - len(tensor_kw)

    def call(*args):
        kw = dict(zip(tensor_kw, args[n_pos:]), **opinfo.to_ember(other_kw))
        return fn(*args[:n_pos], **kw)
    try:
        import torch
        call_t = lambda *a: info.op(*a[:n_pos], **dict(zip(tensor_kw, a[n_pos:])), **other_kw)  # noqa: E731
        with torch.no_grad():
            call_t(*first)
            call_t(*second)
        e0 = [_ember_plain(v) for v in first]
        e1 = [_ember_plain(v) for v in second]
        with ember.no_grad():
            per = [_leaves(call(*e0)), _leaves(call(*e1))]
    except Exception as exc:  # noqa: BLE001 - torch or ember eager rejects it: not a case
        raise Unsuited(f"eager call failed: {type(exc).__name__}: {exc}") from exc
    batched = [_stack(a, b, d) if d is not None else a for a, b, d in zip(e0, e1, dims)]
    try:
        with ember.no_grad():
            got = _leaves(ember.func.vmap(call, in_dims=tuple(dims))(*batched))
    except Exception as exc:  # noqa: BLE001 - the failure is the finding
        return Raised(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    return _compare(got, per)


class Raised(str):
    """check()'s answer when ember's vmap raised (a str: the exception's first line)."""


def torch_refuses(info, sample, mode) -> bool:
    """Whether torch.func.vmap raises on the same batched arguments."""
    import torch
    first, second, dims, tensor_kw, other_kw = examples(sample, mode)
    n_pos = len(first) - len(tensor_kw)

    def call(*a):
        return info.op(*a[:n_pos], **dict(zip(tensor_kw, a[n_pos:])), **other_kw)

    def stack(a, b, d):
        if isinstance(a, (list, tuple)):
            return type(a)(stack(x, y, d) for x, y in zip(a, b))
        return torch.stack([a, b], d)
    batched = [stack(a, b, d) if d is not None else a for a, b, d in zip(first, second, dims)]
    try:
        with torch.no_grad():
            torch.func.vmap(call, in_dims=tuple(dims))(*batched)
    except Exception:  # noqa: BLE001 - any refusal counts
        return True
    return False


def _compare(got, per) -> str | None:
    if len(got) != len(per[0]):
        return f"{len(got)} outputs, expected {len(per[0])}"
    for k, (g, a, b) in enumerate(zip(got, per[0], per[1])):
        want = np.stack([a.detach().numpy(), b.detach().numpy()])
        have = g.numpy()
        if have.shape != want.shape:
            return f"output {k}: shape {have.shape}, expected {want.shape}"
        if have.dtype != want.dtype:
            return f"output {k}: dtype {have.dtype}, expected {want.dtype}"
        if not np.allclose(have, want, rtol=1e-7, atol=1e-9, equal_nan=True):
            return f"output {k}: values differ (max {np.nanmax(np.abs(have - want)):.3g})"
    return None


class Unsuited(Exception):
    """The sample cannot be used for this check (not a failure of vmap)."""


def candidates():
    """(key, info) for every in-scope, resolvable, non-random entry with float64 samples."""
    out = []
    for key, info in sorted(opinfo.entries().items()):
        if not opinfo.in_scope(info.name) or info.name in SKIP or key in SKIP:
            continue
        if resolve(info) is None:
            continue
        out.append((key, info))
    return out


def main():
    results = {}
    start = time.time()
    for key, info in candidates():
        for mode in ("all", "input"):
            t = time.time()
            try:
                samples = first_samples(info)
                if not samples:
                    continue
                why = check(info, samples[0], mode)
            except Unsuited as exc:
                why = f"UNSUITED {exc}"
            except Exception as exc:  # noqa: BLE001
                why = f"CRASH {type(exc).__name__}: {exc}"
            results[(key, mode)] = why
            print(f"{time.time() - t:6.3f} {key} [{mode}] {why or 'ok'}", flush=True)
    print(f"total {time.time() - start:.1f}s; ok {sum(v is None for v in results.values())}"
          f" of {len(results)}")


if __name__ == "__main__":
    main()


# --- vmap of vjp (functorch's test_vmapvjp) ------------------------------------------------
def _cotangent(out, k: int):
    import ember
    n = max(out.numel(), 1)
    values = np.linspace(-1.0, 1.0, n)[:out.numel()].reshape(tuple(out.shape)) * (1 + 0.25 * k)
    return ember.tensor(values).to(out.dtype)


def _float_leaves(result):
    return [r for r in _leaves(result) if r.dtype.is_floating_point]


def check_vjp(info, sample) -> str | None:
    """vmap over two examples of vjp(op) (cotangents batched too) against each example's
    eager autograd.grad; raises Unsuited where the sample has nothing to differentiate."""
    import ember
    import ember.func
    fn = resolve(info)
    first, second, dims, tensor_kw, other_kw = examples(sample, "all")
    diff = [i for i, v in enumerate(first) if _is_tensor(v) and v.is_floating_point()]
    if not diff:
        raise Unsuited("no floating point tensor argument")
    n_pos = len(first) - len(tensor_kw)

    def call(*args):
        kw = dict(zip(tensor_kw, args[n_pos:]), **opinfo.to_ember(other_kw))
        return fn(*args[:n_pos], **kw)
    per, cots = [], []
    try:
        for k, example in enumerate((first, second)):
            args = [_ember_plain(v) for v in example]
            for i in diff:
                args[i].requires_grad_(True)
            floats = _float_leaves(call(*args))
            keep = [j for j, o in enumerate(floats) if o.requires_grad]
            outs = [floats[j] for j in keep]
            if not outs:
                raise Unsuited("no differentiable output")
            cots.append([_cotangent(o, k) for o in outs])
            grads = ember.autograd.grad(outs, [args[i] for i in diff], cots[-1],
                                        allow_unused=True)
            per.append([g if g is not None else ember.zeros_like(args[i])
                        for g, i in zip(grads, diff)])
    except Unsuited:
        raise
    except Exception as exc:  # noqa: BLE001 - eager autograd rejects it: not a case
        raise Unsuited(f"eager gradient failed: {type(exc).__name__}: {exc}") from exc

    def one(*values):
        args, example_cots = list(values[:len(first)]), values[len(first):]

        def f(*d):
            a = list(args)
            for i, v in zip(diff, d):
                a[i] = v
            floats = _float_leaves(call(*a))
            return tuple(floats[j] for j in keep)      # the outputs eager autograd tracks
        return ember.func.vjp(f, *[args[i] for i in diff])[1](tuple(example_cots))
    e0 = [_ember_plain(v) for v in first]
    e1 = [_ember_plain(v) for v in second]
    batched = [_stack(a, b, 0) if d is not None else a for a, b, d in zip(e0, e1, dims)]
    stacked_cots = [ember.stack([a, b]) for a, b in zip(*cots)]
    try:
        got = ember.func.vmap(one, in_dims=tuple(dims) + (0,) * len(stacked_cots))(
            *batched, *stacked_cots)
    except Exception as exc:  # noqa: BLE001 - the failure is the finding
        return Raised(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    return _compare(list(got), per)
