"""Horizontal fusion of a CUDA training step's update kernels: the optimizer's
per-parameter updates and the running-statistic updates, moved to the step's end by the
sink-updates pass, launch as a few horizontal kernels (codegen/triton/multi_tensor.py's
horizontal_kernel, compiler/compile_cuda.py's merge_horizontal), and BatchNorm's batch
counters as one increment launch. Numerics of whole steps against eager:
test_train_step_replay_cuda.py and test_compile_train_cuda.py (which run these
kernels under Triton's interpreter)."""
import inspect
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.codegen.triton import cache, multi_tensor  # noqa: E402
from ember.codegen.triton.source import GeneratedKernel, LaunchSpec  # noqa: E402
from ember.ir import dtypes  # noqa: E402

from sm90_cubins import assert_launchable, compile_for_sm90  # noqa: E402
from test_compile_cuda import EMULATED, device  # noqa: E402,F401

# these run the kernels on host tensors through Triton's interpreter
interpreted = pytest.mark.skipif(not EMULATED, reason="needs TRITON_INTERPRET=1")

_PART = '''@triton.jit
def {name}(in0_ptr, out0_ptr, XBLOCK: tl.constexpr):
    """scale."""
    xindex = tl.program_id(0) * XBLOCK + tl.arange(0, XBLOCK)
    xmask = xindex < {n}
    tl.store(out0_ptr + xindex, tl.load(in0_ptr + xindex, mask=xmask) * {scale}, mask=xmask)
'''


