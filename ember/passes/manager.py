"""The pass manager: one registry of named passes, pipelines built from strings,
verification, timing and IR dumps.

A pass is a function `fn(graph, ctx) -> int` that rewrites `graph` in place and
returns how many things it changed (0: nothing). `ctx` is a `PassContext`: the
values of the constants/parameters the graph's get_attr nodes name, plus options.
Register one with

    @register_pass("cse", requires=("shapes",), preserves=("shapes",))
    def eliminate_common_subexpressions(graph, ctx) -> int: ...

Every pipeline starts with the `normalize` pass (passes/normalize.py: torch.fx's
call_method/operator form -> registry ops); the manager puts it first when a
pipeline does not. Properties are plain strings ("shapes", "constants-folded", "decomposed", ...).
The manager tracks which ones hold while a pipeline runs: a graph starts with
`initial_properties`; after a pass, the properties it `preserves` survive
(preserves=None: all of them) and those it `provides` are added. A pipeline in
which a pass requires a property that no earlier pass established is refused
before anything runs. Python name `fold_batchnorm`, pass name `fold-bn`: passes
are named with dashes, as on the command line.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TextIO

from ..ir import autocast, compile_times
from ..ir.errors import EmberError, VerifyError
from ..ir.graph import Graph, Node, OpKind
from ..ir.printer import format_node, print_graph, value_names
from ..ir.verifier import verify


class PassError(EmberError, ValueError):
    """An unknown pass or pipeline name, or a pipeline whose requirements are unmet."""


@dataclass
class PassContext:
    """What a pass may read besides the graph.

    `constants` maps get_attr targets to Tensors; passes that fold add new entries.
    `inference`: parameters are frozen (an inference graph), so get_attr values
    may be folded into new constants; False for training graphs.
    """
    constants: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    inference: bool = True
    added: set[str] = field(default_factory=set)   # names passes created

    @classmethod
    def from_module(cls, module, **fields) -> "PassContext":
        """Constants named as a traced module's get_attr nodes name them: its
        parameters and buffers by qualified name ('layer1.0.conv1.weight')."""
        constants = dict(module.named_parameters())
        constants.update(module.named_buffers())
        return cls(constants, **fields)

    def value_of(self, node: Node):
        """The constant value a get_attr node names, or None when it is not known."""
        if node.op != OpKind.get_attr:
            return None
        return self.constants.get(str(node.target))

    def add_constant(self, value, hint: str = "_folded") -> str:
        """Store `value` under a fresh name (for a new get_attr node) and return it."""
        index = len(self.constants)
        while f"{hint}{index}" in self.constants:
            index += 1
        name = f"{hint}{index}"
        self.constants[name] = value
        self.added.add(name)
        return name

    def prune_constants(self, graph: Graph) -> None:
        """Drop constants passes added that no get_attr node names any more (folding
        leaves intermediate ones); the caller's own entries are kept."""
        used = {str(n.target) for n in graph.nodes if n.op == OpKind.get_attr}
        for name in sorted(self.added - used):
            self.constants.pop(name, None)
            self.added.discard(name)


@dataclass(frozen=True)
class Pass:
    name: str
    fn: Callable[[Graph, PassContext], int]
    requires: frozenset = frozenset()
    provides: frozenset = frozenset()
    preserves: frozenset | None = None        # None: preserves every property
    doc: str = ""

    def properties_after(self, before: frozenset) -> frozenset:
        kept = before if self.preserves is None else before & self.preserves
        return kept | self.provides


PASSES: dict[str, Pass] = {}
PIPELINES: dict[str, list[str]] = {}


def register_pass(name: str, *, requires: Iterable[str] = (), provides: Iterable[str] = (),
                  preserves: Iterable[str] | None = None):
    """Decorator: register `fn(graph, ctx) -> int` as the pass `name`."""
    def decorate(fn: Callable) -> Callable:
        if name in PASSES:
            raise PassError(f"pass {name!r} is registered twice")
        PASSES[name] = Pass(name, fn, frozenset(requires), frozenset(provides),
                            None if preserves is None else frozenset(preserves),
                            (fn.__doc__ or "").strip().split("\n")[0])
        return fn
    return decorate


