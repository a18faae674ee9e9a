"""The graph IR: an ordered list of Nodes in SSA form, torch.fx's data model.

A Node has an op kind (placeholder, get_attr, call_function, call_method,
call_module, output), a target (an OpDef for registry ops, a Python callable,
a method or attribute name), args/kwargs that may reference other Nodes, the
users that reference it, and `meta` (TensorMeta under 'val', the user's source
location under 'loc', anything passes add). Graph owns node order, unique names
and the editing API (insertion points, replace-all-uses, erase, DCE, lint).
"""
from __future__ import annotations

import builtins
import contextlib
import enum
import functools
import inspect
import keyword
import re
import warnings
import typing
from typing import Any, Callable, Iterator

from .errors import VerifyError


# names generated code must not shadow (torch.fx reserves builtins, keywords and `torch`)
_RESERVED = set(dir(builtins)) | {"self", "ember", "torch", "operator", "inf", "nan",
                                   "NoneType"}
_NUMBERED = re.compile(r"(.+)_(\d+)$")


class OpKind(str, enum.Enum):
    placeholder = "placeholder"
    get_attr = "get_attr"
    call_function = "call_function"
    call_method = "call_method"
    call_module = "call_module"
    output = "output"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:      # reads as the plain string torch.fx's node.op is
        return repr(self.value)


#: torch.fx.node's type names for what a node's args hold and what it calls
Argument = Any
Target = Any


