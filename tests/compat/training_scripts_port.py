"""Training-script code in plain PyTorch: an ImageNet-style loop with AverageMeter,
top-k accuracy, checkpoint save / resume (model, optimizer, scheduler), frozen layers
and param groups; DQN (Double-DQN target, RMSprop, Polyak updates) and PPO steps;
metrics (confusion matrix, IoU); a DLRM-style EmbeddingBag; NumPy memory sharing;
backend / default-dtype flags; jit.script / trace; pixel shuffle, fold, interpolate
modes; EMA with SequentialLR; GradScaler on the CPU; CTC; the text-classification and
Transformer language-model tutorials; custom autograd Function details."""
import os, random, tempfile
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import copy, math
import collections, math
from torch.utils.data import DataLoader, Dataset, random_split
from torch.nn.utils.rnn import pad_sequence
from torch.autograd import Function


# ---- script
def W(*shape, seed=0):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))

class AverageMeter:
    def __init__(self): self.sum = 0; self.count = 0
    def update(self, v, n=1): self.sum += v * n; self.count += n
    @property
    def avg(self): return self.sum / self.count

def accuracy(output, target, topk=(1,)):
    with torch.no_grad():
        maxk = max(topk); batch_size = target.size(0)
        _, pred = output.topk(maxk, 1, True, True)
        pred = pred.t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        res = []
        for k in topk:
            correct_k = correct[:k].reshape(-1).float().sum(0, keepdim=True)
            res.append(correct_k.mul_(100.0 / batch_size))
        return res

def make():
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.0), nn.Linear(4, 5))
    with torch.no_grad():
        for i, (n, p) in enumerate(m.named_parameters()): p.copy_(W(*p.shape, seed=i) * 0.5)
    return m

def case_resume_training():
    random.seed(0); np.random.seed(0); torch.manual_seed(0)
    if torch.cuda.is_available(): torch.cuda.manual_seed_all(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = make().to(device)
    crit = nn.CrossEntropyLoss(label_smoothing=0.1).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.1)
    x = W(6, 3, 8, 8, seed=50).to(device); y = torch.tensor([0, 1, 2, 3, 4, 0]).to(device)
    meter = AverageMeter(); accs = []
    for epoch in range(3):
        model.train()
        out = model(x); loss = crit(out, y)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        meter.update(loss.item(), x.size(0))
        accs.append([a.item() for a in accuracy(out, y, topk=(1, 3))])
    path = os.path.join(tempfile.mkdtemp(), "ckpt.pth.tar")
    torch.save({"epoch": 3, "state_dict": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "best_acc1": torch.tensor(50.0)}, path)
    ck = torch.load(path, map_location=device)
    model2 = make(); opt2 = torch.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    sched2 = torch.optim.lr_scheduler.MultiStepLR(opt2, milestones=[2, 4], gamma=0.1)
    model2.load_state_dict(ck["state_dict"]); opt2.load_state_dict(ck["optimizer"]); sched2.load_state_dict(ck["scheduler"])
    for m_, o_, s_ in ((model, opt, sched), (model2, opt2, sched2)):
        out = m_(x); l = crit(out, y); o_.zero_grad(); l.backward(); o_.step(); s_.step()
    model.eval(); model2.eval()
    with torch.no_grad():
        e1, e2 = model(x), model2(x)
    st = opt.state_dict()
    return [meter.avg, accs, e1, e2, sched.get_last_lr(), sched2.get_last_lr(), ck["epoch"], ck["best_acc1"], sorted(st["state"][0].keys()), st["param_groups"][0]["params"],
            model[1].num_batches_tracked, str(device)]

