"""Convolutions on CUDA: ember's Triton kernels or cuDNN, the faster per shape.

Inductor's way: for each convolution (direction, dtype, the three tensors' shapes and
strides, padding, stride, dilation, groups through the shapes, the TF32 and determinism
flags) both implementations run once, timed with CUDA events on the current stream
(a warm-up call, which compiles the Triton kernel and builds the cuDNN plan, then
`ROUNDS` calls of each captured as a CUDA graph and replayed: GPU time, as in a compiled
step replayed as one graph), and the winner is recorded in
ember's on-disk autotune cache (codegen/triton/autotune.py: `stored_choice`) keyed by the
GPU's name and the cuDNN version, so later calls and later processes only look it up.

cuDNN is asked only where it can be used: `ember.backends.cudnn.enabled`, the package
and its library load (runtime/cuda/cudnn.py), float32 operands (float16 / bfloat16 too
where `HALF_PRECISION_ON_CUDNN` is on), each tensor dense in NCHW or channels-last order
and 16-byte aligned (cuDNN's descriptors promise that alignment). Inside a stream capture
nothing is timed: a shape with no recorded winner uses Triton there.

`EMBER_CONV_BACKEND=triton` or `=cudnn` forces one side (cuDNN still only where it can
be used), for tests and benchmarks; anything else (default `auto`) times.
"""
from __future__ import annotations

import os
from typing import Callable

from .devices import data_ptr
from .tensor import Tensor

ROUNDS = 5
# The one-line switch for half precision through cuDNN. It was off while float16/bfloat16
# through this path had once given wrong values on the H100 (cuDNN 9.19, frontend 1.32);
# on 2026-12-07 `python tools/check_cudnn_half.py --full` passed every case there
# (fprop with bias/add/relu epilogues, dgrad, wgrad, NCHW and channels-last, against
# torch), so it is on. False keeps half-precision convolutions on ember's Triton kernels.
HALF_PRECISION_ON_CUDNN = True
_memo: dict[tuple, tuple[float, float]] = {}    # (spec, device) -> (Triton, cuDNN) ms
_STATS = {"timed": 0, "cudnn": 0, "triton": 0, "expected": 0, "tuned": 0}


def _dtypes() -> tuple:
    """The operand dtypes cuDNN is asked for (read at call time: the switch above)."""
    return ("float32", "float16", "bfloat16") if HALF_PRECISION_ON_CUDNN else ("float32",)


def forced() -> str:
    value = os.environ.get("EMBER_CONV_BACKEND", "auto").strip().lower()
    return value if value in ("triton", "cudnn") else "auto"


_TRITON_ONLY = [0]      # > 0 while ember's own backward routes run (their inner conv2d)
_WANTED: list = []      # [specs] while a dry run records what it would ask cuDNN for


class specs_wanted:
    """While a compiled plan is dry-run (compile_cuda.prefetch_eager_kernels, where cuDNN
    is not asked), collect the spec of each convolution backward that its first call
    will ask cuDNN for: those whose recorded choice is cuDNN, or that will be timed. The
    batch compile builds their cuDNN plans while its kernels compile."""

    def __enter__(self) -> list:
        self.found: list = []
        _WANTED.append(self.found)
        return self.found

    def __exit__(self, *exc) -> None:
        _WANTED.remove(self.found)


def _note_wanted(kind: str, g, other, out_meta, geometry, index: int) -> bool:
    """Record, for specs_wanted, the spec `backward` would ask cuDNN for in a real call.
    True where that call will run cuDNN without timing it (its choice is known: the dry
    run then records no kernel of ember's route, which the call will not launch)."""
    from ..backends import cudnn as flags
    if not _WANTED or not flags.enabled or forced() == "triton":
        return False
    from ..runtime.cuda import cudnn
    if cudnn.library() is None:
        return False
    made = (tuple(out_meta.shape), tuple(out_meta.strides), out_meta.dtype.name)
    x, w = (made, other) if kind == "dgrad" else (other, made)
    spec = spec_for(kind, x, w, g, *geometry)
    if spec is None or not aligned(g, other):
        return False
    known = timings(spec, index)
    if known is None or known[1] < known[0]:
        _WANTED[-1].append(spec)
    return known is not None and known[1] < known[0]


