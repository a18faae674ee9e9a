"""Deterministic mode: the API, the ops PyTorch calls nondeterministic, the invariant
that makes ember's kernels deterministic, and bit-identical training steps."""
from __future__ import annotations

import pathlib
import re
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.ir import determinism
from ember.ir.registry import OPS, Promotion, Tag, defop
from ember.ir.ops.rules import pointwise_meta
from tests.oracle import flat_tensors, to_ember_value

CODEGEN = pathlib.Path(ember.__file__).parent / "codegen"


@pytest.fixture
def deterministic():
    ember.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        ember.use_deterministic_algorithms(False)


def test_api_state_and_argument_errors():
    assert not ember.are_deterministic_algorithms_enabled()
    ember.use_deterministic_algorithms(True, warn_only=True)
    try:
        assert ember.are_deterministic_algorithms_enabled()
        assert ember.is_deterministic_algorithms_warn_only_enabled()
    finally:
        ember.use_deterministic_algorithms(False)
    assert not ember.is_deterministic_algorithms_warn_only_enabled()
    with pytest.raises(TypeError, match="bool"):
        ember.use_deterministic_algorithms("yes")


@pytest.fixture
def racy_op():
    """A stand-in op tagged NONDETERMINISTIC (as a custom op may declare itself)."""
    op = defop("_test_racy_sum(Tensor self) -> Tensor", meta=pointwise_meta(Promotion.DEFAULT),
               reference=lambda x: x.copy(), tags={Tag.NONDETERMINISTIC})
    try:
        yield op
    finally:
        del OPS[op.name]


def test_tagged_op_raises_or_warns_naming_itself(racy_op, deterministic):
    x = ember.ones(3)
    with pytest.raises(RuntimeError, match=r"_test_racy_sum does not have a deterministic"):
        racy_op(x)
    with pytest.raises(RuntimeError, match="_test_racy_sum"):   # traced for compile too
        ember.compile(lambda t: racy_op(t) + 1, fullgraph=True)(x)
    ember.use_deterministic_algorithms(True, warn_only=True)
    with pytest.warns(UserWarning, match="_test_racy_sum"):
        out = racy_op(x)
    assert np.array_equal(out.numpy(), np.ones(3, np.float32))


def test_every_nondeterministic_op_is_handled(racy_op, deterministic):
    """Ops tagged NONDETERMINISTIC raise; every op PyTorch documents as nondeterministic
    exists in ember with its deterministic route named, and runs bit-identically."""
    tagged = [op for op in OPS.values() if Tag.NONDETERMINISTIC in op.tags]
    assert tagged == [racy_op], [op.name for op in tagged]
    for name, route in determinism.TORCH_NONDETERMINISTIC.items():
        op = OPS[name]
        assert Tag.NONDETERMINISTIC not in op.tags
        if route.startswith("host"):
            assert op.lowering is None, f"{name}: documented as host-only but has a kernel"
        _assert_op_repeatable(op)


def _run_with_grads(op, sample):
    args = to_ember_value(sample.args, requires_grad=sample.grad)
    out = op(*args, **sample.kwargs)
    outs = [o for o in (out if isinstance(out, (tuple, list)) else [out])
            if isinstance(o, ember.Tensor)]
    grads = []
    leaves = [a for a in flat_tensors(args) if getattr(a, "requires_grad", False)]
    floats = [o for o in outs if o.dtype.is_floating_point and o.requires_grad]
    if leaves and floats:
        total = sum((o * (ember.arange(o.numel(), dtype=o.dtype).reshape(o.shape) % 7)).sum()
                    for o in floats)
        grads = ember.autograd.grad(total, leaves, allow_unused=True)
    return [o.detach().numpy().copy() for o in outs] + \
        [g.detach().numpy().copy() for g in grads if g is not None]


def _assert_op_repeatable(op):
    rng = np.random.default_rng(0)
    for sample in (op.samples(rng) if op.samples else [])[:3]:
        runs = []
        for threads in (1, 2, 2):
            ember.set_num_threads(threads)
            runs.append(_run_with_grads(op, sample))
        ember.set_num_threads(ember.runtime.threads.cpu_count())
        for other in runs[1:]:
            assert all(a.tobytes() == b.tobytes() for a, b in zip(runs[0], other)), \
                f"{op.name} {sample}: results differ between runs"