def case_param_groups_and_freezing():
    model = make()
    for p in model[0].parameters(): p.requires_grad = False
    opt = torch.optim.AdamW([{"params": model[1].parameters(), "lr": 1e-2}, {"params": model[6].parameters()}], lr=1e-3, betas=(0.9, 0.98), weight_decay=0.05, amsgrad=True)
    opt.add_param_group({"params": [nn.Parameter(torch.ones(2))], "lr": 0.5})
    x = W(2, 3, 8, 8, seed=5)
    for _ in range(2):
        loss = model(x).logsumexp(1).mean(); opt.zero_grad(); loss.backward(); opt.step()
    for g in opt.param_groups: g["lr"] *= 0.5
    return [model[0].weight.grad is None, model[1].weight, model[6].bias, [g["lr"] for g in opt.param_groups], len(opt.state), sum(p.numel() for p in model.parameters() if p.requires_grad)]


# ---- misc2
def case_dqn_step():
    torch.manual_seed(0)
    q = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        for i, p in enumerate(q.parameters()): p.copy_(W(*p.shape, seed=i) * 0.3)
    tgt = copy.deepcopy(q)
    for p in tgt.parameters(): p.requires_grad_(False)
    opt = torch.optim.RMSprop(q.parameters(), lr=1e-2, alpha=0.95, eps=0.01, centered=True)
    s, s2 = W(8, 4, seed=10), W(8, 4, seed=11)
    a = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1]); r = W(8, seed=12); done = torch.tensor([0, 0, 1, 0, 0, 0, 1, 0], dtype=torch.bool)
    losses = []
    for step in range(3):
        qa = q(s).gather(1, a.unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            next_a = q(s2).argmax(dim=1, keepdim=True)
            target = r + 0.99 * tgt(s2).gather(1, next_a).squeeze(1) * (~done).float()
        loss = F.smooth_l1_loss(qa, target)
        opt.zero_grad(); loss.backward()
        nn.utils.clip_grad_norm_(q.parameters(), 10.0)
        opt.step(); losses.append(loss.item())
        with torch.no_grad():
            for pt, p in zip(tgt.parameters(), q.parameters()):
                pt.data.mul_(0.9); pt.data.add_(0.1 * p.data)
    return [losses, tgt[0].weight, q[2].bias]

def case_ppo_step():
    pi = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4))
    with torch.no_grad():
        for i, p in enumerate(pi.parameters()): p.copy_(W(*p.shape, seed=i) * 0.5)
    obs = W(6, 3, seed=3); act = torch.tensor([0, 3, 1, 2, 2, 0]); adv = W(6, seed=4)
    with torch.no_grad():
        old_logp = torch.distributions.Categorical(logits=pi(obs)).log_prob(act)
    opt = torch.optim.Adam(pi.parameters(), lr=3e-3, eps=1e-5)
    out = []
    for _ in range(3):
        dist = torch.distributions.Categorical(logits=pi(obs))
        ratio = torch.exp(dist.log_prob(act) - old_logp)
        adv_n = (adv - adv.mean()) / (adv.std() + 1e-8)
        loss = -torch.min(ratio * adv_n, torch.clamp(ratio, 0.8, 1.2) * adv_n).mean() - 0.01 * dist.entropy().mean()
        opt.zero_grad(); loss.backward(); opt.step(); out.append(loss.item())
    return [out, pi[2].weight]

def case_metrics():
    y = torch.tensor([0, 2, 1, 1, 0, 2, 2]); p = torch.tensor([0, 1, 1, 1, 2, 2, 0])
    cm = torch.bincount(3 * y + p, minlength=9).reshape(3, 3)
    logits = W(7, 3)
    top2 = logits.topk(2, dim=1).indices
    acc2 = (top2 == y.unsqueeze(1)).any(1).float().mean()
    oh = F.one_hot(y, num_classes=4)
    iou = torch.diag(cm) / (cm.sum(0) + cm.sum(1) - torch.diag(cm)).clamp(min=1)
    return [cm, acc2, oh, iou, (logits.argmax(1) == y).sum().item(), F.one_hot(torch.tensor([[1, 0]])).shape]

