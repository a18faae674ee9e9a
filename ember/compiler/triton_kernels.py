"""Every Triton kernel of ember's built-in models, compiled to cubins ahead of time.

This is compiler-layer tooling: it traces models (frontend), runs the pass pipeline
(passes) and hands each fused group to the Triton code generator (codegen), so it
lives above all three. CI uses it to compile every generated kernel for sm_80/sm_90
without a GPU:

    python -m ember.compiler.triton_kernels --out DIR [--models mlp,resnet18] [--per-kind N]

("quantized" names the int8 GEMM/conv kernels of quantized_linear / quantized_conv2d.)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..codegen.triton.cache import write_atomic
from ..codegen.triton.collect import graph_kernels, unique
from ..codegen.triton.compile import ARCHS, compile_all


def model_kernels(model, example_inputs, pipeline: str = "default-inference"):
    """Trace, run `pipeline` then fusion, and generate every kernel of the result."""
    from ..ir.meta import meta_of
    from ..ir.symbolic import build_graph
    from ..passes.manager import PassContext, run_passes
    graph, constants = build_graph(model, [meta_of(t) for t in example_inputs])
    run_passes(graph, f"{pipeline},fuse", PassContext(constants=constants))
    return graph_kernels(graph)



# --- every kernel of the built-in models ------------------------------------------------------
def builtin_model_cases() -> dict:
    """Small configurations of ember.models, with example inputs (name -> (model, inputs))."""
    import ember
    cases = {
        "mlp": lambda: (ember.models.mlp(784, (256, 128)).eval(), [ember.randn(8, 784)]),
        "small_cnn": lambda: (ember.models.small_cnn().eval(), [ember.randn(2, 1, 28, 28)]),
        "resnet18": lambda: (ember.models.resnet18(num_classes=10).eval(),
                             [ember.randn(2, 3, 32, 32)]),
        "resnet50": lambda: (ember.models.resnet50(num_classes=10).eval(),
                             [ember.randn(1, 3, 32, 32)]),
        "transformer": lambda: (ember.models.transformer_classifier().eval(),
                                [ember.randint(0, 1000, (2, 16))]),
    }
    return cases


def quantized_kernels() -> list:
    """The int8 kernels of quantized_linear / quantized_conv2d (codegen/triton/qgemm.py): a
    linear with relu, the GPU benchmark's 4096^3 GEMM, and a channels-last 3x3 conv."""
    from ..codegen.triton import qgemm as Q
    from ..codegen.triton.collect import GraphKernel
    args = ["x", "weight", "wsum", "mult", "bias", "out"]
    problem, qparams = Q.benchmark_problem()
    conv = Q.conv_problem((8, 64, 28, 28), (28 * 28 * 64, 1, 28 * 64, 64), (64, 64, 3, 3),
                          (64 * 28 * 28, 1, 28 * 64, 64), (1, 1), (1, 1), (1, 1), 1)
    return [GraphKernel("linear", "qgemm", Q.generate_qgemm(
                Q.linear_problem(64, 256, 512), 3, 0.1, 0, True, name="qlinear_relu"), args),
            GraphKernel("gemm4096", "qgemm", Q.generate_qgemm(problem, **qparams,
                                                              name="qgemm_4096"), args),
            GraphKernel("conv", "qconv", Q.generate_qgemm(conv, 128, 0.05, 0, True,
                                                          name="qconv3x3_relu"), args)]


def model_kernel_set(names=None, per_kind: int | None = None) -> tuple[dict, dict]:
    """(unique kernels by key, per-model report) for the named built-in models; with
    `per_kind`, only the first that many kernels of each kind (a representative subset)."""
    cases = builtin_model_cases()
    kernels, report = [], {}
    for name in names or list(cases) + ["quantized"]:
        if name == "quantized":           # generated directly, not from a traced model
            found, externs = quantized_kernels(), []
        else:
            model, inputs = cases[name]()
            found, externs = model_kernels(model, inputs)
        kernels += found
        report[name] = {"kernels": len(found), "unique": len(unique(found)),
                        "extern": [f"{e.op} ({e.reason})" for e in externs]}
    chosen = unique(kernels)
    if per_kind is not None:
        counts: dict[str, int] = {}
        subset = {}
        for key, gk in chosen.items():
            counts[gk.kind] = counts.get(gk.kind, 0) + 1
            if counts[gk.kind] <= per_kind:
                subset[key] = gk
        chosen = subset
    return chosen, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ember.compiler.triton_kernels",
                                     description="Compile every generated Triton kernel of the built-in models to cubins")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--models", default="all",
                        help="comma-separated built-in models, or 'all'")
    parser.add_argument("--arch", default=",".join(map(str, ARCHS)))
    parser.add_argument("--per-kind", type=int, default=None,
                        help="only the first N kernels of each kind (a representative subset)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    names = None if args.models == "all" else args.models.split(",")
    start = time.perf_counter()
    kernels, report = model_kernel_set(names, args.per_kind)
    archs = tuple(int(a) for a in args.arch.split(","))
    paths = compile_all(kernels, args.out, archs, None if args.quiet else print)
    summary = {"models": report, "compiled_kernels": len(kernels), "archs": list(archs),
               "files": len(paths), "seconds": round(time.perf_counter() - start, 1)}
    write_atomic(args.out / "summary.json", json.dumps(summary, indent=1).encode())
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
