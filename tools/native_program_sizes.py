"""How far is an artifact's native program from one that takes the batch size at run time?

Builds the native program (compiler/native_program.py: the calls `ember_run` makes) of a
model exported at each batch size of a range, exactly as ember.aot.compile_and_package
does up to the entry's code, and reports:

- whether the LLVM modules (kernels, GEMM, conv) are the same text at every size;
- whether the call list has the same structure (callee, kind, pointer bases, run-time
  guards) at every size, and where it first differs;
- within one structure, which integers are affine in the batch size (a*n + c: shapes,
  strides, extents, offsets, guard bounds) and which are not.

    python tools/native_program_sizes.py                  # mlp, small_cnn, transformer
    python tools/native_program_sizes.py --sizes 5-10 mlp

docs/aot.md ("Dynamic shapes in artifacts") quotes its output. Nothing is compiled to
machine code (no `cc`, no LLVM code generation), so it runs in seconds.
"""
from __future__ import annotations

import argparse
import collections

import numpy as np

import ember
from ember.compiler import aot
from ember.compiler.native_program import ProgramBuilder
from ember.compiler.compile import CompileStats, PlanBuilder, _with_fusion
from ember.passes import PassContext, run_passes


def build_program(model, shape) -> tuple[list, list]:
    """(calls, module texts) of `model` exported for an input of `shape`."""
    ep = ember.export(model, (ember.randn(*shape),))
    graph = aot._copy_graph(ep.graph)
    backend = aot.PackagingBackend()
    ctx = PassContext(constants=dict(ep.state_dict), options={}, inference=True)
    run_passes(graph, _with_fusion("default-inference"), ctx)
    plan = PlanBuilder(graph, ctx.constants, CompileStats(), backend,
                       freeze_constants=True).build()
    table, modules = aot._step_table(plan, aot._view_geometry(plan, ep))
    inputs = [{"name": s.name, "dtype": np.dtype(aot._np_name(s.dtype)).str,
               "shape": list(s.shape)} for s in ep.user_inputs]
    builder = ProgramBuilder(table, aot._weights(plan, table), aot._memory_plan(plan),
                             plan.input_slots, inputs, plan.n_slots, external_weights=True)
    calls, _, _ = builder.build(aot._flat_outputs(plan.output_slots))
    return calls, [text for _, text, _ in modules]


def _shape_and_ints(call: dict) -> tuple[tuple, list]:
    """A call's structure and its integers, each with a category."""
    ints = [("extent", call["extent"]), ("align", call["align"])]
    ints += [("guard bound", bound) for _, bound in call["when"] or []]
    bases = []

    def visit(arg):
        if isinstance(arg, tuple):
            bases.append(str(arg[0]))
            ints.append(("pointer offset", arg[1]))
        elif arg is None:
            bases.append("null")
        elif isinstance(arg, list):
            bases.append(f"list{len(arg)}")
            for item in arg:
                visit(item) if isinstance(item, tuple) else ints.append(("int list", item))
        else:
            ints.append(("int", arg))
    for arg in call["args"]:
        visit(arg)
    guards = tuple(kind for kind, _ in call["when"] or [])
    return (call["fn"], call["sig"], call["parallel"], guards, tuple(bases)), ints


def _affine(sizes, values) -> bool:
    a, rest = divmod(values[1] - values[0], sizes[1] - sizes[0])
    c = values[0] - a * sizes[0]
    return not rest and all(a * s + c == v for s, v in zip(sizes, values))


def report(name: str, model, shape_of, sizes: list) -> None:
    built = [build_program(model, shape_of(s)) for s in sizes]
    same_modules = all(b[1] == built[0][1] for b in built)
    print(f"{name}, batch {sizes[0]}..{sizes[-1]}: calls per size "
          f"{[len(b[0]) for b in built]}; LLVM modules identical at every size: "
          f"{same_modules}")
    structures = [[_shape_and_ints(c)[0] for c in b[0]] for b in built]
    for s, structure in zip(sizes, structures):
        if structure != structures[0]:
            first = next((i for i, (x, y) in enumerate(zip(structures[0], structure))
                          if x != y), min(len(structure), len(structures[0])))
            print(f"  structure differs at batch {s} (first at call {first})")
            return
    total, bad = collections.Counter(), collections.Counter()
    for i in range(len(built[0][0])):
        columns = [_shape_and_ints(b[0][i])[1] for b in built]
        for j, (category, _) in enumerate(columns[0]):
            total[category] += 1
            if not _affine(sizes, [col[j][1] for col in columns]):
                bad[category] += 1
    print("  one structure; integers (not affine / all):",
          ", ".join(f"{k} {bad[k]}/{v}" for k, v in sorted(total.items())))


MODELS = {
    "mlp": (lambda: ember.models.mlp(in_features=24, hidden=(40, 16), num_classes=5, seed=2),
            lambda n: (n, 24)),
    "small_cnn": (lambda: ember.models.small_cnn(seed=1), lambda n: (n, 1, 12, 12)),
    "transformer": (lambda: ember.nn.TransformerEncoderLayer(
        d_model=32, nhead=4, dim_feedforward=48, dropout=0.0, batch_first=True),
        lambda n: (n, 5, 32)),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", help=f"some of {', '.join(MODELS)} (all)")
    parser.add_argument("--sizes", default="2-10", help="batch sizes, FIRST-LAST")
    ns = parser.parse_args(argv)
    first, last = (int(v) for v in ns.sizes.split("-"))
    for name in ns.models or list(MODELS):
        make, shape_of = MODELS[name]
        ember.manual_seed(0)
        report(name, make().eval(), shape_of, list(range(first, last + 1)))


if __name__ == "__main__":
    main()
