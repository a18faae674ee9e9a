"""ember.export: a model and example inputs -> an ExportedProgram (torch.export's shape).

    ep = ember.export(model, (x,))
    ep.graph_signature, ep.tensors, ep.module()(x)
    ember.export.save(ep, "model.ep"); ep2 = ember.export.load("model.ep")

Capture is ember.compile's trace (compiler/compile_trace.py): forward runs once on
symbolic values, parameters and buffers become get_attr constants, and whatever the
trace cannot follow (data-dependent control flow, a .item()) is refused with the
user's line, as ember.compile(fullgraph=True) does. Constants are renamed to their
module paths ('fc1.weight') so the graph text reads like the model.

The saved form is a zip: `graph.ir` (the textual IR: it parses back with
ember.ir.parse), `weights.safetensors`, `spec.json` (inputs, outputs, pytree
structure of the arguments and the result).

`dynamic_shapes` (torch's forms, `ember.export.Dim`) makes dimensions symbolic: one
symbol in compiler/export_dynamic.py, several (derived dims, polynomials, size guards)
in compiler/export_symbols.py. `.item()` bounded by torch._check: ir/unbacked.py.
Short of torch.export: no data-dependent sizes, and the graph is ember's op-level IR,
not ATen's.
"""
from __future__ import annotations

import enum
import inspect
import json
import math
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..frontend.autograd import grad_mode
from .compile_guards import flatten, unflatten
from .compile_trace import ModuleWatcher, StepFunctionFound, trace_call
from ..frontend.nn.modules.module import Module
from ..frontend.nn.parameter import Parameter
from ..frontend.tensor import Tensor
from ..ir.errors import ArtifactError, EmberError, GuardError, TraceError, UserError
from ..ir.graph import Graph, OpKind
from .export_dynamic import Dim as _Dim

EXPORT_FORMAT = 1


class InputKind(str, enum.Enum):
    """torch.export.graph_signature.InputKind: what a program input is (a str, so
    `spec.kind == "parameter"` reads as before)."""
    USER_INPUT = "user_input"
    PARAMETER = "parameter"
    BUFFER = "buffer"
    CONSTANT_TENSOR = "constant"


class OutputKind(str, enum.Enum):
    """torch.export.graph_signature.OutputKind: ember's programs return user outputs;
    a decomposed program's signature lists the buffers its graph updates in place."""
    USER_OUTPUT = "output"
    BUFFER_MUTATION = "buffer_mutation"


@dataclass(frozen=True)
class TensorArgument:
    """torch.export.graph_signature.TensorArgument: the graph-side name of a value."""
    name: str


class SymInt:
    """A size-valued result of a dynamic program (torch.export returns a SymInt there):
    `x.shape[1] + 1` is the polynomial s0 + 1 of the symbols, held in the result's
    structure and evaluated at each call's sizes."""
    __slots__ = ("poly",)

    def __init__(self, poly: dict):
        self.poly = poly

    def __eq__(self, other) -> bool:
        return isinstance(other, SymInt) and other.poly == self.poly

    __hash__ = None

    def __repr__(self) -> str:
        from ..ir.symdim import poly_text
        return f"SymInt({poly_text(self.poly)})"

    def at(self, sizes: dict) -> int:
        from ..ir.symdim import poly_at
        return poly_at(self.poly, sizes)


def _symbolic_results(spec):
    """The result structure with each traced size (a polynomial of the symbols) as a
    SymInt, so that traces at different sizes compare equal where only they differ."""
    from ..ir.symdim import TracedSize
    if isinstance(spec, TracedSize) and spec.poly is not None and \
            any(m for m in spec.poly):
        return SymInt(dict(spec.poly))
    if isinstance(spec, tuple) and hasattr(spec, "_fields"):
        return type(spec)(*(_symbolic_results(v) for v in spec))
    if isinstance(spec, (tuple, list)):
        return type(spec)(_symbolic_results(v) for v in spec)
    if isinstance(spec, dict):
        return {k: _symbolic_results(v) for k, v in spec.items()}
    return spec


def _at_sizes(value, sizes: dict):
    """A result with its SymInts evaluated at a call's sizes ({symbol index: size})."""
    if isinstance(value, SymInt):
        return value.at(sizes)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_at_sizes(v, sizes) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_at_sizes(v, sizes) for v in value)
    if isinstance(value, dict):
        return {k: _at_sizes(v, sizes) for k, v in value.items()}
    return value


def _sym_ints(spec) -> list:
    if isinstance(spec, SymInt):
        return [spec]
    if isinstance(spec, (tuple, list)):
        return [x for v in spec for x in _sym_ints(v)]
    if isinstance(spec, dict):
        return [x for v in spec.values() for x in _sym_ints(v)]
    return []


# torch.export's placeholder names for lifted state: p_fc1_weight, b_bn_running_mean, ...
_LIFTED_PREFIX = {InputKind.PARAMETER: "p_", InputKind.BUFFER: "b_",
                  InputKind.CONSTANT_TENSOR: "c_"}


@dataclass
class TensorSpec:
    """One input or output of an exported program: its name, kind, dtype and shape.
    `target` (the state_dict key, None for user inputs and outputs) and `arg` are
    torch's InputSpec/OutputSpec fields."""
    name: str
    kind: str                  # an InputKind / OutputKind (str values, as saved)
    dtype: str
    shape: tuple
    persistent: bool | None = None      # buffers: saved in the module's state_dict
    mutates: str | None = None          # a BUFFER_MUTATION output: the buffer it updates

    def __post_init__(self):
        if self.kind == "buffer" and self.persistent is None:
            self.persistent = True
        self.kind = OutputKind(self.kind) if self.kind in ("output", "buffer_mutation") \
            else InputKind(self.kind)

    @property
    def target(self) -> str | None:
        if self.kind == OutputKind.BUFFER_MUTATION:
            return self.mutates
        return self.name if self.kind in _LIFTED_PREFIX else None

    @property
    def arg(self) -> TensorArgument:
        prefix = _LIFTED_PREFIX.get(self.kind)
        return TensorArgument(self.name if prefix is None else
                              prefix + self.name.replace(".", "_"))

    def as_json(self) -> dict:
        return {"name": self.name, "kind": self.kind.value, "dtype": self.dtype,
                "shape": list(self.shape)}


@dataclass
class ModuleCallSignature:
    """torch.export's ModuleCallSignature (see ExportedProgram.module_call_graph)."""
    inputs: list
    outputs: list
    in_spec: Any
    out_spec: Any
    forward_arg_names: list | None = None


