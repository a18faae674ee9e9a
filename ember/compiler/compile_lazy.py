"""Graph breaks for a user's compile backend: the function runs with deferred execution.

`ember.compile(fn, backend=my_compiler)` first traces the whole function with
ember.fx.symbolic_trace. Where that fails (`if b.sum() < 0:`, `int(t)`, iteration of a
traced value, ...) or the graph reads a value into Python (`.item()`, `.tolist()`), the
function instead runs as torch.compile runs it around its graph breaks:

- every op call on tensors is recorded into the current *segment* (an fx graph) and
  returns a pending tensor: a Tensor with the result's shape, dtype and strides and no
  values yet (inside ember it is a meta tensor; `.device` says where it will live);
- a value read ends the segment (`bool()`, `.item()`, `.tolist()`, `int()`, `float()`,
  an index, `.numpy()`, printing, a meta rule that needs values — nonzero, boolean
  masks), and so does the function returning. The segment becomes an fx GraphModule:
  one placeholder per tensor it reads (inputs, parameters, results of earlier
  segments), one output per pending tensor still referenced anywhere (a conservative
  liveness: the Python objects alive at the break);
- the backend is called once per distinct segment: a segment with the same recorded
  ops, constants and input signature (shapes, dtypes, devices, requires_grad) reuses
  the callable it returned, as torch's guards would. The callable runs on the real
  inputs and its results are bound into the pending tensors (the same Python objects
  the function holds), then Python goes on. An in-place op on a real tensor is in the
  graph as written, as dynamo records it: running the callable performs it.

An op whose result cannot be described without values (a meta rule that reads them)
breaks the graph before it and runs eagerly, as torch runs an unsupported op between
graphs. Python scalars (`.item()`'s value, arguments) are constants of the graph: a new
value records a new segment and calls the backend again.
"""
from __future__ import annotations

import dis
import operator
import sys
import weakref

from ..frontend.device import device as _device
from ..frontend.device import get_default_device
from ..frontend.grad_state import STATE as _GRAD_STATE
from ..frontend.meta_device import MetaStorage, empty_meta
from ..frontend.tensor import Tensor
from ..ir import dispatch
from ..ir.errors import EmberError
from ..ir.graph import Graph, Node
from .compile_guards import log


class PendingStorage(MetaStorage):
    """The storage of a pending tensor: a meta storage (so ember's internals treat the
    tensor as one without data) that remembers the device its values will have."""
    __slots__ = ("real_device",)

    def __init__(self, nbytes: int, real_device: str):
        super().__init__(nbytes)
        self.real_device = real_device


def is_pending(value) -> bool:
    return isinstance(value, Tensor) and type(value._storage) is PendingStorage


