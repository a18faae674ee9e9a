"""PyTorch's classic tutorials (tensors, autograd, "What is torch.nn really?"), written
against `torch`; tests/compat/test_tutorial_basics.py runs them with torch and, through
porting.torch_as_ember, with ember, and compares what they return."""
import io
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import optim
from torch.utils.data import DataLoader, TensorDataset


def _plain(value):
    """Results as numpy / Python values (and reprs with the library's name taken out)."""
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    if isinstance(value, (list, tuple)):
        return (list if isinstance(value, list) else tuple)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, torch.dtype):
        value = str(value)
    if isinstance(value, str):
        return value.replace(torch.__name__ + ".", "lib.")
    return value


# --- tensors tutorial ------------------------------------------------------------------
def tensors_tour():
    out = {}
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    np_array = np.array(data)
    x_np = torch.from_numpy(np_array)
    x_ones = torch.ones_like(x_data)
    x_rand = torch.rand_like(x_data, dtype=torch.float)
    out["creation"] = [x_data, x_np, x_ones, x_rand.shape, x_rand.dtype.is_floating_point,
                       torch.zeros(2, 3).dtype, torch.full((2,), 7).dtype,
                       torch.arange(0, 1, 0.25), torch.linspace(-1, 1, 5), torch.eye(3),
                       torch.empty(2, 2).shape, torch.tensor([]).shape]
    tensor = torch.ones(4, 4)
    out["attributes"] = [tuple(tensor.shape), str(tensor.dtype), str(tensor.device),
                         tensor.ndim, tensor.numel(), tensor.stride(), tensor.is_leaf,
                         tensor.element_size(), tensor.size(-1)]
    tensor[:, 1] = 0
    out["first_row_last_col"] = [tensor[0], tensor[:, 0], tensor[..., -1], tensor]
    t1 = torch.cat([tensor, tensor, tensor], dim=1)
    y1 = tensor @ tensor.T
    y2 = tensor.matmul(tensor.T)
    y3 = torch.rand_like(y1)
    torch.matmul(tensor, tensor.T, out=y3)
    z1 = tensor * tensor
    z3 = torch.rand_like(tensor)
    torch.mul(tensor, tensor, out=z3)
    agg = tensor.sum()
    out["arithmetic"] = [t1, y1, y2, y3, z1, z3, agg.item(), type(agg.item()).__name__]
    tensor.add_(5)
    out["in_place"] = tensor
    t = torch.ones(5)
    n = t.numpy()
    t.add_(1)
    n2 = np.ones(5)
    t2 = torch.from_numpy(n2)
    np.add(n2, 1, out=n2)
    out["numpy_bridge"] = [n.copy(), t2.clone(), t2.dtype == torch.float64]
    a = torch.arange(12).reshape(3, 4)
    b = a.clone()
    b[a > 6] = -1
    b[[0, 2], [1, 3]] = 100
    b[1] += 10
    c = torch.zeros(3, 4)
    c[:, [0, 2]] = torch.tensor([1.0, 2.0])
    c.index_fill_(1, torch.tensor([3]), 9.0)
    out["indexing"] = [a[1:, ::2], a[a % 2 == 0], a[[2, 0]], a[torch.tensor([0, 2]), 1:3],
                       a[:, None, 1].shape, b, c, a.flip(0)[0], a.T[1], a.masked_select(a > 9)]
    col = torch.arange(3.0).view(3, 1)
    row = torch.arange(4.0)
    out["broadcasting"] = [col + row, col * row, (col - row).abs().max(dim=1),
                           torch.maximum(col, row).shape]
    f = torch.tensor([1.7, -2.5, 3.5])
    out["casting"] = [f.int(), f.long(), f.to(torch.int32).dtype, f.round(), f.floor(),
                      f.to(torch.bool), (torch.tensor([1, 2]) / 2).dtype,
                      (torch.tensor([1, 2]) // 2), (torch.tensor([1]) + 0.5).dtype,
                      torch.tensor([True]).sum().dtype, f.double().dtype, f.half().float(),
                      torch.tensor([1, 2], dtype=torch.int32).float().mean()]
    out["lists"] = [torch.tensor([[1.5, 2.0]]).tolist(), torch.tensor(3).item(),
                    torch.tensor([torch.tensor(1.0), torch.tensor(2.0)]),
                    [v.shape for v in torch.arange(6).view(2, 3)], len(torch.zeros(5, 2)),
                    torch.arange(6).chunk(3)[1], torch.arange(7).split(3)[-1],
                    type(torch.arange(4).split(2)).__name__]
    out["reprs"] = [repr(torch.tensor([1.5, 2.0])), repr(torch.tensor([[1, 2], [3, 4]])),
                    repr(torch.ones(2, dtype=torch.float64)), repr(torch.tensor(3.25)),
                    repr(torch.ones(2, requires_grad=True) * 2), str(torch.arange(3.0)),
                    repr(torch.tensor([True, False])), repr(torch.tensor([1e-5, 1e5])),
                    repr(torch.zeros(2, dtype=torch.int32)), repr(torch.tensor([])),
                    str(torch.float32), str(torch.Size([2, 3]))]
    torch.manual_seed(0)
    r = torch.rand(3)
    torch.manual_seed(0)
    out["seed_repeats"] = bool(torch.equal(r, torch.rand(3)))
    return _plain(out)


# --- autograd tutorials -----------------------------------------------------------------
class Exp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i):
        result = i.exp()
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        result, = ctx.saved_tensors
        return grad_output * result