def register_pipeline(name: str, passes: Iterable[str]) -> None:
    """A named pipeline; later passes append with `extend_pipeline`."""
    PIPELINES[name] = list(passes)


def extend_pipeline(name: str, *passes: str) -> None:
    PIPELINES[name].extend(passes)


def known_names() -> str:
    return (f"known passes: {', '.join(sorted(PASSES))}; "
            f"pipelines: {', '.join(sorted(PIPELINES))}")


def lookup(name: str) -> list[Pass]:
    """The passes a pipeline element names (a pipeline name expands to its passes)."""
    if name in PASSES:
        return [PASSES[name]]
    if name in PIPELINES:
        return [p for sub in PIPELINES[name] for p in lookup(sub)]
    raise PassError(f"unknown pass {name!r}; {known_names()}")


@dataclass
class PassRecord:
    name: str
    seconds: float
    changes: int
    nodes_before: int
    nodes_after: int


@dataclass
class PassReport:
    records: list[PassRecord] = field(default_factory=list)

    @property
    def total_changes(self) -> int:
        return sum(r.changes for r in self.records)

    def changes(self, name: str) -> int:
        return sum(r.changes for r in self.records if r.name == name)

    def table(self) -> str:
        width = max([len(r.name) for r in self.records] + [5])
        rows = [f"{'pass':<{width}}  {'ms':>9}  {'changes':>7}  nodes"]
        for r in self.records:
            rows.append(f"{r.name:<{width}}  {r.seconds * 1e3:>9.2f}  {r.changes:>7}  "
                        f"{r.nodes_before} -> {r.nodes_after}")
        total = sum(r.seconds for r in self.records)
        rows.append(f"{'total':<{width}}  {total * 1e3:>9.2f}  {self.total_changes:>7}")
        return "\n".join(rows)


class PassManager:
    """Runs a list of passes over a graph.

    verify_each: run the verifier before the first pass and after every pass (a
    failure names the pass, the node and its source line).
    print_ir_before / print_ir_after: pass names (or "all") whose IR is dumped to
    `dump_to` before / after they run, as LLVM's -print-before / -print-after.
    """

    def __init__(self, passes: Iterable[str | Pass], *, verify_each: bool = False,
                 print_ir_before: Iterable[str] = (), print_ir_after: Iterable[str] = (),
                 initial_properties: Iterable[str] = ("shapes",),
                 dump_to: TextIO | None = None):
        self.passes = [p for item in passes
                       for p in ([item] if isinstance(item, Pass) else lookup(item))]
        if "normalize" in PASSES and (not self.passes or self.passes[0].name != "normalize"):
            # fx graphs record torch.fx's form (call_method "relu", operator.mul);
            # every pass reads registry ops, so that conversion always runs first
            self.passes.insert(0, PASSES["normalize"])
        self.verify_each = verify_each
        self.print_ir_before = set(print_ir_before)
        self.print_ir_after = set(print_ir_after)
        self.dump_to = dump_to
        self.initial_properties = frozenset(initial_properties)
        for name in self.print_ir_before | self.print_ir_after:
            if name != "all":
                lookup(name)
        self.check_requirements()

    @classmethod
    def from_string(cls, text: str, **options) -> "PassManager":
        """'dce,cse,fold' or a pipeline name ('default-inference'), or a mix."""
        names = [part.strip() for part in text.split(",") if part.strip()]
        if not names:
            raise PassError(f"empty pipeline {text!r}; {known_names()}")
        return cls(names, **options)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.passes]

    def check_requirements(self) -> None:
        have = self.initial_properties
        for p in self.passes:
            missing = sorted(p.requires - have)
            if missing:
                providers = sorted(q.name for q in PASSES.values() if set(missing) & q.provides)
                hint = f" (run {' or '.join(providers)} before it)" if providers else ""
                raise PassError(f"pass {p.name!r} requires {', '.join(missing)}, which no "
                                f"earlier pass in the pipeline provides{hint}")
            have = p.properties_after(have)

    def run(self, graph: Graph, ctx: PassContext | None = None) -> PassReport:
        ctx = ctx if ctx is not None else PassContext()
        report = PassReport()
        if self.verify_each:
            _verify_input(graph)
        with autocast.suspended():      # casts were traced already; rewrites add none
            for p in self.passes:
                self._dump(graph, p.name, self.print_ir_before, "before")
                report.records.append(self._run_one(p, graph, ctx))
                if self.verify_each:
                    verify(graph, after=p.name)
                self._dump(graph, p.name, self.print_ir_after, "after")
        ctx.prune_constants(graph)
        return report

    def _run_one(self, p: Pass, graph: Graph, ctx: PassContext) -> PassRecord:
        before = len(graph)
        start = time.perf_counter()
        try:
            changes = int(p.fn(graph, ctx))
        except Exception as err:
            err.add_note(f"in pass {p.name!r}{_where_failed(err, graph)}")
            raise
        seconds = time.perf_counter() - start
        return PassRecord(p.name, seconds, changes, before, len(graph))

    def _dump(self, graph: Graph, name: str, wanted: set, when: str) -> None:
        if name in wanted or "all" in wanted:
            out = self.dump_to or sys.stderr
            out.write(f"# IR {when} {name!r}\n{print_graph(graph)}")