class LazyRun:
    """One call of a function with deferred execution (module docstring)."""

    def __init__(self, owner):
        self.owner = owner                    # the CustomBackendFunction: backend + cache
        self.graph = Graph()
        # id(tensor) -> (weakref to it, its node in the current segment)
        self.values: dict[int, tuple] = {}
        self.inputs: list[Tensor] = []         # the real tensors behind the placeholders
        self.quiet = 0                         # >0: inside our own work, reads just read
        self.saved: dict = {}
        self._mode = None
        self.code = None                       # the compiled function's code object

    # --- recording -------------------------------------------------------------------
    def handle(self, op, args: tuple):
        if self.quiet:
            with dispatch.disabled(self):
                return dispatch.dispatch(op, args)
        try:
            result, real_device = self._meta_result(op, args)
        except Exception as err:        # noqa: BLE001 - any: the op needs values; break
            return self._eager_op(op, args, err)
        return self._record(op, args, result, real_device)

    def _meta_result(self, op, args: tuple):
        """The op's result on meta stand-ins of its arguments, and where it will live."""
        metas: dict[int, tuple] = {}
        devices: list[str] = []

        def to_meta(value):
            if not isinstance(value, Tensor):
                return value
            if type(value) not in _PLAIN_TENSORS:
                raise EmberError(f"a {type(value).__name__} argument runs eagerly")
            if is_pending(value):
                devices.append(value._storage.real_device)
                return value
            devices.append(value._storage.device)
            meta = empty_meta(tuple(value.shape), value.stride(), value._array.dtype)
            meta.requires_grad = value.requires_grad
            metas[id(meta)] = (meta, value)
            return meta
        meta_args = tuple(_map(a, to_meta) for a in args)
        asked = _device_argument(op, args)
        if asked is not None:
            meta_args = _with_device(op, meta_args, "meta")
        self.quiet += 1
        grad = _GRAD_STATE.enabled
        _GRAD_STATE.enabled = False
        try:
            with dispatch.disabled(self):
                result = dispatch.dispatch(op, meta_args)
        finally:
            _GRAD_STATE.enabled = grad
            self.quiet -= 1
        real_device = asked if asked is not None else \
            devices[0] if devices else get_default_device().type

        def back(value):     # an in-place op's result is its (real) argument itself
            if isinstance(value, Tensor):
                entry = metas.get(id(value))
                return entry[1] if entry is not None and entry[0] is value else value
            if value is None or isinstance(value, (list, tuple)):
                return value
            raise EmberError(f"{op.name} returns a {type(value).__name__}: runs eagerly")
        wants_grad = grad and any(isinstance(v, Tensor) and v.requires_grad
                                  for v in _leaves(args))
        return _map(result, back), (real_device, wants_grad)

    def _record(self, op, args: tuple, result, placement):
        real_device, wants_grad = placement
        call_args, call_kwargs = op.schema.unbind(tuple(_map(a, self._node_of) for a in args))
        node = self.graph.call_function(op, _plain_devices(call_args),
                                        _plain_devices(call_kwargs))
        node.meta["loc"] = None
        if isinstance(result, (list, tuple)):
            for i, value in enumerate(result):
                if isinstance(value, Tensor):
                    self._track(value, self.graph.call_function(operator.getitem, (node, i)),
                                real_device, wants_grad)
        elif isinstance(result, Tensor):
            self._track(result, node, real_device, wants_grad)
        return result

    def _track(self, value: Tensor, node: Node, real_device: str, wants_grad: bool) -> None:
        fresh = type(value._storage) is MetaStorage and real_device != "meta"
        if fresh:           # a new result (a view of a real tensor's stand-in included)
            value._storage = PendingStorage(value._storage.nbytes(), real_device)
        if (fresh or is_pending(value)) and wants_grad and value.dtype.is_floating_point:
            value.requires_grad = True      # until bound, as autograd would mark it
        self.values[id(value)] = (weakref.ref(value), node)

    def _node_of(self, value):
        if not isinstance(value, Tensor):
            return value
        entry = self.values.get(id(value))
        if entry is not None and entry[0]() is value:
            return entry[1]
        if is_pending(value):
            raise EmberError("a pending tensor without a node")     # never: tracked above
        node = self.graph.placeholder(f"arg{len(self.inputs)}")
        self.inputs.append(value)
        self.values[id(value)] = (weakref.ref(value), node)
        return node

    def _eager_op(self, op, args: tuple, err: BaseException):
        """An op whose result needs values: the graph breaks before it, it runs eagerly."""
        if self.graph.nodes:
            log.info("ember.compile: graph break before %s (%s: %s)", op.name,
                     type(err).__name__, str(err).split("\n")[0])
        self.graph_break()
        if self._mode is None:          # given up (a loop): eager from here on
            return dispatch.dispatch(op, args)
        with dispatch.disabled(self):
            return dispatch.dispatch(op, args)

    # --- ending a segment ------------------------------------------------------------
    def graph_break(self) -> None:
        """A value read (or an op that needs values): the segment ends here. Inside a
        loop of the compiled function itself, torch.compile gives the frame up instead
        (it cannot resume in a loop): the recorded ops run as written and the rest of
        this call, and every later call, runs eagerly without the backend."""
        if self._in_loop():
            log.info("ember.compile(backend=%r): graph break in a loop of %s: it runs "
                     "eagerly, as torch.compile skips such a frame",
                     self.owner.backend_name, self.code.co_name)
            self.flush(run_as_written=True)
            self.__exit__()
            self.owner.skip = True
        else:
            self.flush()

    def _in_loop(self) -> bool:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code is not self.code:
            frame = frame.f_back
        if frame is None:
            return False
        return any(start <= frame.f_lasti < end for start, end in _loops(self.code))

    def flush(self, run_as_written: bool = False) -> None:
        """Compile and run the current segment; bind its results to the pending tensors."""
        if not any(n.op == "call_function" for n in self.graph.nodes):
            self._reset()
            return
        live = [(value, node) for value, node in
                ((ref(), node) for ref, node in self.values.values())
                if value is not None and is_pending(value)]
        order = {node: i for i, node in enumerate(self.graph.nodes)}
        outputs = sorted({node for _, node in live}, key=order.__getitem__)
        self.graph.output(tuple(outputs))
        _drop_unused_getitems(self.graph)
        inputs = self.inputs
        self._reset()
        self.quiet += 1
        try:
            with dispatch.disabled(self):
                results = _as_written(self.graph_done, inputs) if run_as_written else \
                    self.owner.run_segment(self.graph_done, inputs)
        finally:
            self.quiet -= 1
        if not isinstance(results, (list, tuple)) or len(results) != len(outputs):
            raise EmberError(f"compile backend {self.owner.backend_name!r}: the callable it "
                             f"returned gave {_count(results)} results for a graph with "
                             f"{len(outputs)} outputs")
        position = {node: i for i, node in enumerate(outputs)}
        for value, node in live:
            _bind(value, results[position[node]])

    def _reset(self) -> None:
        self.graph_done = self.graph
        self.graph = Graph()
        self.values = {}
        self.inputs = []

    # --- the run -----------------------------------------------------------------------
    def __call__(self, fn, args: tuple, kwargs: dict):
        self.code = _code_of(fn)
        self.__enter__()
        try:
            result = fn(*args, **kwargs)
            if self._mode is not None:
                self.flush()
            return result
        finally:
            self.__exit__()

    def __enter__(self):
        for name, wrapper in _patches(self).items():
            self.saved[name] = Tensor.__dict__[name]
            setattr(Tensor, name, wrapper)
        self._mode = dispatch.enabled(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        if self._mode is None:
            return False
        self._mode.__exit__(None, None, None)
        self._mode = None
        for name, original in self.saved.items():
            setattr(Tensor, name, original)
        self.saved.clear()
        return False


def _patches(run: LazyRun) -> dict:
    """Tensor's value reads end the segment first; its device says where a pending
    tensor will live; detach/.data of a pending tensor are recorded ops."""
    patches = {}

    def reading(name: str):
        original = Tensor.__dict__[name]

        def read(self, *args, **kwargs):
            if not run.quiet and run.graph.nodes:
                run.graph_break()
            return original(self, *args, **kwargs)
        read.__name__ = name
        return read
    for name in _READS:
        patches[name] = reading(name)

    def placed(name: str):
        original = Tensor.__dict__[name]

        def where(self):
            if type(self._storage) is PendingStorage:
                return _PLACEMENT[name](self._storage.real_device)
            return original.fget(self)
        return property(where)
    for name in _PLACEMENT:
        patches[name] = placed(name)

    detach_original = Tensor.__dict__["detach"]

    def detach(self):
        if type(self._storage) is PendingStorage and not run.quiet:
            from ..ir.registry import get_op
            return dispatch.dispatch(get_op("detach"), (self,))
        return detach_original(self)
    patches["detach"] = detach
    data = Tensor.__dict__["data"]

    def set_data(self, value):
        if not run.quiet and run.graph.nodes:
            run.flush()
        data.fset(self, value)
    patches["data"] = property(lambda self: self.detach(), set_data)
    return patches


# methods that read values (or memory) on the host: the segment ends before them
_READS = ("__bool__", "item", "tolist", "__int__", "__float__", "__index__", "__complex__",
          "numpy", "__array__", "_values", "__repr__", "__format__", "data_ptr",
          "untyped_storage", "storage_offset", "__reduce_ex__", "__deepcopy__", "backward")

_PLACEMENT = {"device": _device,
              "is_cuda": lambda d: d.startswith("cuda"),
              "is_cpu": lambda d: d == "cpu",
              "is_meta": lambda d: False}

_PLAIN_TENSORS: tuple = ()


def _plain_tensor_types() -> tuple:
    from ..frontend.nn.parameter import Parameter
    return (Tensor, Parameter)


def _code_of(fn):
    """The code object whose frame is the compiled function's (a module's forward)."""
    forward = getattr(type(fn), "forward", None) if not hasattr(fn, "__code__") else fn
    return getattr(getattr(forward, "__func__", forward), "__code__", None)


_LOOPS: dict = {}


def _loops(code) -> list[tuple[int, int]]:
    """(start, end) offsets of the loops in `code`: a backward jump's target to it."""
    found = _LOOPS.get(code)
    if found is None:
        found = [(i.argval, i.offset + 1) for i in dis.get_instructions(code)
                 if i.opname.startswith("JUMP_BACKWARD") and isinstance(i.argval, int)
                 and i.argval <= i.offset]
        _LOOPS[code] = found
    return found


def _as_written(graph: Graph, inputs: list):
    """The segment's ops run eagerly, as recorded (a frame torch.compile gives up)."""
    from ..frontend.fx.graph_module import GraphModule
    from ..frontend.nn.modules.module import Module
    return GraphModule(Module(), graph)(*inputs)


def _bind(pending: Tensor, real) -> None:
    """The pending tensor becomes the result: same memory, geometry and autograd state."""
    if not isinstance(real, Tensor):
        raise EmberError(f"a compile backend's callable returned {type(real).__name__} "
                         "where the graph outputs a tensor")
    pending._array, pending._storage, pending._base = real._array, real._storage, real._base
    pending.requires_grad, pending.grad_fn = real.requires_grad, real.grad_fn
    pending._output_nr = real._output_nr


def _drop_unused_getitems(graph: Graph) -> None:
    for node in reversed(graph.nodes):
        if node.op == "call_function" and node.target is operator.getitem and not node.users:
            graph.erase_node(node)


def _device_argument(op, args: tuple):
    """The device a factory (or `.to(device)`) was asked for, as a string, else None."""
    for param, value in zip(op.schema.args, args):
        if param.name == "device" and value is not None:
            return str(_device(value))
    return None


def _with_device(op, args: tuple, where: str) -> tuple:
    return tuple(where if param.name == "device" and value is not None else value
                 for param, value in zip(op.schema.args, args))


def _plain_devices(value):
    """Devices as strings in recorded arguments: the generated code spells them."""
    if isinstance(value, dict):
        return {k: _plain_devices(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_plain_devices(v) for v in value)
    return str(value) if isinstance(value, _device) else value


def _map(value, fn):
    if isinstance(value, (list, tuple)):
        items = [_map(v, fn) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return fn(value)


def _leaves(value):
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _count(results) -> int:
    return len(results) if isinstance(results, (list, tuple)) else 1


def structure_key(graph: Graph) -> tuple:
    """What makes two segments the same graph: ops, constants and wiring, in order."""
    index = {node: i for i, node in enumerate(graph.nodes)}

    def key(value):
        if isinstance(value, Node):
            return ("node", index[value])
        if isinstance(value, (list, tuple)):
            return (type(value).__name__,) + tuple(key(v) for v in value)
        if isinstance(value, dict):
            return ("dict",) + tuple((k, key(v)) for k, v in value.items())
        if isinstance(value, slice):
            return ("slice", key(value.start), key(value.stop), key(value.step))
        if isinstance(value, float) and value != value:
            return ("nan",)
        try:
            hash(value)
        except TypeError:
            return (type(value).__name__, id(value))
        return (type(value), value)
    return tuple((n.op, key(n.target) if n.op != "call_function" else n.target,
                  key(n.args), key(n.kwargs)) for n in graph.nodes)


def install() -> None:
    global _PLAIN_TENSORS
    if not _PLAIN_TENSORS:
        _PLAIN_TENSORS = _plain_tensor_types()


install()
