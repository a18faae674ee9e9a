"""Train a small CNN on scikit-learn's 8x8 digits with ember alone, save, reload, evaluate.

    pip install -e '.[examples]'
    python3 examples/digits_cnn.py            # ~98% test accuracy
    python3 examples/digits_cnn.py --epochs 3 # quicker, lower accuracy

The data set (1797 images) ships with scikit-learn: nothing is downloaded. The split
is a fixed, seeded, stratified 80/20. Training uses ember.nn layers, Adam with a
OneCycleLR schedule and cross_entropy; the weights are written as safetensors from
`model.state_dict()`, read back into a fresh model, and that model is evaluated.
Finally the reloaded model is compiled (`ember.compile`: traced, optimized, fused and
compiled to native code through LLVM) and its inference speed is compared with eager.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from safetensors.numpy import save_file, load_file
from tqdm import tqdm

import ember
import ember.nn as nn
import ember.nn.functional as F
import ember.optim as optim


def make_model() -> nn.Module:
    """conv(1->16) relu pool conv(16->32) relu pool flatten linear(128->64) relu linear(->10)."""
    try:  # a shared built-in definition, when ember ships one
        from ember.models import small_cnn
        return small_cnn(in_channels=1, num_classes=10, image_size=8)
    except (ImportError, TypeError):
        pass
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def load_data(seed: int = 0):
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]        # N, 1, 8, 8 in [0, 1]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)


def predict(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    model.eval()
    out = []
    with ember.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model(ember.tensor(x[i:i + batch_size])).argmax(1).numpy())
    return np.concatenate(out)


def train(model, x_train, y_train, *, epochs: int, batch_size: int, lr: float, seed: int,
          progress: bool = True) -> list[float]:
    opt = optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = (len(x_train) + batch_size - 1) // batch_size
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                          steps_per_epoch=steps_per_epoch)
    rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(epochs):
        model.train()
        perm = rng.permutation(len(x_train))
        bar = tqdm(range(0, len(perm), batch_size), desc=f"epoch {epoch + 1}/{epochs}",
                   unit="batch", disable=not progress, leave=True)
        total = 0.0
        for n, i in enumerate(bar, 1):
            idx = perm[i:i + batch_size]
            logits = model(ember.tensor(x_train[idx]))
            loss = F.cross_entropy(logits, ember.tensor(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            bar.set_postfix(loss=f"{total / n:.4f}")
        losses.append(total / steps_per_epoch)
    return losses


def save_weights(model: nn.Module, path: str) -> None:
    save_file({k: np.ascontiguousarray(v.detach().numpy())
               for k, v in model.state_dict().items()}, path)


def load_weights(model: nn.Module, path: str) -> nn.Module:
    model.load_state_dict({k: ember.tensor(v) for k, v in load_file(path).items()})
    return model


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default=None, help="safetensors path (default: a temp file)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    ember.manual_seed(args.seed)
    x_train, x_test, y_train, y_test = load_data(args.seed)
    model = make_model()
    n_params = sum(t.numel() for t in model.parameters())
    print(f"digits: {len(x_train)} train / {len(x_test)} test images, "
          f"model: {n_params} parameters")

    wall0, cpu0 = time.perf_counter(), time.process_time()
    train(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
          lr=args.lr, seed=args.seed, progress=not args.no_progress)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    with tempfile.TemporaryDirectory() as tmp:
        path = args.weights or os.path.join(tmp, "digits_cnn.safetensors")
        save_weights(model, path)
        fresh = load_weights(make_model(), path)
    before = predict(model, x_test)
    after = predict(fresh, x_test)
    acc = float((after == y_test).mean())
    same = bool((before == after).all())
    print(f"training: {wall:.1f} s wall, {cpu:.1f} s CPU ({os.cpu_count()} cores visible)")
    print(f"reloaded model == trained model on every test prediction: {same}")
    print(f"test accuracy (reloaded weights): {acc * 100:.2f}%")
    speed = compare_compiled(fresh, x_test)
    return {"accuracy": acc, "wall_s": wall, "cpu_s": cpu, "same_predictions": same,
            "before": before, "after": after, "y_test": y_test, **speed}


def _best_time(fn, x, repeats: int = 20) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - start)
    return best


def compare_compiled(model: nn.Module, x_test: np.ndarray) -> dict:
    """Compile the model for the whole test set as one batch; time it against eager."""
    model.eval()
    x = ember.tensor(x_test)
    start = time.perf_counter()
    compiled = ember.compile(model)
    with ember.no_grad():
        compiled_logits = compiled(x)            # the first call traces and compiles
        compile_s = time.perf_counter() - start
        eager_logits = model(x)
        eager_s, compiled_s = _best_time(model, x), _best_time(compiled, x)
    agree = float((compiled_logits.argmax(1).numpy() == eager_logits.argmax(1).numpy()).mean())
    err = float((compiled_logits - eager_logits).abs().max())
    stats = compiled.stats
    print(f"ember.compile: {stats.original_ops} ops -> {stats.groups} fused kernels + "
          f"{stats.externs} GEMM/conv calls, compiled in {compile_s:.2f} s")
    print(f"inference on {len(x_test)} images: eager {eager_s * 1e3:.2f} ms, compiled "
          f"{compiled_s * 1e3:.2f} ms ({eager_s / compiled_s:.1f}x faster); max |diff| "
          f"{err:.1e}, same predictions on {agree * 100:.1f}%")
    return {"compiled_agreement": agree, "compiled_max_diff": err,
            "eager_ms": eager_s * 1e3, "compiled_ms": compiled_s * 1e3}


if __name__ == "__main__":
    main()
