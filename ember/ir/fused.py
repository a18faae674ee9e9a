"""FusedGroup: the call target of a node that stands for a fused group of ops.

The fusion pass replaces each group by one `call_function` node whose target is a
FusedGroup holding the group's own graph (placeholders = the group's inputs, output
= its results). Codegen lowers that graph to one kernel. Calling a FusedGroup runs
its graph op by op (`call_graph`), so a fused graph still runs in the Interpreter and
in generated Python code: fused results can always be checked against unfused ones.

Textual IR prints the group's graph as a nested region:

    %3 = fused "fused_1" pointwise(%x, %0) {
      graph(%in0: f32[8,16], %in1: f32[16]):
        %0 = add(%in0, %in1) : f32[8,16]
        %1 = relu(%0) : f32[8,16]
        return %1
    } : f32[8,16]
"""
from __future__ import annotations

from .graph import Graph, OpKind

KINDS = ("pointwise", "reduction", "epilogue")

# The CUDA float32 convolution weight gradient (codegen/triton/conv_wgrad.py) reads both
# operands NCHW (contiguous along N*Ho*Wo) where Cin/groups*KH*KW reaches this: Hopper's
# tf32 wgmma takes no transposed operand, and on an H100 channels-last tiles ran 2-3x
# slower than NCHW copies plus the NCHW kernel there (resnet18 at batch 64: layer1 0.72
# against 0.38 ms); below it the copies cost more than they save. The eager op copies
# channels-last operands; a compiled CUDA training step has them written NCHW by the
# kernels that produce them (passes/recompute.py, `wgrad-nchw`).
WGRAD_NCHW_MIN_COLUMNS = 512


def wgrad_reads_nchw(dtype_name: str, weight_size) -> bool:
    return dtype_name == "float32" and len(weight_size) == 4 and \
        weight_size[1] * weight_size[2] * weight_size[3] >= WGRAD_NCHW_MIN_COLUMNS


class FusedGroup:
    def __init__(self, name: str, graph: Graph, kind: str):
        if kind not in KINDS:
            raise ValueError(f"unknown fused group kind {kind!r}; expected one of {KINDS}")
        self.name = name
        self.graph = graph
        self.kind = kind

    @property
    def n_outputs(self) -> int:
        out = self.graph.output_node.args[0]
        return len(out) if isinstance(out, (tuple, list)) else 1

    @property
    def ops(self) -> list:
        return [n.target for n in self.graph.nodes if n.op == OpKind.call_function]

    def __call__(self, *args):
        from .symbolic import call_graph
        return call_graph(self.graph, args)

    def __repr__(self) -> str:
        return f"<fused {self.name} {self.kind}: {', '.join(getattr(t, 'name', str(t)) for t in self.ops)}>"

    def __eq__(self, other) -> bool:
        from .parser import graphs_equal
        return isinstance(other, FusedGroup) and (self.name, self.kind) == \
            (other.name, other.kind) and graphs_equal(self.graph, other.graph)

    def __hash__(self) -> int:
        return hash((self.name, self.kind))

    def __reduce__(self):
        return (FusedGroup, (self.name, self.graph, self.kind))


def is_fused(target) -> bool:
    return isinstance(target, FusedGroup)


# --- the group checker ------------------------------------------------------------------------
# Whether a candidate group can become one kernel is codegen's knowledge (it must lower it),
# but the fusion pass lives in `passes`, which may not import codegen. Codegen registers its
# checker here at import time, as it sets the registry's `lowering` fields.
_group_checker: list = []

# Ops that run as extern kernels (GEMM, convolution) but accept a pointwise epilogue.
EPILOGUE_ANCHORS = frozenset({"mm", "addmm", "linear", "matmul", "bmm", "conv2d", "convolution",
                              "conv1d"})


def register_group_checker(fn) -> None:
    """`fn(graph) -> str | None`: None when the group graph lowers to one kernel, else why not.
    `fn.on_nodes(nodes, inputs, outputs)`, where the checker has it, answers as `fn` would
    for the graph fusion's `extract_group(nodes)` builds (inputs and outputs: its
    placeholders' nodes and the members used outside, in its order), reading the nodes
    where they are: fusion asks hundreds of questions, and building each group's graph
    first cost as much as a third of answering."""
    _group_checker[:] = [fn]


def group_problem(graph: Graph) -> str | None:
    if not _group_checker:
        return "no code generator is loaded (import ember.codegen.lowering)"
    return _group_checker[0](graph)


def nodes_problem(nodes: list, inputs: list, outputs: list, extract) -> str | None:
    """group_problem(extract(nodes)[0]), without building the graph where the checker can."""
    on_nodes = getattr(_group_checker[0], "on_nodes", None) if _group_checker else None
    if on_nodes is not None:
        return on_nodes(nodes, inputs, outputs)
    return group_problem(extract(nodes)[0])


def is_lowerable(node) -> bool:
    return node.op == OpKind.call_function and getattr(node.target, "lowering", None) is not None