@dataclass
class ModuleCallEntry:
    fqn: str
    signature: ModuleCallSignature | None = None


@dataclass
class ExportGraphSignature:
    """torch.export's ExportGraphSignature: what each graph input and output is, in
    torch's order (parameters, buffers, constants, then the user inputs)."""
    input_specs: list[TensorSpec]
    output_specs: list[TensorSpec]

    def __post_init__(self):
        rank = {InputKind.PARAMETER: 0, InputKind.BUFFER: 1, InputKind.CONSTANT_TENSOR: 2,
                InputKind.USER_INPUT: 3}
        self.input_specs = sorted(self.input_specs, key=lambda s: rank[s.kind])

    def _names(self, kind: str) -> tuple[str, ...]:
        return tuple(s.name for s in self.input_specs if s.kind == kind)

    @property
    def user_inputs(self) -> tuple[str, ...]:
        return self._names("user_input")

    @property
    def parameters(self) -> tuple[str, ...]:
        return self._names("parameter")

    @property
    def buffers(self) -> tuple[str, ...]:
        return self._names("buffer")

    @property
    def user_outputs(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.output_specs if s.kind == "output")

    @property
    def buffers_to_mutate(self) -> dict[str, str]:
        return {s.name: s.target for s in self.output_specs if s.kind == "buffer_mutation"}

    @property
    def inputs_to_parameters(self) -> dict[str, str]:
        return {s.arg.name: s.name for s in self.input_specs if s.kind == "parameter"}

    @property
    def inputs_to_buffers(self) -> dict[str, str]:
        return {s.arg.name: s.name for s in self.input_specs if s.kind == "buffer"}

    def __str__(self) -> str:
        lines = ["", "# inputs"]
        lines += [f"{s.arg.name}: {s.kind.name}" +
                  (f" target='{s.target}'" if s.target is not None else "") +
                  (f" persistent={s.persistent}" if s.kind == "buffer" else "")
                  for s in self.input_specs]
        lines += ["", "# outputs"] + [f"{s.name}: {s.kind.name}" +
                                      (f" target='{s.target}'" if s.target else "")
                                      for s in self.output_specs]
        return "\n".join(lines) + "\n"


@dataclass
class ExportedProgram:
    """A traced graph with the values it reads (torch.export.ExportedProgram's roles):
    `graph` reads user inputs as placeholders and `tensors` entries as get_attr;
    `state_dict` is torch's: the parameters and persistent buffers (lifted constants and
    non-persistent buffers are in `constants`)."""
    graph: Graph
    tensors: dict                          # name -> Tensor (parameters, buffers, constants)
    input_specs: list[TensorSpec]
    output_specs: list[TensorSpec]
    in_spec: Any = None                    # (args, kwargs) with tensors as markers
    out_spec: Any = None                   # the result with tensors as markers
    range_constraints: dict = field(default_factory=dict)   # {'s0': ValueRange} if dynamic
    # with dynamic_shapes: the graph with s0 in its types (`graph` is it at the example
    # inputs' size) and the (input index, dim) pairs that are s0
    symbolic_graph: Any = None
    dynamic_dims: list = field(default_factory=list)
    # several symbols (compiler/export_symbols.py): {(input index, dim): polynomial}
    dim_exprs: dict = field(default_factory=dict)
    # one symbol traced with its comparisons against 1 refused: a call of size 1 runs
    # the graph at s0 = 1 (torch runs it too; its range's lower bound reads 2)
    size_one: bool = False
    # torch._check facts on values read with .item() (ir/unbacked.py), checked at each
    # call: [(graph node name, op, bound, text)]
    value_checks: list = field(default_factory=list)
    # several symbols: sizes the model's code found unequal to a constant (torch's
    # guards `s0 != 4` on Dim.AUTO dims), refused per call: {symbol: {size: where}}
    excluded_sizes: dict = field(default_factory=dict)

    @property
    def graph_signature(self) -> ExportGraphSignature:
        outputs = list(self.output_specs) + [
            TensorSpec(f"sym_size{i}", "output", "int64", ())
            for i, _ in enumerate(_sym_ints(self.out_spec))]
        if self.dialect == "ATEN":          # decomposed: torch lists buffer updates first
            outputs = self._buffer_mutations() + outputs
        return ExportGraphSignature(list(self.input_specs), outputs)

    def _buffer_mutations(self) -> list:
        """An in-place op (`add_`) on a buffer the graph reads: the buffer it updates."""
        buffers = {s.name for s in self.input_specs if s.kind == "buffer"}
        out = []
        for node in self.graph.nodes:
            name = getattr(node.target, "name", "")
            first = node.args[0] if node.args else None
            if node.op == OpKind.call_function and name.endswith("_") and \
                    not name.endswith("__") and getattr(first, "op", None) == OpKind.get_attr \
                    and first.target in buffers:
                val = node.meta.get("val")
                out.append(TensorSpec(node.name, "buffer_mutation",
                                      getattr(getattr(val, "dtype", None), "name", ""),
                                      tuple(getattr(val, "shape", ())), mutates=first.target))
        return out

    @property
    def graph_module(self):
        """The graph as an ember.fx.GraphModule holding the program's state (get_attr
        nodes read it), so `.code` shows it as Python and calling it runs it."""
        from ..frontend.fx.graph_module import GraphModule
        return GraphModule(dict(self.tensors), self.graph, class_name="GraphModule")

    def run_decompositions(self, decomp_table=None, decompose_custom_triton_ops=False):
        """A copy with every composite op replaced by its decomposition into ember's
        primitive ops (the registry's `decomposition` entries; ember's counterpart of
        torch's core-ATen decomposition). `decomp_table` is accepted for torch's sake:
        ember's decompositions are the registry's, not a table of ATen ops."""
        import copy
        from ..passes import PassContext, run_passes

        def decomposed(graph):
            graph = copy.deepcopy(graph)
            run_passes(graph, "decompose,dce",
                       PassContext(constants=dict(self.tensors), inference=True))
            return graph
        program = copy.copy(self)
        program.dialect = "ATEN"
        program.graph = decomposed(self.graph)
        if self.symbolic_graph is not None:
            program.symbolic_graph = decomposed(self.symbolic_graph)
        return program

    dialect = "TRAINING"            # torch's name for export's IR (ATEN once decomposed)

    @property
    def state_dict(self) -> dict:
        """Parameters and persistent buffers by name (torch's ExportedProgram.state_dict)."""
        return {s.name: self.tensors[s.name] for s in self.input_specs
                if (s.kind == "parameter" or s.kind == "buffer" and s.persistent)
                and s.name in self.tensors}

    @property
    def module_call_graph(self) -> list:
        """torch's list of ModuleCallEntry: the root ("") with its call signature (the
        (args, kwargs) and result specs, forward's parameter names), then each submodule
        by its path, in named_modules order, with a signature only where
        preserve_module_call_signature named it. ember's graph does not record module
        boundaries, so a signature's inputs / outputs (the graph values crossing the
        call) are left empty, as torch's root entry has them."""
        calls = self.__dict__.get("_module_calls") or {"": None, "names": [], "kept": []}
        root = ModuleCallSignature([], [], self.in_spec, self.out_spec, calls[""])
        return [ModuleCallEntry("", root)] + [
            ModuleCallEntry(name, ModuleCallSignature([], [], None, None)
                            if name in calls["kept"] else None)
            for name in calls["names"]]

    @property
    def example_inputs(self):
        """(args, kwargs) the program was exported with, as torch keeps them."""
        return self.__dict__.get("_example_inputs")

    @property
    def constants(self) -> dict:
        """Lifted tensor constants and non-persistent buffers (torch keeps both here,
        outside its state_dict), by name."""
        return {s.name: self.tensors[s.name] for s in self.input_specs
                if (s.kind == "constant" or s.kind == "buffer" and not s.persistent)
                and s.name in self.tensors}

    tensor_constants = constants

    def named_parameters(self):
        for s in self.input_specs:
            if s.kind == "parameter":
                yield s.name, self.tensors[s.name]

    def parameters(self):
        for _, value in self.named_parameters():
            yield value

    def named_buffers(self):
        for s in self.input_specs:
            if s.kind == "buffer":
                yield s.name, self.tensors[s.name]

    def buffers(self):
        for _, value in self.named_buffers():
            yield value

    def validate(self) -> None:
        """Check the graph (ember's verifier: every op's types against its shape rule)."""
        from ..ir.verifier import verify
        verify(self.graph)

    @property
    def user_inputs(self) -> list[TensorSpec]:
        return [s for s in self.input_specs if s.kind == "user_input"]

    def module(self):
        """A callable running the graph eagerly: same arguments as the exported call."""
        return _ExportedCallable(self)

    def __call__(self, *args, **kwargs):
        raise RuntimeError("Unable to call ExportedProgram directly. You should use "
                         "`exported_program.module()` instead.")

    def __str__(self) -> str:
        from ..ir.printer import print_graph
        return f"ExportedProgram:\n{print_graph(self.graph)}"