def usable() -> bool:
    from ..backends import cudnn as flags
    if not flags.enabled or forced() == "triton" or _TRITON_ONLY[0]:
        return False
    from ..runtime.cuda import cudnn
    return cudnn.library() is not None


def _tf32(dtype_name: str) -> bool:
    if dtype_name != "float32":
        return False
    from ..codegen.triton.gemm import conv_input_precision
    from ..ir.dtypes import float32
    return conv_input_precision(float32) == "tf32"


def _deterministic() -> bool:
    from ..backends import cudnn as flags
    from ..ir import determinism
    return bool(flags.deterministic or determinism.enabled())


def _layout(shape, strides):
    """contiguous_format or channels_last where the tensor is dense in that order (size-1
    dims may have any stride), else None. NCHW first: a tensor dense both ways is NCHW."""
    from ..ir.meta import channels_last, contiguous_format, is_contiguous_for
    shape, strides = tuple(shape), tuple(strides)
    if len(shape) != 4:
        return None
    for fmt in (contiguous_format, channels_last):
        if is_contiguous_for(shape, strides, fmt):
            return fmt
    return None


def _geometry(shape, layout) -> tuple:
    """(shape, the layout's own strides): cuDNN reads the strides of size-1 dims too,
    which ember leaves arbitrary."""
    from ..ir.meta import strides_for
    return tuple(shape), tuple(strides_for(tuple(shape), layout))


def spec_for(kind: str, x, w, y, stride, padding, dilation, bias=None, epilogue: str = ""):
    """A ConvSpec for tensors (or (shape, strides, dtype name) triples) x, w, y (and a
    forward convolution's bias vector and epilogue: "relu", "add" of a residual of y's
    geometry, "add_relu"), or None where cuDNN cannot be asked (dtype, layout)."""
    from ..backends import cudnn as flags
    from ..runtime.cuda.cudnn import EPILOGUES, ConvSpec
    if epilogue not in EPILOGUES or (epilogue and kind != "fprop"):
        raise ValueError(f"cuDNN convolution: no epilogue {epilogue!r} for {kind} "
                         f"(forward only: one of {EPILOGUES[1:]})")
    parts = [_parts(t) for t in (x, w, y)]
    dtypes = {p[2] for p in parts}
    if bias is not None:
        shape, strides, dtype = _parts(bias)
        if tuple(shape) != (parts[1][0][0],) or (shape[0] > 1 and strides[0] != 1):
            return None
        dtypes.add(dtype)
    if len(dtypes) != 1 or next(iter(dtypes)) not in _dtypes():
        return None
    layouts = [_layout(p[0], p[1]) for p in parts]
    if any(layout is None for layout in layouts):
        return None
    dtype = next(iter(dtypes))
    return ConvSpec(kind, dtype, *[_geometry(p[0], lay) for p, lay in zip(parts, layouts)],
                    tuple(padding), tuple(stride), tuple(dilation), _tf32(dtype),
                    _deterministic(), _benchmark_plans() if flags.benchmark else 0,
                    bias is not None, epilogue)


def _benchmark_plans() -> int:
    """How many cuDNN plans benchmark mode times: `benchmark_limit`, every plan for 0
    (torch's meaning)."""
    from ..backends import cudnn as flags
    from ..runtime.cuda.cudnn import ALL_PLANS
    limit = int(flags.benchmark_limit or 0)
    return limit if limit > 0 else ALL_PLANS


def _parts(t):
    if isinstance(t, Tensor):
        return tuple(t.shape), tuple(t.stride()), t.dtype.name
    return t


def aligned(*tensors: Tensor) -> bool:
    return all(data_ptr(t) % 16 == 0 for t in tensors)


def _like_output(spec, t: Tensor) -> bool:
    layout = _layout(t.shape, t.stride())
    return layout is not None and t.dtype.name == spec.dtype and \
        _geometry(t.shape, layout) == spec.y


