"""Issue 18's one-run GPU benchmark: ember's CUDA training, inference and cold compile.

Ember against torch eager and torch.compile on the same GPU, as ratios.

    python benchmarks/cuda.py [--quick] [--only ROWS] [--no-compile] [--write | --out PATH]
    python benchmarks/cuda.py --smoke      # tiny shapes: proves the script runs

Rows (--only takes row names, which select themselves, or other words, which select
every row containing them: train, bf16, infer, cold, resnet18, ...; comma-separated):

- train_resnet18[_bf16]: ember.models.resnet18 (1000 classes), batch 64, 224x224,
  channels-last, CrossEntropyLoss, SGD(lr=0.01, momentum=0.9);
- train_transformer[_bf16]: a TransformerEncoderLayer(512, 8 heads, 2048, dropout 0,
  batch_first), batch 32 x 128 tokens, MSELoss against a random target, AdamW(lr=1e-3);
- train_mlp[_bf16]: ember.models.mlp() (784-256-128-10), batch 64, CrossEntropyLoss,
  Adam(lr=1e-3) as benchmarks/train_step.py;
- infer_resnet18, infer_resnet50: batch 64, 224x224, channels-last, no_grad;
- cold_resnet18_step, cold_resnet18_infer: compile + first call in a fresh process with
  empty ember and Triton cache dirs (cold), then in another fresh process over the caches
  the first left (warm) (benchmarks/cuda_cold_compile.py's children).

ember's step is `compile_train_step(model, loss, opt, backend="triton")` (a CUDA graph
replay where shapes are static); its _bf16 rows trace a step function with
`ember.autocast("cuda", dtype=ember.bfloat16)` around the forward and the loss, as torch's
rows use torch.autocast; torch.compile compiles torch's whole step function. float32
GEMMs and convolutions run as TF32 in both libraries (ember.backends.cuda.matmul /
cudnn.allow_tf32, torch's matmul and cuDNN flags). Inference is ember.compile(model on
the GPU, backend="triton") with graph replay against torch eager and torch.compile.

Accuracy: each training row first runs 10 steps from the same weights on the same batch
in ember and in torch eager on the GPU, and in torch float64 on the CPU (the reference);
the row shows the largest relative error of the 10 losses and of the parameters (per
tensor max|a - ref| / max|ref|, the worst tensor named) for ember and, as the yardstick
of what TF32/bf16 rounding costs, for torch on the GPU. Inference rows compare the
output likewise.

Timing: warmup calls, then interleaved rounds (common.interleaved: one block of `inner`
calls of each column per round, the clock synchronizing the column's library's device);
the median of the rounds, in ms per call. Ratios are torch / ember (> 1: ember faster).
A failing row prints its error and the rest still run. Prints a table; --write (or --out
PATH) writes JSON (benchmarks/results/cuda_one_run.json), rewritten after each row so
partial results survive a time limit; rows already in that file which this run does not
run are kept (each row records its time), so --only runs can fill one file.

--smoke: tiny models (ember on 'cuda', torch on its GPU or else the CPU, 2 accuracy
steps, one timed round, no torch.compile, no cold rows); tests/cuda/test_bench_rows_cuda.py
runs it under CI's emulation.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import platform
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# run as a script, this folder is sys.path[0], where this file would stand in for NVIDIA's
# `cuda` package: import from the repository root instead (as benchmarks/cuda_models.py)
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

import ember  # noqa: E402
from benchmarks import cuda_cold_compile  # noqa: E402
from benchmarks.common import RESULTS, interleaved, torch_resnet18, torch_resnet50  # noqa: E402
from benchmarks.cuda_models import torch_copy  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402

TRAIN = ("resnet18", "transformer", "mlp")
ROWS = tuple(f"train_{m}{s}" for m in TRAIN for s in ("", "_bf16")) + \
    ("infer_resnet18", "infer_resnet50", "cold_resnet18_step", "cold_resnet18_infer")
CHECK_STEPS = 10


# --- models ------------------------------------------------------------------------------
@dataclass
class Spec:
    """A model both libraries build: ember's (seeded), torch's twin of it (same module
    names: ember's weights load by name), one batch, the loss and the optimizer."""
    ember: Callable[[], object]
    twin: Callable[[object], object]          # the ember model -> a torch model
    x: tuple
    target: Callable[[np.random.Generator], np.ndarray]
    loss: str = "CrossEntropyLoss"
    opt: tuple = ("SGD", {"lr": 0.01, "momentum": 0.9})
    channels_last: bool = False
    inner: int = 10                           # calls per timed block


def _torch():
    import torch
    return torch


def _layer(lib, d, heads, ff):
    return lib.nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True)