class _ExportedCallable(Module):
    """`ep.module()`: an nn.Module (torch's is a GraphModule) holding the program's
    parameters and buffers under their module paths (`lin.weight`), so state_dict(),
    named_parameters() and load_state_dict() work on it; calling it runs the graph
    with the module's current values."""

    def __init__(self, ep: ExportedProgram):
        super().__init__()
        object.__setattr__(self, "ep", ep)
        self._take_forward_signature(ep)
        kinds = {s.name: s.kind for s in ep.input_specs}
        for name, value in ep.tensors.items():
            owner, last = self._owner_of(name)
            if kinds.get(name) == "parameter":
                owner.register_parameter(last, Parameter(value, requires_grad=False))
            elif kinds.get(name) == "buffer":
                owner.register_buffer(last, value)

    def train(self, mode: bool = True):
        """The graph was traced in one mode (dropout and batch-norm behaviour fixed in
        it): asking for that mode is a no-op, switching is refused (torch refuses both),
        since the program would go on running the traced one."""
        if "ep" not in self.__dict__ or mode == self.ep.__dict__.get("_training"):
            return super().train(mode)
        raise NotImplementedError(
            f"Calling {'train' if mode else 'eval'}() is not supported yet: the program "
            f"was exported in {'training' if self.ep.__dict__.get('_training') else 'eval'} "
            "mode and runs that mode's graph; export the model again in the other mode")

    def _take_forward_signature(self, ep: ExportedProgram) -> None:
        """`forward` shows the exported call's parameters (`(x, mask)`), as torch's
        module() does: exporting it again binds dynamic_shapes to them by name or
        position. (A partial of the class's forward: deepcopy and pickle rebind it.)"""
        import functools
        names = (ep.__dict__.get("_module_calls") or {}).get("")
        if not names:
            return
        forward = functools.partial(type(self).forward, self)
        forward.__signature__ = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
        object.__setattr__(self, "forward", forward)

    def _owner_of(self, name: str):
        *path, last = name.split(".")
        owner = self
        for part in path:
            if not isinstance(owner._modules.get(part), Module):
                owner.add_module(part, self._part_class())
            owner = owner._modules[part]
        return owner, last

    def forward(self, *args, **kwargs):
        from ..ir.symbolic import call_graph
        from .export_dynamic import graph_at
        leaves, spec = flatten((args, kwargs))
        _check_specialized(self.ep.in_spec, spec)
        n = check_inputs(self.ep, leaves)
        graph = self.ep.graph if n is None else graph_at(self.ep, n)
        state = dict(self.ep.tensors)
        state.update(self.named_parameters())
        state.update(self.named_buffers())
        with grad_mode.no_grad():
            if self.ep.value_checks:
                _check_values(self.ep, graph, leaves, state)
            out = call_graph(graph, leaves, state)
        if n is not None and min(n.values() if isinstance(n, dict) else (n,)) < 2:
            _check_results_at_small_size(graph, out)
        result = unflatten(self.ep.out_spec, list(out))
        if _sym_ints(self.ep.out_spec):
            result = _at_sizes(result, n if isinstance(n, dict) else {0: n})
        return result


def _check_values(ep: ExportedProgram, graph, leaves: list, state: dict) -> None:
    """Run the program's torch._check facts on values read with .item() (torch's
    runtime assertions): the graph up to those values runs first."""
    import copy
    from ..ir.symbolic import call_graph
    from ..ir.unbacked import holds
    side = copy.deepcopy(graph)
    by_name = {n.name: n for n in side.nodes}
    side.output_node.args = (tuple(by_name[name] for name, *_ in ep.value_checks),)
    side.eliminate_dead_code()
    values = call_graph(side, leaves, state)
    for value, (_, op, bound, text) in zip(values, ep.value_checks):
        got = value.item()
        if not holds(op, got, bound):
            raise GuardError(f"exported program: runtime check failed: {text}; the value "
                             f"is {got}")


