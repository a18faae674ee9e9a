"""Training-loop utilities as training scripts write them: seeding and backend flags,
`torch.cuda.amp` code guarded by `torch.cuda.is_available()`, a DataLoader with a
padding collate_fn, OneCycleLR (cosine and linear, momentum / beta cycling) and other
schedulers stepping per batch, `clip_grad_norm_`, checkpoint save / resume through
state dicts (model, optimizer, scheduler, scaler, RNG state), and a timm-style weight
EMA updated with `torch._foreach_lerp_` / `_foreach_mul_` / `_foreach_add_`."""
import copy
import io
import math
import random
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset


def W(*shape, seed=0):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def set_weights(model, scale=0.3):
    with torch.no_grad():
        for i, (n, p) in enumerate(sorted(model.state_dict().items())):
            if p.dtype.is_floating_point and "running_var" not in n:
                p.copy_(W(*p.shape, seed=100 + i) * scale)


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


class SeqDataset(Dataset):
    def __init__(self, n=10):
        rng = np.random.default_rng(0)
        self.items = [(rng.integers(1, 9, rng.integers(2, 6)).tolist(), int(i % 3)) for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, idx):
        tokens, label = self.items[idx]
        return torch.tensor(tokens, dtype=torch.long), label


def collate_fn(batch):
    seqs, labels = zip(*batch)
    lengths = torch.tensor([len(s) for s in seqs])
    padded = pad_sequence(seqs, batch_first=True, padding_value=0)
    return {"input_ids": padded, "lengths": lengths, "labels": torch.tensor(labels)}


class Classifier(nn.Module):
    def __init__(self, vocab=10, dim=8, classes=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.norm = nn.LayerNorm(dim)
        self.bn = nn.BatchNorm1d(dim)
        self.fc = nn.Linear(dim, classes)

    def forward(self, input_ids, lengths):
        mask = (input_ids != 0).unsqueeze(-1).float()
        pooled = (self.emb(input_ids) * mask).sum(1) / lengths.unsqueeze(-1).float()
        return self.fc(self.norm(self.bn(pooled)))


def make_loader():
    return DataLoader(SeqDataset(), batch_size=4, shuffle=False, collate_fn=collate_fn,
                      num_workers=0, pin_memory=torch.cuda.is_available(), drop_last=False)


def train_one_epoch(model, loader, optimizer, scheduler, scaler, device, use_amp, lrs, norms):
    model.train()
    total = 0.0
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = model(batch["input_ids"], batch["lengths"])
            loss = F.cross_entropy(logits, batch["labels"])
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5).item())
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        lrs.append([g["lr"] for g in optimizer.param_groups] +
                   [optimizer.param_groups[0].get("betas", (optimizer.param_groups[0].get("momentum"),))[0]])
        total += loss.item() * batch["labels"].size(0)
    return total / len(loader.dataset)


def case_amp_guarded_loop_with_one_cycle():
    seed_everything(0)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use_amp = device.type == "cuda"
    model = Classifier().to(device)
    set_weights(model)
    loader = make_loader()
    optimizer = torch.optim.AdamW([{"params": model.emb.parameters(), "lr": 1e-2},
                                   {"params": list(model.norm.parameters()) + list(model.bn.parameters()) + list(model.fc.parameters())}],
                                  lr=1e-2, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[0.05, 0.02], epochs=2,
                                                    steps_per_epoch=len(loader), pct_start=0.3,
                                                    anneal_strategy="cos", div_factor=10.0,
                                                    final_div_factor=100.0)
    scaler = torch.cuda.amp.GradScaler(enabled=use_amp) if hasattr(torch.cuda, "amp") \
        else torch.amp.GradScaler(device.type, enabled=use_amp)
    lrs, norms, losses = [], [], []
    for epoch in range(2):
        losses.append(train_one_epoch(model, loader, optimizer, scheduler, scaler, device, use_amp, lrs, norms))
    return [losses, lrs, norms, model.bn.running_mean, model.bn.num_batches_tracked,
            scaler.is_enabled(), scheduler.get_last_lr(), scheduler.state_dict()["_step_count"],
            len(loader), [b["input_ids"].shape for b in loader]]


