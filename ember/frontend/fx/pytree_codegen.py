"""torch.fx.graph's CodeGen family: how a GraphModule's forward takes its inputs and
returns its outputs.

`CodeGen` writes `def forward(self, x, y):` and `return value`; `_PyTreeCodeGen`
(set by symbolic_trace when `concrete_args` holds a dict/tuple with `PH` leaves, and
by make_fx given dicts/tuples) keeps the user's signature, flattens the arguments into
the graph's placeholders with `fx_pytree.tree_flatten_spec([d, t], self._in_spec)`
and rebuilds the result with `pytree.tree_unflatten([...], self._out_spec)`. Users
subclass CodeGen and install it with `graph.set_codegen(...)`.
"""
from __future__ import annotations

import contextlib
from typing import Any, NamedTuple, Optional

from ..func.pytree import TreeSpec, flatten, unflatten


class CodeGen:
    def __init__(self):
        self._body_transformer = None
        self._func_name = "forward"

    def gen_fn_def(self, free_vars: list, maybe_return_annotation: str) -> str:
        """`def forward(self, <free_vars>)<annotation>:` (self added when missing)."""
        if not free_vars or free_vars[0] != "self":
            free_vars.insert(0, "self")
        return f"def {self._func_name}({', '.join(free_vars)}){maybe_return_annotation}:"

    def generate_output(self, output_args) -> str:
        return f"return {output_args!r}"

    def process_inputs(self, *args) -> Any:
        """The graph's placeholder values from what the caller passes."""
        return args

    def process_outputs(self, outputs) -> Any:
        """What the caller gets from the output node's value."""
        return outputs

    def additional_globals(self) -> list:
        """(name, value) pairs the generated code needs in its globals."""
        return []


class _PyTreeInfo(NamedTuple):
    orig_args: list
    in_spec: TreeSpec
    out_spec: Optional[TreeSpec]


class _PyTreeCodeGen(CodeGen):
    def __init__(self, pytree_info: _PyTreeInfo):
        super().__init__()
        self.pytree_info = pytree_info

    def process_inputs(self, *inputs) -> list:
        return flatten(inputs)[0]

    def process_outputs(self, out) -> Any:
        if self.pytree_info is None or self.pytree_info.out_spec is None:
            return out
        if not isinstance(out, (list, tuple)):
            out = [out]
        return unflatten(self.pytree_info.out_spec, out)

    def gen_fn_def(self, free_vars: list, maybe_return_annotation: str) -> str:
        if self.pytree_info is None:
            return super().gen_fn_def(free_vars, maybe_return_annotation)
        orig = list(self.pytree_info.orig_args)
        definition = super().gen_fn_def(orig[:], maybe_return_annotation)
        if free_vars and free_vars[0] == "self":
            free_vars = free_vars[1:]
        # bare names: `a: T, b: T = f()` is not Python, and defaults cannot apply here
        names = [v.split(":")[0].split("=")[0].strip() for v in free_vars]
        if names:
            if orig and orig[0] == "self":      # a module's forward: torch's spec has it
                names.insert(0, "self")
            inputs = ", ".join(orig)
            definition += (f"\n    {', '.join(names)}, = "
                           f"fx_pytree.tree_flatten_spec([{inputs}], self._in_spec)")
        return definition

    def generate_output(self, output_args) -> str:
        if self.pytree_info is not None and self.pytree_info.out_spec is not None:
            return f"return pytree.tree_unflatten({output_args!r}, self._out_spec)"
        return super().generate_output(output_args)

    def additional_globals(self) -> list:
        from . import pytree_codegen
        return [("fx_pytree", pytree_codegen), ("pytree", pytree_codegen)]


def tree_flatten_spec(pytree, spec: TreeSpec) -> list:
    """torch.fx._pytree's: the leaves of `pytree` in the order `spec` lists them (a
    dict is read by the spec's keys, so a caller's key order does not matter)."""
    if spec.kind == "leaf":
        return [pytree]
    if spec.kind == "dict":
        children = [pytree[key] for key in spec.context]
    elif not isinstance(pytree, (list, tuple)):     # a Proxy while retracing: read by
        children = [pytree[i] for i in range(len(spec.children))]   # position, as torch
    else:
        children = list(pytree)
        if len(children) != len(spec.children):
            raise RuntimeError(f"expected {len(spec.children)} items in a {spec.kind}, "
                               f"got {len(children)}")
    leaves = []
    for child, child_spec in zip(children, spec.children):
        leaves += tree_flatten_spec(child, child_spec)
    return leaves


def tree_unflatten(leaves, treespec: TreeSpec):
    """torch.utils._pytree's argument order: (leaves, treespec)."""
    return unflatten(treespec, list(leaves))


def codegen_of(graph) -> CodeGen:
    found = graph.__dict__.get("_codegen_impl")
    if found is None:
        found = graph.__dict__["_codegen_impl"] = CodeGen()
    return found


def install() -> None:
    """`graph._codegen` (a data property over the graph's own slot) and
    `graph.set_codegen(codegen)`: the IR layer's Graph cannot import this module."""
    from ...ir.graph import Graph

    def set_codegen(graph, codegen: CodeGen) -> None:
        graph.__dict__["_codegen_impl"] = codegen

    def on_generate_code(graph, make_transformer):
        """Generated code passes its body (statements, each ending in a newline)
        through `make_transformer(previous_transformer)` from now on (torch's: the call
        installs it); used as `with graph.on_generate_code(...):`, the previous one
        comes back when the block ends."""
        codegen = codegen_of(graph)
        previous = codegen._body_transformer
        codegen._body_transformer = make_transformer(previous)

        @contextlib.contextmanager
        def restoring():
            try:
                yield
            finally:
                codegen._body_transformer = previous
        return restoring()
    Graph._codegen = property(codegen_of, set_codegen)
    Graph.on_generate_code = on_generate_code
    Graph.set_codegen = set_codegen
    Graph.process_inputs = lambda graph, *args: codegen_of(graph).process_inputs(*args)
    Graph.process_outputs = lambda graph, out: codegen_of(graph).process_outputs(out)
