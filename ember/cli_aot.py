"""The deployment commands of `ember` (tvmc / trtexec in spirit): compile, run, bench,
inspect. They add themselves to cli.py's click group.

    ember compile ember.models:resnet18 --input x:8x3x224x224 -o r18.ember
    ember compile model.py:make_model --input x:1x784 -o mlp.ember
    ember compile saved.ep -o model.ember            # an ember.export.save'd program
    ember compile model.onnx -o model.ember          # through ember.onnx.load
    ember run r18.ember --input x=in.npy -o out.npz
    ember bench r18.ember --warmup 5 --iters 50
    ember inspect r18.ember [--graph]

`run`, `bench` and `inspect` load artifacts through the lite runtime only. Bad input
exits 1 with one line (`error: ...`); --traceback shows the rest.
"""
from __future__ import annotations

import json
import math
import os
import time
import zipfile

import click
import numpy as np

from .cli import _fail, main
from .ir.errors import ArtifactError, EmberError

_ERRORS = (EmberError, ArtifactError, OSError, ValueError, TypeError, KeyError,
           AttributeError, ImportError, SyntaxError)


def _console(stderr: bool = False):
    from rich.console import Console
    return Console(stderr=stderr)


def parse_input_shape(text: str) -> tuple[str, tuple, str]:
    """'x:8x3x224x224' or 'x:8x3x224x224:float32' -> (name, shape, dtype)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise ValueError(f"--input {text!r}: expected NAME:DIMS[:DTYPE], e.g. x:8x3x224x224")
    try:
        shape = tuple(int(d) for d in parts[1].split("x")) if parts[1] else ()
    except ValueError:
        raise ValueError(f"--input {text!r}: dimensions must be integers joined by 'x'") \
            from None
    if any(d < 0 for d in shape):
        raise ValueError(f"--input {text!r}: dimensions must be >= 0")
    return parts[0], shape, parts[2] if len(parts) == 3 else "float32"


def load_factory(spec: str):
    """'file.py:factory' or 'package.module:factory' -> factory() (a module, in eval mode)."""
    import importlib
    import importlib.util
    source, sep, name = spec.rpartition(":")
    if not sep or not source or not name:
        raise ValueError(f"MODEL {spec!r}: expected file.py:factory, module:factory, a "
                         "saved ExportedProgram or an .onnx file")
    if source.endswith(".py"):
        if not os.path.exists(source):
            raise OSError(f"MODEL {spec!r}: no file {source}")
        module_spec = importlib.util.spec_from_file_location("_ember_model_source", source)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(source)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ValueError(f"MODEL {spec!r}: {source} has no callable {name!r}")
    model = factory()
    if hasattr(model, "eval"):
        model.eval()
    return model


def _is_saved_program(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return "spec.json" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


@main.command("compile")
@click.argument("model_spec", metavar="MODEL")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="the artifact to write (e.g. model.ember)")
@click.option("--input", "inputs", multiple=True, metavar="NAME:DIMS[:DTYPE]",
              help="an input's shape, e.g. x:8x3x224x224 (repeat per input)")
@click.option("--target", type=click.Choice(["cpu", "cuda"]), default="cpu")
@click.option("--arch", default=None, metavar="SM",
              help="--target cuda: the GPU architecture, e.g. sm_90 (default: this "
                   "machine's GPU, else sm_90)")
@click.option("--no-cudnn", "no_cudnn", is_flag=True,
              help="--target cuda: every convolution on ember's Triton kernels, an "
                   "artifact that needs no cuDNN (default: cuDNN where ember.compile "
                   "runs it)")
@click.option("--dynamic", multiple=True, metavar="NAME:DIM[:MIN-MAX]",
              help="a dynamic dimension, e.g. x:0 (sizes 2 to --input's size) or "
                   "x:0:2-32; the artifact holds one program per size")
@click.option("--traceback", "show_traceback", is_flag=True, help="show the full traceback")
def compile_command(model_spec, output, inputs, target, arch, no_cudnn, dynamic,
                    show_traceback) -> None:
    """Compile MODEL (file.py:factory, module:factory, an .onnx file or a saved
    ExportedProgram) to an artifact."""
    import ember
    for flag, given in (("--arch", arch is not None), ("--no-cudnn", no_cudnn)):
        if given and target != "cuda":
            raise click.UsageError(f"{flag} applies to --target cuda only")
    try:
        console = _console(stderr=True)
        start = time.perf_counter()
        with console.status("exporting", spinner="dots"):
            exported = _export_model(model_spec, inputs, dynamic)
        options = {**({"cuda_arch": arch} if arch is not None else {}),
                   **({"cudnn": False} if no_cudnn else {})} or None
        with console.status(f"compiling for {target}", spinner="dots"):
            ember.aot.compile_and_package(exported, output, target=target, options=options)
    except _ERRORS as err:
        _fail(err, show_traceback)
    seconds = time.perf_counter() - start
    click.echo(f"wrote {output} ({os.path.getsize(output) / 1e6:.1f} MB) in {seconds:.1f} s",
               err=True)


def _export_model(model_spec: str, inputs: tuple, dynamic: tuple = ()):
    """MODEL (file.py:factory, module:factory, .onnx, saved ExportedProgram) exported."""
    import ember
    if dynamic and (model_spec.endswith(".onnx") or (
            os.path.exists(model_spec) and _is_saved_program(model_spec))):
        raise ValueError("--dynamic: only for a model factory (an ONNX model is exported "
                         "at its static shapes; a saved ExportedProgram keeps its own)")
    if model_spec.endswith(".onnx"):
        return _export_onnx(model_spec, inputs)
    if os.path.exists(model_spec) and _is_saved_program(model_spec):
        if inputs:
            raise ValueError("--input: a saved ExportedProgram has its shapes already")
        return ember.export.load(model_spec)
    shapes = [parse_input_shape(text) for text in inputs]
    if not shapes:
        raise ValueError("--input: give each input's shape, e.g. --input x:8x3x224x224")
    model = load_factory(model_spec)
    args = tuple(ember.zeros(*shape, dtype=getattr(ember, dtype)) for _, shape, dtype in shapes)
    exported = ember.export(model, args,
                            dynamic_shapes=dynamic_shapes_of(dynamic, shapes) if dynamic
                            else None)
    _rename_inputs(exported, [name for name, _, _ in shapes])
    return exported


def dynamic_shapes_of(items: tuple, shapes: list) -> tuple:
    """--dynamic NAME:DIM[:MIN-MAX] ... -> ember.export's dynamic_shapes (by position);
    the range defaults to 2 .. the size --input gives that dimension."""
    import ember
    names = [name for name, _, _ in shapes]
    marked, ranges = {}, set()
    for text in items:
        parts = text.split(":")
        if len(parts) not in (2, 3) or parts[0] not in names:
            raise ValueError(f"--dynamic {text!r}: expected NAME:DIM[:MIN-MAX] with NAME "
                             f"one of the --input names ({', '.join(names)})")
        i = names.index(parts[0])
        try:
            dim = int(parts[1])
            lo, hi = (int(v) for v in parts[2].split("-")) if len(parts) == 3 else \
                (2, shapes[i][1][dim])
        except (ValueError, IndexError):
            raise ValueError(f"--dynamic {text!r}: DIM must be a dimension of "
                             f"{parts[0]} and MIN-MAX two integers, e.g. x:0:2-32") from None
        marked.setdefault(i, []).append(dim)
        ranges.add((lo, hi))
    if len(ranges) != 1:
        raise ValueError(f"--dynamic: the dynamic dimensions must share one range (one "
                         f"symbol per program), got {sorted(ranges)}")
    lo, hi = ranges.pop()
    batch = ember.export.Dim("s0", min=lo, max=hi)
    return tuple({d: batch for d in marked[i]} if i in marked else None
                 for i in range(len(shapes)))


def _export_onnx(path: str, inputs: tuple):
    """An .onnx file through ember.onnx.load, exported at its static input shapes (the
    dynamic ones as --input gives them)."""
    import ember
    import ember.onnx
    if not os.path.exists(path):
        raise OSError(f"MODEL {path!r}: no such file")
    # --input fixes the sizes the file leaves dynamic (a model exported with dynamic_axes)
    given = {name: dims for name, dims, _ in (parse_input_shape(t) for t in inputs)}
    specs = ember.onnx.input_specs(path, given)
    args = tuple(ember.zeros(*shape, dtype=getattr(ember, dtype)) for _, shape, dtype in specs)
    module = ember.onnx.load(path, input_shapes=given)
    exported = ember.export(module, args)
    _rename_inputs(exported, [name for name, _, _ in specs])
    _rename_outputs(exported, _onnx_output_names(path))
    return exported


def _onnx_output_names(path: str) -> list[str]:
    import onnx
    return [o.name for o in onnx.load(path, load_external_data=False).graph.output]


def _rename_outputs(exported, names: list[str]) -> None:
    """The file's output names (`run` writes them as the .npz keys), where the exported
    program's outputs are the file's one for one."""
    outputs = [s for s in exported.output_specs if s.kind == "output"]
    if len(outputs) == len(names):
        for spec, name in zip(outputs, names):
            spec.name = name


def _rename_inputs(exported, names: list[str]) -> None:
    users = exported.user_inputs
    if len(names) != len(users):
        raise ValueError(f"--input: the model takes {len(users)} tensor input(s), "
                         f"{len(names)} given")
    for spec, name in zip(users, names):
        spec.name = name


def _load(path: str):
    from .runtime import lite
    return lite.load_package(path)


def _read_inputs(model, given: tuple) -> list:
    """--input NAME=FILE.npy (or FILE.npy alone for a one-input model)."""
    specs = model.inputs
    files = {}
    for item in given:
        name, sep, path = item.partition("=")
        if not sep:
            if len(specs) != 1:
                raise ValueError(f"--input {item!r}: this model has {len(specs)} inputs; "
                                 "write NAME=FILE.npy")
            name, path = specs[0]["name"], item
        files[name] = path
    unknown = sorted(set(files) - {s["name"] for s in specs})
    if unknown:
        raise ValueError(f"--input: no input named {unknown[0]!r} (inputs: "
                         f"{', '.join(s['name'] for s in specs)})")
    missing = [s["name"] for s in specs if s["name"] not in files]
    if missing:
        raise ValueError(f"--input: no file for input {missing[0]!r}")
    return [np.load(files[s["name"]]) for s in specs]


@main.command("run")
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--input", "inputs", multiple=True, metavar="NAME=FILE.npy")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="an .npz file with one array per output")
@click.option("--traceback", "show_traceback", is_flag=True)
def run_command(artifact, inputs, output, show_traceback) -> None:
    """Run an artifact on .npy inputs; write the outputs to an .npz file."""
    try:
        model = _load(artifact)
        outs = model(*_read_inputs(model, inputs))
        np.savez(output, **{s["name"]: o for s, o in zip(model.outputs, outs)})
    except _ERRORS as err:
        _fail(err, show_traceback)
    for s, o in zip(model.outputs, outs):
        click.echo(f"{s['name']}: {o.dtype}{list(o.shape)}", err=True)


def _profile(path: str, thread_cpu: bool = False) -> list:
    model = _load(path)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s["shape"]).astype(s["dtype"]) for s in model.inputs]
    model(*arrays)                                       # warm-up
    if thread_cpu and getattr(model, "n_threads", 1) > 1:
        click.echo(f"note: --cpu-time stamps the calling thread's CPU time only; the pool "
                   f"has {model.n_threads} threads (EMBER_NUM_THREADS=1 times each step's "
                   "whole work)", err=True)
    return model.profile(*arrays, thread_cpu=thread_cpu)


def _io_table(manifest: dict):
    """The artifact's inputs and outputs: name, dtype and shape, one row each."""
    from rich.table import Table
    io = Table(title="inputs and outputs")
    for col in ("", "name", "dtype", "shape"):
        io.add_column(col)
    # a buffer the model updates in place is an input the runtime feeds from its state
    state = {e["input"] for e in manifest.get("state", []) if e.get("kind") == "buffer"}
    for kind in ("inputs", "outputs"):
        for i, s in enumerate(manifest[kind]):
            role = "state" if kind == "inputs" and i in state else kind[:-1]
            io.add_row(role, s["name"], s["dtype"], "x".join(map(str, s["shape"])))
    return io


