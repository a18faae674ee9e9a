"""CUDA tensors and eager CUDA ops, on the CPU: tests/cuda/emulation.py puts 'cuda:0' in
host memory and runs the generated Triton kernels under Triton's interpreter. Everything
above the driver is the real code: allocator, storage, views, plans, GEMM selection,
host fallback, in-place writes, autograd across devices. test_gpu.py runs the same
checks on a GPU."""
import os

os.environ["TRITON_INTERPRET"] = "1"      # before triton is imported (see emulation.py)

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402

from common import check_grads_on_device, check_op_on_device, sample_cases  # noqa: E402
from emulation import emulated_cuda  # noqa: E402

# one op per route and family: pointwise, reductions, rows, views, joins, GEMM, conv,
# indexing, sorting and topk (kernels since issue 18), losses
COVERED = ["add", "mul", "div", "exp", "where", "clamp", "gelu", "sigmoid", "sum", "mean",
           "amax", "var", "softmax", "log_softmax", "layer_norm", "transpose", "permute",
           "select", "slice", "expand", "reshape", "view", "cat", "stack", "mm", "bmm",
           "matmul", "linear", "addmm", "conv2d", "sort", "topk", "index_select", "cumsum",
           "max_dim", "cross_entropy", "real", "imag", "ones_like", "full_like"]
GRADS = ["add", "mul", "exp", "sum", "softmax", "layer_norm", "select", "linear", "mm",
         "conv2d", "index_select", "max_dim", "cross_entropy"]


@pytest.fixture
def cuda():
    with emulated_cuda() as allocator:
        eager_cuda._WARNED.clear()
        yield allocator


@pytest.mark.parametrize("op, sample", sample_cases(1, COVERED))
def test_op_on_cuda_equals_cpu(cuda, op, sample):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_op_on_device(op, sample, "cuda")


@pytest.mark.parametrize("op, sample", sample_cases(1, GRADS))
def test_gradients_on_cuda_equal_cpu(cuda, op, sample):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_grads_on_device(op, sample, "cuda")


def test_factories_moves_and_printing(cuda):
    x = ember.randn(2, 3, device="cuda")
    assert x.is_cuda and x.device == ember.device("cuda", 0) and str(x.device) == "cuda:0"
    assert "device='cuda:0'" in repr(x)
    host = x.cpu()
    assert not host.is_cuda and host.device.type == "cpu"
    np.testing.assert_array_equal(host.numpy(), x.cuda().cpu().numpy())
    assert x.tolist() == host.tolist() and float(x[0, 0]) == float(host[0, 0])
    assert ember.zeros(3, device="cuda").cpu().tolist() == [0.0, 0.0, 0.0]
    assert ember.arange(4, device="cuda").cpu().tolist() == [0, 1, 2, 3]
    y = x.to("cuda", ember.float64)
    assert y.is_cuda and y.dtype is ember.float64


def test_numpy_of_a_cuda_tensor_raises_torchs_error(cuda):
    x = ember.ones(2, device="cuda")
    with pytest.raises(TypeError, match=r"can't convert cuda:0 device type tensor to numpy. "
                                        r"Use Tensor.cpu\(\)"):
        x.numpy()
    with pytest.raises(TypeError, match="cuda:0"):
        np.asarray(x)


def test_layouts_survive_the_round_trip(cuda):
    x = ember.randn(2, 3, 4, 5).contiguous(memory_format=ember.channels_last)
    on_gpu = x.cuda()
    assert on_gpu.is_contiguous(memory_format=ember.channels_last)
    assert on_gpu.stride() == x.stride()
    np.testing.assert_array_equal(on_gpu.cpu().numpy(), x.numpy())
    view = on_gpu[:, 1:, ::2]                    # a strided view with an offset
    np.testing.assert_array_equal(view.cpu().numpy(), x.numpy()[:, 1:, ::2])


def test_views_share_storage_and_inplace_writes_reach_the_base(cuda):
    base = ember.zeros(3, 4, device="cuda")
    row = base[1]
    assert row.untyped_storage() is base.untyped_storage() and row.storage_offset() == 4
    version = base._version
    row.add_(2.0)
    base.t()[0].mul_(10.0)                       # a transposed view's row: column 0
    assert base._version > version
    want = np.zeros((3, 4), np.float32)
    want[1] += 2
    want[:, 0] *= 10
    np.testing.assert_array_equal(base.cpu().numpy(), want)


def test_mixing_devices_names_both(cuda):
    with pytest.raises(ember.DeviceError, match=r"add: .*cpu and cuda:0"):
        ember.ones(2, device="cuda") + ember.ones(2)
    # 0-dim CPU tensors may join, as in PyTorch
    out = ember.ones(2, device="cuda") * ember.tensor(3.0)
    assert out.is_cuda and out.cpu().tolist() == [3.0, 3.0]


