"""Eager mode against PyTorch eager on the CPU: models and per-op overhead (issue 22).

    python3 benchmarks/eager.py [--quick] [--save] [--only NAME[,NAME]] [--threads N]

Rows: inference and one training step (forward, cross_entropy, backward, SGD) for the
MLP (784-256-128-10, batch 64), the small CNN (batch 32, 1x28x28), resnet18 (batch 8,
3x224x224) and a transformer encoder layer (d 256, 8 heads, batch 8 x 128 tokens), plus
per-op overhead for a 1-element add and a 1000x1000 add and the `small_ops` rows: indexing,
slicing, scalar arithmetic, an in-place add, a reduction, a no_grad block, a Linear call,
the backward of a 2-node graph and an SGD step over 6 parameters (8x16 / 32x16
tensors). ember and torch run *interleaved* (one call of each per round, so load on a
shared machine hits both alike); times are medians over the rounds. The table then lists which eager kernels
ember picked and why (`ember.frontend.eager_kernels.choices()`).
--smoke runs the overhead and mlp rows with 2 rounds (proves the script runs).
--threads N (default 1) gives both libraries N threads: torch.set_num_threads, NumPy's
BLAS through threadpoolctl, ember's pool through EMBER_NUM_THREADS; 0 leaves every
library at its own default. On a shared machine one thread each is the fair setting:
OpenMP and BLAS workers spinning for cores they do not get make both sides noisy.
With --save, writes benchmarks/results/eager.json.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def _pop_option(argv: list, name: str, default):
    if name in argv:
        i = argv.index(name)
        value = argv[i + 1]
        del argv[i:i + 2]
        return value
    return default


if __name__ == "__main__":                   # before numpy, torch and ember start pools
    _threads = int(_pop_option(sys.argv[1:], "--threads", "1"))
    if _threads:
        os.environ["EMBER_NUM_THREADS"] = str(_threads)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import ember  # noqa: E402
import ember.nn.functional as EF  # noqa: E402
from benchmarks.common import Bench, bench_args, torch_resnet18  # noqa: E402


def add_row(b: Bench, label: str, ember_fn, torch_fn, inner: int = 1, repeats=None):
    """ember and torch interleaved (benchmarks.common.timed_row, on ember's Timer)."""
    row = b.row(label, ember=ember_fn, torch=torch_fn, repeats=repeats, inner=inner)
    e, t = row["ember"]["median_s"], row["torch"]["median_s"]
    print(f"  {label}: ember {e * 1e3:.3f} ms, torch {t * 1e3:.3f} ms, "
          f"ember/torch {e / t:.2f}x", flush=True)


# --- models: the same architecture built from either library's nn -------------------------
def mlp(nn):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
                         nn.ReLU(), nn.Linear(128, 10))


def small_cnn(nn):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(32, 10))


class _EncoderHead:
    """A transformer encoder layer, then mean over tokens and a linear classifier."""

    @staticmethod
    def build(nn):
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = nn.TransformerEncoderLayer(256, 8, 1024, dropout=0.0,
                                                        batch_first=True)
                self.head = nn.Linear(256, 10)

            def forward(self, x):
                return self.head(self.layer(x).mean(1))
        return Model()


def _pair(build_ember, build_torch):
    e_model, t_model = build_ember(), build_torch()
    state = {k: torch.from_numpy(np.array(v.detach().numpy())) for k, v in
             e_model.state_dict().items()}
    t_model.load_state_dict(state)
    return e_model, t_model


CASES = {
    "mlp": (lambda: mlp(ember.nn), lambda: mlp(torch.nn), (64, 1, 28, 28)),
    "small_cnn": (lambda: small_cnn(ember.nn), lambda: small_cnn(torch.nn), (32, 1, 28, 28)),
    "resnet18": (lambda: ember.models.resnet18(num_classes=10), lambda: torch_resnet18(10),
                 (8, 3, 224, 224)),
    "encoder": (lambda: _EncoderHead.build(ember.nn), lambda: _EncoderHead.build(torch.nn),
                (8, 128, 256)),
}