def _inspect_cuda(console, artifact, manifest, members, plan, memory, show_graph) -> None:
    """inspect's tables for a target="cuda" artifact: target, inputs/outputs, launches."""
    from rich.table import Table
    target = manifest["target"]
    head = Table(title=f"{artifact}", show_header=False)
    for key, value in (("format", f"{manifest['format']} v{manifest['format_version']}"),
                       ("ember", manifest.get("ember_version", "?")),
                       ("target", f"cuda {target.get('arch')} (Triton "
                                  f"{target.get('triton_version', '?')})"),
                       ("arena", f"{memory['arena_bytes'] / 1e6:.2f} MB in "
                                 f"{memory.get('regions', '?')} regions"),
                       ("replay", f"CUDA graph: {plan.get('cuda_graphs')}"),
                       ("requires", ", ".join(manifest.get("requires") or []) or "-")):
        head.add_row(key, str(value))
    console.print(head)
    console.print(_io_table(manifest))
    kernels = plan["kernels"]
    launches = Table(title=f"plan: {len(plan['launches'])} launches of {len(kernels)} cubins")
    for col in ("#", "step", "kernel", "grid", "block", "shared bytes"):
        launches.add_column(col)
    convs = plan.get("cudnn") or []
    for i, launch in enumerate(plan["launches"]):
        if "cudnn" in launch:                 # a cuDNN convolution: its engine config
            conv = convs[launch["cudnn"]]
            launches.add_row(str(i), launch["step"], f"cuDNN {conv['engine']}",
                             conv.get("describe", ""), "-", "-")
            continue
        k = kernels[launch["kernel"]]
        launches.add_row(str(i), launch["step"], k["name"], "x".join(map(str, k["grid"])),
                         str(k["block"][0]), str(k["shared"]))
    console.print(launches)
    sizes = Table(title="members")
    for col in ("member", "bytes", "sha256"):
        sizes.add_column(col)
    for name, digest in manifest["members"].items():
        sizes.add_row(name, str(len(members[name])), digest[:16])
    console.print(sizes)
    if show_graph:
        click.echo(bytes(members["graph.ir"]).decode())


