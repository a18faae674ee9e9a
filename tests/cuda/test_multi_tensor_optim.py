"""SGD and Adam/AdamW on CUDA parameters: one multi-tensor Triton kernel per parameter group
(ember/codegen/triton/multi_tensor.py), checked against the per-tensor update
(`foreach=False`, one kernel per operation) and against torch on the CPU.

Exactness: under Triton's interpreter (CI) the multi-tensor update equals the per-tensor
update bit for bit (same operations, same order, same dtype). Compiled for a GPU, Triton
may contract a multiply and an add into one FMA, so there the two agree to ~1 ulp (the
GPU run compares with rtol 1e-6). Adam with its step on the device (fused=True /
capturable=True) computes the bias corrections in float32 from the step tensor (torch's
fused/capturable math): within 1e-6 relative of the host-step update, not bit-exact.
In CI under TRITON_INTERPRET=1 (tests/cuda/emulation.py); on a GPU via run_on_gpu.sh."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import torch  # noqa: E402

import ember  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402
from ember.runtime.cuda import stream as S  # noqa: E402

from test_compile_cuda import EMULATED, device  # noqa: E402,F401 - the emulated/real CUDA fixture
from tests.cuda.sm90_cubins import assert_launchable, compile_for_sm90  # noqa: E402

SHAPES = [(3, 4), (7,), (2, 3, 5), (1100,), (1,)]     # 1100: two blocks of one tensor


def _data(dtype=np.float32, steps=3, shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return weights, grads


class _Launches:
    """Counts eager_cuda.launch calls by kernel name (the multi-tensor kernels are
    launched through it, on a GPU as under emulation)."""

    def __init__(self, mp):
        self.names = []
        real = eager_cuda.launch

        def spy(generated, tensors, index):
            self.names.append(generated.name)
            return real(generated, tensors, index)
        mp.setattr(eager_cuda, "launch", spy)

    def updates(self):
        return [n for n in self.names if n.startswith("multi_")]


def _run_ember(make_opt, weights, grads, dev, launches=None):
    params = [ember.nn.Parameter(ember.tensor(w).to(dev)) for w in weights]
    opt = make_opt(ember, params)
    per_step = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = ember.tensor(g).to(dev)
        if launches is not None:
            launches.names.clear()
        opt.step()
        if launches is not None:
            per_step.append(launches.updates())
    return [p.detach().cpu().numpy() for p in params], opt, per_step


def _run_torch(make_opt, weights, grads):
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opt = make_opt(torch, params)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
    return [p.detach().numpy() for p in params]


def _same(got, want, exact):
    for a, b in zip(got, want):
        if exact:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


SGD_CASES = [dict(momentum=0.0), dict(momentum=0.9), dict(momentum=0.9, dampening=0.3),
             dict(momentum=0.9, nesterov=True, weight_decay=0.01),
             dict(momentum=0.5, weight_decay=0.1, maximize=True), dict(weight_decay=0.05)]


@pytest.mark.parametrize("kw", SGD_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in
                                                                kw.items()))
def test_sgd_one_launch_equals_per_tensor_and_torch(device, kw, monkeypatch):  # noqa: F811
    weights, grads = _data()

    def make(lib, params, **flags):
        return lib.optim.SGD(params, lr=0.1, **kw, **flags)
    launches = _Launches(monkeypatch)
    got, _, per_step = _run_ember(make, weights, grads, device, launches)
    assert all(len(names) == 1 for names in per_step), per_step   # one launch per group
    per_tensor, _, loop = _run_ember(lambda lib, ps: make(lib, ps, foreach=False), weights,
                                     grads, device, launches)
    assert all(not names for names in loop)                        # foreach=False: the loop
    _same(got, per_tensor, exact=EMULATED)
    _same(got, _run_torch(make, weights, grads), exact=False)


ADAM_CASES = [dict(), dict(amsgrad=True), dict(weight_decay=0.1),
              dict(weight_decay=0.1, amsgrad=True, maximize=True), dict(betas=(0.3, 0.99))]


@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
@pytest.mark.parametrize("kw", ADAM_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in
                                                                 kw.items()) or "default")
def test_adam_one_launch_equals_per_tensor_and_torch(device, cls, kw,  # noqa: F811
                                                     monkeypatch):
    weights, grads = _data()

    def make(lib, params, **flags):
        return getattr(lib.optim, cls)(params, lr=0.01, **kw, **flags)
    launches = _Launches(monkeypatch)
    got, opt, per_step = _run_ember(make, weights, grads, device, launches)
    assert all(len(names) == 1 for names in per_step), per_step
    step = opt.state[opt.param_groups[0]["params"][0]]["step"]
    assert not step.is_cuda and step.item() == 3           # torch's default: a host step
    per_tensor, _, _ = _run_ember(lambda lib, ps: make(lib, ps, foreach=False), weights,
                                  grads, device)
    _same(got, per_tensor, exact=EMULATED)
    _same(got, _run_torch(make, weights, grads), exact=False)


@pytest.mark.parametrize("flag", ["fused", "capturable"])
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_device_step_adam(device, cls, flag, monkeypatch):  # noqa: F811
    """fused=True / capturable=True: the step count lives on the device and the kernel
    increments it; steady-state steps move nothing between host and device."""
    weights, grads = _data(steps=4)

    def make(lib, params, **flags):
        return getattr(lib.optim, cls)(params, lr=0.01, weight_decay=0.05, amsgrad=True,
                                       **flags)
    params = [ember.nn.Parameter(ember.tensor(w).to(device)) for w in weights]
    opt = make(ember, params, **{flag: True})
    gpu_grads = [[ember.tensor(g).to(device) for g in step] for step in grads]
    launches = _Launches(monkeypatch)
    for k, step_grads in enumerate(gpu_grads):
        for p, g in zip(params, step_grads):
            p.grad = g
        launches.names.clear()
        before = S.host_transfers()
        opt.step()
        if k:
            assert launches.names == [launches.updates()[0]]      # the one update kernel
            assert S.host_transfers() == before
    for p in params:
        step = opt.state[p]["step"]
        assert step.is_cuda and step.dtype == ember.float32 and step.item() == len(grads)
    got = [p.detach().cpu().numpy() for p in params]
    _same(got, _run_ember(make, weights, grads, device)[0], exact=False)   # host step
    torch_flags = {flag: True} if flag == "fused" else {}                  # torch CPU
    _same(got, _run_torch(lambda lib, ps: make(lib, ps, **torch_flags), weights, grads),
          exact=False)


def test_float64_and_channels_last_and_many_tensors(device, monkeypatch):  # noqa: F811
    """float64 stays exact (scalars are passed as doubles); dense non-contiguous layouts
    (channels-last) take the kernel; more than one chunk of tensors is several launches."""
    from ember.codegen.triton.multi_tensor import MAX_TENSORS
    shapes = [(3, 2, 2, 2)] + [(5,)] * (MAX_TENSORS + 2)
    weights, grads = _data(np.float64, steps=2, shapes=shapes)

    def make(lib, params, **flags):
        return lib.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01, **flags)

    def run(foreach):
        params = [ember.nn.Parameter(ember.tensor(w).to(device)) for w in weights]
        params[0] = ember.nn.Parameter(params[0].detach().contiguous(
            memory_format=ember.channels_last))
        opt = make(ember, params, foreach=foreach)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = ember.tensor(g).to(device).contiguous(memory_format=p.memory_format
                                                               if p.ndim == 4 else
                                                               ember.contiguous_format)
            launches.names.clear()
            opt.step()
        return [p.detach().cpu().numpy() for p in params]
    launches = _Launches(monkeypatch)
    got = run(None)
    assert len(launches.updates()) == 2 and all("float64" in n for n in launches.updates())
    _same(got, run(False), exact=EMULATED)
    _same(got, _run_torch(make, weights, grads), exact=False)


def test_mixed_groups_fall_back_per_tensor(device, monkeypatch):  # noqa: F811
    """A group the kernel cannot take (float16 parameters) keeps the per-tensor update."""
    weights, grads = _data(np.float16, steps=1)
    launches = _Launches(monkeypatch)
    params = [ember.nn.Parameter(ember.tensor(w).to(device)) for w in weights]
    opt = ember.optim.SGD(params, lr=0.1, momentum=0.9)
    for p, g in zip(params, grads[0]):
        p.grad = ember.tensor(g).to(device)
    opt.step()
    assert not launches.updates()
    for p, w, g in zip(params, weights, grads[0]):       # the first step: w - lr * g
        want = (torch.from_numpy(w) - 0.1 * torch.from_numpy(g)).float().numpy()
        np.testing.assert_allclose(p.detach().cpu().float().numpy(), want, rtol=2e-3,
                                   atol=2e-3)


def test_fused_and_foreach_together_refused():
    p = [ember.nn.Parameter(ember.zeros(2))]
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        ember.optim.SGD(p, lr=0.1, fused=True, foreach=True)
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        ember.optim.AdamW(p, fused=True, foreach=True)


def test_captured_device_step_replays(device, monkeypatch):  # noqa: F811
    """A fused AdamW step recorded once and replayed equals eager steps: no host value
    (step count, bias correction) is baked into the launch. Emulated: the launches are
    recorded and re-run as a graph replays them; on a GPU: ember.cuda.graph."""
    weights, grads = _data(steps=1)

    def fresh():
        params = [ember.nn.Parameter(ember.tensor(w).to(device)) for w in weights]
        for p, g in zip(params, grads[0]):
            p.grad = ember.tensor(g).to(device)
        return params, ember.optim.AdamW(params, lr=0.01, weight_decay=0.1, fused=True)
    eager_params, eager = fresh()
    for _ in range(4):
        eager.step()
    params, opt = fresh()
    opt.step()                                             # warm-up: state and counter
    if EMULATED:
        recorded = []
        with monkeypatch.context() as mp:
            mp.setattr(eager_cuda, "launch", lambda g, ts, i: recorded.append((g, ts, i)))
            opt.step()
        assert len(recorded) == 1
        for _ in range(3):
            eager_cuda.launch(*recorded[0])
    else:
        graph = ember.cuda.CUDAGraph()
        with ember.cuda.graph(graph):
            opt.step()
        for _ in range(3):
            graph.replay()
        ember.cuda.synchronize()
    for a, b in zip(params, eager_params):
        np.testing.assert_array_equal(a.detach().cpu().numpy(), b.detach().cpu().numpy())
    assert opt.state[params[0]]["step"].item() == 4


_KERNEL_IMPORTS = """
from ember.codegen.triton.multi_tensor import (adam_kernel, norm_partials_kernel,
                                               norm_total_kernel, scale_kernel, sgd_kernel,
                                               unscale_kernel)