def _check_results_at_small_size(graph, out) -> None:
    """A call of size 0 or 1 replays the graph traced at sizes >= 2: its results must
    have the shapes the graph has there (else an op behaved differently at that size)."""
    metas = [n.meta.get("val") for n in graph.output_node.args[0]]
    for i, (meta, value) in enumerate(zip(metas, out)):
        if meta is not None and hasattr(value, "shape") and \
                tuple(value.shape) != tuple(meta.shape):
            raise GuardError(f"exported program: at a dynamic size of 0 or 1, result {i} "
                             f"has shape {list(value.shape)} where the program has "
                             f"{list(meta.shape)}: export with an example of that size")


_ExportedCallable._part_class = Module


class _SubmoduleOfProgram(Module):
    """A submodule of `unflatten(ep)`: it holds its parameters and buffers, and runs
    the part of the program between the values its call took and gave when exported
    (a module called once, on graph values, by ember.export's static trace)."""

    def forward(self, *args, **kwargs):
        root, path = self.__dict__.get("_program_root"), self.__dict__.get("_program_path")
        if root is None:
            raise EmberError("ember.export.unflatten: this submodule cannot be called on "
                             "its own (the export did not record its call: a module called "
                             "more than once, on non-tensor values, with dynamic_shapes, or a "
                             "loaded program); call the unflattened module itself")
        return root._run_submodule(path, args, kwargs)


class UnflattenedModule(_ExportedCallable):
    """torch.export.unflatten(ep): an nn.Module with the exported model's module
    hierarchy of parameters and buffers (`u.fc1.weight`, `u.state_dict()` keys as the
    model's), whose call runs the program. Its submodules hold state only; one swapped
    for another module is refused at the call (the program would not run it)."""
    _part_class = _SubmoduleOfProgram

    def __init__(self, ep: ExportedProgram):
        super().__init__(ep)
        for path in ep.__dict__.get("_module_boundaries") or {}:
            try:
                part = self.get_submodule(path)
            except AttributeError:
                part = self._owner_of(path + ".x")[0]    # a module without state
            object.__setattr__(part, "_program_root", self)
            object.__setattr__(part, "_program_path", path)
        object.__setattr__(self, "_own_parts", {id(m) for _, m in self.named_modules()})

    def _run_submodule(self, path: str, args, kwargs):
        from ..ir.symbolic import call_graph
        ins, outs, spec = self.ep.__dict__["_module_boundaries"][path]
        by_name = {n.name: n for n in self.ep.graph.nodes}
        inputs = [by_name[n] for n in ins]
        graph = _graph_between(self.ep.graph, inputs, [by_name[n] for n in outs])
        leaves, _ = flatten((args, kwargs))
        if graph is None or len(leaves) != len(inputs):
            raise EmberError(f"ember.export.unflatten: submodule '{path}' cannot run on its "
                             f"own: its part of the program reads other inputs of the model")
        for i, (node, value) in enumerate(zip(inputs, leaves)):
            meta = node.meta.get("val")
            if meta is not None and (tuple(value.shape) != tuple(meta.shape) or
                                     value.dtype != meta.dtype):
                raise GuardError(f"ember.export.unflatten: submodule '{path}' input {i} "
                                 f"must be {meta.dtype.name}{list(meta.shape)}, got "
                                 f"{value.dtype.name}{list(value.shape)}")
        state = dict(self.ep.tensors)
        state.update(self.named_parameters())
        state.update(self.named_buffers())
        with grad_mode.no_grad():
            out = call_graph(graph, leaves, state)
        return unflatten(spec, list(out))

    def forward(self, *args, **kwargs):
        swapped = [name for name, m in self.named_modules() if id(m) not in self._own_parts]
        if swapped:
            raise EmberError(f"ember.export.unflatten: submodule '{swapped[0]}' was replaced "
                             "after unflatten; ember's exported graph does not record where "
                             "each module's ops begin and end, so the program cannot run the "
                             "new module: export the model with it instead")
        return super().forward(*args, **kwargs)


def _graph_between(graph: Graph, inputs: list, outputs: list) -> Graph | None:
    """The ops computing `outputs` from `inputs` (and state) as a graph of their own;
    None when they read another placeholder (a value from outside the call)."""
    needed, stack = set(), list(outputs)
    while stack:
        node = stack.pop()
        if node in needed or node in inputs:
            continue
        if node.op == OpKind.placeholder:
            return None
        needed.add(node)
        stack.extend(node.all_input_nodes)
    sub = Graph()
    env = {node: sub.placeholder(f"input{i}") for i, node in enumerate(inputs)}
    for node in graph.nodes:
        if node in needed:
            env[node] = sub.node_copy(node, lambda n: env[n])
    sub.output(tuple(env[n] for n in outputs))
    return sub


def unflatten_program(ep: ExportedProgram, flat_args_adapter=None) -> UnflattenedModule:
    """torch.export.unflatten: see UnflattenedModule."""
    return UnflattenedModule(ep)


def _check_specialized(exported, given, path: str = "inputs") -> None:
    """Export specializes on the call's non-tensor arguments (torch guards them):
    refuse a call whose structure or plain values differ from the example's."""
    if exported is None:
        return
    if isinstance(exported, dict) and isinstance(given, dict):
        if set(exported) != set(given):
            raise GuardError(f"exported program: {path} has keys {sorted(given)}, it was "
                             f"exported with {sorted(exported)}")
        for key in exported:
            _check_specialized(exported[key], given[key], f"{path}[{key!r}]")
        return
    if isinstance(exported, (list, tuple)) and isinstance(given, (list, tuple)) and \
            len(exported) == len(given):
        for i, (a, b) in enumerate(zip(exported, given)):
            _check_specialized(a, b, f"{path}[{i}]")
        return
    try:
        same = type(exported) is type(given) and bool(exported == given)
    except Exception:       # noqa: BLE001 - a value without a plain ==: compare identity
        same = exported is given
    if not same:
        raise GuardError(f"exported program: {path} was specialized to {exported!r} when "
                         f"exported, got {given!r} (export it again for that value, or "
                         "pass it as a tensor)")