def _tiny_cnn(lib):
    """--smoke's stand-in for the ResNets: conv, BatchNorm, in-place ReLU, max pool, a
    residual add."""
    nn = lib.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.relu, self.pool, self.fc = nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Linear(8, 5)

        def forward(self, x):
            x = self.pool(self.relu(self.bn1(self.conv1(x))))
            x = self.relu(self.bn2(self.conv2(x)) + x)
            return self.fc(x.mean((2, 3)))
    return Net()


def specs(smoke: bool) -> dict[str, Spec]:
    classes = lambda n, b: (lambda rng: rng.integers(0, n, b))          # noqa: E731
    normal = lambda shape: (lambda rng: rng.standard_normal(shape).astype(np.float32))  # noqa: E731
    adamw, adam = ("AdamW", {"lr": 1e-3}), ("Adam", {"lr": 1e-3})
    if smoke:
        cnn = Spec(lambda: _tiny_cnn(ember), lambda m: _tiny_cnn(_torch()), (2, 3, 8, 8),
                   classes(5, 2), channels_last=True, inner=1)
        return {"resnet18": cnn, "resnet50": cnn,
                "transformer": Spec(lambda: _layer(ember, 16, 2, 32),
                                    lambda m: _layer(_torch(), 16, 2, 32), (2, 8, 16),
                                    normal((2, 8, 16)), "MSELoss", adamw, inner=1),
                "mlp": Spec(lambda: ember.models.mlp(24, (16, 12), 5), torch_copy, (6, 24),
                            classes(5, 6), opt=adam, inner=1)}
    return {"resnet18": Spec(lambda: ember.models.resnet18(), lambda m: torch_resnet18(),
                             (64, 3, 224, 224), classes(1000, 64), channels_last=True),
            "resnet50": Spec(lambda: ember.models.resnet50(), lambda m: torch_resnet50(),
                             (64, 3, 224, 224), classes(1000, 64), channels_last=True),
            "transformer": Spec(lambda: _layer(ember, 512, 8, 2048),
                                lambda m: _layer(_torch(), 512, 8, 2048), (32, 128, 512),
                                normal((32, 128, 512)), "MSELoss", adamw),
            "mlp": Spec(lambda: ember.models.mlp(), torch_copy, (64, 784), classes(10, 64),
                        opt=adam, inner=20)}