from ember.ir import dtypes
sizes = (12, 7, 3000)
"""
_KERNELS = """
sgd_kernel(sizes, dtypes.float32, weight_decay=True, momentum=True, first=False,
           nesterov=True, maximize=False),
adam_kernel(sizes, dtypes.float32, weight_decay=True, decoupled=True, amsgrad=True,
            maximize=False, lerp_low=True, device_step=True),
adam_kernel(sizes, dtypes.float64, weight_decay=False, decoupled=False,
            amsgrad=False, maximize=True, lerp_low=False, device_step=False),
norm_partials_kernel(sizes, dtypes.float32, False),
norm_total_kernel(3000, dtypes.float32, False),
norm_total_kernel(5, dtypes.float64, True), scale_kernel(sizes, dtypes.float32),
unscale_kernel(sizes, dtypes.float32)
"""


def test_multi_tensor_kernels_compile_to_sm90_cubins():
    """What CI can check of the GPU path: the kernels compile for sm_90 and take the
    arguments the launcher packs (pointers and float scalars)."""
    results = compile_for_sm90(_KERNEL_IMPORTS, _KERNELS)
    assert len(results) == 8
    assert_launchable(results)


@pytest.mark.parametrize("opt_name", ["AdamW-fused"])     # SGD: test_training_cuda.py
def test_eager_training_step_updates_with_one_launch_and_no_host_op(device, opt_name,  # noqa
                                                                    monkeypatch):
    """small_cnn's eager training step on CUDA: no host fallback (a fallback warns, made an
    error here), one update launch per step, and the CPU's losses and parameters (AdamW's
    parameters against the per-tensor update on the same device instead: Adam turns the
    ~1e-7 gradient differences of near-zero gradients into lr-sized steps)."""
    import copy
    import warnings
    ember.manual_seed(0)
    ref = ember.models.small_cnn()
    model = copy.deepcopy(ref).to(device)
    x, y = ember.randn(2, 1, 12, 12), ember.randint(0, 10, (2,))
    loss_fn = ember.nn.CrossEntropyLoss()

    def make(m, **flags):
        if opt_name == "SGD":
            return ember.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
        return ember.optim.AdamW(m.parameters(), lr=1e-3, **(flags or dict(fused=True)))
    opt, opt_ref = make(model), make(ref)
    if opt_name != "SGD":
        ref = copy.deepcopy(ref).to(device)
        opt_ref = make(ref, foreach=False)

    def step(m, o, xs, ys):
        loss = loss_fn(m(xs), ys)
        loss.backward()
        o.step()
        o.zero_grad()
        return loss.item()
    where = next(ref.parameters()).device
    want = [step(ref, opt_ref, x.to(where), y.to(where)) for _ in range(2)]
    launches = _Launches(monkeypatch)
    got = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(2):
            launches.names.clear()
            got.append(step(model, opt, x.to(device), y.to(device)))
            assert len(launches.updates()) == 1
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().cpu().numpy(),
                                   rtol=2e-4, atol=2e-4)


def test_tensor_hyperparameters_take_the_per_tensor_path(device, monkeypatch):  # noqa: F811
    """torch accepts a tensor lr; the kernels take Python numbers, so such a group keeps
    the per-tensor update, with the same result."""
    weights, grads = _data(steps=2)
    launches = _Launches(monkeypatch)
    got, _, per_step = _run_ember(
        lambda lib, ps: lib.optim.SGD(ps, lr=lib.tensor(0.1), momentum=0.9), weights, grads,
        device, launches)
    assert not any(per_step)
    want = _run_torch(lambda lib, ps: lib.optim.SGD(ps, lr=0.1, momentum=0.9), weights, grads)
    _same(got, want, exact=False)


@pytest.mark.parametrize("norm_type", [2.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])          # clipping and not clipping
def test_clip_grad_norm_three_launches(device, norm_type, max_norm, monkeypatch):  # noqa
    """nn.utils.clip_grad_norm_ on CUDA gradients: partial norms, their total and the
    coefficient, the scale: three launches whatever the number of gradients, nothing read
    back; the total and the clipped gradients equal torch's (float rounding: the total sums
    squares in another order than torch's norm of norms)."""
    weights, grads = _data(steps=1)
    params = [ember.nn.Parameter(ember.tensor(w).to(device)) for w in weights]
    tparams = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    for p, t, g in zip(params, tparams, grads[0]):
        p.grad, t.grad = ember.tensor(g).to(device), torch.from_numpy(g.copy())
    launches = _Launches(monkeypatch)
    before = S.host_transfers()
    total = ember.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    assert S.host_transfers() == before and total.is_cuda
    assert [n.split("_float32")[0] for n in launches.names] == \
        ["multi_norm_partials", "multi_norm_total", "multi_scale"]
    want = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
    np.testing.assert_allclose(total.item(), want.item(), rtol=3e-6)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad.cpu().numpy(), t.grad.numpy(), rtol=3e-6,
                                   atol=1e-7)


