"""One eager training step (forward, cross_entropy, backward, Adam step): ember vs torch.

    python3 benchmarks/eager_train.py [--quick] [--no-compile]

Models: an MLP (64 -> 256 -> 256 -> 10, batch 64) and the digits CNN of
examples/digits_cnn.py (1x8x8 input, batch 32). The torch.compile column compiles
the model's forward (backward through AOTAutograd); the optimizer step stays eager.
With --save, writes benchmarks/results/eager_train.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import ember  # noqa: E402
import ember.nn as enn  # noqa: E402
import ember.nn.functional as EF  # noqa: E402
import ember.optim as eoptim  # noqa: E402
from benchmarks.common import Bench, bench_args  # noqa: E402


def mlp(nn):
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def cnn(nn):
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def _copy_weights(t_model, e_model):
    sd = {k: ember.tensor(v.detach().numpy().copy()) for k, v in t_model.state_dict().items()}
    e_model.load_state_dict(sd)


def ember_step(model, x, y):
    opt = eoptim.Adam(model.parameters(), lr=1e-3)
    xe, ye = ember.tensor(x), ember.tensor(y)

    def step():
        loss = EF.cross_entropy(model(xe), ye)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def torch_step(model, x, y, compiled=False):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.tensor(x), torch.tensor(y)
    fwd = torch.compile(model) if compiled else model

    def step():
        loss = torch.nn.functional.cross_entropy(fwd(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def parse_args(argv=None):
    return bench_args("eager_train", argv)


def main(argv=None):
    args = parse_args(argv)
    b = Bench("eager_train", args)
    rng = np.random.default_rng(0)
    cases = [("mlp train step (b=64, 64-256-256-10)", mlp,
              rng.standard_normal((64, 64)).astype(np.float32)),
             ("cnn train step (b=32, digits CNN)", cnn,
              rng.standard_normal((32, 1, 8, 8)).astype(np.float32))]
    if args.smoke:
        cases = cases[:1]                           # the smallest row proves the script runs
    for label, build, x in cases:
        y = rng.integers(0, 10, len(x)).astype(np.int64)
        torch.manual_seed(0)
        t_model = build(torch.nn)
        e_model = build(enn)
        _copy_weights(t_model, e_model)
        t_model2 = build(torch.nn)
        t_model2.load_state_dict(t_model.state_dict())
        try:
            e_step = ember_step(e_model, x, y)
            e_step()
        except Exception as e:  # an op family still missing must not hide the other rows
            print(f"skipping {label}: ember failed: {type(e).__name__}: {str(e)[:200]}")
            b.skipped.append({"name": label, "error": f"{type(e).__name__}: {str(e)[:300]}"})
            continue
        b.row(label, ember=e_step, torch=torch_step(t_model, x, y),
              torch_compile=None if args.no_compile else torch_step(t_model2, x, y, True))
    b.finish()


if __name__ == "__main__":
    main()