def execute(spec, x: Tensor, w: Tensor, y: Tensor, index: int, bias: Tensor | None = None,
            residual: Tensor | None = None):
    """Run cuDNN for `spec` on x, w, y (which of them it writes follows spec.kind; y +=
    bias for a spec with bias, + residual and relu as its epilogue says) on the current
    stream."""
    from ..runtime.cuda import cudnn
    from ..runtime.cuda.stream import current_stream
    if ("add" in spec.epilogue) != (residual is not None) or \
            (residual is not None and not _like_output(spec, residual)):
        raise ValueError(f"{spec.describe()}: the residual must be given exactly for an "
                         "'add' epilogue, with the output's shape, layout and dtype")
    pointers = (data_ptr(x), data_ptr(w), data_ptr(y)) + \
        ((data_ptr(bias),) if bias is not None else ()) + \
        ((data_ptr(residual),) if residual is not None else ())
    built = (spec, index) in cudnn._plans
    # benchmark mode times cuDNN's plans on these buffers, which a capture cannot do
    plan = cudnn.conv_plan(spec, index, pointers if built or not spec.benchmark or
                           not _capturing(index) else None)
    plan.run(pointers, current_stream(index).handle)


def _device(index: int) -> str:
    from ..runtime.cuda import cudnn, driver
    major, minor = driver.capability(index)
    return f"{driver.device_name(index)} sm{major}{minor} cudnn{cudnn.version()}"


def _capturing(index: int) -> bool:
    from ..runtime.cuda.stream import capture_status, current_stream
    return capture_status(current_stream(index)) != "none"


def prefers_cudnn(spec, index: int, triton_run: Callable[[], object],
                  cudnn_run: Callable[[], object]) -> bool:
    """True where cuDNN is the faster for `spec` (timed once, then remembered)."""
    found = _timings_for(spec, index, triton_run, cudnn_run)
    return found is not None and found[1] < found[0]


def timings(spec, index: int) -> tuple[float, float] | None:
    """(Triton ms, cuDNN ms) known for `spec` in this process or the on-disk cache (the
    forced side wins outright under EMBER_CONV_BACKEND=cudnn), else None."""
    if spec is None:
        return None
    from ..runtime.cuda.cudnn import CudnnUnsupported, conv_plan
    key = (spec, index)
    found = _memo.get(key)
    if found is not None:
        return found
    if forced() == "cudnn":
        try:
            conv_plan(spec, index)
            found = (float("inf"), 0.0)
        except CudnnUnsupported:
            found = (0.0, float("inf"))
    else:
        from ..codegen.triton import autotune
        stored = autotune.stored_choice(spec.describe(), _device(index))
        if stored is None:
            return _expect(spec, index)
        found = (float(stored["triton_ms"]), float(stored["cudnn_ms"]))
    return _remember(key, found)


def _remember(key, found):
    _memo[key] = found
    _STATS["cudnn" if found[1] < found[0] else "triton"] += 1
    return found


def _timings_for(spec, index, triton_run, cudnn_run):
    found = timings(spec, index)
    if found is not None or spec is None or _capturing(index):
        return found                      # nothing can be timed inside a capture
    from ..codegen.triton import autotune
    from ..runtime.cuda.cudnn import CudnnUnsupported
    found = _time_both(triton_run, cudnn_run, index, CudnnUnsupported)
    autotune.record_choice(spec.describe(), _device(index),
                           "cudnn" if found[1] < found[0] else "triton", *found)
    _STATS["timed"] += 1
    return _remember((spec, index), found)


def _time_both(triton_run, cudnn_run, index: int, unsupported) -> tuple[float, float]:
    from ..ir import compile_times
    with compile_times.stage("conv timings (cuDNN against Triton)"):
        return _time_pair(triton_run, cudnn_run, index, unsupported)


def _time_pair(triton_run, cudnn_run, index: int, unsupported) -> tuple[float, float]:
    try:
        cudnn_run()                       # builds the plan (may refuse the shape)
    except unsupported:
        return 0.0, float("inf")
    triton_run()                          # compiles the kernel
    return _time(triton_run, index), _time(cudnn_run, index)