def test_memory_is_counted_and_returned_to_the_cache(cuda):
    before = ember.cuda.memory_allocated()
    x = ember.empty(1000, device="cuda")
    assert ember.cuda.memory_allocated() == before + 4096      # 4000 bytes rounded to 512
    assert ember.cuda.memory_reserved() >= 2 << 20
    del x
    assert ember.cuda.memory_allocated() == before
    assert ember.cuda.max_memory_allocated() >= before + 4096
    ember.cuda.empty_cache()                                     # nothing else is alive
    assert ember.cuda.memory_reserved() == 0 and cuda.backend.used() == 0


def test_out_of_memory_names_the_request_and_the_statistics():
    with emulated_cuda(capacity=4 << 20):
        keep = ember.empty(256, 1024, device="cuda")          # 1 MiB in a 2 MiB segment
        with pytest.raises(ember.OutOfMemoryError, match=r"Tried to allocate 8.00 MiB\. GPU 0 "
                           r"has a total capacity of 4.00 MiB.*1.00 MiB is allocated by ember"):
            ember.empty(2048, 1024, device="cuda")
        del keep


def test_ops_without_a_kernel_warn_once_and_run_on_the_host(cuda):
    x = ember.randn(5, device="cuda")
    with pytest.warns(UserWarning, match="cummax: no CUDA kernel .* runs on the host"):
        values, _ = ember.cummax(x, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # the second call is silent
        ember.cummax(x, 0)
    np.testing.assert_array_equal(values.cpu().numpy(), np.maximum.accumulate(x.cpu().numpy()))


def test_pointwise_reduction_and_gemm_run_as_kernels(cuda):
    """No host fallback (it would warn) for the ops that have kernels."""
    x, w = ember.randn(8, 16, device="cuda"), ember.randn(4, 16, device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = ember.softmax(ember.nn.functional.gelu(x * 2 + 1), 1).sum(0)
        z = ember.nn.functional.linear(x, w) if _has_gemm() else x
    want = ember.softmax(ember.nn.functional.gelu(x.cpu() * 2 + 1), 1).sum(0)
    np.testing.assert_allclose(y.cpu().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    if _has_gemm():
        np.testing.assert_allclose(z.cpu().numpy(), x.cpu().numpy() @ w.cpu().numpy().T,
                                   rtol=1e-4, atol=1e-4)


def _has_gemm() -> bool:
    try:
        from ember.codegen.triton import gemm  # noqa: F401
        return True
    except ImportError:
        return False


def test_gradients_flow_back_to_a_cpu_leaf(cuda):
    w = ember.randn(3, 4, requires_grad=True)
    (w.cuda() * 3).sum().backward()
    assert not w.grad.is_cuda
    np.testing.assert_array_equal(w.grad.numpy(), np.full((3, 4), 3.0, np.float32))


def test_small_model_forward_and_backward_equal_cpu(cuda):
    ember.manual_seed(0)
    model = ember.nn.Sequential(ember.nn.Linear(6, 8), ember.nn.ReLU(), ember.nn.Linear(8, 3))
    x = ember.randn(5, 6)
    target = ember.tensor([0, 2, 1, 1, 0])
    loss = ember.nn.functional.cross_entropy(model(x), target)
    loss.backward()
    cpu_grads = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    model.cuda()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gpu_loss = ember.nn.functional.cross_entropy(model(x.cuda()), target.cuda())
        gpu_loss.backward()
    np.testing.assert_allclose(gpu_loss.item(), loss.item(), rtol=1e-5)
    for p, want in zip(model.parameters(), cpu_grads):
        assert p.is_cuda and p.grad.is_cuda
        np.testing.assert_allclose(p.grad.cpu().numpy(), want, rtol=1e-4, atol=1e-5)


def test_optimizer_steps_on_cuda_parameters_equal_cpu(cuda):
    def train(device):
        ember.manual_seed(0)
        model = ember.nn.Linear(4, 3).to(device)
        opt = ember.optim.Adam(model.parameters(), lr=0.1)
        x = ember.randn(8, 4).to(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(3):
                opt.zero_grad()
                out = model(x)
                (out * out).mean().backward()
                opt.step()
            opt.zero_grad(set_to_none=False)
        return model
    cpu, gpu = train("cpu"), train("cuda")
    for p, q in zip(cpu.parameters(), gpu.parameters()):
        assert q.is_cuda and not q.grad.cpu().numpy().any()
        np.testing.assert_allclose(q.detach().cpu().numpy(), p.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_fills_keep_special_values_apart(cuda):
    x = ember.zeros(3, device="cuda")
    assert np.isnan(ember.full_like(x, float("nan")).cpu().numpy()).all()
    assert np.signbit(ember.full_like(x, -0.0).cpu().numpy()).all()
    assert not np.signbit(ember.full_like(x, 0.0).cpu().numpy()).any()     # not the cached -0.0
    assert ember.full((2,), float("inf"), device="cuda").cpu().tolist() == [np.inf, np.inf]
    assert ember.ones(2, dtype=ember.int64, device="cuda").cpu().tolist() == [1, 1]