def test_clip_grad_norm_nonfinite_error_before_scaling(device):  # noqa: F811
    g = np.array([1.0, np.nan, 2.0], np.float32)
    p = ember.nn.Parameter(ember.zeros(3, device=device))
    p.grad = ember.tensor(g).to(device)
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        ember.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad.cpu().numpy(), g)     # not scaled
    total = ember.nn.utils.clip_grad_norm_([p], 1.0)             # torch: scales by NaN
    assert np.isnan(total.item()) and np.isnan(p.grad.cpu().numpy()).all()


@pytest.mark.parametrize("poison", [None, np.inf, np.nan])
def test_grad_scaler_unscale_is_one_launch(device, poison, monkeypatch):  # noqa: F811
    """GradScaler.unscale_ over CUDA gradients: one launch multiplies every gradient by the
    inverse scale and records inf/NaN; the step is skipped and the scale backed off exactly
    when a gradient held one, as torch's GradScaler does (the oracle, on the CPU)."""
    if EMULATED:                       # GradScaler('cuda') asks whether CUDA exists
        from ember.frontend import cuda as cuda_api
        monkeypatch.setattr(cuda_api, "is_available", lambda: True)
    weights, grads = _data(steps=1)
    if poison is not None:
        grads[0][2].flat[3] = poison

    def run(lib, dev):
        params = [lib.nn.Parameter(lib.tensor(w.copy()).to(dev)) for w in weights]
        for p, g in zip(params, grads[0]):
            p.grad = lib.tensor(g.copy()).to(dev)
        opt = lib.optim.SGD(params, lr=0.1)
        scaler = lib.amp.GradScaler(dev if lib is torch else "cuda", init_scale=1024.0)
        scaler.scale(lib.ones(()).to(dev))            # the scale is made on first use
        scaler.unscale_(opt)
        unscaled = [p.grad.detach().cpu().numpy().copy() for p in params]
        scaler.step(opt)
        scaler.update()
        return unscaled, [p.detach().cpu().numpy() for p in params], scaler.get_scale()
    launches = _Launches(monkeypatch)
    got = run(ember, device)
    assert [n for n in launches.names if n.startswith("multi_unscale")] == \
        ["multi_unscale_float32"]
    want = run(torch, "cpu")
    for a, b in zip(got[0], want[0]):
        np.testing.assert_array_equal(a, b)
    _same(got[1], want[1], exact=False)
    assert got[2] == want[2]