def _time(run, index: int) -> float:
    """GPU milliseconds per `run()`: ROUNDS calls captured as one CUDA graph, the best of
    three replays, so the host's launch overhead (larger for cuDNN's Python frontend than
    for a Triton launch) is left out, as in a compiled step replayed as one graph. Where
    the work cannot be captured, the calls themselves are timed."""
    from ..runtime.cuda.graph import CudaGraph
    from ..runtime.cuda.stream import Event, current_stream
    stream = current_stream(index)
    try:
        graph = CudaGraph.capture(lambda: [run() for _ in range(ROUNDS)], index)
    except Exception:  # noqa: BLE001 - not capturable: time the launches as they are
        graph = None
    best = float("inf")
    for _ in range(3 if graph is not None else 1):
        start, end = Event(True, device=index), Event(True, device=index)
        start.record(stream)
        if graph is not None:
            graph.launch(stream)
        else:
            for _ in range(ROUNDS):
                run()
        end.record(stream)
        end.synchronize()
        best = min(best, start.elapsed_time(end) / ROUNDS)
    return best


def stats() -> dict:
    """How many shapes were timed in this process and how many chose each side."""
    return dict(_STATS)


# --- expected winners: taken untimed by a cold compile, timed between later calls --------
# (Triton ms, cuDNN ms) standing in for a choice not timed yet where measurements say which
# side wins. On the H100 (TF32, 2026-12-07) cuDNN's channels-last weight gradient ran
# faster than ember's route (NCHW copies, split-K GEMM, its partial sums) at every
# resnet18 layer (layer1 0.147 against 0.159 ms, layer2 ~0.085 against 0.126), yet a cold
# training step compiled that route's ~20 kernels only to time them and lose.
EXPECTED_CUDNN = (float("inf"), 0.0)
_EXPECTING = [0]          # > 0 while a compiled plan is built (CudaBackend.compiling)
# (spec, device index) taken untimed -> None, then the (generated, alignment) kernels of
# ember's route once their compiles have started (tune_expected)
_UNTUNED: dict[tuple, list | None] = {}
# choices timed per call of the step: a timing is ~20-50 ms of the call (both sides, five
# captured runs each), so a step's later calls each pay one instead of one call all
TUNED_PER_CALL = 1


class expecting:
    """While a compile runs (trace to plan, CudaBackend.compiling): a convolution choice
    that is neither known in this process nor stored on disk, and whose winner is expected
    (`_expected`), is taken untimed: the compile neither times it nor compiles the losing
    side's kernels. `tune_expected` times it later. Eager convolutions outside a compile
    time as before."""

    def __enter__(self):
        _EXPECTING[0] += 1
        return self

    def __exit__(self, *exc) -> None:
        _EXPECTING[0] -= 1


def expected_mode() -> bool:
    """EMBER_CONV_EXPECTED=0 times every choice while compiling, as before."""
    return os.environ.get("EMBER_CONV_EXPECTED", "1").strip().lower() not in \
        ("0", "off", "false", "no")


def _expected(spec) -> tuple[float, float] | None:
    """The stand-in timings of a choice whose winner is known from measurements: cuDNN
    for a float32 TF32 weight gradient of channels-last operands (the wgrad-nchw pass's
    question), outside determinism and benchmark mode. None elsewhere (timed)."""
    from ..ir.meta import channels_last
    if not (_EXPECTING[0] and forced() == "auto" and expected_mode()):
        return None
    if spec.kind == "wgrad" and spec.dtype == "float32" and spec.tf32 and \
            not spec.deterministic and not spec.benchmark and \
            _layout(*spec.x) == channels_last and _layout(*spec.y) == channels_last:
        return EXPECTED_CUDNN
    return None


def _expect(spec, index: int) -> tuple[float, float] | None:
    """`timings` for a choice nothing records: the expected winner's stand-in, remembered
    for this process (the step's first run takes the same side) and left to tune."""
    found = _expected(spec)
    if found is None:
        return None
    _UNTUNED.setdefault((spec, index), None)
    _STATS["expected"] += 1
    return _remember((spec, index), found)


def untuned() -> int:
    """How many choices taken untimed wait for `tune_expected`."""
    return len(_UNTUNED)


