"""Pipeline stages split from the traced graph: torch.distributed.pipelining's `pipeline()`.

`pipeline(module, mb_args, split_spec=None, split_policy=None)` traces the module with
ember.fx, marks stage boundaries, and cuts the graph with `ember.fx.split_module` into
`submod_0 .. submod_{n-1}`; `Pipe.build_stage(i, device)` wraps stage i's submodule in
a `PipelineStage` for the existing GPipe/1F1B schedules. Boundaries come from:
- `pipe_split()` calls in forward (a no-op when the module runs eagerly);
- `split_spec={"layers.2": SplitPoint.BEGINNING, ...}`: before/after a submodule's call;
- `split_policy`: a function GraphModule -> GraphModule that inserts `pipe_split`
  nodes; `split_by_cost(num_stages, by="params" | "flops")` (an ember addition) balances
  the stages' parameter counts or estimated FLOPs.
A stage passes one tensor to the next (PipelineStage's contract), so a boundary must
be a point where exactly one value is live; others are refused naming the values.
"""
from __future__ import annotations

import enum
import operator

from ...frontend.fx.graph_module import GraphModule
from ...frontend.fx.interpreter import fetch_attr
from ...frontend.fx.split_module import split_module
from ...frontend.fx.tracer import Tracer
from ...frontend.nn.modules.module import Module
from ...ir.graph import OpKind

_TRACERS: list = []        # the pipeline() traces in progress (innermost last)


class SplitPoint(enum.Enum):
    BEGINNING = 1
    END = 2


def pipe_split() -> None:
    """Mark a stage boundary here in forward (recorded by `pipeline()`'s trace)."""
    if _TRACERS:
        _TRACERS[-1].create_proxy("call_function", pipe_split, (), {})


class _PipeTracer(Tracer):
    """ember.fx's Tracer that also records pipe_split() and split_spec's boundaries."""

    def __init__(self, split_spec: dict | None):
        super().__init__()
        self.split_spec = dict(split_spec or {})

    def call_module(self, m, forward, args, kwargs):
        point = self.split_spec.get(self.path_of_module(m))
        if point is SplitPoint.BEGINNING:
            pipe_split()
        out = super().call_module(m, forward, args, kwargs)
        if point is SplitPoint.END:
            pipe_split()
        return out


class Pipe(Module):
    """The split model: `split_gm` calls `submod_0 .. submod_{num_stages-1}` in order."""

    def __init__(self, split_gm: GraphModule, num_stages: int):
        super().__init__()
        self.split_gm = split_gm
        self.num_stages = num_stages

    def forward(self, *args, **kwargs):
        return self.split_gm(*args, **kwargs)

    def get_stage_module(self, stage_idx: int) -> Module:
        if not 0 <= stage_idx < self.num_stages:
            raise ValueError(f"Invalid stage index {stage_idx}; the pipe has "
                             f"{self.num_stages} stages")
        return getattr(self.split_gm, f"submod_{stage_idx}")

    def build_stage(self, stage_index: int, device=None, group=None):
        from .stage import PipelineStage
        return PipelineStage(self.get_stage_module(stage_index), stage_index,
                             self.num_stages, device, group=group)

    def info(self) -> str:
        return "\n".join(f"stage {i}: {self.get_stage_module(i)}"
                         for i in range(self.num_stages))


def pipeline(module: Module, mb_args: tuple, mb_kwargs: dict | None = None,
             split_spec: dict | None = None, split_policy=None) -> Pipe:
    """Trace `module` and split it into stages at its boundaries (see the module doc)."""
    if mb_kwargs:
        raise NotImplementedError("pipeline: keyword inputs are not supported yet "
                                  "(PipelineStage takes one tensor)")
    gm = _trace(module, split_spec)
    if split_policy is not None:
        _propagate_shapes(gm, mb_args)
        gm = split_policy(gm)
    stage_of = _stage_of_each_node(gm)
    num_stages = max(stage_of.values(), default=0) + 1
    for node in [n for n in gm.graph.nodes if n.target is pipe_split]:
        gm.graph.erase_node(node)
    if num_stages < 2:
        raise ValueError("pipeline: no split point was found: call pipe_split() in "
                         "forward, or pass split_spec or split_policy")
    qualnames: dict = {}
    split = split_module(gm, module, lambda n: stage_of[n], qualname_map=qualnames,
                         keep_original_order=True)
    _check_one_value_between_stages(split, num_stages)
    for i in range(num_stages):
        name = f"submod_{i}"
        setattr(split, name, _with_original_names(getattr(split, name), name, qualnames))
    return Pipe(split, num_stages)