@contextmanager
def at_node(node: Node):
    """Mark an exception raised inside the block with the node being rewritten, for the
    manager's note (the innermost mark wins): `with at_node(node): ...`."""
    try:
        yield
    except Exception as err:
        if getattr(err, "_ember_pass_node", None) is None:
            err._ember_pass_node = node
        raise


def _where_failed(err: Exception, graph: Graph) -> str:
    """' at' the failing node (as IR text) and its user source line, or ''."""
    node = getattr(err, "_ember_pass_node", None) or _node_in_traceback(err, graph)
    if node is None:
        return ""
    names = value_names(graph)
    try:
        text = format_node(node, names)
    except Exception:   # noqa: BLE001 - a node half-rewritten may not print; name it
        text = f"%{names.get(node, node.name)} = {getattr(node.target, 'name', node.target)}(...)"
    loc = node.meta.get("loc")
    return f" at\n  {text}" + (f"\n  from {loc}" if loc else "")


def _node_in_traceback(err: Exception, graph: Graph) -> Node | None:
    """The node the innermost frame of the traceback was working on: a local variable that
    is a node of `graph` (one with a source line first, then one named `node`). Passes that
    know better mark their exceptions with `at_node`."""
    found, members = None, set(graph.nodes)
    tb = err.__traceback__
    while tb is not None:
        local = [(name, v) for name, v in tb.tb_frame.f_locals.items()
                 if isinstance(v, Node) and v in members]
        if local:
            local.sort(key=lambda item: ("loc" not in item[1].meta, item[0] != "node"))
            found = local[0][1]
        tb = tb.tb_next
    return found


def _verify_input(graph: Graph) -> None:
    try:
        verify(graph)
    except VerifyError as err:
        raise VerifyError(f"input graph (before any pass): {err}") from None


def run_passes(graph: Graph, pipeline: str, ctx: PassContext | None = None,
               **options) -> PassReport:
    """Shorthand: `run_passes(g, "dce,cse", ctx, verify_each=True)`."""
    with compile_times.stage("passes"):
        return PassManager.from_string(pipeline, **options).run(graph, ctx)


# Named pipelines. Later passes join with extend_pipeline("default-inference", "layout").
register_pipeline("cleanup", ["normalize", "simplify", "fold", "cse", "dce"])
register_pipeline("default-inference", ["normalize", "lower-qdq", "simplify", "fold", "fold-bn",
                                        "decompose", "simplify", "fold", "cse", "dce",
                                        "fuse-qresidual", "layout", "fuse", "memplan"])
# Training graphs keep parameters as inputs (or as constants `fold` does not read
# outside inference), so folding only computes what depends on no input: class
# indices (arange) of a decomposed loss, the loss seed; layout conversions are left
# out (the update writes parameters in their own layout). "recompute" and
# "wgrad-nchw" act only where options["recompute"] / ["wgrad_nchw"] are set (CUDA
# training steps).
register_pipeline("default-training", ["normalize", "simplify", "decompose", "simplify",
                                       "fold", "cse", "dce", "recompute", "wgrad-nchw",
                                       "fuse", "sink-updates", "memplan"])
