"""GPU: the convolution choices a cold compile takes untimed, tuned by later calls.

A cold `compile_train_step(resnet18, CrossEntropyLoss, SGD momentum, backend="triton")`
(TF32, channels-last, batch 64) takes cuDNN's channels-last weight gradient untimed where
no choice is recorded (frontend/cudnn_conv.py, "expected winners"). Its later calls start
compiling ember's route in the workers and, once those compiles are done, time both sides
and record the winner. This runs the step over a fresh cache until that happened (or
`--calls` calls), printing each call's wall seconds, what the tuning did, and each
weight gradient's timings and winner, then a second process over the same cache whose
first call reads the tuned choices (how many shapes it timed: 0 expected) and which lists
every recorded choice (CHOICE lines: forward and input-gradient convs too, the evidence
for extending cudnn_conv._expected).

    python benchmarks/cuda_conv_tuning.py [--batch 64] [--calls 40]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
import numpy as np
import ember
from ember.frontend import cudnn_conv
batch, calls = int(sys.argv[1]), int(sys.argv[2])
ember.backends.cuda.matmul.allow_tf32 = True
model = ember.models.resnet18().cuda().to(memory_format=ember.channels_last)
rng = np.random.default_rng(0)
x = ember.tensor(rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)).cuda()
x = x.contiguous(memory_format=ember.channels_last)
y = ember.tensor(rng.integers(0, 1000, batch)).cuda()
opt = ember.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
step = ember.compile_train_step(model, ember.nn.CrossEntropyLoss(), opt, backend="triton")
untuned = set(cudnn_conv._UNTUNED)
for call in range(1, calls + 1):
    before = dict(cudnn_conv.stats())
    start = time.perf_counter()
    step(x, y)
    ember.cuda.synchronize()
    wall = time.perf_counter() - start
    if call == 1:
        untuned = set(cudnn_conv._UNTUNED)
    print(f"call {call}: {wall:.3f} s, left to tune {cudnn_conv.untuned()}, "
          f"stats {cudnn_conv.stats()}", flush=True)
    if call > 1 and not cudnn_conv.untuned():
        break
    time.sleep(0.25)
for spec, index in sorted(untuned, key=lambda key: key[0].describe()):
    found = cudnn_conv._memo.get((spec, index))
    print("TUNED", spec.describe(), "triton_ms / cudnn_ms =", found)
print("STATS", json.dumps(cudnn_conv.stats()))
if calls == 2:       # the second process: every choice recorded, for the expected-winner table
    from ember.codegen.triton.cache import cache_dir
    for path in sorted((cache_dir() / "autotune").glob("conv-*.json")):
        entry = json.loads(path.read_text())
        print("CHOICE", entry["choice"], f"triton {entry['triton_ms']:.4f} cudnn "
              f"{entry['cudnn_ms']:.4f} ms", entry["conv"])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, EMBER_CACHE_DIR=os.path.join(cache, "ember"),
                   TRITON_CACHE_DIR=os.path.join(cache, "triton"))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        for run, calls in (("cold process", args.calls), ("second process", 2)):
            print(f"== {run}", flush=True)
            subprocess.run([sys.executable, "-c", CHILD, str(args.batch), str(calls)],
                           env=env, check=True)


if __name__ == "__main__":
    main()