def _with_original_names(stage: GraphModule, stage_name: str, qualnames: dict) -> GraphModule:
    """The stage with its parameters and submodules under the model's own names
    (`layers.2.weight`, not split_module's flattened `layers_2.weight`), as PyTorch's
    pipeline keeps them: a stage's state_dict keys are the model's, so checkpoints
    of stages and of the whole model load into each other."""
    graph, owned = stage.graph, {}
    for node in graph.nodes:
        if node.op in (OpKind.get_attr, OpKind.call_module):
            original = qualnames.get(f"{stage_name}.{node.target}", node.target)
            owned[original] = fetch_attr(stage, node.target)
            node.target = original
    return GraphModule(owned, graph, class_name=type(stage).__name__)


def _trace(module: Module, split_spec) -> GraphModule:
    tracer = _PipeTracer(split_spec)
    _TRACERS.append(tracer)
    try:
        graph = tracer.trace(module)
    finally:
        _TRACERS.pop()
    return GraphModule(module, graph)


def _propagate_shapes(gm: GraphModule, mb_args: tuple) -> None:
    from ...frontend.fx.shape_prop import ShapeProp
    ShapeProp(gm).propagate(*mb_args)


def _stage_of_each_node(gm: GraphModule) -> dict:
    stage, stage_of = 0, {}
    for node in gm.graph.nodes:
        if node.target is pipe_split:
            stage += 1
        elif node.op not in (OpKind.placeholder, OpKind.get_attr, OpKind.output):
            stage_of[node] = stage
    if stage and not any(s == stage for s in stage_of.values()):
        raise ValueError("pipeline: the last split point is at the end of forward, so its "
                         "stage would be empty")
    return stage_of


def _check_one_value_between_stages(split: GraphModule, num_stages: int) -> None:
    calls = {n.target: n for n in split.graph.nodes if n.op == OpKind.call_module}
    for i in range(num_stages):
        call = calls.get(f"submod_{i}")
        if call is None:
            raise ValueError(f"pipeline: stage {i} is empty (two split points in a row)")
        if i and len(call.args) != 1:
            names = ", ".join(str(a) for a in call.args)
            raise ValueError(f"pipeline: stage {i} needs {len(call.args)} values ({names}) "
                             "from earlier stages; ember's stages pass one tensor: move "
                             "the split point to where one value is live")
        if any(u.target is operator.getitem for u in call.users):
            raise ValueError(f"pipeline: stage {i} hands on several values; ember's stages "
                             "pass one tensor: move the split point to where one value "
                             "is live")


# --- the cost model ----------------------------------------------------------------------
def split_by_cost(num_stages: int, by: str = "params"):
    """A split_policy balancing the stages' cost: "params" (parameter elements) or
    "flops" (estimated from the shapes of one micro-batch: 2*M*N*K for linear layers,
    matmuls and convolutions, one per output element elsewhere).

    Cuts go only where exactly one value is live (the stages pass one tensor); among
    those, the cut points minimise the largest stage's cost.
    """
    if num_stages < 2:
        raise ValueError(f"split_by_cost: num_stages must be at least 2, got {num_stages}")
    if by not in ("params", "flops"):
        raise ValueError(f"split_by_cost: by must be 'params' or 'flops', got {by!r}")

    def policy(gm: GraphModule) -> GraphModule:
        nodes = [n for n in gm.graph.nodes
                 if n.op not in (OpKind.placeholder, OpKind.get_attr, OpKind.output)]
        costs = [_node_cost(gm, n, by) for n in nodes]
        cuts = _best_cuts(costs, _single_value_cuts(gm, nodes), num_stages)
        for i in cuts:
            with gm.graph.inserting_after(nodes[i]):
                gm.graph.call_function(pipe_split, ())
        return gm

    return policy