class LegendrePolynomial3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


class ScaledArgmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        idx = x.argmax(dim=-1)
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * scale, idx

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad, grad_idx):
        x, = ctx.saved_tensors
        return (grad * ctx.scale if ctx.needs_input_grad[0] else None), None


def autograd_tour(w_np, b_np, x_np):
    out = {}
    x = torch.from_numpy(x_np)
    y = torch.zeros(3)
    w = torch.tensor(w_np, requires_grad=True)
    b = torch.tensor(b_np).requires_grad_()
    z = torch.matmul(x, w) + b
    loss = F.binary_cross_entropy_with_logits(z, y)
    loss.backward(retain_graph=True)
    out["basics"] = [loss, w.grad.clone(), b.grad.clone(), z.grad_fn.name(),
                     loss.grad_fn is not None, z.requires_grad, w.is_leaf, z.is_leaf]
    with torch.no_grad():
        z2 = torch.matmul(x, w) + b
    out["no_grad"] = [z2.requires_grad, z.detach().requires_grad]
    inp = torch.eye(4, 5, requires_grad=True)
    o = (inp + 1).pow(2).t()
    o.backward(torch.ones_like(o), retain_graph=True)
    first = inp.grad.clone()
    o.backward(torch.ones_like(o))
    second = inp.grad.clone()
    inp.grad.zero_()
    o2 = (inp + 1).pow(2).t()
    o2.backward(torch.ones_like(o2))
    out["accumulation"] = [first, second, inp.grad]
    a = torch.tensor([2.0, 3.0], requires_grad=True)
    h = a * a
    h.retain_grad()
    seen = []
    handle = h.register_hook(lambda g: seen.append(g.clone()) or g * 10)
    (h * torch.tensor([1.0, -1.0])).sum().backward()
    handle.remove()
    out["hooks"] = [h.grad, a.grad, seen]
    t = torch.linspace(-1, 1, 5, requires_grad=True)
    y3 = LegendrePolynomial3.apply(t) + Exp.apply(t)
    y3.sum().backward()
    v, idx = ScaledArgmax.apply(torch.tensor([[1.0, 3.0, 2.0]], requires_grad=True), 2.0)
    out["functions"] = [y3, t.grad, idx, idx.requires_grad, v.requires_grad]
    q = torch.tensor([1.0, 2.0], requires_grad=True)
    g, = torch.autograd.grad((q ** 3).sum(), q, create_graph=True)
    g2, = torch.autograd.grad(g.sum(), q)
    out["double_backward"] = [g, g2]
    AF = torch.autograd.functional
    f = lambda u: u ** 2 + u.sum()                      # noqa: E731
    s = lambda u: (u ** 3).sum() + u.prod()             # noqa: E731
    p = torch.tensor([1.0, 2.0, 3.0])
    out["functional"] = [AF.jacobian(f, p), AF.hessian(s, p),
                         AF.vjp(f, p, torch.ones(3)), AF.jvp(f, p, torch.ones(3)),
                         AF.hvp(s, p, torch.ones(3)), AF.vhp(s, p, torch.ones(3))]
    modes = []
    with torch.no_grad():
        modes.append((q * 2).requires_grad)
        with torch.enable_grad():
            modes.append((q * 2).requires_grad)
    with torch.set_grad_enabled(False):
        modes.append((q * 2).requires_grad)
    with torch.inference_mode():
        modes.append((q * 2).requires_grad)
    modes.append(torch.is_grad_enabled())
    out["modes"] = modes
    errors = []
    with torch.autograd.detect_anomaly():
        try:
            neg = torch.tensor([-1.0], requires_grad=True)
            torch.sqrt(neg).backward()
        except RuntimeError as err:
            errors.append("nan" in str(err))
    try:
        leaf = torch.ones(2, requires_grad=True)
        leaf.add_(1)
    except RuntimeError as err:
        errors.append("leaf" in str(err))
    try:
        (torch.ones(2, requires_grad=True) * 2).backward()
    except RuntimeError as err:
        errors.append("scalar" in str(err))
    out["errors"] = errors
    return _plain(out)