def case_embedding_bag_dlrm():
    eb = nn.EmbeddingBag(10, 4, mode="sum")
    with torch.no_grad(): eb.weight.copy_(W(10, 4))
    idx = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9]); off = torch.tensor([0, 4])
    e1 = eb(idx, off)
    em = nn.EmbeddingBag(10, 4, mode="mean"); em.weight.data = eb.weight.data.clone()
    e2 = em(torch.tensor([[1, 2], [3, 4]]))
    emax = F.embedding_bag(idx, eb.weight, off, mode="max")
    ew = F.embedding_bag(idx, eb.weight, off, mode="sum", per_sample_weights=torch.arange(8.))
    pre = nn.Embedding.from_pretrained(W(5, 3), freeze=True, padding_idx=0)
    z = torch.bmm(e1.unsqueeze(0), e1.unsqueeze(0).transpose(1, 2))
    li, lj = torch.tril_indices(2, 2, offset=-1)
    return [e1, e2, emax, ew, pre(torch.tensor([0, 4])), pre.weight.requires_grad, z[:, li, lj]]

def case_numpy_sharing():
    a = np.ones(3, dtype=np.float32)
    t = torch.from_numpy(a); a[0] = 5
    t[1] = 7
    n = t.numpy(); n[2] = 9
    u = torch.as_tensor(a); u[0] = -1
    c = torch.tensor(a); c[0] = 100
    return [t, a, u, c, torch.from_numpy(np.arange(3)).dtype == torch.int64]

def case_defaults_and_flags():
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    torch.set_float32_matmul_precision("high")
    prec = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    threads = torch.get_num_threads(); torch.set_num_threads(2); nt = torch.get_num_threads(); torch.set_num_threads(threads)
    torch.set_default_dtype(torch.float64)
    x = torch.tensor([1.0]); z = torch.zeros(2); r = torch.arange(0, 1, 0.5)
    torch.set_default_dtype(torch.float32)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    return [det, prec, nt, str(x.dtype), str(z.dtype), str(r.dtype), str(torch.get_default_dtype()), tf32, torch.backends.cudnn.is_available() in (True, False)]

@torch.jit.script
def fused_gelu(x):
    return x * 0.5 * (1.0 + torch.erf(x / 1.41421))

class Scripted(nn.Module):
    def __init__(self):
        super().__init__(); self.l = nn.Linear(3, 3)
    def forward(self, x):
        return fused_gelu(self.l(x))

def case_jit_script_and_trace():
    m = Scripted()
    with torch.no_grad(): m.l.weight.copy_(W(3, 3)); m.l.bias.zero_()
    x = W(2, 3, seed=1)
    tr = torch.jit.trace(m, x)
    sm = torch.jit.script(m)
    return [fused_gelu(x), tr(x), sm(x)]

def case_sr_and_unfold():
    x = W(1, 8, 4, 4)
    ps = F.pixel_shuffle(x, 2); pu = F.pixel_unshuffle(ps, 2)
    u = F.unfold(W(1, 2, 5, 5), kernel_size=3, padding=1, stride=2)
    f = F.fold(u, output_size=(5, 5), kernel_size=3, padding=1, stride=2)
    i1 = F.interpolate(x, scale_factor=1.5, mode="bicubic", align_corners=False)
    i2 = F.interpolate(x, size=(7, 3), mode="nearest-exact")
    i3 = F.interpolate(x, scale_factor=2, mode="area")
    i4 = F.interpolate(W(1, 2, 6), scale_factor=0.5, mode="linear", antialias=False)
    i5 = F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True)
    return [ps, pu, u, f, i1, i2, i3, i4, i5]

def case_ema_and_lr():
    m = nn.Linear(2, 2)
    with torch.no_grad(): m.weight.copy_(W(2, 2)); m.bias.zero_()
    ema = torch.optim.swa_utils.AveragedModel(m, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=2)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3, eta_min=0.01)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[2])
    lrs = []
    for _ in range(5):
        m(W(3, 2, seed=1)).sum().backward(); opt.step(); opt.zero_grad(); ema.update_parameters(m); sched.step(); lrs.append(opt.param_groups[0]["lr"])
    return [lrs, ema.module.weight, ema.n_averaged]

