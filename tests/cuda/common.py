"""Shared by the emulated (CPU) and real (GPU) CUDA tests: registry samples on a device
compared with CPU eager."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.ir.registry import OPS, Tag

# ops whose results legitimately differ between two runs (random draws are equal only
# when both devices consume the generator alike; these do not promise it)
NONDETERMINISTIC = {"empty", "empty_like", "empty_strided", "new_empty"}


# ops whose result is a quantized tensor: quantized tensors live on the CPU (no CUDA int8
# kernels yet); tests/quant checks them there
QUANTIZED_RESULT = {"quantize_per_tensor", "quantize_per_channel"}


def sample_cases(per_op: int = 1, names=None):
    rng = np.random.default_rng(0)
    cases = []
    for op in sorted(OPS.values(), key=lambda o: o.name):
        if op.samples is None or op.name in NONDETERMINISTIC or op.name in QUANTIZED_RESULT:
            continue
        if names is not None and op.name not in names:
            continue
        for i, sample in enumerate(op.samples(rng)[:per_op]):
            cases.append(pytest.param(op, sample, id=f"{op.name}-{i}"))
    return cases


def _to(value, device, grad: bool):
    if isinstance(value, np.ndarray):
        t = ember.tensor(value).to(device)
        if grad and t.dtype.is_floating_point:
            t = t.detach().requires_grad_(True)
        return t
    if isinstance(value, list) and any(isinstance(v, np.ndarray) for v in value):
        return [_to(v, device, grad) for v in value]
    return value


def run_sample(op, sample, device: str, grad: bool = False):
    """(inputs, result) of op on the sample's arrays moved to `device` (seeded RNG)."""
    args = [_to(a, device, grad) for a in sample.args]
    kwargs = {k: _to(v, device, grad) for k, v in sample.kwargs.items()}
    if op.has_tag(Tag.INPLACE):
        args[0] = args[0].detach().clone()
    ember.manual_seed(0)
    return args, op(*args, **kwargs)


def host(value):
    if isinstance(value, ember.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return [host(v) for v in value]
    return value


def tolerance(dtype) -> dict:
    if dtype in (np.float16,) or str(dtype) == "bfloat16":
        return dict(rtol=1e-2, atol=1e-2)
    if dtype in (np.float32, np.complex64):
        return dict(rtol=1e-4, atol=1e-5)
    return dict(rtol=1e-10, atol=1e-12)


def assert_same(got, want, where: str = ""):
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
        return
    if not isinstance(want, np.ndarray):
        assert got == want, where
        return
    assert got.shape == want.shape and got.dtype == want.dtype, \
        f"{where}: {got.dtype}{list(got.shape)} vs {want.dtype}{list(want.shape)}"
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, equal_nan=True, err_msg=where,
                                   **tolerance(want.dtype))
    else:
        np.testing.assert_array_equal(got, want, err_msg=where)


def check_op_on_device(op, sample, device: str):
    """Values on `device` equal CPU eager's; views stay views of their input's storage."""
    if not _takes_tensors(op, sample):
        if "device" not in [a.name for a in op.schema.args]:
            pytest.skip("a factory without a device argument")
        sample = type(sample)(sample.args, {**sample.kwargs, "device": device})
    try:
        _, want = run_sample(op, sample, "cpu")
    except Exception as err:  # noqa: BLE001 - the CPU rejects the sample: so must the device
        with pytest.raises(type(err)):
            run_sample(op, sample, device)
        return
    args, got = run_sample(op, sample, device)
    if isinstance(got, ember.Tensor):
        assert got.device == ember.device(device) or got.is_cuda, op.name
        assert tuple(got.shape) == tuple(want.shape)
        if op.has_tag(Tag.VIEW) and want._base is not None:
            assert got.untyped_storage() is args[0].untyped_storage(), f"{op.name}: not a view"
    assert_same(host(got), host(want), op.name)


def _takes_tensors(op, sample) -> bool:
    values = list(sample.args) + list(sample.kwargs.values())
    return any(isinstance(v, np.ndarray) or (isinstance(v, list) and
                                             any(isinstance(x, np.ndarray) for x in v))
               for v in values)


def check_grads_on_device(op, sample, device: str):
    """Gradients of sum(outputs) w.r.t. float inputs on `device` equal CPU's."""
    grads = []
    for dev in ("cpu", device):
        args, out = run_sample(op, sample, dev, grad=True)
        outs = out if isinstance(out, (list, tuple)) else [out]
        outs = [o for o in outs if isinstance(o, ember.Tensor) and o.requires_grad]
        if not outs:
            pytest.skip("no differentiable output")
        sum(o.sum() for o in outs).backward()
        leaves = [a for a in args if isinstance(a, ember.Tensor) and a.requires_grad]
        grads.append([host(a.grad) if a.grad is not None else None for a in leaves])
    for i, (g, w) in enumerate(zip(grads[1], grads[0])):
        if w is None:
            assert g is None
        else:
            assert_same(g, w, f"{op.name} grad {i}")
