"""The Triton kernels a graph needs: every fused group lowered and generated, and every
GEMM/conv anchor as a generated GEMM (with its group's epilogue fused in).

`graph_kernels(graph)` walks a graph after the fusion pass:
- a pointwise/reduction group -> source.generate(lower_group(...).kernel);
- an epilogue group -> gemm.generate_gemm(anchor problem, epilogue=its kernel); when the
  anchor has no Triton GEMM (transposed conv, conv1d, addmm with beta != 1, ...) the
  epilogue becomes a standalone kernel reading "acc" and the anchor stays extern;
- a lone anchor outside any group -> a plain GEMM.
`ember.compiler.triton_kernels.model_kernels(model, example_inputs)` (compiler layer)
traces a module and runs the inference pipeline and fusion first, then calls
`graph_kernels`. Kernels are deduplicated by source (`GeneratedKernel.key()`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.errors import LoweringError
from ...ir.fused import EPILOGUE_ANCHORS, FusedGroup
from ...ir.graph import Graph, OpKind
from ...ir.registry import is_op
from ..lowering import lower_group
from . import source
from .autotune import gemm_config
from .gemm import anchor_problem, generate_gemm


@dataclass
class GraphKernel:
    """One kernel launch of a graph. `arguments[i]` names the graph value behind the
    kernel's i-th pointer (`kernel.launch.buffers[i]`): a node name, `node[k]` for the
    k-th output of a multi-output group, or `node.acc` for the intermediate GEMM result
    when an epilogue could not be fused (the GEMM writes it, the epilogue kernel reads it)."""
    node: str                      # the graph node the kernel implements
    kind: str                      # "pointwise" | "reduction" | "gemm" | "gemm+epilogue"
    kernel: source.GeneratedKernel
    arguments: list[str]


@dataclass
class Extern:
    node: str
    op: str
    reason: str


def graph_kernels(graph: Graph) -> tuple[list[GraphKernel], list[Extern]]:
    kernels, externs = [], []
    for node in graph.nodes:
        if node.op != OpKind.call_function:
            continue
        if isinstance(node.target, FusedGroup):
            kernels += _group_kernels(node, externs)
        elif is_op(node.target) and node.target.name in EPILOGUE_ANCHORS:
            kernels += _anchor_kernels(node, None, externs, node.name, lambda n: n.name,
                                       [node.name])
        elif is_op(node.target):
            externs.append(Extern(node.name, node.target.name, "no generated kernel"))
    return kernels, externs


def _group_kernels(node, externs) -> list[GraphKernel]:
    placeholders = [n for n in node.target.graph.nodes if n.op == OpKind.placeholder]
    outer = dict(zip(placeholders, node.args))

    def value_name(inner) -> str:
        return getattr(outer[inner], "name", repr(outer[inner]))
    lowered = lower_group(node.target.graph, source.function_name(node.name))
    n_out = len(lowered.kernel.outputs)
    out_names = [node.name] if n_out == 1 else [f"{node.name}[{k}]" for k in range(n_out)]
    if lowered.anchor is None:
        kind = "reduction" if lowered.kernel.inner else "pointwise"
        args = [value_name(n) for n in lowered.inputs] + out_names
        return [GraphKernel(node.name, kind, source.generate(lowered.kernel), args)]
    extra = [value_name(n) for n in lowered.inputs if n is not lowered.anchor]
    return _anchor_kernels(lowered.anchor, lowered, externs, node.name, value_name, out_names,
                           extra)


def _anchor_kernels(anchor, lowered, externs, node_name, value_name, out_names,
                    extra=()) -> list[GraphKernel]:
    """The anchor as a GEMM with its epilogue fused; failing that, a plain GEMM writing
    "acc" and the epilogue as its own kernel; failing that, an extern anchor."""
    epilogue = lowered.kernel if lowered is not None else None
    gemm_name = source.function_name(f"{node_name}_{anchor.target.name}")
    acc_name = f"{node_name}.acc" if epilogue is not None else out_names[0]
    try:
        problem, operands = anchor_problem(anchor)
    except LoweringError as err:
        externs.append(Extern(node_name, anchor.target.name, str(err)))
        return [] if epilogue is None else [_standalone(node_name, lowered, acc_name, extra,
                                                        out_names)]
    operand_names = [value_name(n) for n in operands]
    config = gemm_config(problem)
    if epilogue is not None:
        try:
            fused = generate_gemm(problem, config, epilogue, name=gemm_name)
            return [GraphKernel(node_name, "gemm+epilogue", fused,
                                operand_names + list(extra) + out_names)]
        except LoweringError:
            pass            # e.g. a softmax after the matmul: two kernels
    plain = GraphKernel(node_name, "gemm", generate_gemm(problem, config, name=gemm_name),
                        operand_names + [acc_name])
    if epilogue is None:
        return [plain]
    return [plain, _standalone(node_name, lowered, acc_name, extra, out_names)]


def _standalone(node_name, lowered, acc_name, extra, out_names) -> GraphKernel:
    """The epilogue as its own kernel: "acc" is an ordinary input buffer there."""
    kernel = lowered.kernel
    extra = iter(extra)
    args = [acc_name if n is lowered.anchor else next(extra) for n in lowered.inputs]
    return GraphKernel(node_name, "reduction" if kernel.inner else "pointwise",
                       source.generate(kernel), args + out_names)


def unique(kernels: list[GraphKernel]) -> dict[str, GraphKernel]:
    """Kernels by source key and bound sizes: the first node that needs each distinct
    kernel at each shape (a shape-generic source serves several: their launches differ)."""
    out: dict[str, GraphKernel] = {}
    for k in kernels:
        out.setdefault(k.kernel.instance_key(), k)
    return out