def percentile(samples: list, q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


@main.command("bench")
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(0))
@click.option("--iters", default=50, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="print the numbers as JSON")
@click.option("--traceback", "show_traceback", is_flag=True)
def bench_command(artifact, warmup, iters, as_json, show_traceback) -> None:
    """Time an artifact on random inputs: load time, latency p50/p90/p99, throughput."""
    try:
        t0 = time.perf_counter()
        model = _load(artifact)
        load_s = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        arrays = [rng.standard_normal(s["shape"]).astype(s["dtype"]) for s in model.inputs]
        t0 = time.perf_counter()
        model(*arrays)
        first_s = time.perf_counter() - t0
        for _ in range(warmup):
            model(*arrays)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            model(*arrays)
            times.append(time.perf_counter() - t0)
    except _ERRORS as err:
        _fail(err, show_traceback)
    batch = model.inputs[0]["shape"][0] if model.inputs and model.inputs[0]["shape"] else 1
    mean = sum(times) / len(times)
    stats = {"load_ms": load_s * 1e3, "first_call_ms": first_s * 1e3,
             "p50_ms": percentile(times, 50) * 1e3, "p90_ms": percentile(times, 90) * 1e3,
             "p99_ms": percentile(times, 99) * 1e3, "mean_ms": mean * 1e3,
             "calls_per_s": 1 / mean, "items_per_s": batch / mean, "iters": iters}
    if as_json:
        click.echo(json.dumps(stats))
        return
    from rich.table import Table
    table = Table(title=f"ember bench {os.path.basename(artifact)} (batch {batch})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    _console().print(table)


@main.command("inspect")
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--graph", "show_graph", is_flag=True, help="print the graph IR too")
@click.option("--profile", is_flag=True,
              help="run on random inputs and show each step's median time")
@click.option("--cpu-time", "cpu_time", is_flag=True,
              help="with --profile: time steps by the calling thread's CPU time (with "
                   "EMBER_NUM_THREADS=1, each step's work, whatever the host's load)")
@click.option("--traceback", "show_traceback", is_flag=True)
def inspect_command(artifact, show_graph, profile, cpu_time, show_traceback) -> None:
    """Show an artifact's manifest, kernels and memory plan (checked; run only with
    --profile)."""
    from .runtime import lite
    try:
        manifest, members = lite.read_members(artifact)
        plan = json.loads(members["plan.json"])
        memory = json.loads(members["memory_plan.json"])
        if profile and lite.target_kind(manifest) == "cuda":
            raise click.UsageError("--profile times CPU artifacts only")
        if cpu_time and not profile:
            raise click.UsageError("--cpu-time goes with --profile")
        timings = _profile(artifact, cpu_time) if profile else None
    except _ERRORS as err:
        _fail(err, show_traceback)
    from rich.table import Table
    console = _console()
    target = manifest["target"]
    if lite.target_kind(manifest) == "cuda":
        return _inspect_cuda(console, artifact, manifest, members, plan, memory, show_graph)
    head = Table(title=f"{artifact}", show_header=False)
    for key, value in (("format", f"{manifest['format']} v{manifest['format_version']}"),
                       ("ember", manifest.get("ember_version", "?")),
                       ("target", f"{target.get('kind')} {target.get('isa')} "
                                  f"({target.get('llvm_cpu')})"),
                       ("needs CPU flags", " ".join(target["required_features"])),
                       ("arena", f"{memory['arena_bytes'] / 1e6:.2f} MB, "
                                 f"{len(memory['buffers'])} buffers in "
                                 f"{memory.get('regions', '?')} regions")):
        head.add_row(key, str(value))
    dynamic = manifest.get("dynamic")
    if dynamic:
        where = ", ".join(f"dim {d} of input {i}" for i, d in dynamic["dims"])
        upper = "inf" if dynamic["max"] is None else dynamic["max"]
        native = dynamic.get("native_sizes")
        programs = "one program per size" if native is None else \
            f"native programs at {native}, other sizes through ember.compile"
        head.add_row("dynamic", f"s0 ({where}) in [{dynamic['min']}, {upper}]: "
                                f"{programs}; shapes below at the example size")
    console.print(head)
    console.print(_io_table(manifest))
    steps = Table(title=f"plan: {len(plan['steps'])} steps")
    for col in ("#", "step", "kind", "outputs") + (("median ms", "%") if timings else ()):
        steps.add_column(col, justify="right" if col in ("median ms", "%") else "left")
    total = sum(t for _, _, t in timings) if timings else 0.0
    for i, s in enumerate(plan["steps"]):
        results = s.get("out_specs") or s.get("results") or []     # host steps: results
        shapes = ", ".join("x".join(map(str, o["shape"])) for o in results)
        cells = [str(i), s["name"], s["kind"] + (f" ({s['op']})" if "op" in s else ""), shapes]
        if timings:
            seconds = timings[i][2]
            cells += [f"{seconds * 1e3:.3f}", f"{100 * seconds / max(total, 1e-12):.1f}"]
        steps.add_row(*cells)
    console.print(steps)
    sizes = Table(title="members")
    for col in ("member", "bytes", "sha256"):
        sizes.add_column(col)
    for name, digest in manifest["members"].items():
        sizes.add_row(name, str(len(members[name])), digest[:16])
    console.print(sizes)
    if show_graph:
        click.echo(members["graph.ir"].decode())


@main.command("tune")
@click.argument("model_spec", metavar="MODEL_OR_ARTIFACT")
@click.option("--input", "inputs", multiple=True, metavar="NAME:DIMS[:DTYPE]",
              help="an input's shape when MODEL is a factory, e.g. x:8x3x224x224")
@click.option("--tiles", default=None, metavar="MRxNR,...",
              help="the candidate register tiles (default: every tile for this CPU)")
@click.option("--repeats", type=int, default=3, show_default=True,
              help="timed runs per product and tile (the median counts)")
@click.option("--traceback", "show_traceback", is_flag=True, help="show the full traceback")
def tune_command(model_spec, inputs, tiles, repeats, show_traceback) -> None:
    """Autotune the GEMM/conv register tiles for MODEL_OR_ARTIFACT's products on this
    machine, recording the fastest per column count in the on-disk cache (ember.compile
    and `ember compile` then use them; results are unchanged, only speed)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from .codegen.llvm import tiles as cpu_tiles
    from .codegen.llvm.target import host_isa
    try:
        if repeats < 1:
            raise ValueError("--repeats must be at least 1")
        problems = _problems(model_spec, inputs)
        if not problems:
            raise ValueError(f"{model_spec}: no GEMM or conv products to tune")
        isa = host_isa()
        candidates = _parse_tiles(tiles, isa) if tiles else cpu_tiles.CANDIDATES[isa]
        console = _console(stderr=True)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
                "{task.completed}/{task.total}"), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("tuning", total=cpu_tiles.work(problems, len(candidates)))
            best = cpu_tiles.tune(problems, isa, candidates, repeats, step=lambda what: bar.update(
                task, advance=1, description=f"tuning {what}"))
        path = cpu_tiles.record(isa, {n: tile for n, (tile, _) in best.items()},
                                {n: secs[tile] for n, (tile, secs) in best.items()})
    except _ERRORS as err:
        _fail(err, show_traceback)
    table = Table(title=f"tuned tiles ({isa.value}) -> {path}")
    for col in ("n", "products", "best tile", "best ms", "default ms"):
        table.add_column(col, justify="right")
    from .codegen.llvm.gemm import CONFIGS, NARROW_TILES
    for n, (tile, seconds) in sorted(best.items()):
        default = next(((mr, nr) for nr, mr in NARROW_TILES[isa] if n <= nr),
                       (CONFIGS[isa].mr, CONFIGS[isa].nr))
        count = sum(1 for _, pn, _ in problems if pn == n)
        table.add_row(str(n), str(count), f"{tile[0]}x{tile[1]}", f"{seconds[tile] * 1e3:.3f}",
                      f"{seconds[default] * 1e3:.3f}" if default in seconds else "-")
    _console().print(table)


def _parse_tiles(text: str, isa) -> tuple:
    from .codegen.llvm.tiles import CANDIDATES
    out = []
    for item in text.split(","):
        try:
            mr, nr = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise ValueError(f"--tiles: {item!r} is not MRxNR (e.g. 6x64)") from None
        most = 28 if isa.lanes == 16 else 14          # accumulators: 32 zmm / 16 ymm
        if nr % isa.lanes or 512 % nr or mr < 1 or mr * nr // isa.lanes > most:
            raise ValueError(f"--tiles: {mr}x{nr} does not fit {isa.value} (NR a multiple of "
                             f"{isa.lanes} dividing 512, at most {most} accumulators); "
                             f"e.g. {', '.join(f'{a}x{b}' for a, b in CANDIDATES[isa])}")
        out.append((mr, nr))
    return tuple(out)


def _problems(model_spec: str, inputs: tuple) -> list:
    """(m, n, k) of every GEMM and conv (as its implicit GEMM) of the model's plan: an
    artifact's recorded table, or a model packaged here into a temporary file."""
    import tempfile
    import ember
    if os.path.exists(model_spec) and not _is_saved_program(model_spec) and \
            not model_spec.endswith((".py", ".onnx")):
        from .runtime import lite
        _, members = lite.read_members(model_spec)
        steps = json.loads(members["plan.json"])["steps"]
    else:
        exported = _export_model(model_spec, inputs)
        with tempfile.TemporaryDirectory(prefix="ember-tune-") as tmp:
            path = os.path.join(tmp, "model.ember")
            ember.aot.compile_and_package(exported, path)
            with zipfile.ZipFile(path) as z:
                steps = json.loads(z.read("plan.json"))["steps"]
    return [tuple(p) for s in steps for p in s.get("problems", [])]