def tune_expected(index: int) -> str:
    """Between calls of a compiled step (CudaBackend.between_calls): time the choices a
    compile took untimed. The first call after it starts compiling ember's side of each in
    the worker pool and returns at once; a later call, once those compiles are done (it
    never waits for one), times both sides of one choice (`TUNED_PER_CALL`) on
    zero-filled scratch operands as the cold compile would have, and records the winner
    in the autotune cache, where later processes find it (a different winner there
    changes their graph: the wgrad-nchw pass's answer, checked by the graph cache).
    Nothing is timed inside a capture.
    Returns "" (nothing to tune), "started", "waiting" or "timed"."""
    from . import eager_cuda
    todo = [key for key in _UNTUNED if key[1] == index]
    if not todo:
        return ""
    if _capturing(index):
        return "waiting"
    if any(_UNTUNED[key] is None for key in todo):
        for key in todo:
            if _UNTUNED[key] is None:
                _UNTUNED[key] = _start_tuning(key[0], index)
        return "started"
    if eager_cuda.compiles_running([r for key in todo for r in _UNTUNED[key]], index):
        return "waiting"
    for key in todo[:TUNED_PER_CALL]:
        del _UNTUNED[key]
        _tune(key[0], index)
    return "timed"


def _wgrad_metas(spec) -> tuple:
    """(x, g, w) TensorMetas of a weight-gradient spec on the device the spec is for."""
    from ..ir.dtypes import dtype_from_name
    from ..ir.meta import TensorMeta
    dtype = dtype_from_name(spec.dtype)
    return tuple(TensorMeta(tuple(shape), dtype, "cuda", strides=tuple(strides))
                 for shape, strides in (spec.x, spec.y, spec.w))


def _start_tuning(spec, index: int) -> list:
    from . import eager_cuda
    x, g, w = _wgrad_metas(spec)
    found = _route_kernels(x, g, w, spec.stride, spec.padding, spec.dilation, index)
    if found:
        eager_cuda.start_compiles(found, index)
    return found


def _tune(spec, index: int) -> None:
    key = (spec, index)
    _memo.pop(key, None)
    x, g, w = _wgrad_metas(spec)
    if _time_wgrad(spec, x, g, w, spec.stride, spec.padding, spec.dilation, index) is None:
        _memo[key] = EXPECTED_CUDNN        # not timeable now: this process keeps its side
    else:
        _STATS["tuned"] += 1


# --- compiled training steps: which weight gradients want NCHW operands ------------------
def wgrad_nchw_mode() -> str:
    """EMBER_WGRAD_NCHW: `always` gives every float32 weight gradient that ember's GEMM
    reads NCHW its NCHW operands in a compiled training step (fused into their producers,
    passes/train_layout.py), whatever cuDNN could do; anything else (default `auto`) leaves
    channels-last operands to cuDNN where it can take them (`wgrad_wants_nchw`)."""
    value = os.environ.get("EMBER_WGRAD_NCHW", "auto").strip().lower()
    return "always" if value in ("always", "1", "on") else "auto"


def wgrad_wants_nchw(x, g, w, stride, padding, dilation) -> bool:
    """The wgrad-nchw pass's predicate for a compiled CUDA training step (x, g, w: the
    TensorMetas of the input, the output gradient and the weight gradient): True where
    the weight gradient should read NCHW copies of channels-last operands, written by the
    kernels that produce them.

    NCHW copies serve only ember's split-K GEMM (codegen/triton/conv_wgrad.py), and they
    cost a second layout's writes in the producers (resnet18 at batch 64: about 750 MB a
    step) while cuDNN's channels-last weight gradients (H100, TF32, torch's profile) ran
    faster than the GEMM plus its partial sums at every resnet18 layer (layer1 0.147 ms
    against 0.159, layer2 ~0.085 against 0.126). So where cuDNN can take the
    channels-last operands, cuDNN on them is timed against ember's route (which makes its
    own NCHW copies) as the eager op times it, once per shape (`_time_wgrad`; the step's
    run then only looks the choice up): where cuDNN is the faster the operands stay
    channels-last, elsewhere their producers write the NCHW copies. Where nothing can be
    timed now, they stay channels-last and the step's first run chooses. Inside a compile
    with nothing recorded, the TF32 case is cuDNN untimed (`_expected`; timed between the
    step's later calls: `tune_expected`)."""
    if wgrad_nchw_mode() == "always" or not usable():
        return True
    spec = spec_for("wgrad", *[_meta_parts(m) for m in (x, w, g)], stride, padding, dilation)
    if spec is None:
        return True
    index = _index(x.device)
    known = timings(spec, index) or _time_wgrad(spec, x, g, w, stride, padding, dilation, index)
    return known is not None and known[0] <= known[1]