def check_inputs(ep: ExportedProgram, leaves: list) -> int | None:
    """Refuse inputs whose count, dtype or shape differ from what was exported (a
    dynamic dimension may take any size of its range); returns that size, if any."""
    from .export_dynamic import check_size
    specs = ep.user_inputs
    if len(leaves) != len(specs):
        raise GuardError(f"exported program takes {len(specs)} tensor input(s), got "
                         f"{len(leaves)}")
    if ep.dim_exprs:
        return _check_several(ep, leaves)
    n = check_size(ep, leaves)
    for i, (spec, t) in enumerate(zip(specs, leaves)):
        shape = [n if (i, d) in ep.dynamic_dims else s for d, s in enumerate(spec.shape)]
        if t.dtype.name != spec.dtype or list(t.shape) != shape:
            want = ", ".join(ep_symbol(ep) if (i, d) in ep.dynamic_dims else str(s)
                             for d, s in enumerate(spec.shape))
            raise GuardError(f"exported program: input '{spec.name}' must be "
                             f"{spec.dtype}[{want}], got {t.dtype.name}{list(t.shape)}")
    return n


def _check_several(ep: ExportedProgram, leaves: list) -> dict:
    from .export_symbols import shape_text, sizes_of_call
    for i, (spec, t) in enumerate(zip(ep.user_inputs, leaves)):
        static = all(list(t.shape)[d] == s for d, s in enumerate(spec.shape)
                     if (i, d) not in ep.dim_exprs) if t.ndim == len(spec.shape) else False
        if t.dtype.name != spec.dtype or not static:
            raise GuardError(f"exported program: input '{spec.name}' must be {spec.dtype}"
                             f"[{shape_text(ep, i, spec.shape)}], got "
                             f"{t.dtype.name}{list(t.shape)}")
    return sizes_of_call(ep, leaves)


def ep_symbol(ep: ExportedProgram) -> str:
    return next(iter(ep.range_constraints), "s0")


def export(model, args: tuple = (), kwargs: dict | None = None, *,
           dynamic_shapes=None, strict: bool = True,
           preserve_module_call_signature: tuple = ()) -> ExportedProgram:
    """Trace `model(*args, **kwargs)` into an ExportedProgram (torch.export.export's
    signature; `strict` is accepted for it and changes nothing: ember's trace is always
    strict). Modules are traced in their current train/eval mode, without grad.
    `preserve_module_call_signature` names submodules torch keeps swappable after
    unflatten; ember's graph does not record module boundaries, so the names are only
    checked (unflatten refuses a swapped submodule instead of ignoring it)."""
    if not isinstance(args, tuple):
        raise UserError(f"ember.export: args must be a tuple, got {type(args).__name__}")
    kwargs = dict(kwargs or {})
    leaves, in_spec = flatten((args, kwargs))
    if any(not isinstance(t, Tensor) for t in leaves):
        raise TypeError("ember.export: inputs must be ember Tensors")
    _check_submodule_names(model, preserve_module_call_signature)
    input_names = _input_names(model, args, kwargs, len(leaves))
    names = _constant_names(model)
    if dynamic_shapes is not None:
        program = _export_dynamic(model, leaves, in_spec, dynamic_shapes, input_names, names)
    else:
        traced = _trace(model, leaves, in_spec)
        state = _rename_constants(traced.graph, traced.constants, names)
        program = _program(model, traced, state, leaves, input_names, in_spec)
        program.__dict__["_module_boundaries"] = _module_boundaries(model, traced)
    program.__dict__["_example_inputs"] = (args, kwargs)
    program.__dict__["_training"] = bool(getattr(model, "training", False))
    program.__dict__["_module_calls"] = _module_calls(model, args, kwargs,
                                                      preserve_module_call_signature)
    return program


def _module_metadata(model, graph) -> None:
    """torch.export's node metadata on where each op was recorded: `nn_module_stack`
    ({path: (path, module class name)}, outermost first, the model itself as '') and, for
    an op recorded inside a submodule's call, `source_fn_stack` ([(node name, that
    submodule's class name)]): what quantizers read to tell an nn.ReLU module from a
    functional relu. Classes are named `module.qualname` (torch's serialized form), so a
    program of a model defined inside a function still pickles."""
    paths: dict = {}
    for path, module in (model.named_modules() if hasattr(model, "named_modules") else ()):
        paths.setdefault(id(module), path)
    for node in graph.nodes:
        stack = node.meta.pop("module_stack_ids", None)
        if not stack:
            continue
        named = [(paths[i], f"{cls.__module__}.{cls.__qualname__}") for i, cls in stack
                 if i in paths]
        node.meta["nn_module_stack"] = {path: (path, cls) for path, cls in named}
        if named and named[-1][0]:
            node.meta["source_fn_stack"] = [(node.name, named[-1][1])]


def _module_boundaries(model, traced) -> dict:
    """{submodule path: (input node names, result node names, result spec)} for each
    submodule called once whose inputs and results are all graph values: what
    unflatten(ep)'s submodules run (the graph between those values)."""
    calls = getattr(traced, "module_calls", None) or {}
    in_graph = set(traced.graph.nodes)
    out = {}
    for path, module in (model.named_modules() if hasattr(model, "named_modules") else ()):
        recorded = calls.get(id(module), [])
        if not path or len(recorded) != 1:
            continue
        ins, outs, spec = recorded[0]
        if all(n is not None and n in in_graph for n in ins + outs) and outs and \
                len(set(ins)) == len(ins):
            out[path] = ([n.name for n in ins], [n.name for n in outs], spec)
    return out