def model_rows(b: Bench, name: str, rng):
    build_e, build_t, shape = CASES[name]
    e_model, t_model = _pair(build_e, build_t)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 10, shape[0]).astype(np.int64)
    xe, xt, ye, yt = ember.tensor(x), torch.from_numpy(x), ember.tensor(y), torch.from_numpy(y)

    e_model.eval(), t_model.eval()

    def e_infer():
        with ember.no_grad():
            return e_model(xe)

    def t_infer():
        with torch.no_grad():
            return t_model(xt)
    out_e, out_t = e_infer().numpy(), t_infer().numpy()
    err = float(np.abs(out_e - out_t).max() / (np.abs(out_t).max() + 1e-12))
    print(f"{name}: inference max rel. difference vs torch {err:.2e}")
    add_row(b, f"{name} inference (batch {shape[0]})", e_infer, t_infer)

    e_model.train(), t_model.train()
    e_opt = ember.optim.SGD(e_model.parameters(), lr=1e-3, momentum=0.9)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=1e-3, momentum=0.9)

    def e_step():
        loss = EF.cross_entropy(e_model(xe), ye)
        e_opt.zero_grad()
        loss.backward()
        e_opt.step()

    def t_step():
        loss = torch.nn.functional.cross_entropy(t_model(xt), yt)
        t_opt.zero_grad()
        loss.backward()
        t_opt.step()
    add_row(b, f"{name} train step, SGD (batch {shape[0]})", e_step, t_step)


def overhead_rows(b: Bench):
    a, c = ember.randn(1), ember.randn(1)
    ta, tc = torch.randn(1), torch.randn(1)
    # cheap rows get many rounds: a shared machine preempts some of them
    smoke = b.args.smoke
    add_row(b, "add, 1 element (per op)", lambda: a + c, lambda: ta + tc, inner=100,
            repeats=b.args.repeats if smoke else max(b.args.repeats, 101))
    a, c = ember.randn(1000, 1000), ember.randn(1000, 1000)
    ta, tc = torch.randn(1000, 1000), torch.randn(1000, 1000)
    add_row(b, "add, 1000x1000 (per op)", lambda: a + c, lambda: ta + tc, inner=5,
            repeats=b.args.repeats if smoke else max(b.args.repeats, 41))


def _small_op_cases(lib):
    """Per-op dispatch rows: what typical eager scripts do on small tensors."""
    x = lib.randn(8, 16)
    w = lib.randn(4, requires_grad=True)
    lin = lib.nn.Linear(16, 32)
    params = [lib.randn(32, 16, requires_grad=True) for _ in range(6)]
    for p in params:
        p.grad = lib.randn(32, 16)
    sgd = lib.optim.SGD(params, lr=0.01, momentum=0.9)

    def no_grad_block():
        with lib.no_grad():
            return x * 2.0

    def small_backward():
        (w * 2.0).sum().backward()
    return [("index x[0]", lambda: x[0], 100), ("slice x[:, 1:3]", lambda: x[:, 1:3], 100),
            ("scalar mul x * 2.0", lambda: x * 2.0, 100),
            ("in-place x.add_(1.0)", lambda: x.add_(1.0), 100),
            ("reduction x.sum()", lambda: x.sum(), 100),
            ("no_grad block", no_grad_block, 100),
            ("Linear(16, 32) call", lambda: lin(x), 50),
            ("backward of (w * 2).sum()", small_backward, 20),
            ("SGD step, 6 params", sgd.step, 20)]


def small_op_rows(b: Bench):
    reps = b.args.repeats if b.args.smoke else max(b.args.repeats, 41)
    for (label, e_fn, inner), (_, t_fn, _) in zip(_small_op_cases(ember), _small_op_cases(torch)):
        add_row(b, f"{label} (per op)", e_fn, t_fn, inner=inner, repeats=reps)


def parse_args(argv=None):
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1,
                   help="threads for every library (0: each library's default)")
    p.add_argument("--only", default=None,
                   help="comma-separated: overhead,small_ops," + ",".join(CASES))
    args = bench_args("eager", argv, p)
    if args.smoke and args.only is None:
        args.only = "overhead,mlp"                  # the smallest rows
    return args


def main(argv=None):
    args = parse_args(argv)
    only = args.only.split(",") if args.only else None
    b = Bench("eager", args)
    if args.threads:
        torch.set_num_threads(args.threads)
        ember.set_num_threads(args.threads)       # EMBER_NUM_THREADS sizes the pool itself
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(args.threads)
        except ImportError:
            print("threadpoolctl is not installed: NumPy's BLAS keeps its own thread count")
    print(f"threads: torch {torch.get_num_threads()}, ember pool "
          f"{os.environ.get('EMBER_NUM_THREADS', 'default')}; load: {os.getloadavg()}")
    rng = np.random.default_rng(0)
    if only is None or "overhead" in only:
        overhead_rows(b)
    if only is None or "small_ops" in only:
        small_op_rows(b)
    for name in CASES:
        if only is None or name in only:
            model_rows(b, name, rng)
    b.finish()
    try:
        from ember.frontend import eager_kernels
    except ImportError:
        return
    eager_kernels.print_choices()


if __name__ == "__main__":
    main()
