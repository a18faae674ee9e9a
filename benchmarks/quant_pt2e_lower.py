"""pt2e-converted models: the q/dq graph eager, ember.compile'd (the lower-qdq pass turns
it into int8 ops), ember's int8_lowering road eager, and torch's convert_pt2e model
(eager, and torch.compile'd with --torch-compile). Interleaved rounds, medians, ms.

    python3 benchmarks/quant_pt2e_lower.py [--resnet] [--rounds 5] [--torch-compile]

Prints one JSON line per model; writes nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import ember  # noqa: E402
from benchmarks.quant import twins  # noqa: E402

warnings.simplefilter("ignore")


def small_cnn(lib):
    """conv + bn + ReLU, conv + add + ReLU, max pool, linear (3x32x32 inputs)."""
    nn = lib.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.bn, self.r1 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), \
                nn.ReLU()
            self.c2, self.r2 = nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()
            self.pool, self.fc = nn.MaxPool2d(2), nn.Linear(16 * 16 * 16, 10)

        def forward(self, x):
            y = self.r1(self.bn(self.c1(x)))
            y = self.r2(self.c2(y) + y)
            return self.fc(lib.flatten(self.pool(y), 1))
    return Net()


def _convert(lib, model, calib, **quantizer_kw):
    if lib is torch:
        from torchao.quantization.pt2e import quantize_pt2e as pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86
        program = torch.export.export(model, (torch.from_numpy(calib[0]),)).module()
    else:
        from ember.ao.quantization import quantize_pt2e as pt2e
        from ember.ao.quantization.quantizer import x86_inductor_quantizer as x86
        program = ember.export(model, (ember.tensor(calib[0]),))
    q = x86.X86InductorQuantizer(**quantizer_kw).set_global(
        x86.get_default_x86_inductor_quantization_config())
    prepared = pt2e.prepare_pt2e(program, q)
    for c in calib:
        prepared(torch.from_numpy(c) if lib is torch else ember.tensor(c))
    return pt2e.convert_pt2e(prepared)


def run(name, make, shape, rounds, torch_compile):
    rng = np.random.default_rng(0)
    t_model, e_model = twins(make, rng)
    calib = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    x = calib[0]
    with torch.no_grad(), ember.no_grad():
        e_qdq = _convert(ember, e_model, calib)
        e_int8 = _convert(ember, twins(make, np.random.default_rng(0))[1], calib,
                          int8_lowering=True)
        try:
            t_conv, torch_note = _convert(torch, t_model, calib), None
        except ValueError as err:      # torchvision's resnet calls one nn.ReLU twice
            t_conv, torch_note = None, f"torch's prepare_pt2e refused the model: {err}"
        compiled = ember.compile(e_qdq)
        ex, tx = ember.tensor(x), torch.from_numpy(x)
        fns = {"ember q/dq eager": lambda: e_qdq(ex),
               "ember.compile(q/dq)": lambda: compiled(ex),
               "ember int8_lowering eager": lambda: e_int8(ex),
               "torch convert_pt2e eager": lambda: t_conv(tx)}
        if t_conv is None:
            del fns["torch convert_pt2e eager"]
        elif torch_compile:
            t_compiled = torch.compile(t_conv)
            fns["torch convert_pt2e torch.compile"] = lambda: t_compiled(tx)
        for fn in fns.values():
            fn(), fn()                                    # compile, warm
        times = {k: [] for k in fns}
        for _ in range(rounds):
            for k, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - start) * 1e3)
        ref, got = e_qdq(ex).numpy(), compiled(ex).numpy()
    print(json.dumps({"model": name, "shape": list(shape), "load": os.getloadavg(),
                      "median_ms": {k: round(statistics.median(v), 2)
                                    for k, v in times.items()},
                      "compiled_vs_qdq_max_abs": float(np.abs(ref - got).max()),
                      "note": torch_note}), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--resnet", action="store_true")
    p.add_argument("--resnet-only", action="store_true")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--torch-compile", action="store_true")
    args = p.parse_args()
    if not args.resnet_only:
        run("small_cnn b16", small_cnn, (16, 3, 32, 32), args.rounds, args.torch_compile)
    if args.resnet or args.resnet_only:
        run("resnet18 b8", "resnet18", (8, 3, 224, 224), args.rounds, args.torch_compile)


if __name__ == "__main__":
    main()