# --- "What is torch.nn really?" ----------------------------------------------------------
class Lambda(nn.Module):
    def __init__(self, func):
        super().__init__()
        self.func = func

    def forward(self, x):
        return self.func(x)


def make_mnist_model():
    return nn.Sequential(
        Lambda(lambda x: x.view(-1, 1, 6, 6)),
        nn.Conv2d(1, 4, kernel_size=3, stride=1, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, kernel_size=3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), Lambda(lambda x: x.view(x.size(0), -1)),
        nn.Linear(4, 3))


def loss_batch(model, loss_func, xb, yb, opt=None):
    loss = loss_func(model(xb), yb)
    if opt is not None:
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
        opt.step()
        opt.zero_grad()
    return loss.item(), len(xb)


def fit(epochs, model, loss_func, opt, scheduler, train_dl, valid_dl):
    history = []
    for _ in range(epochs):
        model.train()
        for xb, yb in train_dl:
            loss_batch(model, loss_func, xb, yb, opt)
        model.eval()
        with torch.no_grad():
            losses, nums = zip(*[loss_batch(model, loss_func, xb, yb) for xb, yb in valid_dl])
        val_loss = float(np.sum(np.multiply(losses, nums)) / np.sum(nums))
        scheduler.step()
        history.append([val_loss, opt.param_groups[0]["lr"]])
    return history


def nn_really(model, x_train, y_train, x_valid, y_valid, optimizer_name):
    train_ds = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    train_dl = DataLoader(train_ds, batch_size=4, drop_last=True)
    valid_dl = DataLoader(TensorDataset(torch.from_numpy(x_valid), torch.from_numpy(y_valid)),
                          batch_size=8)
    make_opt = {
        "sgd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        "adamw": lambda ps: optim.AdamW(ps, lr=0.01, amsgrad=True),
        "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5),
        "adagrad": lambda ps: optim.Adagrad(ps, lr=0.1),
    }[optimizer_name]
    opt = make_opt(model.parameters())
    scheduler = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    history = fit(2, model, F.cross_entropy, opt, scheduler, train_dl, valid_dl)
    buffer = io.BytesIO()
    torch.save({"epoch": 2, "model_state_dict": model.state_dict(),
                "optimizer_state_dict": opt.state_dict(),
                "scheduler_state_dict": scheduler.state_dict(), "history": history}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    resumed = make_mnist_model()
    resumed.load_state_dict(checkpoint["model_state_dict"])
    resumed_opt = make_opt(resumed.parameters())
    resumed_opt.load_state_dict(checkpoint["optimizer_state_dict"])
    resumed_sched = optim.lr_scheduler.CosineAnnealingLR(resumed_opt, T_max=4)
    resumed_sched.load_state_dict(checkpoint["scheduler_state_dict"])
    more = fit(1, resumed, F.cross_entropy, resumed_opt, resumed_sched, train_dl, valid_dl)
    info = [sum(p.numel() for p in model.parameters() if p.requires_grad),
            [name for name, _ in model.named_modules()],
            [name for name, _ in model.named_buffers()], checkpoint["epoch"],
            int(resumed[4].num_batches_tracked), len(train_dl), len(valid_dl)]
    with torch.no_grad():
        preds = resumed(torch.from_numpy(x_valid)).argmax(dim=1)
    return _plain([history, more, info, preds, resumed[1].weight])