def prefetch_wgrad_routes(calls: list[tuple]) -> int:
    """Before the wgrad-nchw pass asks `wgrad_wants_nchw` about each weight gradient in
    turn: start compiling, all at once in the worker pool, ember's route of every one
    that will be timed. Timed one by one, each waited for its own Triton compiles, and a
    cold resnet18 step spent ~4.7 s compiling ~20 kernels one after another on a 16-core
    host (H100, 2026-12-07). Each route runs here with launches recorded, not made
    (eager_cuda.kernels_collected), on unfilled scratch operands of the same geometry, so
    the recorded kernels are those the timing launches. `calls` holds the predicate's
    arguments (x, g, w TensorMetas, stride, padding, dilation). Returns how many kernels
    started; nothing where nothing will be timed."""
    from . import eager_cuda
    if wgrad_nchw_mode() == "always" or not usable():
        return 0
    requests: list = []
    index = 0
    for x, g, w, stride, padding, dilation in calls:
        spec = spec_for("wgrad", *[_meta_parts(m) for m in (x, w, g)], stride, padding,
                        dilation)
        index = _index(x.device)
        if spec is None or timings(spec, index) is not None or _capturing(index):
            continue
        requests.extend(_route_kernels(x, g, w, stride, padding, dilation, index))
    if requests:
        eager_cuda.start_compiles(requests, index)
    return len(requests)


def _route_kernels(x, g, w, stride, padding, dilation, index: int) -> list:
    """The (generated, alignment) pairs ember's weight-gradient route launches for these
    TensorMetas: run with launches recorded, not made, on unfilled scratch operands."""
    from . import eager_cuda
    with eager_cuda.kernels_collected() as found:
        try:
            _ember_wgrad_route(_scratch(x, index), _scratch(g, index), w, stride, padding,
                               dilation, index)()
        except Exception:  # noqa: BLE001 - the timing meets (and handles) the same error
            pass
    return found