def _single_value_cuts(gm: GraphModule, nodes: list) -> list[int]:
    """Indices i such that cutting after nodes[i] leaves exactly one live value."""
    position = {n: i for i, n in enumerate(nodes)}
    out = gm.graph.output_node
    last_use = {}
    for n in list(gm.graph.placeholders) + nodes:
        uses = [position.get(u, len(nodes)) for u in n.users if u is not None]
        if out is not None and n in out.all_input_nodes:
            uses.append(len(nodes))
        last_use[n] = max(uses, default=-1)
    valid = []
    for i in range(len(nodes) - 1):
        live = [n for n in nodes[:i + 1] if last_use[n] > i]
        inputs_needed = [p for p in gm.graph.placeholders if last_use[p] > i]
        if len(live) == 1 and not inputs_needed:
            valid.append(i)
    return valid


def _best_cuts(costs: list[float], valid: list[int], num_stages: int) -> list[int]:
    """Cut positions (from `valid`) into num_stages pieces minimising the largest one."""
    if len(valid) < num_stages - 1:
        raise ValueError(f"split_by_cost: the graph has {len(valid)} points where one value "
                         f"is live, too few for {num_stages} stages")
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    ends = valid + [len(costs) - 1]            # a stage ends after one of these nodes
    # best[k][j]: the smallest largest-stage cost covering nodes[0..ends[j]] in k+1 stages
    inf = float("inf")
    best = [[inf] * len(ends) for _ in range(num_stages)]
    back = [[-1] * len(ends) for _ in range(num_stages)]
    for j, e in enumerate(ends):
        best[0][j] = prefix[e + 1]
    for k in range(1, num_stages):
        for j, e in enumerate(ends):
            for i in range(j):
                cost = max(best[k - 1][i], prefix[e + 1] - prefix[ends[i] + 1])
                if cost < best[k][j]:
                    best[k][j], back[k][j] = cost, i
    cuts, j = [], len(ends) - 1
    for k in range(num_stages - 1, 0, -1):
        j = back[k][j]
        cuts.append(ends[j])
    return sorted(cuts)


def _node_cost(gm: GraphModule, node, by: str) -> float:
    if by == "params":
        return float(_param_elements(gm, node))
    return float(_flops(gm, node))


def _param_elements(gm: GraphModule, node) -> int:
    total = 0
    if node.op == OpKind.call_module:
        total += sum(p.numel() for p in gm.get_submodule(node.target).parameters())
    for arg in node.all_input_nodes:
        if arg.op == OpKind.get_attr:
            value = _fetch(gm, arg.target)
            total += value.numel() if hasattr(value, "numel") else 0
    return total


def _flops(gm: GraphModule, node) -> int:
    out = node.meta.get("val")
    if out is None or not hasattr(out, "shape"):
        if "val" not in node.meta:
            raise ValueError("split_by_cost(by='flops'): the graph has no shapes; pass "
                             "pipeline() one micro-batch in mb_args")
        return 0
    numel = 1
    for s in out.shape:
        numel *= int(s)
    if node.op == OpKind.call_module:
        mod = gm.get_submodule(node.target)
        kind = type(mod).__name__
        if kind == "Linear":
            return 2 * numel * mod.in_features
        if kind.startswith("Conv"):
            kernel = 1
            for k in mod.kernel_size:
                kernel *= k
            return 2 * numel * (mod.in_channels // mod.groups) * kernel
        return numel
    name = getattr(node.target, "__name__", str(node.target))
    if name in ("linear", "matmul", "mm", "bmm", "addmm", "__matmul__"):
        first = node.args[1 if name == "addmm" else 0]
        inner = first.meta["val"].shape[-1] if hasattr(first, "meta") and \
            "val" in first.meta else 1
        return 2 * numel * int(inner)
    return numel


def _fetch(gm: GraphModule, target: str):
    value = gm
    for part in target.split("."):
        value = getattr(value, part)
    return value
