"""A compiled CUDA plan's first call compiles its eager steps' kernels in one batch: a dry
run of the plan (compile_cuda.prefetch_eager_kernels) records what eager_cuda.launch
would compile, launching nothing and writing nothing. Checked on the emulated device
(tests/cuda/emulation.py) with the real eager_cuda.launch and a recording compiler:
the dry run asks for exactly the kernels the real call then uses, leaves parameters,
optimizer state and the random generator as they were, and the interpreted training
step still equals CPU eager."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.compiler import compile_cuda  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402

from test_compile_cuda import EMULATED, device  # noqa: E402,F401

REAL_LAUNCH = eager_cuda.launch                   # before the emulated device replaces it
nn = ember.nn
pytestmark = pytest.mark.skipif(not EMULATED, reason="replaces the Triton compiler: emulated "
                                "CUDA only")


def _net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                         nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))


def _state(model, opt) -> list:
    values = [p.detach().cpu().numpy().copy() for p in model.parameters()]
    values += [b.cpu().numpy().copy() for b in model.buffers()]
    return values + [s["momentum_buffer"].cpu().numpy().copy() for s in opt.state.values()]


class _Stub:
    def launch(self, grid, values):
        pass


def test_dry_run_predicts_the_first_calls_eager_kernels_and_writes_nothing(device):  # noqa: F811
    ember.manual_seed(0)
    model = _net()
    x, y = ember.randn(2, 3, 8, 8), ember.randint(0, 5, (2,))
    ref = _net()
    ref.load_state_dict(model.state_dict())
    model = model.to(device)
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = ember.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    step = ember.compile_train_step(model, nn.CrossEntropyLoss(), opt, backend="triton")
    loss = step(x.to(device), y.to(device))         # interpreted under emulation
    ref_loss = nn.CrossEntropyLoss()(ref(x), y)
    ref_loss.backward()
    ref_opt.step()
    np.testing.assert_allclose(loss.cpu().numpy(), ref_loss.detach().numpy(), rtol=1e-4)
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().numpy(), rtol=1e-4,
                                   atol=1e-5)

    entry = step.last
    plan = entry.plan.plan
    inputs = step._inputs(entry.layout, (x.to(device), y.to(device)))
    before, rng = _state(model, opt), ember.get_rng_state()
    batches = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(eager_cuda, "launch", REAL_LAUNCH)
        mp.setattr(eager_cuda, "compile_kernels",
                   lambda requests, index: batches.append(list(requests)) or
                   [True] * len(requests))
        mp.setattr(eager_cuda, "compile_kernel", lambda *a: pytest.fail("compiled alone"))
        count = compile_cuda.prefetch_eager_kernels(plan, inputs, 0)
    assert len(batches) == 1 and count == len(batches[0]) > 0
    for was, now in zip(before, _state(model, opt)):
        np.testing.assert_array_equal(was, now)
    np.testing.assert_array_equal(np.asarray(rng), np.asarray(ember.get_rng_state()))

    prefetched = {(g.key(), tuple(a)) for g, a in batches[0]}
    used = []
    with pytest.MonkeyPatch.context() as mp:       # the real call's eager launches
        mp.setattr(eager_cuda, "launch", REAL_LAUNCH)
        mp.setattr(eager_cuda, "compile_kernel",
                   lambda g, a, i: used.append((g.key(), tuple(a))) or _Stub())
        plan.run(inputs)
    assert used and set(used) <= prefetched
    names = {g.name for g, _ in batches[0]}
    assert len(names) > 1                          # more than one kind of eager kernel


def test_no_eager_steps_no_dry_run(device):  # noqa: F811
    """An inference plan of generated kernels alone has nothing to prefetch."""
    model = ember.models.mlp(16, (8,), num_classes=4).eval().to(device)
    fast = ember.compile(model, backend="triton")
    x = ember.randn(3, 16)
    with ember.no_grad():
        fast(x.to(device))
    plan = fast.last[0].plan
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(eager_cuda, "compile_kernels", lambda *a: pytest.fail("nothing to compile"))
        assert compile_cuda.prefetch_eager_kernels(plan, [x.to(device)], 0) == 0


def test_a_training_plans_eager_kernels_join_its_build_batch(device):  # noqa: F811
    """Building the plan dry-runs it on fresh inputs of its geometry: the eager steps'
    kernels are compiled in the same batch as the plan's own, and the first call does
    not dry-run again."""
    model = _net().to(device)
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = ember.compile_train_step(model, nn.CrossEntropyLoss(), opt, backend="triton")
    args = (ember.randn(2, 3, 8, 8).to(device), ember.randint(0, 5, (2,)).to(device))
    batches = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compile_cuda.CudaBackend, "precompile", True)
        mp.setattr(eager_cuda, "launch", REAL_LAUNCH)
        mp.setattr(eager_cuda, "compile_kernels",
                   lambda requests, index: batches.append([g.key() for g, _ in requests]) or
                   [True] * len(requests))
        mp.setattr(eager_cuda, "compile_kernel", lambda g, a, i: _Stub())   # tracing's copies
        for group in opt.param_groups:
            step.rule.init_state(opt, group)
        entry = step._compile(args)
        plan = entry.plan.plan
        mp.setattr(compile_cuda, "prefetch_eager_kernels",
                   lambda *a: pytest.fail("dry-run again at the first call"))
        assert getattr(plan, "prefetched", False)
    kernels = {s.fn.generated.key() for s in plan.steps if s.kernel and
               getattr(s.fn, "generated", None) is not None}
    assert len(batches) == 1
    assert kernels <= set(batches[0])
    assert set(batches[0]) - kernels                # the eager steps' kernels joined it


@pytest.mark.parametrize("make, memcpy", [
    (lambda x: x, True), (lambda x: x.contiguous(memory_format=ember.channels_last), True),
    (lambda x: x.transpose(1, 2), None), (lambda x: x[:, :, ::2], False),
    (lambda x: x[:, :1].expand(2, 3, 4, 5), False)])
def test_a_dense_clone_is_one_memcpy_and_equals_cpu(device, make, memcpy):  # noqa: F811
    """clone() of a tensor whose elements fill its span once, into its own strides, is a
    device-to-device copy (no kernel to compile); slices and expands run a copy kernel."""
    base = ember.randn(2, 3, 4, 5)
    x, d = make(base), make(base.to(device))        # views made on the device
    launches = []
    real = eager_cuda.launch
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(eager_cuda, "launch", lambda *a: launches.append(1) or real(*a))
        y = d.clone()
    np.testing.assert_array_equal(y.cpu().numpy(), x.numpy())
    if memcpy is not None:
        assert (not launches) == memcpy
    if not launches:
        assert y.stride() == d.stride() and d._array.extent() == d.numel()


def test_small_constants_on_the_device_fold_on_the_host(device):  # noqa: F811
    """Constant folding of a model on the GPU computes small values (BatchNorm's
    per-channel statistics) on the host, launching no kernel, and keeps the folded
    constant on the device; equal to the CPU model."""
    ember.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU()).eval()
    net[1].running_var.uniform_(0.5, 1.5)
    x = ember.randn(2, 3, 8, 8)
    with ember.no_grad():
        want = net(x).numpy()
    from ember.ir.meta import meta_of
    from ember.ir.symbolic import build_graph
    from ember.passes.manager import PassContext, run_passes
    on_gpu = net.to(device)
    graph, constants = build_graph(on_gpu, [meta_of(x.to(device))])
    ctx = PassContext(constants=dict(constants), inference=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(eager_cuda, "launch", lambda *a: pytest.fail("a kernel ran to fold"))
        run_passes(graph, "fold,fold-bn", ctx)
    assert all(v.is_cuda for v in ctx.constants.values() if hasattr(v, "is_cuda"))
    fast = ember.compile(on_gpu, backend="triton")
    with ember.no_grad():
        np.testing.assert_allclose(fast(x.to(device)).cpu().numpy(), want, rtol=1e-4,
                                   atol=1e-5)