def case_schedulers_per_step():
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10,
                                                anneal_strategy="linear", three_phase=True)
    one_cycle = []
    for _ in range(10):
        opt.step()
        sched.step()
        one_cycle.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
    opt2 = torch.optim.SGD([p], lr=0.1)
    warm = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt2, T_0=3, T_mult=2, eta_min=0.001)
    restarts = []
    for i in range(8):
        opt2.step()
        warm.step()
        restarts.append(opt2.param_groups[0]["lr"])
    opt3 = torch.optim.Adam([p], lr=0.1)
    warmup_steps, total = 3, 10
    lam = torch.optim.lr_scheduler.LambdaLR(
        opt3, lambda step: min(1.0, (step + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / total)))
    plateau_opt = torch.optim.SGD([p], lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(plateau_opt, mode="min", factor=0.5, patience=1)
    lambdas, plateaus = [], []
    for i, metric in enumerate([1.0, 0.9, 0.95, 0.97, 0.99, 0.5, 0.6, 0.7]):
        opt3.step()
        lam.step()
        lambdas.append(opt3.param_groups[0]["lr"])
        plateau.step(metric)
        plateaus.append(plateau_opt.param_groups[0]["lr"])
    return [one_cycle, restarts, lambdas, plateaus, sched.state_dict()["total_steps"]]


def case_checkpoint_resume_round_trip():
    seed_everything(1)
    model = Classifier()
    set_weights(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    loader = make_loader()
    batches = list(loader)

    def step(m, o, s, b):
        o.zero_grad()
        loss = F.cross_entropy(m(b["input_ids"], b["lengths"]), b["labels"])
        loss.backward()
        o.step()
        s.step()
        return loss.item()

    step(model, optimizer, scheduler, batches[0])
    step(model, optimizer, scheduler, batches[1])
    buffer = io.BytesIO()
    torch.save({"epoch": 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
                "numpy_rng": np.random.get_state()}, buffer)
    after = [step(model, optimizer, scheduler, batches[2]), step(model, optimizer, scheduler, batches[0])]
    buffer.seek(0)
    ckpt = torch.load(buffer, map_location="cpu", weights_only=False)
    resumed = Classifier()
    missing = resumed.load_state_dict(ckpt["model"], strict=True)
    ropt = torch.optim.SGD(resumed.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    ropt.load_state_dict(ckpt["optimizer"])
    rsched = torch.optim.lr_scheduler.StepLR(ropt, step_size=2, gamma=0.5)
    rsched.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["rng"])
    again = [step(resumed, ropt, rsched, batches[2]), step(resumed, ropt, rsched, batches[0])]
    # a partial load: the head replaced, strict=False reports it
    state = {k: v for k, v in ckpt["model"].items() if not k.startswith("fc.")}
    partial = Classifier().load_state_dict(state, strict=False)
    return [after, again, [list(missing.missing_keys), list(missing.unexpected_keys)],
            sorted(partial.missing_keys), ckpt["epoch"], rsched.get_last_lr(),
            {k: v for k, v in ropt.state_dict()["param_groups"][0].items() if k != "params"},
            resumed.fc.weight, model.fc.weight, ckpt["rng"].dtype]


class ModelEmaV3(nn.Module):
    """timm-style EMA of a model's weights (state dict values, buffers included)."""

    def __init__(self, model, decay=0.9, use_warmup=False, foreach=True):
        super().__init__()
        self.module = copy.deepcopy(model)
        self.module.eval()
        self.decay = decay
        self.use_warmup = use_warmup
        self.foreach = foreach

    def get_decay(self, step=None):
        if step is None or not self.use_warmup:
            return self.decay
        return min(self.decay, 1 - (1 + step) ** -0.75)

    @torch.no_grad()
    def update(self, model, step=None):
        decay = self.get_decay(step)
        ema_lerp_values, model_lerp_values = [], []
        for ema_v, model_v in zip(self.module.state_dict().values(), model.state_dict().values()):
            if ema_v.is_floating_point():
                ema_lerp_values.append(ema_v)
                model_lerp_values.append(model_v)
            else:
                ema_v.copy_(model_v)
        if self.foreach and hasattr(torch, "_foreach_lerp_"):
            torch._foreach_lerp_(ema_lerp_values, model_lerp_values, weight=1. - decay)
        elif self.foreach:
            torch._foreach_mul_(ema_lerp_values, scalar=decay)
            torch._foreach_add_(ema_lerp_values, model_lerp_values, alpha=1. - decay)
        else:
            for ema_v, model_v in zip(ema_lerp_values, model_lerp_values):
                ema_v.lerp_(model_v, weight=1. - decay)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def case_ema_foreach():
    model = Classifier()
    set_weights(model)
    ema_lerp = ModelEmaV3(model, decay=0.8, use_warmup=True)
    ema_loop = ModelEmaV3(model, decay=0.8, use_warmup=True, foreach=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05, foreach=True)
    batches = list(make_loader())
    for i, b in enumerate(batches * 2):
        optimizer.zero_grad()
        F.cross_entropy(model(b["input_ids"], b["lengths"]), b["labels"]).backward()
        optimizer.step()
        ema_lerp.update(model, step=i)
        ema_loop.update(model, step=i)
    # the mul/add fallback path of older torch
    params = [W(3, seed=1), W(2, 2, seed=2)]
    others = [W(3, seed=3), W(2, 2, seed=4)]
    torch._foreach_mul_(params, scalar=0.5)
    torch._foreach_add_(params, others, alpha=0.25)
    sums = torch._foreach_add(params, 1.0)
    norms = torch._foreach_norm(others)
    sq = torch._foreach_sqrt([o.abs() for o in others])
    torch._foreach_addcmul_(params, others, others, value=0.1)
    torch._foreach_zero_(sums)
    b = batches[0]
    ema_lerp.module.eval()
    return [ema_lerp.module.fc.weight, ema_loop.module.fc.weight, ema_lerp.module.bn.running_mean,
            ema_lerp.module.bn.num_batches_tracked, ema_lerp(b["input_ids"], b["lengths"]),
            params, sums, norms, sq]
