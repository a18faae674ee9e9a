"""Training-loop idioms as PyTorch users write them: AdamW / SGD+nesterov / RMSprop with
parameter groups, OneCycleLR, CosineAnnealingWarmRestarts, LambdaLR, SequentialLR,
ReduceLROnPlateau, clip_grad_norm_/clip_grad_value_, gradient accumulation,
zero_grad(set_to_none=True), frozen layers, an EMA of the weights, checkpoints with
optimizer and scheduler state (weights_only=True, map_location), torch.compile options,
CPU bf16 autocast under compile, activation checkpointing and inference_mode."""
import copy
import io
import math
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def arr(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def init_(model, scale=0.3):
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.from_numpy(arr(*p.shape, seed=100 + i, scale=scale)))
    return model


class MLP(nn.Module):
    def __init__(self, d_in=6, hidden=8, d_out=3):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, d_out)

    def forward(self, x):
        return self.fc2(F.gelu(self.norm(self.fc1(x))))


def data(n=16, seed=1):
    x = torch.from_numpy(arr(n, 6, seed=seed))
    y = torch.from_numpy(np.random.default_rng(seed).integers(0, 3, n))
    return x, y


def train(model, opt, steps, sched=None, x=None, y=None, clip=None, sched_per="step"):
    x, y = data() if x is None else (x, y)
    losses, lrs = [], []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if clip == "norm":
            losses.append(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5))
        elif clip == "value":
            torch.nn.utils.clip_grad_value_(model.parameters(), clip_value=0.05)
        opt.step()
        if sched is not None:
            sched.step()
            lrs.append(sched.get_last_lr())
        losses.append(loss.item())
    return losses, lrs, [p.detach().clone() for p in model.parameters()]


def case_adamw_param_groups_onecycle():
    model = init_(MLP())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0, "lr": 3e-3}],
                            lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[0.05, 0.01], total_steps=8,
                                                pct_start=0.25)
    out = train(model, opt, 8, sched, clip="norm")
    return out, [g["lr"] for g in opt.param_groups], [g["betas"] for g in opt.param_groups]


def case_sgd_nesterov_cosine_warm_restarts():
    model = init_(MLP())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2,
                                                                 eta_min=1e-3)
    losses, lrs = [], []
    x, y = data()
    for epoch in range(3):
        for i in range(4):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step(epoch + i / 4)
            lrs.append(opt.param_groups[0]["lr"])
            losses.append(loss.item())
    return losses, lrs, sched.T_cur, sched.T_i


def case_rmsprop_lambda_sequential():
    model = init_(MLP())
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-2, alpha=0.9, momentum=0.5,
                              centered=True)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (step + 1) / 3)
    decay = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, decay], milestones=[3])
    return train(model, opt, 7, sched, clip="value")


def case_reduce_lr_on_plateau():
    model = init_(MLP())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5,
                                                       patience=1, threshold=1e-2,
                                                       min_lr=0.05)
    lrs = []
    for val_loss in [1.0, 0.9, 0.95, 0.91, 0.92, 0.93, 0.5, 0.6, 0.7, 0.8]:
        sched.step(val_loss)
        lrs.append(opt.param_groups[0]["lr"])
    return lrs, sched.num_bad_epochs, sched.best, sched.get_last_lr()


def case_gradient_accumulation_frozen():
    model = init_(MLP())
    model.fc1.requires_grad_(False)
    opt = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-2)
    x, y = data(16)
    accum = 4
    opt.zero_grad(set_to_none=True)
    for step, (xb, yb) in enumerate(zip(x.split(4), y.split(4))):
        loss = F.cross_entropy(model(xb), yb) / accum
        loss.backward()
        if (step + 1) % accum == 0:
            opt.step()
            opt.zero_grad(set_to_none=True)
    grads_none = [p.grad is None for p in model.parameters()]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return [p.detach() for p in model.parameters()], grads_none, trainable


def case_ema_of_weights():
    model = init_(MLP())
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    ema2 = copy.deepcopy(ema)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data()
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, 0.1)
            for e, p in zip(ema2.state_dict().values(), model.state_dict().values()):
                e.mul_(0.9).add_(p.detach(), alpha=0.1)
    return [p for p in ema.parameters()], list(ema2.state_dict().values())


def case_checkpoint_round_trip():
    model = init_(MLP())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    train(model, opt, 3, sched)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ckpt.pt")
        torch.save({"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "best": 0.25}, path)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model2 = MLP()
    model2.load_state_dict(ckpt["model"])
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(ckpt["optimizer"])
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    sched2.load_state_dict(ckpt["scheduler"])
    a = train(model, opt, 2, sched)
    b = train(model2, opt2, 2, sched2)
    state = opt2.state_dict()
    return (a, b, ckpt["epoch"], ckpt["best"], sched2.last_epoch,
            sorted(state["state"][0]), state["param_groups"][0]["lr"])


def case_save_to_buffer_map_location_device():
    model = init_(MLP())
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, map_location=torch.device("cpu"))
    return list(state), [v.device.type for v in state.values()], list(state.values())


def case_compile_training_options():
    results = []
    for kwargs in [{}, {"mode": "reduce-overhead"}, {"fullgraph": True}, {"dynamic": True}]:
        model = init_(MLP())
        cmodel = torch.compile(model, **kwargs)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for n in (16, 16, 12):
            x, y = data(n)
            opt.zero_grad()
            loss = F.cross_entropy(cmodel(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        results.append(losses)
    return results


def case_compile_autocast_bf16():
    model = init_(MLP())
    cmodel = torch.compile(model)
    x, _ = data()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cmodel(x)
    with torch.no_grad():
        full = model(x)
    # bf16 keeps 8 significant bits: the two libraries round at different points
    return out.dtype, out.shape, torch.allclose(out.float(), full, atol=3e-2, rtol=3e-2)


def case_autocast_bf16_training_step():
    model = init_(MLP())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    loss.backward()
    opt.step()
    return logits.dtype, loss.dtype, [p.grad.dtype for p in model.parameters()]


class Deep(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([MLP(6, 8, 6) for _ in range(3)])

    def forward(self, x, use_ckpt=True):
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False) if use_ckpt else block(x)
        return x


def case_activation_checkpointing():
    model = init_(Deep())
    x = torch.from_numpy(arr(4, 6, seed=3)).requires_grad_()
    model(x).pow(2).sum().backward()
    g1 = [p.grad.clone() for p in model.parameters()] + [x.grad.clone()]
    model.zero_grad()
    x.grad = None
    model(x, use_ckpt=False).pow(2).sum().backward()
    g2 = [p.grad.clone() for p in model.parameters()] + [x.grad.clone()]
    return g1, g2


def case_inference_mode():
    model = init_(MLP()).eval()
    x, _ = data()
    with torch.inference_mode():
        out = model(x)
        inner = torch.is_inference_mode_enabled()
    flags = (out.requires_grad, out.is_inference(), inner, torch.is_inference_mode_enabled())

    @torch.inference_mode()
    def predict(t):
        return model(t).argmax(-1)
    return out, flags, predict(x), torch.is_grad_enabled()


def case_set_grad_enabled_and_no_grad_decorator():
    model = init_(MLP())
    x, y = data()
    with torch.set_grad_enabled(False):
        a = model(x)
    torch.set_grad_enabled(True)

    @torch.no_grad()
    def evaluate():
        return F.cross_entropy(model(x), y)
    loss = evaluate()
    return a.requires_grad, loss.requires_grad, loss, torch.is_grad_enabled()