def case_gradscaler_cpu():
    m = nn.Linear(2, 1)
    with torch.no_grad(): m.weight.copy_(W(1, 2)); m.bias.zero_()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2. ** 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = m(W(3, 2, seed=1)).float().pow(2).mean()
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    g = m.weight.grad.clone()
    scaler.step(opt); scaler.update()
    return [g, m.weight, scaler.get_scale()]

def case_ctc():
    T, N, C, S = 12, 2, 5, 4
    lp = W(T, N, C).log_softmax(2).detach().requires_grad_()
    tg = torch.tensor([[1, 2, 2, 3], [4, 1, 0, 0]])
    il = torch.tensor([12, 10]); tl = torch.tensor([4, 2])
    loss = nn.CTCLoss(blank=0, zero_infinity=True)(lp, tg, il, tl)
    loss.backward()
    l2 = F.ctc_loss(lp, torch.tensor([1, 2, 2, 3, 4, 1]), il, tl, reduction="none")
    return [loss, lp.grad, l2]


# ---- text
CORPUS = [("the cat sat on the mat", 0), ("dogs chase cats", 1), ("the mat is red", 0), ("a dog sat", 1), ("red cats and red dogs", 1), ("on the mat", 0)] * 3

class TextDS(Dataset):
    def __init__(self, rows): self.rows = rows
    def __len__(self): return len(self.rows)
    def __getitem__(self, i): return self.rows[i]

def build_vocab(rows):
    counter = collections.Counter(w for t, _ in rows for w in t.split())
    itos = ["<unk>", "<pad>"] + sorted(counter, key=lambda w: (-counter[w], w))
    return {w: i for i, w in enumerate(itos)}

VOCAB = build_vocab(CORPUS)

def collate_batch(batch):
    labels, texts, offsets = [], [], [0]
    for text, label in batch:
        ids = torch.tensor([VOCAB.get(w, 0) for w in text.split()], dtype=torch.int64)
        labels.append(label); texts.append(ids); offsets.append(ids.size(0))
    offsets = torch.tensor(offsets[:-1]).cumsum(dim=0)
    return torch.tensor(labels, dtype=torch.int64), torch.cat(texts), offsets

class TextClassificationModel(nn.Module):
    def __init__(self, vocab_size, embed_dim, num_class):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, sparse=False)
        self.fc = nn.Linear(embed_dim, num_class)
        initrange = 0.5
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.fc.weight.data.uniform_(-initrange, initrange)
        self.fc.bias.data.zero_()
    def forward(self, text, offsets):
        return self.fc(self.embedding(text, offsets))

def case_text_classification():
    m = TextClassificationModel(len(VOCAB), 8, 2)
    with torch.no_grad():
        m.embedding.weight.copy_(torch.tensor(np.random.default_rng(0).uniform(-0.5, 0.5, (len(VOCAB), 8)).astype(np.float32)))
        m.fc.weight.copy_(torch.tensor(np.random.default_rng(1).uniform(-0.5, 0.5, (2, 8)).astype(np.float32)))
    crit = nn.CrossEntropyLoss(); opt = torch.optim.SGD(m.parameters(), lr=5.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1.0, gamma=0.1)
    dl = DataLoader(TextDS(CORPUS), batch_size=4, shuffle=False, collate_fn=collate_batch)
    losses = []
    for epoch in range(2):
        m.train()
        for label, text, offsets in dl:
            opt.zero_grad(); pred = m(text, offsets); loss = crit(pred, label); loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 0.1); opt.step(); losses.append(loss.item())
        sched.step()
    m.eval(); acc = 0
    with torch.no_grad():
        for label, text, offsets in dl:
            acc += (m(text, offsets).argmax(1) == label).sum().item()
    train_ds, val_ds = random_split(TextDS(CORPUS), [0.8, 0.2], generator=torch.Generator().manual_seed(42))
    return [losses, acc, len(train_ds), len(val_ds), sched.get_last_lr()]

