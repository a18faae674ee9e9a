"""Everyday tensor code: seeds and Generators, torch.backends flags, set_num_threads,
torch.testing.assert_close, printing tensors and modules, tolist / item / numpy round
trips, dtype promotion in mixed int / float / bool math, in-place ops on views and
the messages of broadcasting errors."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def case_seeds_and_generators():
    torch.manual_seed(123)
    g = torch.Generator().manual_seed(7)
    a = torch.randn(3, generator=g)
    g.manual_seed(7)
    b = torch.randn(3, generator=g)
    state = g.get_state()
    c = torch.rand(2, generator=g)
    g.set_state(state)
    d = torch.rand(2, generator=g)
    perm = torch.randperm(6, generator=g)
    ints = torch.randint(0, 5, (4,), generator=g)
    return (torch.equal(a, b), torch.equal(c, d), sorted(perm.tolist()),
            bool(((ints >= 0) & (ints < 5)).all()), g.initial_seed(), state.dtype,
            torch.initial_seed())


def case_backend_flags_and_threads():
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    prec = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    one = torch.get_num_threads()
    torch.set_num_threads(n)
    torch.backends.cudnn.benchmark = False
    return (prec, one, torch.backends.mkldnn.is_available() in (True, False),
            torch.cuda.is_available(), torch.backends.mps.is_available(),
            torch.get_default_dtype(), torch.are_deterministic_algorithms_enabled())


def case_assert_close():
    a = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(a, a + 1e-7)
    torch.testing.assert_close(a, torch.tensor([1.0, 2.1, 3.0]), atol=0.2, rtol=0)
    messages = []
    for other, kwargs in [(torch.tensor([1.0, 2.5, 3.0]), {}),
                          (torch.tensor([1, 2, 3]), {}),
                          (torch.tensor([1.0, 2.0]), {})]:
        try:
            torch.testing.assert_close(a, other, **kwargs)
            messages.append(None)
        except AssertionError as e:
            messages.append(str(e).splitlines()[0])
    torch.testing.assert_close(torch.tensor([1, 2]), torch.tensor([1.0, 2.0]),
                               check_dtype=False)
    torch.testing.assert_close({"a": [a]}, {"a": [a.clone()]})
    return messages


def case_tensor_printing():
    return [repr(torch.tensor([1.0, 2.5, -3.0])),
            repr(torch.tensor([[1, 2], [3, 4]])),
            repr(torch.tensor([True, False])),
            repr(torch.tensor(3.5)),
            repr(torch.tensor([1e-8, 1.0])),
            repr(torch.tensor([1e10, 1.0])),
            repr(torch.tensor([0.1, 0.25], dtype=torch.float64)),
            repr(torch.tensor([1.0, 2.0], requires_grad=True)),
            repr(torch.tensor([1.0, 2.0], requires_grad=True) * 2),
            repr(torch.zeros(0, 3)),
            repr(torch.tensor([1.5], dtype=torch.float16)),
            repr(torch.tensor([1.5], dtype=torch.bfloat16)),
            repr(torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0])),
            repr(torch.arange(2000.0)),
            str(torch.tensor([1, 2], dtype=torch.int8)),
            repr(torch.ones(2, 3, 2)),
            repr(torch.tensor([1 + 2j, 3 - 1j])),
            repr(torch.tensor([123456.789, 0.001]))]


def case_module_printing():
    model = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(8, momentum=0.01), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Dropout(p=0.25), nn.Flatten(), nn.LazyLinear(10) if False else nn.Linear(32, 10),
        nn.LSTM(10, 5, num_layers=2, batch_first=True, dropout=0.1),
        nn.Embedding(10, 3, padding_idx=0), nn.LayerNorm((4,), eps=1e-6),
        nn.MultiheadAttention(8, 2, batch_first=True), nn.GELU(approximate="tanh"),
        nn.ModuleDict({"a": nn.Identity(), "b": nn.Softmax(dim=-1)}),
        nn.ConvTranspose2d(4, 2, 2, stride=2), nn.Upsample(scale_factor=2, mode="nearest"),
        nn.AdaptiveAvgPool2d((1, 1)), nn.GroupNorm(2, 4), nn.TransformerEncoderLayer(8, 2, 16))
    return str(model).splitlines()


def case_module_param_and_buffer_reprs():
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        lin.bias.zero_()
    return (repr(lin.weight), repr(lin.bias), repr(nn.Parameter(torch.ones(2),
            requires_grad=False)), str(lin.weight.dtype), repr(lin.weight.shape),
            repr(torch.device("cpu")), str(lin.weight.size()))


def case_tolist_item_numpy_round_trips():
    a = torch.tensor([[1.5, 2.0], [3.0, -0.5]])
    arr = a.numpy()
    arr[0, 0] = 10.0             # shares memory
    b = torch.from_numpy(np.arange(4, dtype=np.int32)).view(2, 2)
    c = torch.as_tensor(np.array([1.0, 2.0]))
    d = torch.tensor(np.float32(2.5))
    half = torch.tensor([1.5], dtype=torch.float16)
    return (a.tolist(), a[0, 0].item(), type(a[0, 0].item()).__name__,
            type(b[0, 1].item()).__name__, b.tolist(), c.dtype, d.dtype, d.item(),
            torch.tensor([True]).item(), type(half.item()).__name__,
            a.sum().item(), int(b.sum()), float(a.max()), a.numpy().dtype.name,
            b.numpy().dtype.name, torch.tensor([1, 2]).numpy().dtype.name,
            torch.tensor(5).tolist(), torch.zeros(2, 0).tolist())


def case_dtype_promotion():
    i = torch.tensor([1, 2, 3])
    f = torch.tensor([0.5, 1.5, 2.5])
    b = torch.tensor([True, False, True])
    h = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float16)
    u8 = torch.tensor([200, 100, 50], dtype=torch.uint8)
    i32 = torch.tensor([1, 2, 3], dtype=torch.int32)
    results = [i + f, i * 2.5, i / 2, i // 2, b + b, b * 3, b & b, i + b, h + f, h * 2,
               u8 + u8, u8 + 1, u8 * i, i32 + i, i32 * 1.5, torch.tensor(2.0) * i,
               torch.tensor(2) * h, i ** 2, i ** 0.5, f ** i, i.float().mean(),
               (i > 1) + 0, b.sum(), u8.sum(), i32.sum(), h.sum(), torch.where(b, i, f),
               torch.where(b, i, 0.5), i % 2, -i, ~b, torch.true_divide(i, i),
               torch.tensor([-7, 7]) // 2, torch.tensor([-7, 7]) % 3,
               torch.tensor([-7.5, 7.5]) % 2, torch.remainder(torch.tensor([-3]), 2),
               torch.fmod(torch.tensor([-3]), 2), torch.tensor([5]) / torch.tensor([2])]
    return [(r.dtype, r) for r in results]


def case_inplace_on_views():
    base = torch.arange(12.0).view(3, 4)
    base[:, 1].mul_(10)
    base[1:, ::2] += 100
    base.t()[0].zero_()
    row = base[2]
    row.clamp_(max=110.0)
    base.diagonal().fill_(-1)
    flat = base.view(-1)
    flat[::5] = 7.0
    x = torch.ones(2, 3)
    x.unsqueeze(0).squeeze(0)[0].add_(1)
    y = torch.zeros(4)
    y.narrow(0, 1, 2).copy_(torch.tensor([5.0, 6.0]))
    z = torch.arange(6.0)
    z[z > 2] = 0
    w = torch.arange(6.0).view(2, 3)
    w[[0, 1], [2, 0]] = -5.0
    w.masked_fill_(w < 0, 9)
    v = torch.zeros(3)
    v.index_fill_(0, torch.tensor([0, 2]), 4.0)
    return base, x, y, z, w, v, row._base is base if hasattr(row, "_base") else None


def case_inplace_on_view_autograd():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    b = a * 2
    v = b[1:3]
    v.mul_(3)
    b.sum().backward()
    leaf_error = None
    try:
        a.add_(1)
    except RuntimeError as e:
        leaf_error = "leaf Variable that requires grad" in str(e)
    return a.grad, b, leaf_error


def broadcast_message(fn):
    try:
        fn()
        return None
    except RuntimeError as e:
        return str(e)


def case_broadcasting_error_messages():
    a, b = torch.ones(2, 3), torch.ones(4)
    return [broadcast_message(lambda: a + b),
            broadcast_message(lambda: a * torch.ones(3, 3)),
            broadcast_message(lambda: a.view(4, 2)) is None,
            broadcast_message(lambda: torch.ones(2, 3) @ torch.ones(2, 3)),
            broadcast_message(lambda: torch.cat([torch.ones(2, 3), torch.ones(2, 4)])),
            broadcast_message(lambda: a.expand(3, 3)),
            broadcast_message(lambda: a.add_(torch.ones(2, 2, 3))),
            broadcast_message(lambda: torch.ones(2, 3).view(5)),
            broadcast_message(lambda: F.linear(torch.ones(2, 3), torch.ones(4, 5)))]


def case_print_options():
    x = torch.tensor([[1.23456789, 1e-5, 123456.0], [0.5, -2.0, 3.25]])
    texts = []
    for opts in [dict(precision=2), dict(sci_mode=False), dict(precision=6, sci_mode=True),
                 dict(linewidth=30), dict(threshold=5, edgeitems=1), dict(profile="short")]:
        torch.set_printoptions(**opts)
        texts.append(repr(x))
        texts.append(repr(torch.arange(12).view(3, 4)))
        torch.set_printoptions(profile="default")
        torch.set_printoptions(sci_mode=None)
    texts.append(repr(torch.tensor([1e-3, 1e3])))
    texts.append(repr(torch.tensor([1.0, 1e8])))
    texts.append(repr(torch.tensor([-1, 2**40])))
    texts.append(repr(torch.tensor([0.0001, 0.1], dtype=torch.float64)))
    texts.append(repr(torch.tensor([[1.5, float("nan")], [2.0, 3.0]])))
    texts.append(str(torch.tensor([1.0, 2.0]).unsqueeze(0).expand(3, 2)))
    return texts