def build(spec: Spec):
    """(ember model, torch twin on the CPU with its weights, x, y) from seed 0."""
    torch = _torch()
    ember.manual_seed(0)
    model = spec.ember()
    twin = spec.twin(model)
    twin.load_state_dict({k: torch.from_numpy(np.array(v.detach().cpu().numpy()))
                          for k, v in model.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal(spec.x).astype(np.float32)
    return model, twin, x, spec.target(rng)


class Devices:
    """Where each library runs: ember on 'cuda'; torch on its GPU, or the CPU (--smoke
    where torch has no GPU)."""

    def __init__(self):
        torch = _torch()
        self.torch = "cuda" if torch.cuda.is_available() else "cpu"

    def ember_in(self, spec, x, y):
        xs = ember.tensor(x).cuda()
        if spec.channels_last:
            xs = xs.contiguous(memory_format=ember.channels_last)
        return xs, ember.tensor(y).cuda()

    def torch_in(self, spec, x, y):
        return torch_inputs(spec, x, y, self.torch)


def torch_inputs(spec: Spec, x, y, device: str, dtype=None):
    """torch tensors of the batch on `device` (x, and a float target, in `dtype`)."""
    torch = _torch()
    xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    if dtype is not None:
        xs = xs.to(dtype)
        ys = ys.to(dtype) if ys.is_floating_point() else ys
    if spec.channels_last:
        xs = xs.contiguous(memory_format=torch.channels_last)
    return xs, ys


# --- steps ---------------------------------------------------------------------------------
def ember_step(spec: Spec, model, bf16: bool):
    """The compiled ember step on the GPU: model moved there (channels-last if the spec
    says), its optimizer, compile_train_step; bf16 traces a step with autocast inside."""
    model = model.cuda()
    if spec.channels_last:
        model = model.to(memory_format=ember.channels_last)
    name, kw = spec.opt
    opt = getattr(ember.optim, name)(model.parameters(), **kw)
    loss_fn = getattr(ember.nn, spec.loss)()
    if not bf16:
        return model, ember.compile_train_step(model, loss_fn, opt, backend="triton")

    @ember.compile_train_step(backend="triton")
    def step(x, y):
        with ember.autocast("cuda", dtype=ember.bfloat16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    return model, step


def torch_step(spec: Spec, twin, device: str, bf16: bool, dtype=None):
    """torch's eager step function (twin moved to `device`, in `dtype`, channels-last if
    the spec says); bf16 runs the forward and loss under torch.autocast."""
    torch = _torch()
    twin = twin.to(device=device, dtype=dtype)
    if spec.channels_last:
        twin = twin.to(memory_format=torch.channels_last)
    name, kw = spec.opt
    opt = getattr(torch.optim, name)(twin.parameters(), **kw)
    loss_fn = getattr(torch.nn, spec.loss)()
    where = "cuda" if device.startswith("cuda") else "cpu"

    def step(x, y):
        with torch.autocast(where, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(twin(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    return twin, step


# --- accuracy --------------------------------------------------------------------------------
def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """max|got - ref| / max|ref| (the tensor's scale, so entries near zero do not blow up)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def errors(losses, params: dict, ref_losses, ref_params: dict) -> dict:
    """The largest relative error of the losses (each against its reference loss) and of
    the parameters (per tensor), with the worst tensor's name."""
    per_tensor = {k: rel_err(params[k], ref_params[k]) for k in ref_params}
    worst = max(per_tensor, key=per_tensor.get)
    loss_err = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(losses, ref_losses))
    diff = sum(float(np.sum((np.asarray(params[k], np.float64) - ref_params[k]) ** 2))
               for k in ref_params)
    norm = sum(float(np.sum(np.asarray(ref_params[k], np.float64) ** 2)) for k in ref_params)
    return {"loss_rel_err": float(loss_err), "param_rel_err": per_tensor[worst],
            "worst_param": worst,
            # ||all params - ref|| / ||ref||: one small tensor's noise does not dominate it
            "param_rel_err_l2": (diff / max(norm, 1e-300)) ** 0.5}


def _named(model, to_host) -> dict:
    return {k: to_host(v) for k, v in model.named_parameters()}


def reference(spec: Spec, twin, x, y, steps: int) -> tuple[list, dict]:
    """torch float64 on the CPU: the losses of `steps` steps and the parameters after
    (contiguous, not channels-last: the same values, on torch's faster float64 path)."""
    spec = dataclasses.replace(spec, channels_last=False)
    model, step = torch_step(spec, copy.deepcopy(twin), "cpu", False, _torch().float64)
    xs, ys = torch_inputs(spec, x, y, "cpu", _torch().float64)
    losses = [step(xs, ys).item() for _ in range(steps)]
    return losses, _named(model, lambda t: t.detach().numpy())


# --- rows ------------------------------------------------------------------------------------
def timed(fns: dict, spec: Spec, args) -> dict:
    """Median ms per call of each column, interleaved; ratios torch / ember. A
    torch.compile column failing after its first call (a recompile) is recorded and left
    out, and the rest timed again."""
    try:
        found = interleaved(fns, args.warmup, args.repeats, inner=spec.inner)
    except Exception as err:    # noqa: BLE001 - a failing baseline must not hide ember
        if "torch_compile" not in fns:
            raise
        fns = {k: f for k, f in fns.items() if k != "torch_compile"}
        out = timed(fns, spec, args)
        out["torch_compile_error"] = f"{type(err).__name__}: {err}"[:300]
        return out
    out = {f"{k}_ms": found[k].median * 1e3 for k in fns}
    out.update({f"{k}_best_ms": min(found[k].times) * 1e3 for k in fns})
    for k in fns:
        if k != "ember":
            out[f"{k}_over_ember"] = out[f"{k}_ms"] / out["ember_ms"]
    return out


def train_row(name: str, args, devices: Devices, refs: dict) -> dict:
    torch = _torch()
    model_name = name.split("_")[1]
    bf16 = name.endswith("_bf16")
    spec = specs(args.smoke)[model_name]
    base, twin, x, y = build(spec)
    row: dict = {"precision": "bf16 autocast" if bf16 else "float32 (TF32)"}
    xe, ye = devices.ember_in(spec, x, y)
    xt, yt = devices.torch_in(spec, x, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, step = ember_step(spec, copy.deepcopy(base), bf16)
        start = time.perf_counter()
        losses = [step(xe, ye).item()]
        row["ember_first_call_s"] = time.perf_counter() - start
        losses += [step(xe, ye).item() for _ in range(args.check_steps - 1)]
    row["host_fallbacks"] = sorted({str(w.message).split(":")[0] for w in caught
                                    if "runs on the host" in str(w.message)})
    params = _named(model, lambda t: t.detach().cpu().numpy())
    tmodel, tstep = torch_step(spec, copy.deepcopy(twin), devices.torch, bf16)
    tlosses = [tstep(xt, yt).item() for _ in range(args.check_steps)]
    tparams = _named(tmodel, lambda t: t.detach().float().cpu().numpy())
    key = (model_name, args.check_steps)
    if key not in refs:
        refs[key] = reference(spec, twin, x, y, args.check_steps)
    ref_losses, ref_params = refs[key]
    row["ember_vs_float64"] = errors(losses, params, ref_losses, ref_params)
    row["torch_vs_float64"] = errors(tlosses, tparams, ref_losses, ref_params)
    row["losses_ember_torch_ref"] = [[a, b, c] for a, b, c in zip(losses, tlosses, ref_losses)]
    fns = {"ember": lambda: step(xe, ye), "torch": lambda: tstep(xt, yt)}
    if not args.no_compile:
        ctwin, cstep = torch_step(spec, copy.deepcopy(twin), devices.torch, bf16)
        compiled = torch.compile(cstep)
        start = time.perf_counter()
        try:
            compiled(xt, yt)
            row["torch_compile_first_call_s"] = time.perf_counter() - start
            fns["torch_compile"] = lambda: compiled(xt, yt)
        except Exception as err:    # noqa: BLE001 - a failing baseline must not hide ember
            row["torch_compile_error"] = f"{type(err).__name__}: {err}"[:300]
    row.update(timed(fns, spec, args))
    # after the timed steps: a plan is captured on its second call, and the first steps
    # compile new plans as the optimizer's state appears
    graph = getattr(getattr(getattr(step, "last", None), "plan", None), "graph", None)
    row["ember_cuda_graph"] = graph is not None
    return row


def infer_row(name: str, args, devices: Devices, refs: dict) -> dict:
    torch = _torch()
    spec = specs(args.smoke)[name.split("_")[1]]
    base, twin, x, _ = build(spec)
    base, twin = base.eval(), twin.eval()
    xe, _ = devices.ember_in(spec, x, x[:1])
    xt, _ = devices.torch_in(spec, x, x[:1])
    with torch.no_grad():
        x64, _ = torch_inputs(spec, x, x[:1], "cpu", torch.float64)
        want = copy.deepcopy(twin).double()(x64).numpy()
    model = base.cuda().to(memory_format=ember.channels_last)
    row: dict = {"precision": "float32 (TF32)"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast = ember.compile(model, backend="triton")
        start = time.perf_counter()
        with ember.no_grad():
            got = fast(xe).cpu().numpy()
        row["ember_first_call_s"] = time.perf_counter() - start
        with ember.no_grad():
            fast(xe)                                    # capture, then replays
    row["host_fallbacks"] = sorted({str(w.message).split(":")[0] for w in caught
                                    if "runs on the host" in str(w.message)})
    row["ember_cuda_graph"] = fast.last[0].graph is not None
    tmodel = twin.to(devices.torch).to(memory_format=torch.channels_last)
    with torch.no_grad():
        tgot = tmodel(xt).float().cpu().numpy()
    row["ember_vs_float64"] = {"out_rel_err": rel_err(got, want)}
    row["torch_vs_float64"] = {"out_rel_err": rel_err(tgot, want)}

    def no_grad(fn, lib, arg):
        def call():
            with lib.no_grad():
                return fn(arg)
        return call
    fns = {"ember": no_grad(fast, ember, xe), "torch": no_grad(tmodel, torch, xt)}
    if not args.no_compile:
        compiled = torch.compile(tmodel)
        start = time.perf_counter()
        try:
            no_grad(compiled, torch, xt)()
            row["torch_compile_first_call_s"] = time.perf_counter() - start
            fns["torch_compile"] = no_grad(compiled, torch, xt)
        except Exception as err:    # noqa: BLE001
            row["torch_compile_error"] = f"{type(err).__name__}: {err}"[:300]
    row.update(timed(fns, spec, args))
    return row


def cold_row(name: str, args, devices: Devices, refs: dict) -> dict:
    """Fresh processes: cold (empty cache dirs), then warm (the caches the cold one left)."""
    import tempfile
    if args.smoke:
        return {"skipped": "--smoke: a fresh process cannot share the in-process emulation"}
    step = name.endswith("_step")
    row: dict = {}
    with tempfile.TemporaryDirectory() as cache:
        for phase in ("cold", "warm"):
            if step:
                found = cuda_cold_compile.step_calls("resnet18", 64, cache, tf32=True)
            else:
                seconds, kernels = cuda_cold_compile.first_call("resnet18", 64, cache, None,
                                                                tf32=True)
                found = {"first_call_s": seconds, "kernels": kernels}
            row.update({f"{phase}_{k}": v for k, v in found.items()})
    return row


def run_row(name: str, args, devices: Devices, refs: dict) -> dict:
    kind = name.split("_")[0]
    return {"train": train_row, "infer": infer_row, "cold": cold_row}[kind](
        name, args, devices, refs)


# --- the table -----------------------------------------------------------------------------
def _f(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table_line(name: str, row: dict) -> str:
    return f"{_table_cells(name, row)}  [{row['wall_s']:.0f} s]"


def _table_cells(name: str, row: dict) -> str:
    if "error" in row:
        return f"{name:24} ERROR {row['error'][:150]}"
    if "skipped" in row:
        return f"{name:24} skipped: {row['skipped']}"
    if name.startswith("cold"):
        extra = f"  second call cold {row['cold_second_call_s']:.2f} s, warm " \
                f"{row['warm_second_call_s']:.2f} s" if "cold_second_call_s" in row else ""
        return (f"{name:24} cold first call {row['cold_first_call_s']:.2f} s, warm "
                f"{row['warm_first_call_s']:.2f} s ({row['cold_kernels']} kernels){extra}")
    e, t = row["ember_vs_float64"], row["torch_vs_float64"]
    err = (f"{e['loss_rel_err']:.1e}/{t['loss_rel_err']:.1e} "
           f"{e['param_rel_err']:.1e}/{t['param_rel_err']:.1e}") if "loss_rel_err" in e \
        else f"{'-':17} {e['out_rel_err']:.1e}/{t['out_rel_err']:.1e}"
    fallbacks = f" host: {','.join(row['host_fallbacks'])}" if row["host_fallbacks"] else ""
    return (f"{name:24} {row['ember_ms']:9.3f} {row['torch_ms']:9.3f} "
            f"{_f(row.get('torch_compile_ms'), '9.3f'):>9} {row['torch_over_ember']:7.2f}x "
            f"{_f(row.get('torch_compile_over_ember'), '7.2f'):>7}x "
            f"{row['ember_first_call_s']:7.1f} {err}"
            f"{'' if row['ember_cuda_graph'] else ' (no graph)'}{fallbacks}")


HEADER = (f"{'row':24} {'ember ms':>9} {'torch ms':>9} {'compile':>9} {'torch/e':>8} "
          f"{'comp/e':>8} {'1st s':>7} {'loss err e/t':17} {'param|out err e/t'}")


# --- main ------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="warmup 2, 3 timed rounds")
    p.add_argument("--smoke", action="store_true",
                   help="tiny shapes, one round, no torch.compile or cold rows")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--only", default="", help="rows, comma-separated: a row's name, or a word "
                   "selecting every row containing it (train, bf16, infer, cold, resnet18)")
    p.add_argument("--write", action="store_true", help="write the results JSON")
    p.add_argument("--out", type=Path, help="where --write writes (implies --write)")
    args = p.parse_args(argv)
    # two warmup calls at least: torch.compile's step may recompile on its second call,
    # once the optimizer's state exists
    args.warmup, args.repeats = (2, 3) if args.quick else (3, 10)
    args.check_steps = CHECK_STEPS
    if args.smoke:
        args.warmup, args.repeats, args.check_steps, args.no_compile = 0, 1, 2, True
    args.write = args.write or args.out is not None
    args.out = args.out or RESULTS / "cuda_one_run.json"
    wanted = [w for w in args.only.split(",") if w]
    # a row's full name selects that row; any other word every row containing it
    args.rows = [r for r in ROWS if not wanted or r in wanted
                 or any(w not in ROWS and w in r for w in wanted)]
    if not args.rows:
        p.error(f"--only {args.only!r} names no row of {', '.join(ROWS)}")
    return args


def _release(torch) -> None:
    """Free the row's models and cached device memory before the next row."""
    gc.collect()
    ember.cuda.empty_cache()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _meta(args) -> dict:
    torch = _torch()
    meta = {"python": platform.python_version(), "torch": torch.__version__,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "smoke": args.smoke,
            "warmup": args.warmup, "repeats": args.repeats, "check_steps": args.check_steps,
            "torch_device": "cuda" if torch.cuda.is_available() else "cpu",
            "timing": "common.interleaved rounds of `inner` calls per column, median ms"}
    try:
        meta["gpu"] = ember.cuda.get_device_name()
        import triton
        meta["triton"] = triton.__version__
    except Exception as err:    # noqa: BLE001 - emulated devices have no name
        meta["gpu"] = f"unknown ({type(err).__name__})"
    return meta


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not ember.cuda.is_available():
        raise SystemExit("cuda.py: needs a CUDA device visible to ember (ember.cuda."
                         "is_available() is False); CI runs --smoke under emulation through "
                         "tests/cuda/test_bench_rows_cuda.py")
    torch = _torch()
    flags = [(ember.backends.cuda.matmul, "allow_tf32"), (ember.backends.cudnn, "allow_tf32"),
             (torch.backends.cuda.matmul, "allow_tf32")]
    saved = [getattr(owner, name) for owner, name in flags]
    for owner, name in flags:
        setattr(owner, name, True)
    cudnn = torch.backends.cudnn
    try:      # torch's cuDNN switches through flags(): plain writes raise once torch's test
        # utilities have frozen them (disable_global_flags), as in a pytest process
        with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark,
                         deterministic=cudnn.deterministic, allow_tf32=True):
            return _run(args, torch)
    finally:                                  # a caller's flags as they were (tests)
        for (owner, name), value in zip(flags, saved):
            setattr(owner, name, value)


def _run(args, torch) -> dict:
    devices, refs = Devices(), {}
    results = {"benchmark": "cuda", "meta": _meta(args), "rows": {}}
    print(f"GPU: {results['meta']['gpu']}; torch {torch.__version__} on {devices.torch}")
    print(HEADER, flush=True)
    if args.write and args.out.exists():      # rows of earlier runs (--only) are kept
        results["rows"] = json.loads(args.out.read_text()).get("rows", {})
    for name in args.rows:
        start = time.perf_counter()
        eager_cuda._WARNED.clear()            # each row reports its own host fallbacks
        try:
            row = run_row(name, args, devices, refs)
        except Exception as err:    # noqa: BLE001 - report, keep the other rows
            traceback.print_exc()
            row = {"error": f"{type(err).__name__}: {err}"[:500]}
        row["wall_s"] = round(time.perf_counter() - start, 1)
        row["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        results["rows"][name] = row
        print(table_line(name, row), flush=True)
        if args.write:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
        _release(torch)
    print("ratios: torch / ember (> 1: ember faster); errors: max relative vs torch float64 "
          "CPU after the same steps, ember/torch on the GPU")
    if args.write:
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