class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.0, max_len=50):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)
    def forward(self, x):
        return self.dropout(x + self.pe[:x.size(0)])

class LM(nn.Module):
    def __init__(self, ntoken, d=8):
        super().__init__()
        self.pos = PositionalEncoding(d)
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 2, 16, 0.0), 2)
        self.emb = nn.Embedding(ntoken, d); self.dec = nn.Linear(d, ntoken); self.d = d
    def forward(self, src, mask):
        return self.dec(self.enc(self.pos(self.emb(src) * math.sqrt(self.d)), mask))

def batchify(data, bsz):
    seq_len = data.size(0) // bsz
    return data[:seq_len * bsz].view(bsz, seq_len).t().contiguous()

def case_transformer_lm():
    ids = torch.tensor([VOCAB[w] for t, _ in CORPUS for w in t.split()])
    data = batchify(ids, 3)
    m = LM(len(VOCAB))
    with torch.no_grad():
        for i, p in enumerate(m.parameters()): p.copy_(torch.tensor(np.random.default_rng(i).standard_normal(tuple(p.shape)).astype(np.float32) * 0.2))
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    losses = []
    for i in range(0, 3 * 5, 5):
        src, tgt = data[i:i + 5], data[i + 1:i + 6].reshape(-1)
        mask = nn.Transformer.generate_square_subsequent_mask(src.size(0))
        out = m(src, mask); loss = nn.functional.cross_entropy(out.view(-1, len(VOCAB)), tgt)
        opt.zero_grad(); loss.backward(); nn.utils.clip_grad_norm_(m.parameters(), 0.5); opt.step(); losses.append(loss.item())
    return [losses, math.exp(losses[-1])]


# ---- autograd
class MulAdd(Function):
    @staticmethod
    def forward(ctx, a, b, c=None):
        ctx.save_for_backward(a, b)
        ctx.set_materialize_grads(False)
        return a * b + (0 if c is None else c), a - b
    @staticmethod
    def backward(ctx, g1, g2):
        a, b = ctx.saved_tensors
        ga = gb = None
        if g1 is None: g1 = torch.zeros_like(a)
        if ctx.needs_input_grad[0]: ga = g1 * b + (0 if g2 is None else g2)
        if ctx.needs_input_grad[1]: gb = g1 * a - (0 if g2 is None else g2)
        return ga, gb, None

class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x); return x ** 3
    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g * 3 * x ** 2

def case_custom_function_details():
    a = W(3).requires_grad_(); b = W(3, seed=1)
    y1, y2 = MulAdd.apply(a, b)
    y1.sum().backward()
    x = W(3, seed=2).requires_grad_()
    y = Cube.apply(x)
    g, = torch.autograd.grad(y.sum(), x, create_graph=True)
    g2, = torch.autograd.grad(g.sum(), x)
    z = W(2, 2, seed=3).requires_grad_()
    out = (z @ z).trace()
    h = torch.autograd.grad(out, z, retain_graph=True)[0]
    out.backward(inputs=[z])
    return [a.grad, b.grad is None, g, g2, h, z.grad, y1.grad_fn.__class__.__name__ != "", y2.requires_grad]

def case_retain_and_hooks():
    x = W(3).requires_grad_()
    y = x * 2; y.retain_grad()
    z = (y ** 2).sum()
    z.backward(retain_graph=True)
    first = x.grad.clone()
    z.backward()
    w = W(3, seed=5).requires_grad_()
    v = w.exp()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t * 1, lambda t: t):
        u = (v * v).sum()
    u.backward()
    anomaly = None
    with torch.autograd.detect_anomaly():
        q = (W(2, seed=7).requires_grad_() * 2).sum(); q.backward()
    return [first, x.grad, y.grad, w.grad, y.is_leaf, y.grad_fn.name() if hasattr(y.grad_fn, "name") else "", torch.autograd.grad((x * x).sum(), x, grad_outputs=torch.tensor(2.))[0]]