def _module_calls(model, args, kwargs, kept) -> dict:
    """What module_call_graph reports: forward's parameter names for the call's
    arguments, the submodule paths, and those preserve_module_call_signature kept."""
    forward = getattr(model, "forward", model)
    try:
        params = [p.name for p in inspect.signature(forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [name for name, _ in model.named_modules()][1:] \
        if hasattr(model, "named_modules") else []
    return {"": params[:len(args)] + [k for k in kwargs if k not in params[:len(args)]],
            "names": names, "kept": [kept] if isinstance(kept, str) else list(kept)}


def _check_submodule_names(model, names) -> None:
    if isinstance(names, str):
        names = (names,)
    known = {name for name, _ in model.named_modules()} if hasattr(model, "named_modules") \
        else set()
    missing = [n for n in names if n not in known]
    if missing:
        raise UserError(f"ember.export: preserve_module_call_signature names {missing}, "
                        f"which are not submodules of the model")


def draft_export(model, args: tuple = (), kwargs: dict | None = None, *,
                 dynamic_shapes=None, strict: bool = False, **_ignored) -> ExportedProgram:
    """torch.export.draft_export: ember's export (what it cannot capture it refuses
    with the user's line, where torch's draft would record it in a report)."""
    return export(model, args, kwargs, dynamic_shapes=dynamic_shapes, strict=strict)


def _trace(model, leaves, in_spec):
    from .compile_trace import tracing
    from ..ir.unbacked import recording_items
    try:
        watcher = ModuleWatcher(record_calls=True)
        with grad_mode.no_grad(), tracing("export"), recording_items() as checks:
            traced = trace_call(model, leaves, in_spec, watcher, side_effects_break=False)
        traced.value_checks = [(t.node.name, op, bound, text) for t, op, bound, text in checks]
        traced.module_calls = watcher.calls
        _module_metadata(model, traced.graph)
        return traced
    except StepFunctionFound as found:
        raise TraceError(f"ember.export: the function calls {found}; export captures "
                         "inference (a forward), not a training step") from None


def _program(model, traced, state: dict, leaves: list, input_names: list, in_spec,
             **dynamic) -> ExportedProgram:
    kinds = _constant_kinds(model)
    input_specs = [TensorSpec(n, "user_input", t.dtype.name, tuple(t.shape))
                   for n, t in zip(input_names, leaves)]
    state = _with_unused_state(model, state, kinds)
    transient = _non_persistent_buffers(model)
    input_specs += [TensorSpec(n, kinds.get(n, "constant"), t.dtype.name, tuple(t.shape),
                               n not in transient if kinds.get(n) == "buffer" else None)
                    for n, t in state.items()]
    for graph in (traced.graph, dynamic.get("symbolic_graph")):
        for node, name in zip(graph.placeholders if graph is not None else (), input_specs):
            node.meta["export_name"] = name.name
    outs = traced.graph.output_node.args[0]
    output_specs = [TensorSpec(f"output{i}" if len(outs) > 1 else "output", "output",
                               n.meta["val"].dtype.name, tuple(n.meta["val"].shape))
                    for i, n in enumerate(outs)]
    return ExportedProgram(traced.graph, state, input_specs, output_specs, in_spec,
                           traced.out_spec, value_checks=getattr(traced, "value_checks", []),
                           **dynamic)


def _non_persistent_buffers(model) -> set[str]:
    if not hasattr(model, "named_modules"):
        return set()
    return {f"{prefix}.{name}" if prefix else name for prefix, m in model.named_modules()
            for name in getattr(m, "_non_persistent_buffers_set", ())}


def _with_unused_state(model, state: dict, kinds: dict) -> dict:
    """The traced state in the module's order (parameters, then buffers, as
    named_parameters/named_buffers list them), with the ones forward never read
    (an eval BatchNorm's num_batches_tracked) added: torch.export lifts every
    parameter and buffer of the module into the program."""
    if not hasattr(model, "named_parameters"):
        return state
    owned = {n: t for n, t in model.named_parameters()}
    owned.update({n: t for n, t in model.named_buffers() if t is not None})
    ordered = {n: state.get(n, t) for n, t in owned.items() if n in kinds}
    ordered.update({n: t for n, t in state.items() if n not in ordered})
    return ordered


def _export_dynamic(model, leaves, in_spec, dynamic_shapes, input_names, names):
    """Traced at three sizes of the dynamic dimension (compiler/export_dynamic.py)."""
    from .compile_dynamic import Specialize, _resized
    from ..ir.symdim import instantiate, recording_size_comparisons
    from . import export_dynamic as dyn
    from . import export_symbols as several
    per_input = dyn.per_input_specs(dynamic_shapes, input_names, leaves, model, in_spec)
    marks = several.marks_of(per_input, input_names, leaves)
    if not marks:       # every mark was Dim.AUTO on a size 0 or 1: a static program
        traced = _trace(model, leaves, in_spec)
        state = _rename_constants(traced.graph, traced.constants, names)
        return _program(model, traced, state, leaves, input_names, in_spec)
    per_input = _only_marked(per_input, marks, leaves)
    if marks and not several.one_symbol(marks):
        return _export_several(model, leaves, in_spec, marks, input_names, names)
    try:
        return _export_one_symbol(model, leaves, in_spec, per_input, input_names, names)
    except EmberError as err:
        # a size compared in the model (Linear's in_features): the several-symbol
        # export turns an equality into a specialization (Dim.AUTO) or torch's refusal
        if "compares the size" in str(err):
            return _export_several(model, leaves, in_spec, marks, input_names, names)
        # a size that is not affine in the one symbol (attention's seq x seq scores):
        # the several-symbol export takes polynomials; its refusal would say less
        if "not a*s0 + c" not in str(err):
            raise
        try:
            return _export_several(model, leaves, in_spec, marks, input_names, names)
        except EmberError:
            raise err from None


def _only_marked(per_input: list, marks: list, leaves: list) -> list:
    """per_input with the marks marks_of kept (Dim.AUTO on a size 0 or 1 dropped)."""
    out = [{} for _ in leaves]
    for i, d, mark in marks:
        out[i][d] = mark
    return [spec or None for spec in out]


def _export_one_symbol(model, leaves, in_spec, per_input, input_names, names):
    from .compile_dynamic import Specialize, _resized
    from ..ir.symdim import instantiate, known_ranges, recording_size_comparisons
    from . import export_dynamic as dyn
    dims, dim = dyn.dynamic_dims(None, input_names, len(leaves), leaves, per_input)
    where = ", ".join(f"dim {d} of '{input_names[i]}'" for i, d in dims)
    example = leaves[dims[0][0]].shape[dims[0][1]]
    sizes = dyn.probe_sizes(example, dim, where)
    graphs, states, first = [], [], None
    for size in sizes:
        try:
            probe = [_resized(t, i, dims, size) for i, t in enumerate(leaves)]
        except Specialize as err:
            raise UserError(f"ember.export: cannot make {where} dynamic: {err}") from None
        upper = dim.max if dim.max is not None else math.inf
        with recording_size_comparisons() as compared, known_ranges({0: (dim.min, upper)}):
            traced = _trace(model, probe, in_spec)
        if compared:
            raise UserError(f"ember.export: cannot make {where} dynamic: the model compares "
                             f"the size at {compared[0]} (a branch that may change with it)")
        traced.out_spec = _symbolic_results(traced.out_spec)
        if first is not None and repr(traced.out_spec) != repr(first.out_spec):
            raise UserError(f"ember.export: cannot make {where} dynamic: the result's "
                             "structure depends on the size")
        states.append(_rename_constants(traced.graph, traced.constants, names))
        graphs.append(traced.graph)
        first = first or traced
    symbolic = dyn.symbolic_program(graphs, states, sizes, where)
    first.graph = instantiate(symbolic, example)
    upper = dim.max if dim.max is not None else math.inf
    return _program(model, first, states[0], leaves, input_names, in_spec,
                    symbolic_graph=symbolic,
                    dynamic_dims=dims, size_one=dim.min <= dyn.MIN_SIZE,
                    range_constraints={dyn.SymbolKey("s0"): dyn.ValueRange(dim.min, upper)})


def _export_several(model, leaves, in_spec, marks, input_names, names):
    """Several symbols (compiler/export_symbols.py)."""
    from ..ir.symdim import instantiate
    from . import export_symbols as several
    base, symbolic, dims, symbols, size_one, excluded = several.export_several(
        marks, leaves, input_names, lambda probe: _trace(model, probe, in_spec))
    state = _rename_constants(base.graph, base.constants, names)
    _rename_constants(symbolic, base.constants, names)
    base.graph = instantiate(symbolic, {k: s.example for k, s in symbols.items()})
    dynamic = {key: p for key, p in dims.items() if any(m for m in p)}
    if len(symbols) == 1 and all(p == {(0,): 1} for p in dynamic.values()) and not excluded:
        dynamic = {}        # every dynamic dim is s0: the one-symbol form ember.aot takes
    return _program(model, base, state, leaves, input_names, in_spec,
                    symbolic_graph=symbolic if symbols else None,
                    dynamic_dims=sorted(key for key, p in dims.items() if any(m for m in p)),
                    dim_exprs=dynamic, size_one=size_one, excluded_sizes=excluded,
                    range_constraints=several.range_constraints(
                        {k: (sym.lo, sym.upper) for k, sym in symbols.items()}, dims))


def _input_names(model, args, kwargs, count: int) -> list[str]:
    """torch.export's user input names: forward's parameter names, a container's
    tensors as `xs_0`, `d_y`, `*args` as `args_0` (arg0, arg1, ... when they clash)."""
    target = getattr(model, "forward", model)
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        params = []
    names: list[str] = []

    def walk(value, path: str) -> None:
        if isinstance(value, Tensor):
            names.append(path)
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                walk(item, f"{path}_{i}")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}_{key}")
    for i, value in enumerate(args):
        walk(value, _positional_name(params, i))
    for key, value in kwargs.items():
        walk(value, key)
    if len(names) == count and len(set(names)) == count:
        return names
    return [f"arg{i}" for i in range(count)]


def _positional_name(params: list, i: int) -> str:
    for j, p in enumerate(params):
        if p.kind == inspect.Parameter.VAR_POSITIONAL:
            if i >= j:
                return f"{p.name}_{i - j}"
            break
    return params[i].name if i < len(params) else f"arg{i}"


def _constant_names(model) -> dict[int, str]:
    """Module paths of the model's tensors: parameters, buffers and plain tensor
    attributes (`self.c = torch.ones(2)`: torch's lifted constant 'c')."""
    named = {}
    if hasattr(model, "named_modules"):
        for prefix, module in model.named_modules():
            for attr, value in vars(module).items():
                if isinstance(value, Tensor) and not attr.startswith("_"):
                    named.setdefault(id(value), f"{prefix}.{attr}" if prefix else attr)
    if hasattr(model, "named_parameters"):
        named.update({id(t): n for n, t in model.named_buffers() if t is not None})
        named.update({id(t): n for n, t in model.named_parameters()})
    return named


def _constant_kinds(model) -> dict[str, str]:
    if not hasattr(model, "named_parameters"):
        return {}
    kinds = {n: "buffer" for n, t in model.named_buffers() if t is not None}
    kinds.update({n: "parameter" for n, _ in model.named_parameters()})
    return kinds


def _rename_constants(graph: Graph, constants: dict, names: dict) -> dict:
    """get_attr targets become module paths; returns the renamed state dict."""
    state, renamed = {}, {}
    for old, value in constants.items():
        new = names.get(id(value), old) if isinstance(value, Tensor) else old
        if new in state and state[new] is not value:
            new = old
        if not isinstance(value, Tensor):
            value = Tensor._adopt(np.asarray(value))
        renamed[old] = new
        state[new] = value
    for node in graph.nodes:
        if node.op == OpKind.get_attr:
            node.target = renamed.get(node.target, node.target)
    return state


# --- save / load ---------------------------------------------------------------------------
def save(ep: ExportedProgram, f, *, extra_files: dict | None = None, opset_version=None,
         pickle_protocol: int = 2) -> None:
    """Write `ep` to a path or binary file (a zip: graph.ir, weights.safetensors,
    spec.json; `extra_files` {name: str or bytes} as members `extra/<name>`)."""
    from safetensors.numpy import save as save_tensors
    from ..ir.printer import print_graph
    from .compile_guards import LEAF
    spec = {"format": "ember-exported-program", "version": EXPORT_FORMAT,
            "inputs": [s.as_json() for s in ep.input_specs],
            "outputs": [s.as_json() for s in ep.output_specs],
            "in_spec": _spec_json(ep.in_spec, LEAF), "out_spec": _spec_json(ep.out_spec, LEAF),
            "custom_ops": custom_op_names(ep.graph),
            "training": ep.__dict__.get("_training"),
            "module_calls": ep.__dict__.get("_module_calls"),
            "value_checks": [list(c) for c in ep.value_checks]}
    if ep.dim_exprs:                       # several symbols
        from ..ir.symdim import poly_text
        symbols = [ep.range_constraints[f"s{k}"] for k in
                   range(1 + max(i for p in ep.dim_exprs.values() for m in p for i in m))]
        spec["symbols"] = {"ranges": [[b.lower, None if b.upper == math.inf else b.upper]
                                      for b in symbols],
                           "dims": [[i, d, poly_text(p)] for (i, d), p in ep.dim_exprs.items()],
                           "size_one": ep.size_one,
                           "excluded": [[k, n, where] for k, sizes in ep.excluded_sizes.items()
                                        for n, where in sizes.items()]}
    elif ep.symbolic_graph is not None:    # graph.ir is the program at the example size
        (bounds,) = ep.range_constraints.values()
        spec["dynamic"] = {"dims": [list(d) for d in ep.dynamic_dims], "min": bounds.lower,
                           "max": None if bounds.upper == math.inf else bounds.upper,
                           "size_one": ep.size_one}
    weights = {n: np.ascontiguousarray(t._values()) for n, t in ep.tensors.items()}
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("spec.json", json.dumps(spec, indent=1))
        z.writestr("graph.ir", print_graph(ep.graph))
        z.writestr("weights.safetensors", save_tensors(weights) if weights else b"")
        if ep.symbolic_graph is not None:
            z.writestr("symbolic.ir", print_graph(ep.symbolic_graph))
        for name, content in (extra_files or {}).items():
            z.writestr(f"extra/{name}", content)


def load(f, *, extra_files: dict | None = None, expected_opset_version=None) -> ExportedProgram:
    """Read what `save` wrote; refuses another format or version with ArtifactError.
    `extra_files` (a dict of names): filled with the saved extra files' text."""
    from safetensors.numpy import load as load_tensors
    from .compile_guards import LEAF
    from ..ir.parser import parse
    try:
        with zipfile.ZipFile(f) as z:
            spec = json.loads(z.read("spec.json"))
            text = z.read("graph.ir").decode()
            raw = z.read("weights.safetensors")
            symbolic_text = z.read("symbolic.ir").decode() \
                if "dynamic" in spec or "symbols" in spec else None
            for name in list(extra_files or {}):
                member = f"extra/{name}"
                if member in z.namelist():
                    extra_files[name] = z.read(member).decode()
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as err:
        raise ArtifactError(f"ember.export.load: not a saved ExportedProgram ({err})") from None
    if spec.get("format") != "ember-exported-program" or spec.get("version") != EXPORT_FORMAT:
        raise ArtifactError(f"ember.export.load: format {spec.get('format')!r} version "
                            f"{spec.get('version')!r}, expected version {EXPORT_FORMAT}")
    check_custom_ops(spec.get("custom_ops", []), "ember.export.load")
    graph = parse(text)
    weights = load_tensors(raw) if raw else {}
    state = {n: Tensor._adopt(np.array(a)) for n, a in weights.items()}
    specs = [TensorSpec(s["name"], s["kind"], s["dtype"], tuple(s["shape"]))
             for s in spec["inputs"]]
    outs = [TensorSpec(s["name"], s["kind"], s["dtype"], tuple(s["shape"]))
            for s in spec["outputs"]]
    dynamic = {}
    if "symbols" in spec:
        from ..ir.symdim import poly_parse
        from .export_symbols import range_constraints
        sym = spec["symbols"]
        exprs = {(i, d): poly_parse(text) for i, d, text in sym["dims"]}
        ranges = {k: (lo, math.inf if hi is None else hi)
                  for k, (lo, hi) in enumerate(sym["ranges"])}
        dynamic = {"symbolic_graph": parse(symbolic_text), "dynamic_dims": sorted(exprs),
                   "dim_exprs": exprs, "range_constraints": range_constraints(ranges, exprs),
                   "size_one": bool(sym.get("size_one", False)), "excluded_sizes": {}}
        for k, n, where in sym.get("excluded", []):
            dynamic["excluded_sizes"].setdefault(k, {})[n] = where
    elif symbolic_text is not None:
        from .export_dynamic import SymbolKey, ValueRange
        d = spec["dynamic"]
        dynamic = {"symbolic_graph": parse(symbolic_text),
                   "dynamic_dims": [tuple(x) for x in d["dims"]],
                   "size_one": bool(d.get("size_one", False)),
                   "range_constraints": {SymbolKey("s0"): ValueRange(
                       d["min"], math.inf if d["max"] is None else d["max"])}}
    for g in (graph, dynamic.get("symbolic_graph")):
        for node, s in zip(g.placeholders if g is not None else (), specs):
            node.meta["export_name"] = s.name
    program = ExportedProgram(graph, state, specs, outs,
                              _spec_from_json(spec["in_spec"], LEAF),
                              _spec_from_json(spec["out_spec"], LEAF),
                              value_checks=[tuple(c) for c in spec.get("value_checks", [])],
                              **dynamic)
    program.__dict__["_training"] = spec.get("training")
    program.__dict__["_module_calls"] = spec.get("module_calls")
    return program


def custom_op_names(graph: Graph) -> list[str]:
    """The custom ops ('mylib::op') a graph calls: artifacts record them by name, since
    their code is the user's Python and must be registered where the artifact loads."""
    return sorted({n.target.name for n in graph.nodes if n.op == OpKind.call_function and
                   "::" in getattr(n.target, "name", "")})


def check_custom_ops(names, where: str) -> None:
    """Refuse to load a graph whose custom ops this process has not registered."""
    from ..ir.registry import OPS
    missing = [n for n in names if n not in OPS]
    if missing:
        raise ArtifactError(
            f"{where}: the program calls custom op(s) {', '.join(repr(n) for n in missing)}, "
            "which are not registered in this process. Custom ops are saved by name only: "
            "import the module that defines them (with ember.library.custom_op) before "
            "loading.")


def _spec_json(spec, leaf):
    """A pytree spec (tuples, lists, dicts, tensor markers, plain values) as JSON."""
    if spec is leaf:
        return {"leaf": True}
    if isinstance(spec, (tuple, list)):
        return {"seq": type(spec).__name__, "items": [_spec_json(s, leaf) for s in spec]}
    if isinstance(spec, dict):
        return {"dict": [[k, _spec_json(v, leaf)] for k, v in spec.items()]}
    if isinstance(spec, SymInt):
        from ..ir.symdim import poly_text
        return {"symint": poly_text(spec.poly)}
    if spec is None or isinstance(spec, (bool, int, float, str)):
        return {"value": spec}
    raise EmberError(f"ember.export.save: cannot save a {type(spec).__name__} in the "
                     "argument/result structure")


def _spec_from_json(data, leaf):
    if "leaf" in data:
        return leaf
    if "seq" in data:
        items = [_spec_from_json(s, leaf) for s in data["items"]]
        return tuple(items) if data["seq"] == "tuple" else items
    if "dict" in data:
        return {k: _spec_from_json(v, leaf) for k, v in data["dict"]}
    if "symint" in data:
        from ..ir.symdim import poly_parse
        return SymInt(poly_parse(data["symint"]))
    return data["value"]