# kernels allowed atomics: either their callers run the op on the host instead in
# deterministic mode (frontend/eager_cuda_training.py checks before each such route), or
# the atomic only hands out work (each output tile is still computed once, by the same
# arithmetic, whichever thread claims it)
ATOMIC_KERNEL_FILES = {"triton/scatter.py": "CUDA scatter-add of max-pool and index_add grads",
                       "triton/indexing.py": "CUDA index_put(accumulate=True), scatter_add and "
                                             "scatter_reduce (and bincount): the host route in "
                                             "deterministic mode",
                       "llvm/qgemm.py": "the int8 GEMM's task counter: threads claim tiles",
                       "llvm/qgemm_amx.py": "the AMX conv's row and column-block claims and "
                                            "its packed-tile count (each tile is packed and "
                                            "each output block computed once, by the same "
                                            "arithmetic, whichever thread claims it)",
                       "llvm/index_ops.py": "the index kernels' error record: the first thread "
                                            "to see a bad index writes it (no value is "
                                            "computed atomically)",
                       "native_entry.py": "a step's error status OR-ed into the call's flag "
                                          "(a parallel gather's chunks run on several threads)",
                       "llvm/spin.py": "the thread pool's hand-off state word: which thread "
                                       "runs a chunk (no value is computed atomically)",
                       "triton/multi_tensor.py": "Adam's device step: a finish counter picks "
                                                 "the program that increments the steps "
                                                 "(no value is accumulated atomically)"}


def test_codegen_emits_no_atomics():
    """The invariant behind 'one writer per output element': no generated kernel uses
    atomics, except the listed ones with a deterministic fallback. Adding one means tagging
    the op NONDETERMINISTIC or giving it a deterministic path."""
    pattern = re.compile(r"tl\.atomic_|atomic_rmw|atomicrmw|cmpxchg")
    offenders = {str(p.relative_to(CODEGEN)) for p in CODEGEN.rglob("*.py")
                 if pattern.search(p.read_text())}
    assert offenders == set(ATOMIC_KERNEL_FILES)


def test_atomic_routes_check_deterministic_mode():
    from ember.frontend import eager_cuda_training
    source = Path(eager_cuda_training.__file__).read_text()
    assert source.count("are_deterministic_algorithms_enabled()") >= 2
    from ember.frontend import eager_cuda_indexing
    source = Path(eager_cuda_indexing.__file__).read_text()
    assert source.count("are_deterministic_algorithms_enabled()") >= 2


def test_gemm_uses_default_config_in_deterministic_mode(monkeypatch, deterministic):
    from ember.codegen.triton import autotune
    tuned = object()
    monkeypatch.setattr(autotune, "stored_config", lambda problem, device: tuned)
    monkeypatch.setattr(autotune, "default_config", lambda problem: "default")
    assert autotune.gemm_config("problem", "sm_90") == "default"
    ember.use_deterministic_algorithms(False)
    assert autotune.gemm_config("problem", "sm_90") is tuned


def _train_steps(threads: int, compiled: bool):
    ember.manual_seed(0)
    ember.set_num_threads(threads)
    model = ember.nn.Sequential(
        ember.nn.Conv2d(3, 8, 3, padding=1), ember.nn.BatchNorm2d(8), ember.nn.ReLU(),
        ember.nn.MaxPool2d(2), ember.nn.Flatten(), ember.nn.Linear(8 * 8 * 8, 10))
    opt = ember.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = ember.randn(16, 3, 16, 16)
    y = ember.randint(0, 10, (16,))

    def step(x, y):
        opt.zero_grad()
        loss = ember.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    run = ember.compile(step) if compiled else step
    losses = [run(x, y).item() for _ in range(3)]
    try:
        return losses, [p.detach().numpy().copy() for p in model.parameters()]
    finally:
        ember.set_num_threads(ember.runtime.threads.cpu_count())


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_training_step_bit_identical_across_runs_and_thread_counts(compiled, deterministic):
    first = _train_steps(1, compiled)
    for threads in (1, 2):
        losses, params = _train_steps(threads, compiled)
        assert losses == first[0], f"{threads} threads"
        assert all(a.tobytes() == b.tobytes() for a, b in zip(params, first[1]))