def _ember_wgrad_route(xs, gs, w, stride, padding, dilation, index: int):
    """ember's weight gradient on operands xs, gs (it makes its own NCHW copies)."""
    from .eager_cuda_training import _conv_backward_weight_triton
    args = (gs, xs, list(w.shape), list(stride), list(padding), list(dilation), False,
            [0] * len(stride), xs.shape[1] // w.shape[1])

    def ember_route():
        _TRITON_ONLY[0] += 1            # its inner convolutions are ember's too
        try:
            return _conv_backward_weight_triton(args, w, index)
        finally:
            _TRITON_ONLY[0] -= 1
    return ember_route


# the wgrad-nchw pass starts every timed route's compiles before asking (train_layout.py)
wgrad_wants_nchw.prefetch = prefetch_wgrad_routes


def _time_wgrad(spec, x, g, w, stride, padding, dilation, index: int):
    """(Triton ms, cuDNN ms) for a channels-last weight gradient, timed now on zero-filled
    scratch operands as the step's first run would time it (ember's route, which copies
    them NCHW, against cuDNN on them) and remembered, so the step's run only looks it up;
    None where nothing can be timed now (inside a capture, or the timing failed: the
    step's first run decides then)."""
    from .devices import empty_cuda
    try:
        if _capturing(index):
            return None
        xs, gs = _zeros(x, index), _zeros(g, index)
        ember_route = _ember_wgrad_route(xs, gs, w, stride, padding, dilation, index)

        def cudnn_route():
            execute(spec, xs, empty_cuda(w.shape, w.strides, w.dtype, index), gs, index)
        return _timings_for(spec, index, ember_route, cudnn_route)
    except Exception:  # noqa: BLE001 - a pass must not fail on a timing: decide at run time
        return None


def _scratch(meta, index: int):
    from .devices import empty_cuda
    return empty_cuda(tuple(meta.shape), tuple(meta.strides), meta.dtype, index)


def _zeros(meta, index: int):
    from ..runtime.cuda.stream import current_stream, memset
    from .devices import empty_cuda
    t = empty_cuda(tuple(meta.shape), tuple(meta.strides), meta.dtype, index)
    memset(data_ptr(t), 0, t._storage.nbytes, current_stream(index))
    return t


def _meta_parts(meta) -> tuple:
    return tuple(meta.shape), tuple(meta.strides), meta.dtype.name


def _index(device: str) -> int:
    _, _, number = str(device).partition(":")
    return int(number) if number.isdigit() else 0


# --- eager conv2d -------------------------------------------------------------------------
def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class ChoosingConv2d:
    """An eager conv2d plan (eager_cuda's `_Plan` interface): cuDNN (with the bias added
    in its graph) where it is the faster for these arguments, else the Triton plan it
    wraps."""

    def __init__(self, triton_plan, args: tuple, out_meta):
        self.triton, self.out_meta = triton_plan, out_meta
        stride, padding, dilation, _ = (list(args[3:]) + [1, 0, 1, 1])[:4]
        self.geometry = (_pair(stride), _pair(padding), _pair(dilation))
        self.specs: dict = {}

    def _spec(self, x: Tensor, w: Tensor, bias):
        from ..backends import cudnn as flags
        # everything spec_for reads besides the arguments: TF32 also follows
        # ember.backends.cuda.matmul, and the half-precision switch decides the dtypes
        key = (_tf32(x.dtype.name), flags.benchmark, flags.benchmark_limit, _deterministic(),
               HALF_PRECISION_ON_CUDNN)
        if key not in self.specs:
            m = self.out_meta
            self.specs[key] = spec_for("fprop", x, w, (tuple(m.shape), tuple(m.strides),
                                                       m.dtype.name), *self.geometry, bias=bias)
        return self.specs[key]

    def run(self, args: tuple, index: int):
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 else None
        spec = self._spec(x, w, bias) if usable() else None
        if spec is None or not aligned(*([x, w] + ([bias] if bias is not None else []))):
            return self.triton.run(args, index)
        if prefers_cudnn(spec, index, lambda: self.triton.run(args, index),
                         lambda: self._cudnn(spec, x, w, bias, index)):
            return self._cudnn(spec, x, w, bias, index)
        return self.triton.run(args, index)

    def _cudnn(self, spec, x, w, bias, index):
        from .devices import empty_cuda
        m = self.out_meta
        out = empty_cuda(m.shape, m.strides, m.dtype, index)
        execute(spec, x, w, out, index, bias)
        return out


# --- convolution backward (eager_cuda_training's routes) -------------------------------------
def backward(kind: str, g: Tensor, other: Tensor, out_meta, geometry, index: int,
             triton_route: Callable[[], Tensor]) -> Tensor:
    """The input gradient (kind "dgrad", `other` the weight) or the weight gradient
    ("wgrad", `other` the input) of a convolution with output gradient `g`: cuDNN where it
    is the faster for the shape, else `triton_route()` (ember's own route)."""
    from .devices import empty_cuda
    stride, padding, dilation = geometry
    def ember_route():
        _TRITON_ONLY[0] += 1            # its inner convolutions are ember's too
        try:
            return triton_route()
        finally:
            _TRITON_ONLY[0] -= 1
    if not usable():
        # a dry run: what the real call will ask cuDNN for; where it runs cuDNN untimed,
        # ember's route is not recorded (its kernels would compile for nothing)
        if _WANTED and _note_wanted(kind, g, other, out_meta, geometry, index):
            return empty_cuda(out_meta.shape, out_meta.strides, out_meta.dtype, index)
        return triton_route()
    made = (tuple(out_meta.shape), tuple(out_meta.strides), out_meta.dtype.name)
    x, w = (made, other) if kind == "dgrad" else (other, made)
    spec = spec_for(kind, x, w, g, stride, padding, dilation)
    if spec is None or not aligned(g, other):
        return ember_route()

    def cudnn_route():
        out = empty_cuda(out_meta.shape, out_meta.strides, out_meta.dtype, index)
        xs, ws = (out, other) if kind == "dgrad" else (other, out)
        execute(spec, xs, ws, g, index)
        return out
    if prefers_cudnn(spec, index, ember_route, cudnn_route):
        return cudnn_route()
    return ember_route()