def scaling(name: str, n: int, scale: float, block: int = 8) -> GeneratedKernel:
    """A generated-style pointwise kernel: out = in * scale over n elements."""
    return GeneratedKernel(_PART.format(name=name, n=n, scale=scale),
                           LaunchSpec(name, [("in0_ptr", "*fp32"), ("out0_ptr", "*fp32")],
                                      {"XBLOCK": block}, (-(-n // block), 1, 1), "cdiv", 4,
                                      1, ["in0", "out0"]))


@interpreted
def test_horizontal_kernel_runs_each_part_on_its_own_operands():
    parts = (scaling("a", 20, 2.0), scaling("b", 5, 3.0, block=4), scaling("c", 1, -1.0))
    merged = multi_tensor.horizontal_kernel(parts, n_inputs=(1, 1, 1))
    assert merged.launch.grid == (3 + 2 + 1, 1, 1)
    xs = [torch.arange(20.), torch.arange(5.) + 1, torch.tensor([7.])]
    outs = [torch.full_like(x, float("nan")) for x in xs]
    cache.launch(merged, xs + outs)                 # inputs first, then outputs
    for x, out, scale in zip(xs, outs, (2.0, 3.0, -1.0)):
        np.testing.assert_array_equal(out.numpy(), (x * scale).numpy())


# the form ember generates: the count bound at the top, constants as float32 fills
_GENERATED = '''# kernel {name} outer=[{n}] inner=[]
#   out0[v0] = mul(in0[v0], {scale})
@triton.jit
def {name}(in0_ptr, out0_ptr, XBLOCK: tl.constexpr):
    """pointwise."""
    X = {n}
    xindex = tl.program_id(0) * XBLOCK + tl.arange(0, XBLOCK)
    xmask = xindex < X
    t1 = tl.load(in0_ptr + (xindex), mask=xmask, other=0)
    t2 = tl.full([], {scale}, tl.float32)
    t3 = tl.full([], 0.5, tl.float32)
    tl.store(out0_ptr + (xindex), ((t1 * t2) + t3).to(tl.float32), mask=xmask)
'''


def generated(name: str, n: int, scale: float, block: int = 8) -> GeneratedKernel:
    return GeneratedKernel(_GENERATED.format(name=name, n=n, scale=scale),
                           LaunchSpec(name, [("in0_ptr", "*fp32"), ("out0_ptr", "*fp32")],
                                      {"XBLOCK": block}, (-(-n // block), 1, 1), "cdiv", 4,
                                      1, ["in0", "out0"]))


def _shared_case():
    """One-program parts of one structure (counts and one constant differ), one of another
    block size, one of another structure, one of the structure but of several programs:
    four bodies for six parts."""
    return (generated("a", 20, 1.0000012456169853, block=32), scaling("b", 5, 3.0),
            generated("c", 9, 0.9, block=32), generated("d", 3, 0.9, block=4),
            generated("e", 1, 1.0000012456169853, block=32), generated("f", 70, 0.9, block=32))


def test_parts_of_one_structure_share_one_body():
    merged = multi_tensor.horizontal_kernel(_shared_case(), n_inputs=(1,) * 6)
    source = merged.source
    assert source.count("@triton.jit") == 5           # 4 bodies and the launch
    assert "def shared0_a(" in source and "b_part1(" in source and "d_part3(" in source
    assert "f_part5(" in source                       # several programs: its own body
    assert "X = hz_l0" in source and "tl.full([], hz_l1, tl.float32)" in source
    assert "tl.full([], 0.5, tl.float32)" in source    # the same in every part: literal
    assert merged.launch.grid == (1 + 1 + 1 + 1 + 1 + 3, 1, 1)


@interpreted
def test_shared_bodies_compute_what_each_part_computes_alone():
    parts = _shared_case()
    merged = multi_tensor.horizontal_kernel(parts, n_inputs=(1,) * 6)
    xs = [torch.arange(p.launch.grid[0] * p.launch.constexprs["XBLOCK"],
                       dtype=torch.float32)[:n] * 1.37 + 0.1
          for p, n in zip(parts, (20, 5, 9, 3, 1, 70))]
    outs = [torch.full_like(x, float("nan")) for x in xs]
    cache.launch(merged, xs + outs)
    for part, x, out in zip(parts, xs, outs):
        alone = torch.full_like(x, float("nan"))
        cache.launch(part, [x, alone])
        np.testing.assert_array_equal(out.numpy(), alone.numpy())


def test_horizontal_kernel_refuses_what_it_cannot_merge():
    two_d = scaling("d", 8, 1.0)
    two_d.launch.grid = (1, 2, 1)
    assert multi_tensor.horizontal_kernel((scaling("a", 8, 1.0), two_d)) is None


@interpreted
def test_increment_kernel_adds_one_to_each_counter():
    counters = [torch.tensor([3], dtype=torch.int64), torch.tensor([0], dtype=torch.int64)]
    cache.launch(multi_tensor.increment_kernel(2, dtypes.int64), counters)
    assert [int(c) for c in counters] == [4, 1]


def test_horizontal_and_increment_kernels_compile_to_sm90_cubins():
    results = compile_for_sm90(
        "from ember.codegen.triton import multi_tensor\n"
        "from ember.codegen.triton.source import GeneratedKernel, LaunchSpec\n"
        "from ember.ir import dtypes\n"
        f"_PART = {_PART!r}\n_GENERATED = {_GENERATED!r}\n" + inspect.getsource(scaling) +
        inspect.getsource(generated) + inspect.getsource(_shared_case),
        "multi_tensor.horizontal_kernel((scaling('a', 20, 2.0), scaling('b', 5, 3.0)), "
        "(1, 1)), multi_tensor.increment_kernel(3, dtypes.int64), "
        "multi_tensor.horizontal_kernel(_shared_case(), (1,) * 6)")
    assert set(results) == {"horizontal_2", "multi_increment_3_int64", "horizontal_6"}
    assert_launchable(results)


def _bn_net():
    nn = ember.nn
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                         nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def _kernel_steps(device, **options):
    ember.manual_seed(0)
    model = _bn_net().to(device)
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():                    # the steady plan: momentum present
        opt.state[p]["momentum_buffer"] = ember.zeros_like(p)
    step = ember.compile_train_step(model, ember.nn.CrossEntropyLoss(), opt,
                                    backend="triton", options=options)
    x, y = ember.randn(2, 3, 5, 5).to(device), ember.randint(0, 3, (2,)).to(device)
    step(x, y)
    return [s.name for s in step.last.plan.steps if s.kernel], step


def test_update_kernels_launch_together(device):
    """The parameter updates and the 4 running-statistic updates: one horizontal launch
    instead of one launch each where they stay in place in the step, with the same
    updates stored in place."""
    merged, step = _kernel_steps(device)
    alone, step_alone = _kernel_steps(device, sink_updates=False)
    horizontal = [n for n in merged if n.startswith("horizontal")]
    assert len(horizontal) == 1, merged
    n_params = len(list(step.model.parameters()))
    assert len(alone) - len(merged) >= n_params          # launches saved
    assert len(step.last.bindings) == len(step_alone.last.bindings) >= n_params + 4
    # the two BatchNorms' running means (and their variances) share a body each
    (kernel,) = [s.fn.generated for s in step.last.plan.steps if s.name in horizontal]
    assert kernel.source.count("def shared") >= 2, kernel.source