def map_aggregate(value, fn: Callable):
    """Apply `fn` to every leaf (non-container value) of nested lists/tuples/dicts/slices."""
    if isinstance(value, tuple):
        mapped = tuple(map_aggregate(v, fn) for v in value)
        return type(value)(*mapped) if hasattr(value, "_fields") else mapped
    if isinstance(value, list):
        return [map_aggregate(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: map_aggregate(v, fn) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(map_aggregate(value.start, fn), map_aggregate(value.stop, fn),
                     map_aggregate(value.step, fn))
    return fn(value)


# argument values that hold no Node: map_arg returns them as they are without further checks
_LEAVES = frozenset({int, float, bool, str, type(None), complex})


def map_arg(value, fn: Callable):
    """Apply `fn` to every Node inside nested lists/tuples/dicts/slices of `value`."""
    if type(value) in _LEAVES:
        return value
    if isinstance(value, Node):
        return fn(value)
    if isinstance(value, tuple):
        return tuple([map_arg(v, fn) for v in value])
    if isinstance(value, list):
        return [map_arg(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: map_arg(v, fn) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(map_arg(value.start, fn), map_arg(value.stop, fn), map_arg(value.step, fn))
    return value


def nodes_in(value) -> list["Node"]:
    found = []
    map_arg(value, lambda n: found.append(n) or n)
    return found


def _distinct_nodes(args, kwargs) -> tuple["Node", ...]:
    """The Nodes in args and kwargs, each once, in the order map_arg meets them."""
    seen: dict = {}
    _collect_nodes(args, seen)
    _collect_nodes(kwargs, seen)
    return tuple(seen)


def _collect_nodes(value, seen: dict) -> None:
    if type(value) in _LEAVES:
        return
    if isinstance(value, Node):
        seen[value] = None
    elif isinstance(value, (tuple, list)):
        for v in value:
            _collect_nodes(v, seen)
    elif isinstance(value, dict):
        for v in value.values():
            _collect_nodes(v, seen)
    elif isinstance(value, slice):
        for v in (value.start, value.stop, value.step):
            _collect_nodes(v, seen)


def ancestors(roots, stop=frozenset()) -> set["Node"]:
    """`roots` and every node they read, transitively, not looking past nodes in `stop`
    (which are included themselves)."""
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node not in stop:
            stack.extend(node.all_input_nodes)
    return seen


class Node:
    # the distinct nodes the args and kwargs hold, in first-use order: kept by _update_args
    # (None: not known yet, as for a node unpickled from an older ember)
    _inputs: tuple | None = None

    def __init__(self, graph: "Graph", name: str, op: OpKind, target, args: tuple,
                 kwargs: dict, type_=None, return_type=None):
        op = op if type(op) is OpKind else OpKind(op)
        if op == OpKind.call_function and not callable(target):
            raise ValueError(f"Node [graph = {graph}, name = '{name}'] target {target} has "
                             f"type {type(target).__name__} but a Callable is expected")
        if op != OpKind.call_function and not isinstance(target, str):
            raise ValueError(f"Node [graph = {graph}, name = '{name}'] target {target} has "
                             f"type {type(target).__name__} but a str is expected")
        self.graph = graph
        self.name = name
        self.op = op
        self.target = target
        self._args: tuple = ()
        self._kwargs: dict = {}
        self.users: dict[Node, None] = {}
        self.meta: dict[str, Any] = {}
        self.type = type_ if type_ is not None else return_type   # torch's keyword
        self._erased = False
        self._update_args(tuple(args), dict(kwargs))

    # --- arguments and use lists -------------------------------------------------------
    @property
    def args(self) -> tuple:
        return self._args

    @args.setter
    def args(self, value) -> None:
        self._update_args(tuple(value), self._kwargs)

    @property
    def kwargs(self) -> dict:
        return self._kwargs

    @kwargs.setter
    def kwargs(self, value) -> None:
        self._update_args(self._args, dict(value))

    @property
    def all_input_nodes(self) -> list["Node"]:
        inputs = self._inputs
        if inputs is None:
            inputs = self._inputs = _distinct_nodes(self._args, self._kwargs)
        return list(inputs)

    def _update_args(self, args: tuple, kwargs: dict) -> None:
        for old in self.all_input_nodes if self._args or self._kwargs else []:
            old.users.pop(self, None)
        self._args, self._kwargs = args, kwargs
        self._inputs = _distinct_nodes(args, kwargs)
        for new in self._inputs:
            new.users[self] = None

    def update_arg(self, idx: int, arg) -> None:
        args = list(self._args)
        args[idx] = arg
        self.args = tuple(args)

    def insert_arg(self, index: int, value) -> None:
        """Insert `value` into args at `index` (torch.fx's Node.insert_arg)."""
        args = list(self._args)
        args.insert(index, value)
        self.args = tuple(args)

    def update_kwarg(self, key: str, arg) -> None:
        kwargs = dict(self._kwargs)
        kwargs[key] = arg
        self.kwargs = kwargs

    def replace_input_with(self, old_input: "Node", new_input: "Node") -> None:
        self._update_args(*map_arg((self._args, self._kwargs),
                                   lambda n: new_input if n is old_input else n))

    def replace_all_uses_with(self, replace_with: "Node",
                              delete_user_cb: Callable[["Node"], bool] = lambda user: True,
                              *, propagate_meta: bool = False) -> list["Node"]:
        """Point every user (that `delete_user_cb` accepts) at `replace_with`."""
        if propagate_meta:
            if replace_with.meta:
                raise AssertionError("Called node.replace_all_uses_with(replace_with, "
                                     "propagate_meta=True), but replace_with already has "
                                     ".meta keys")
            replace_with.meta.update(self.meta)
        changed = []
        for user in list(self.users):
            if user is replace_with or not delete_user_cb(user):
                continue
            user.replace_input_with(self, replace_with)
            changed.append(user)
        return changed

    # --- order -------------------------------------------------------------------------
    def _position(self) -> int:
        return self.graph._nodes.index(self)

    # nodes of one graph compare by their position in it (torch.fx's node ordering)
    def __lt__(self, other: "Node") -> bool:
        return self._position() < other._position()

    def __gt__(self, other: "Node") -> bool:
        return self._position() > other._position()

    def __le__(self, other: "Node") -> bool:
        return self is other or self < other

    def __ge__(self, other: "Node") -> bool:
        return self is other or self > other

    @property
    def next(self) -> "Node":
        nodes = self.graph._nodes
        i = nodes.index(self)
        return nodes[i + 1] if i + 1 < len(nodes) else self.graph._root

    @property
    def prev(self) -> "Node":
        nodes = self.graph._nodes
        i = nodes.index(self)
        return nodes[i - 1] if i > 0 else self.graph._root

    def prepend(self, x: "Node") -> None:
        """Move `x` to just before self."""
        self.graph._move(x, self.graph._nodes.index(self))

    def append(self, x: "Node") -> None:
        """Move `x` to just after self."""
        self.graph._move(x, self.graph._nodes.index(self) + 1)

    # --- display -----------------------------------------------------------------------
    @property
    def target_name(self) -> str:
        return target_name(self.target)

    def format(self) -> str:
        from .printer import format_node
        return format_node(self)

    def format_node(self, placeholder_names: list | None = None,
                    maybe_return_typename: list | None = None) -> str:
        """torch.fx's one-line description: `%relu : [num_users=1] =
        call_function[target=ember.relu](args = (%x,), kwargs = {})`."""
        show = _format_arg
        if self.op == OpKind.output:
            if maybe_return_typename and self.type is not None:
                maybe_return_typename[0] = f" -> {type_repr(self.type)}"
            return f"return {self.args[0] if self.args else None}"
        target = self.target_name
        if is_op(self.target):              # the op as users call it: ember.relu
            space = f"{self.target.namespace}." if self.target.namespace else ""
            target = f"ember.{space}{self.target.python_name or self.target.name}"
        elif getattr(self.target, "__module__", None) == "builtins":
            target = f"builtins.{target}"   # torch's spelling: builtins.getattr
        typename = f"{type_repr(self.type)} " if self.type is not None else ""
        head = (f"%{self.name} : {typename}[num_users={len(self.users)}] = "
                f"{self.op}[target={target}]")
        if self.op == OpKind.placeholder and placeholder_names is not None:
            placeholder_names.append(self.target)
        if self.op in (OpKind.placeholder, OpKind.get_attr):
            return head if not self._args else f"{head}(default={show(self._args[0])})"
        return f"{head}(args = {show(self._args)}, kwargs = {show(self._kwargs)})"

    def normalized_arguments(self, root, arg_types=None, kwarg_types=None,
                             normalize_to_only_use_kwargs: bool = False):
        """This call's arguments bound to its target's signature, defaults filled in
        (torch.fx's): `ArgsKwargsPair(args, kwargs)` with the leading positional
        arguments kept positional (all of them keywords with
        `normalize_to_only_use_kwargs`), or None where no signature is known (methods,
        user modules, targets taking *args/**kwargs) or the arguments do not bind.
        Registry ops bind to their schema, whose `self` is `input` as in torch's
        Python signatures; submodule calls bind only for ember.nn's own layers."""
        signature = _call_signature(self, root)
        if signature is None:
            return None
        return _bind_normalized(signature, self.args, self.kwargs,
                                normalize_to_only_use_kwargs)

    def _rename(self, candidate: str) -> None:
        """Rename this node to `candidate`, made unique in its graph (torch.fx's)."""
        if candidate == self.name:
            return
        self.graph._used.discard(self.name)
        self.name = self.graph._unique_name(candidate)

    def is_impure(self, impure_random: bool = True) -> bool:
        """Whether dead-code elimination must keep this node although its result is
        unused: inputs, the output, in-place and random ops, item assignment,
        functions marked with `has_side_effect` (`ember._assert`), and calls of a
        module whose `_is_impure` is true (torch.fx's rule)."""
        if self.op in (OpKind.placeholder, OpKind.output):
            return True
        if self.op == OpKind.call_module:
            owner = self.graph.owning_module
            try:
                module = owner.get_submodule(self.target) if owner is not None else None
            except AttributeError:
                module = None
            return bool(getattr(module, "_is_impure", False))
        return _is_impure(self, impure_random)

    def __repr__(self) -> str:
        return self.name

    def __call__(self) -> "Node":
        """Itself. torch.fx's `graph.output_node()` is a method where ember's
        `graph.output_node` is a property giving the node: calling that node gives
        it back, so both spellings work."""
        return self

    @property
    def stack_trace(self) -> str | None:
        """The Python stack recorded for this node (torch.fx's `meta["stack_trace"]`:
        set when the Tracer's `record_stack_traces` is on)."""
        return self.meta.get("stack_trace")

    @stack_trace.setter
    def stack_trace(self, trace: str | None) -> None:
        self.meta["stack_trace"] = trace


class ArgsKwargsPair(typing.NamedTuple):
    """A call's normalized arguments (torch.fx.operator_schemas' pair)."""
    args: tuple
    kwargs: dict


def _op_signature(op) -> inspect.Signature:
    """A registry op's schema as a Python signature (`self` spelled `input`)."""
    required = op.schema.args[0].default if op.schema.args else None
    params = []
    for arg in op.schema.args:
        kind = (inspect.Parameter.KEYWORD_ONLY if arg.kwarg_only
                else inspect.Parameter.POSITIONAL_OR_KEYWORD)
        default = inspect.Parameter.empty if arg.default is required else arg.default
        params.append(inspect.Parameter("input" if arg.name == "self" else arg.name, kind,
                                        default=default))
    return inspect.Signature(params)


def _call_signature(node: "Node", root) -> inspect.Signature | None:
    try:
        if node.op == OpKind.call_function:
            if is_op(node.target):
                return _op_signature(node.target)
            return inspect.signature(inspect.unwrap(node.target))
        if node.op == OpKind.call_module and root is not None:
            module = root.get_submodule(node.target)
            if not type(module).__module__.startswith(("ember.frontend.nn.", "ember.nn.")):
                return None
            return inspect.signature(inspect.unwrap(module.forward))
    except (ValueError, TypeError, AttributeError):
        return None
    return None


def _bind_normalized(signature: inspect.Signature, args, kwargs, only_kwargs: bool):
    supported = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if any(p.kind not in supported for p in signature.parameters.values()):
        return None
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    new_args, new_kwargs = [], {}
    for i, name in enumerate(signature.parameters):
        if not only_kwargs and i < len(args):
            new_args.append(bound.arguments[name])
        else:
            new_kwargs[name] = bound.arguments[name]
    return ArgsKwargsPair(tuple(new_args), new_kwargs)


def _format_arg(value) -> str:
    """An argument as format_node lists it (torch.fx.node's `_format_arg`): a node as
    `%name`, a value with `_custom_fx_repr_fn()` as its text, containers element-wise,
    anything else by str()."""
    if hasattr(value, "_custom_fx_repr_fn"):
        return value._custom_fx_repr_fn()
    if isinstance(value, Node):
        return f"%{value.name}"
    if isinstance(value, tuple):
        inner = ", ".join(_format_arg(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_format_arg(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_format_arg(v)}" for k, v in value.items()) + "}"
    return str(value)


def type_repr(t) -> str:
    """An annotation as torch.fx prints it: builtins bare (`int`), ember's exported
    classes under `ember.` (`ember.Tensor`), other classes by module path, anything
    else (typing forms) by its repr."""
    import sys
    import types
    if t is Ellipsis:
        return "..."
    if isinstance(t, type) and not isinstance(t, types.GenericAlias):
        if t.__module__ == "builtins":
            return t.__qualname__
        root = sys.modules.get("ember")      # looked up, not imported (ir imports no layer)
        if root is not None and getattr(root, t.__qualname__, None) is t:
            return f"ember.{t.__qualname__}"
        return f"{t.__module__}.{t.__qualname__}"
    if isinstance(t, types.FunctionType):
        return t.__name__
    if isinstance(t, types.UnionType):      # `float | Tensor | None`, parts as above
        return " | ".join("None" if a is type(None) else type_repr(a) for a in t.__args__)
    return repr(t)


def is_op(target) -> bool:
    from .registry import OpDef   # registry imports dispatch only; no cycle at call time
    return isinstance(target, OpDef)


def target_name(target) -> str:
    if isinstance(target, str):
        return target
    name = getattr(target, "name", None)
    if isinstance(name, str) and is_op(target):
        return name
    module = getattr(target, "__module__", None) or ""
    qual = getattr(target, "__qualname__", getattr(target, "__name__", repr(target)))
    if module in ("_operator", "operator"):
        return f"operator.{qual}"
    if module == "builtins":
        return qual
    return f"{module}.{qual}" if module else qual


class _Root:
    """Sentinel standing before the first and after the last node (fx's graph root)."""
    name = "<root>"


class Graph:
    def __init__(self, owning_module=None, tracer_cls=None, tracer_extras: dict | None = None):
        self._nodes: list[Node] = []
        self._names: dict[str, int] = {}
        self._used: set[str] = set()
        self._insert_at: int | None = None   # None: append
        self._made_output = False            # no output node yet: output_node is None
        self._root = _Root()
        self.owning_module = owning_module
        # the Tracer class (and its extra arguments) that made this graph (torch.fx's
        # record, which GraphModule reuses to re-trace)
        self._tracer_cls = tracer_cls
        self._tracer_extras = tracer_extras

    def __getstate__(self):
        # the owning GraphModule pickles the graph, not the other way round; the
        # tracer class may be local to a function, so it does not travel either
        return {k: v for k, v in self.__dict__.items()
                if k not in ("owning_module", "_tracer_cls", "_tracer_extras")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.owning_module = None
        self._tracer_cls = self._tracer_extras = None

    def __deepcopy__(self, memo):
        """Node by node, in order: Python's recursive deepcopy follows each node's users to
        the next node and overflows the stack on graphs of a few hundred nodes
        (mobilenet_v2 with observers). Each copied node is entered in `memo`, so the
        args of later nodes map to the copies."""
        import copy
        new = Graph(tracer_cls=self._tracer_cls, tracer_extras=self._tracer_extras)
        memo[id(self)] = new
        for node in self._nodes:
            copied = new.create_node(node.op, node.target, copy.deepcopy(node.args, memo),
                                     copy.deepcopy(node.kwargs, memo), name=node.name,
                                     type_expr=node.type)
            copied.meta = copy.deepcopy(node.meta, memo)
            memo[id(node)] = copied
        new._names, new._used = dict(self._names), set(self._used)
        for key, value in self.__dict__.items():      # anything a pass attached
            if key not in new.__dict__:
                new.__dict__[key] = copy.deepcopy(value, memo)
        return new

    # --- iteration ---------------------------------------------------------------------
    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self._nodes))

    def __len__(self) -> int:
        return len(self._nodes)

    def find_nodes(self, *, op: str, target=None, sort: bool = True) -> list[Node]:
        """The nodes of kind `op` (and `target`), in graph order (`sort` is torch's
        option; ember's lookup is always in order)."""
        return [n for n in self._nodes if n.op == op and (target is None or n.target == target)]

    @property
    def placeholders(self) -> list[Node]:
        return [n for n in self._nodes if n.op == OpKind.placeholder]

    @property
    def output_node(self) -> Node | None:
        nodes = self._nodes
        if nodes and nodes[-1].op == OpKind.output:      # where it nearly always is
            return nodes[-1]
        if not self.__dict__.get("_made_output", True):  # a graph being built: no scan
            return None
        for n in reversed(nodes):
            if n.op == OpKind.output:
                return n
        return None

    # --- names ----------------------------------------------------------------------------
    def _unique_name(self, hint: str) -> str:
        """torch.fx's naming: `add`, `add_1`, ...; builtins and keywords get a suffix
        (`sum_1`); a hint that already ends in `_<n>` continues that count."""
        candidate, base, number, reserved = _name_parts(hint)
        if candidate in self._used or reserved:
            number = self._names.get(base, 0)
            candidate = f"{base}_{number + 1}"
            while candidate in self._used:
                number += 1
                candidate = f"{base}_{number + 1}"
            number += 1
        self._names[base] = max(self._names.get(base, 0), number)
        self._used.add(candidate)
        return candidate

    # --- creation ----------------------------------------------------------------------
    def create_node(self, op, target, args=(), kwargs=None, name: str | None = None,
                    type_expr=None) -> Node:
        hint = name or _default_name(op, target)
        node = Node(self, self._unique_name(hint), op, target, tuple(args), kwargs or {},
                    type_expr)
        if node.op == OpKind.output:
            self._made_output = True
        if self._insert_at is None:
            out = self.output_node
            if out is not None and op != OpKind.output:
                self._nodes.insert(self._nodes.index(out), node)
            else:
                self._nodes.append(node)
        else:
            self._nodes.insert(self._insert_at, node)
            self._insert_at += 1
        return node

    def placeholder(self, name: str, type_expr=None, default_value=_Root) -> Node:
        """An input; its node name is `name` in snake_case (torch.fx: `myInput` ->
        my_input), made unique; its target stays `name`, the parameter's name."""
        node = self.create_node(OpKind.placeholder, name, (), {}, type_expr=type_expr)
        if default_value is not _Root:
            node.args = (default_value,)
        return node

    def get_attr(self, qualified_name: str, type_expr=None) -> Node:
        owner = self.owning_module
        if owner is not None and not _attribute_exists(owner, qualified_name):
            warnings.warn("Attempted to insert a get_attr Node with no underlying reference "
                          "in the owning GraphModule! Call GraphModule.add_submodule to add "
                          "the necessary submodule, GraphModule.add_parameter to add the "
                          "necessary Parameter, or nn.Module.register_buffer to add the "
                          "necessary buffer", stacklevel=2)
        return self.create_node(OpKind.get_attr, qualified_name, type_expr=type_expr)

    # parameter names are torch.fx's: callers pass them by keyword (the_function=...)
    def call_function(self, the_function, args=(), kwargs=None, type_expr=None,
                      name: str | None = None) -> Node:
        return self.create_node(OpKind.call_function, the_function, args, kwargs, name=name,
                                type_expr=type_expr)

    def call_method(self, method_name: str, args=(), kwargs=None, type_expr=None) -> Node:
        return self.create_node(OpKind.call_method, method_name, args, kwargs,
                                type_expr=type_expr)

    def call_module(self, module_name: str, args=(), kwargs=None, type_expr=None) -> Node:
        owner = self.owning_module
        if owner is not None and not _attribute_exists(owner, module_name):
            warnings.warn("Attempted to insert a call_module Node with no underlying "
                          "reference in the owning GraphModule! Call "
                          "GraphModule.add_submodule to add the necessary submodule",
                          stacklevel=2)
        return self.create_node(OpKind.call_module, module_name, args, kwargs,
                                type_expr=type_expr)

    def output(self, result, type_expr=None) -> Node:
        return self.create_node(OpKind.output, "output", (result,), name="output",
                                type_expr=type_expr)

    # --- insertion points --------------------------------------------------------------
    @contextlib.contextmanager
    def _inserting_at(self, index: int | None):
        saved = self._insert_at
        self._insert_at = index
        try:
            yield
        finally:
            self._insert_at = saved

    def inserting_before(self, n: Node | None = None):
        if n is None:
            return self._inserting_at(0)
        return self._inserting_at(self._nodes.index(n))

    def inserting_after(self, n: Node | None = None):
        if n is None:
            return self._inserting_at(None)
        return self._inserting_at(self._nodes.index(n) + 1)

    def _move(self, node: Node, index: int) -> None:
        old = self._nodes.index(node)
        self._nodes.pop(old)
        if old < index:
            index -= 1
        self._nodes.insert(index, node)

    # --- editing -----------------------------------------------------------------------
    def erase_node(self, to_erase: Node) -> None:
        if to_erase._erased:                # torch.fx warns and does nothing
            import warnings
            warnings.warn(f"erase_node({to_erase}) on an already erased node")
            return
        if to_erase.users:
            raise VerifyError(f"Tried to erase Node {to_erase.name} but it still had "
                              f"{len(to_erase.users)} users in the graph: "
                              f"{to_erase.users}!")
        to_erase._update_args((), {})
        self._nodes.remove(to_erase)
        to_erase._erased = True

    def _erase_in_turn(self, nodes) -> None:
        """erase_node(n) for each of `nodes` in turn (users first), with one pass over the
        node list at the end rather than a list.remove per node (fusion erases every
        member of every group)."""
        gone: set[Node] = set()
        try:
            for node in nodes:
                if node._erased or node in gone:
                    self.erase_node(node)                 # its warning
                    continue
                if node.users:
                    self.erase_node(node)                 # its error
                node._update_args((), {})
                node._erased = True
                gone.add(node)
        finally:
            if gone:
                self._nodes[:] = [n for n in self._nodes if n not in gone]

    def node_copy(self, node: Node, arg_transform: Callable[[Node], Any] = lambda n: n) -> Node:
        args = map_arg(node.args, arg_transform)
        kwargs = map_arg(node.kwargs, arg_transform)
        new = self.create_node(node.op, node.target, args, kwargs, name=node.name,
                               type_expr=node.type)
        new.meta = dict(node.meta)
        return new

    def graph_copy(self, g: "Graph", val_map: dict, return_output_node=False):
        """Copy `g`'s nodes (except output) into self; returns the output value.
        Nodes `val_map` already maps (inputs bound by the caller) are not copied."""
        for node in g._nodes:
            if node in val_map:
                continue
            if node.op == OpKind.output:
                out = map_arg(node.args[0], lambda n: val_map[n])
                return (out, node) if return_output_node else out
            val_map[node] = self.node_copy(node, lambda n: val_map[n])
        return None

    def eliminate_dead_code(self, is_impure_node: Callable[[Node], bool] | None = None) -> bool:
        """Remove nodes with no users, except placeholders, outputs and impure calls
        (Node.is_impure, or `is_impure_node` when given). The graph is linted first, as
        torch.fx does, since the sweep relies on definitions preceding uses (the order
        checks only: the compiler's dce runs this on graphs whose get_attr nodes may name
        PassContext constants)."""
        self.lint(check_targets=False)
        changed = False
        for node in reversed(self._nodes):
            if node.op in (OpKind.placeholder, OpKind.output) or node.users:
                continue
            if is_impure_node(node) if is_impure_node else node.is_impure():
                continue
            self.erase_node(node)
            changed = True
        return changed

    def lint(self, names: dict | None = None, check_targets: bool = True) -> None:
        """Check SSA: every use is defined earlier; users lists are consistent; one output;
        unique names; and, as torch.fx's lint, for a graph a module owns, each target's
        kind and that get_attr/call_module paths exist (`check_targets=False`: the
        compiler's verifier, whose get_attr nodes may name PassContext constants).
        `names` (printer.value_names) makes messages name nodes as printed IR does."""
        def label(n: Node) -> str:
            return f"%{names[n]}" if names and n in names else n.name
        seen: set[Node] = set()
        for node in self._nodes:
            if node.graph is not self:
                raise VerifyError(f"node {label(node)} belongs to another graph")
            for inp in node.all_input_nodes:
                if inp.graph is not self:
                    raise VerifyError(
                        f"Argument '{inp.name}' of Node '{node.name}' does not belong to this "
                        "Graph, but was used as an argument! If you are copying nodes from "
                        "another graph, make sure to use ``arg_transform`` on node_copy() to "
                        f"remap values\n{self}")
                if inp not in seen:
                    # torch.fx's message lists the graph; ember's IR printer names nodes
                    where = (f": {label(node)} uses {label(inp)} before it is defined"
                             if names else f"\n{self}")
                    raise VerifyError(
                        f"Argument '{inp.name}' of Node '{node.name}' was used before it has "
                        "been defined! Please check that Nodes in the graph are "
                        f"topologically ordered{where}")
                if node not in inp.users:
                    raise VerifyError(f"{label(inp)}.users is missing {label(node)}")
            seen.add(node)
        outputs = [n for n in self._nodes if n.op == OpKind.output]
        if len(outputs) > 1:
            raise VerifyError(f"graph has {len(outputs)} output nodes")
        names_seen: set = set()
        for node in self._nodes:
            if node.name in names_seen:
                raise VerifyError(f"Node redefined name {node.name}!")
            names_seen.add(node.name)
        if check_targets and self.owning_module is not None:
            for node in self._nodes:
                _lint_target(node, self.owning_module)

    def __str__(self) -> str:
        """torch.fx's listing: `graph():`, then each node's `format_node()` indented by
        four spaces (torch leaves the parentheses empty). `ember.ir.print_graph(g)`
        gives ember's parseable textual IR."""
        lines = ["graph():"] + ["    " + n.format_node() for n in self._nodes]
        return "\n".join(lines)

    def print_tabular(self) -> None:
        """Print one row per node (opcode, name, target, args, kwargs) in the layout
        torch.fx prints through the tabulate package: columns padded to their widest
        cell and separated by two spaces, a dashed rule under the headers."""
        headers = ["opcode", "name", "target", "args", "kwargs"]
        rows = [[str(n.op), n.name, _tabular_target(n.target), str(n.args), str(n.kwargs)]
                for n in self._nodes]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
        def line(cells):
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        text = [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]
        print("\n".join(text))


def _lint_target(node: Node, owner) -> None:
    """torch.fx's target checks for a graph owned by a module: a callable for
    call_function, a name otherwise, and get_attr/call_module paths that exist (a
    call_module's naming a module)."""
    target = node.target
    if node.op == OpKind.call_function:
        if not callable(target):
            raise ValueError(f"Node {node} target {target} has type {type(target).__name__} "
                             "but a Callable is expected")
    elif not isinstance(target, str):
        raise ValueError(f"Node {node} target {target} has type {type(target).__name__} "
                         "but a str is expected")
    if node.op not in (OpKind.get_attr, OpKind.call_module):
        return
    value, atoms = owner, target.split(".")
    for i, atom in enumerate(atoms):
        value = getattr(value, atom, None)
        seen = ".".join(atoms[:i])
        if value is None:
            raise VerifyError(f"Node {node} target {target} references nonexistent "
                              f"attribute {atom} of {seen}")
        if node.op == OpKind.call_module and not callable(value):
            raise VerifyError(f"Node {node} target {target} {atom} of {seen} does not "
                              "reference an nn.Module")


def _tabular_target(target) -> str:
    """A target as print_tabular shows it: a registry op in the form torch shows its
    C-level functions (`<built-in method relu of type object at 0x...>`), anything
    else as str() gives it (`<function relu at 0x...>`, a method or module name)."""
    from .registry import OpDef
    if isinstance(target, OpDef):
        return f"<built-in method {target.name} of type object at {id(OpDef):#x}>"
    return str(target)


@functools.lru_cache(maxsize=4096)
def _name_parts(hint: str) -> tuple[str, str, int, bool]:
    """A name hint as an identifier, its base and count (`add_3`: `add`, 3), and whether
    it is reserved: the same few hints come back for every node of a kind."""
    candidate = re.sub(r"[^0-9a-zA-Z_]+", "_", hint) if hint else "_unnamed"
    if candidate[0].isdigit():           # "0" (a Sequential child) is no identifier
        candidate = "_" + candidate
    match = _NUMBERED.match(candidate)
    base, number = (match.group(1), int(match.group(2))) if match else (candidate, 0)
    return candidate, base, number, _is_reserved(candidate)


def _is_reserved(name: str) -> bool:
    return keyword.iskeyword(name) or name in _RESERVED


def _attribute_exists(owner, qualified_name: str) -> bool:
    """Whether the owning module has the dotted attribute a get_attr/call_module node
    names (torch.fx warns when a pass inserts one before adding the attribute)."""
    value = owner
    for part in qualified_name.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            return False
    return True


def _snake_case(name: str) -> str:
    """`myLinear` -> `my_linear`, `Weight_A` -> `weight_a` (torch.fx's node names)."""
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _default_name(op, target) -> str:
    """The name torch.fx gives a node: the input's, module's or attribute's name with
    dots as underscores, the method name, or the function's __name__, in snake_case."""
    if isinstance(target, str):      # placeholder, get_attr, call_module, call_method
        if len(target) > 4 and target.startswith("__") and target.endswith("__"):
            target = target[2:-2]    # a magic method: `a.__call__(x)` is node `call`
        return _snake_case(target.replace(".", "_"))
    if is_op(target):
        return target.name
    name = getattr(target, "__name__", None) or target_name(target).split(".")[-1]
    return _snake_case(name)


#: functions whose call is kept although its result is unused (torch.fx's set)
_SIDE_EFFECTFUL_FUNCTIONS: set = set()


def has_side_effect(fn):
    """Mark `fn` so dead-code elimination keeps its calls (torch.fx.node's decorator)."""
    _SIDE_EFFECTFUL_FUNCTIONS.add(fn)
    return fn


def _is_impure(node: Node, impure_random: bool = True) -> bool:
    """In-place ops, random ops (unless `impure_random` is False), item assignment
    and marked functions are kept even when their result is unused."""
    import operator
    if node.op == OpKind.call_function and (
            node.target is operator.setitem or node.target in _SIDE_EFFECTFUL_FUNCTIONS):
        return True
    tags = getattr(node.target, "tags", None)
    if tags is not None:
        from .registry import Tag
        return Tag.INPLACE in tags or (impure_random and Tag.RANDOM in tags)
    if node.op == OpKind.call_method:
        return str(node.target).endswith("_") and not str(node.target).endswith("__")
    return False
