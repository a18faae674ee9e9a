"""ember._dynamo.testing: the compile backends torch._dynamo.testing gives tests.

Each is a user compile backend (`backend(gm, example_inputs) -> callable`) for
`ember.compile(fn, backend=...)` that counts or keeps what it is handed: with graph
breaks it is called once per graph, as torch.compile calls it (docs/compile.md).
"""
from __future__ import annotations

from typing import Callable


def _calls_in(gm) -> int:
    return sum(1 for node in gm.graph.nodes if "call" in node.op)


class CompileCounter:
    """Counts graphs (`frame_count`) and the call nodes in them (`op_count`); runs
    each graph as given."""

    def __init__(self) -> None:
        self.clear()

    def __call__(self, gm, example_inputs) -> Callable:
        self.frame_count += 1
        self.op_count += _calls_in(gm)
        return gm.forward

    def clear(self) -> None:
        self.frame_count = 0
        self.op_count = 0


class CompileCounterWithBackend:
    """CompileCounter that keeps the graphs and compiles each with `backend`: "eager"
    runs it as given; ember's own backends ("inductor", "aot_eager", "llvm", ...)
    compile the GraphModule with ember.compile; other names are registered backends."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.clear()

    def __call__(self, gm, example_inputs) -> Callable:
        self.frame_count += 1
        self.op_count += _calls_in(gm)
        self.graphs.append(gm)
        return _compile_with(self.backend, gm, example_inputs)

    def clear(self) -> None:
        self.frame_count = 0
        self.op_count = 0
        self.graphs = []


class EagerAndRecordGraphs:
    """Keeps every graph it is handed (`graphs`) and runs it as given."""

    def __init__(self) -> None:
        self.graphs: list = []

    def __call__(self, gm, example_inputs) -> Callable:
        self.graphs.append(gm)
        return gm.forward


def _compile_with(backend: str, gm, example_inputs) -> Callable:
    from ..compiler.compile import COMPILE_BACKENDS, compile as compile_fn
    from ..compiler.compile_custom import lookup_backend
    if backend == "eager":
        return gm.forward
    if backend in COMPILE_BACKENDS or backend in ("inductor", "aot_eager"):
        return compile_fn(gm, backend=backend)
    return lookup_backend(backend)(gm, example_inputs)
