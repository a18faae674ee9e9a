"""Graph breaks for a user's compile backend: the function runs with deferred execution.

`ember.compile(fn, backend=my_compiler)` first traces the whole function with
ember.fx.symbolic_trace (compile_custom.py). Where that fails (`if b.sum() < 0:`,
`int(t)`, printing, ...) or the graph holds what torch breaks at (`.item()`,
`nonzero`, a computed mask), the function runs here, as torch.compile runs it:

- Recording: every op call returns a *pending* tensor (a meta tensor inside ember,
  its shape, dtype and strides from the op's meta rule, cached per op and argument
  signature; `.device` says where it will live) and appends a record. A meta rule's
  random draws are put back, so the real run draws as eager does. Python operators
  that ran as one op are recorded as `operator.*` calls, grad mode per record.
- Breaks: a value read (bool(), .item(), .tolist(), int(), float(), an index,
  .numpy(), printing, .backward(), a call of an ember-compiled function,
  torch._dynamo.graph_break(), a torch.compiler.disable'd function) or an op whose
  result needs values (it then runs eagerly) ends the segment. The records split as
  torch splits frames: each frame on the way down to the read (the user's frames and
  ember's layers; dispatch machinery is not a frame) has its own graph of what it
  recorded before its call into the next; after the break, a frame that returns ends
  the graph it was in. A break inside a loop of the compiled function itself makes
  torch give the frame up: the records run as written, the rest runs eagerly, and so
  does every later call.
- Running a segment: an fx GraphModule with a placeholder per value read from
  outside and an output per value a later record reads or whose tensor is alive (a
  conservative liveness). The backend is called once per distinct segment, keyed by
  where it began (a frame's code at its entry or resume point, as torch keeps a cache
  per frame and resume point), its records (ops, constants, wiring, grad modes) and
  input signature; its callable runs on the real inputs and the results are bound
  into the pending tensors (the same Python objects the function holds).

Python scalars (`.item()`'s value, arguments) are constants of the graph: a new value
records a new segment and calls the backend again.
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
from ..frontend.nn.parameter import Parameter
from ..frontend.tensor import Tensor
from ..ir import dispatch
from ..ir.errors import EMBER_DIR, EmberError
from ..ir.symdim import _USER_LIKE
from ..ir.graph import Graph, Node
from ..ir.registry import Tag
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


class _Value:
    """A tensor value of the run: an op's result (its record not yet run: `ref` is the
    pending tensor while it is that tensor's latest value), or a real tensor (`real`)."""
    __slots__ = ("ref", "real", "made", "done")

    def __init__(self, ref=None, real=None, made: bool = False):
        self.ref, self.real, self.made, self.done = ref, real, made, False

    def pending(self):
        value = self.ref() if self.ref is not None else None
        return value if value is not None and is_pending(value) else None


class _Record:
    """One deferred op call: arguments with _Values for tensors, its output _Values and
    the user's frames it was called from (top first: (id, code, offset))."""
    __slots__ = ("op", "args", "kwargs", "outs", "multi", "stack", "grad")

    def __init__(self, op, args, kwargs, outs, multi, stack):
        self.op, self.args, self.kwargs = op, args, kwargs
        self.outs, self.multi, self.stack = outs, multi, stack
        self.grad = _GRAD_STATE.enabled       # the grad mode it was called in


class LazyRun:
    """One call of a function with deferred execution (module docstring)."""

    def __init__(self, owner):
        self.owner = owner                    # the CustomBackendFunction: backend + cache
        self.records: list[_Record] = []      # the current segment's op calls
        self.values: dict[int, tuple] = {}    # id(tensor) -> (weakref, its _Value)
        self.touched: set[int] = set()        # storages of the real tensors records use
        self.quiet = 0                        # >0: inside our own work, reads just read
        self.saved: dict = {}
        self.saved_fast: list = []
        self._mode = None
        self.code = None                      # the compiled function's code object
        # the frames of the last break, and how many of them are still running: when
        # one returns, the segment ends (torch resumes each frame in its own graph)
        self.after: tuple = ()
        self.level = 0
        # where the current segment began, as torch keys its graphs (a frame's code at
        # its entry or where it resumed after a break), and that frame's depth
        self.origin: tuple = ()
        self.origin_depth = 0

    # --- recording -------------------------------------------------------------------
    def handle(self, op, args: tuple):
        if self.quiet:
            with dispatch.disabled(self):
                return dispatch.dispatch(op, args)
        stack = self._stack()
        self._cut_on_return(stack)
        try:
            result, placement = self._meta_result(op, args)
        except Exception as err:        # noqa: BLE001 - any: the op needs values; break
            return self._eager_op(op, args, err)
        return self._record(op, args, result, placement, stack)

    def _meta_result(self, op, args: tuple):
        """The op's result on meta stand-ins of its arguments, and where it will live:
        computed once per op and argument signature, then rebuilt from the cache."""
        key = _meta_key(op, args)
        known = _META_CACHE.get(key) if key is not None else None
        if known is None:
            try:
                result, placement = self._run_meta(op, args)
            except Exception as err:    # noqa: BLE001 - remembered: it needs values
                if key is not None:
                    _remember(key, err)
                raise
            if key is not None:
                _remember(key, _describe(result, _leaves(args)))
            return result, placement
        if isinstance(known, BaseException):
            raise known
        return _rebuild(known, list(_leaves(args))), _placement(op, args)

    def _run_meta(self, op, args: tuple):
        """The op run by its meta rule (grad mode off, random streams put back)."""
        metas: dict[int, tuple] = {}

        def to_meta(value):
            if not isinstance(value, Tensor):
                return value
            if type(value) not in _PLAIN_TENSORS:
                raise EmberError(f"a {type(value).__name__} argument runs eagerly")
            if is_pending(value):
                return value
            meta = empty_meta(tuple(value.shape), value.stride(), value._array.dtype)
            meta.requires_grad = value.requires_grad
            metas[id(meta)] = (meta, value)
            return meta
        meta_args = tuple(_map(a, to_meta) for a in args)
        if _device_argument(op, args) is not None:
            meta_args = _with_device(op, meta_args, "meta")
        self.quiet += 1
        grad = _GRAD_STATE.enabled
        _GRAD_STATE.enabled = False
        streams = _random_streams(op, args)     # a meta random op draws: put them back
        try:
            with dispatch.disabled(self):
                result = dispatch.dispatch(op, meta_args)
        finally:
            _GRAD_STATE.enabled = grad
            self.quiet -= 1
            for generator, state in streams:
                generator.bit_generator.state = state

        def back(value):     # an in-place op's result is its (real) argument itself
            if isinstance(value, Tensor):
                entry = metas.get(id(value))
                return entry[1] if entry is not None and entry[0] is value else value
            if value is None or isinstance(value, (list, tuple)):
                return value
            raise EmberError(f"{op.name} returns a {type(value).__name__}: runs eagerly")
        return _map(result, back), _placement(op, args)

    def _record(self, op, args: tuple, result, placement, stack):
        real_device, wants_grad = placement
        call_args, call_kwargs = op.schema.unbind(tuple(_map(a, self._value_of) for a in args))
        multi = isinstance(result, (list, tuple))
        outs = [self._track(v, real_device, wants_grad) if isinstance(v, Tensor) else None
                for v in (result if multi else (result,))]
        self.records.append(_Record(op, _plain_devices(call_args),
                                    _plain_devices(call_kwargs), outs, multi, stack))
        return result

    def _track(self, value: Tensor, real_device: str, wants_grad: bool) -> _Value:
        fresh = type(value._storage) is MetaStorage and real_device != "meta"
        if fresh:           # a new result (a view of a real tensor's stand-in included)
            value._storage = PendingStorage(value._storage.nbytes(), real_device)
        if (fresh or is_pending(value)) and wants_grad and value.dtype.is_floating_point:
            value.requires_grad = True      # until bound, as autograd would mark it
        old = self.values.get(id(value))
        if old is not None and old[0]() is value:
            old[1].ref = None               # an in-place op: its new value is this one
        made = _Value(ref=weakref.ref(value), made=True)
        self.values[id(value)] = (made.ref, made)
        return made

    def _value_of(self, value):
        if not isinstance(value, Tensor):
            return value
        entry = self.values.get(id(value))
        if entry is not None and entry[0]() is value and not entry[1].done:
            return entry[1]
        if is_pending(value):
            raise EmberError("a pending tensor without a value")     # never: tracked above
        found = _Value(real=value)
        self.values[id(value)] = (weakref.ref(value), found)
        self.touched.add(id(value._storage))
        return found

    def stale(self, tensor: Tensor) -> bool:
        """Would reading this tensor's memory now miss what the segment does? (A
        pending tensor, or memory its records read, and may write through a view.)"""
        return is_pending(tensor) or id(tensor._storage) in self.touched

    def _eager_op(self, op, args: tuple, err: BaseException):
        """An op whose result needs values: the graph breaks before it, it runs eagerly."""
        if self.records:
            log.info("ember.compile: graph break before %s (%s: %s)", op.name,
                     type(err).__name__, str(err).split("\n")[0])
        self.graph_break()
        if self._mode is None:          # given up (a loop): eager from here on
            return dispatch.dispatch(op, args)
        with dispatch.disabled(self):
            return dispatch.dispatch(op, args)

    # --- frames ----------------------------------------------------------------------
    def _stack(self) -> tuple:
        """The user's frames from the compiled function's down to here, as
        (id, code, offset): ember's own layers count, its dispatch machinery does not
        (torch's is C++)."""
        frames = []
        frame = sys._getframe(2)
        while frame is not None:
            code = frame.f_code
            if _is_users(code):
                frames.append((id(frame), code, frame.f_lasti))
            if code is self.code:
                frames.reverse()
                return tuple(frames)
            frame = frame.f_back
        return ()

    def _cut_on_return(self, stack: tuple) -> None:
        """After a break in a called function, its return ends the segment: torch
        resumes the caller in a graph of its own."""
        if not self.after:
            return
        running = 0
        for (frame, code, _), (now, now_code, _) in zip(self.after, stack):
            if frame != now or code is not now_code:
                break
            running += 1
        if running < self.level:
            self.flush()
            self.level = running
            caller = self.after[running - 1] if running else None
            if caller is not None:          # the caller resumes at its call
                self.origin, self.origin_depth = (caller[1], caller[2]), running - 1

    # --- ending a segment ------------------------------------------------------------
    def graph_break(self) -> None:
        """A value read (or an op that needs values): the segment ends here, split as
        torch splits it: the part each running frame recorded before its call into the
        next is a graph of its own. Inside a loop of the compiled function itself,
        torch.compile gives the frame up instead (it cannot resume in a loop): the
        recorded ops run as written and the rest of this call, and every later call,
        runs eagerly without the backend."""
        if self._in_loop():
            log.info("ember.compile(backend=%r): graph break in a loop of %s: it runs "
                     "eagerly, as torch.compile skips such a frame",
                     self.owner.backend_name, self.code.co_name)
            self.flush(run_as_written=True)
            self.__exit__()
            self.owner.skip = True
            return
        chain = self._stack()
        parts: list[tuple] = []
        last = None
        for record in self.records:
            depth = _common_prefix(record.stack, chain, len(chain) - 1)
            if depth != last:
                origin = self.origin if depth <= self.origin_depth else \
                    (chain[depth][1], "entry")
                parts.append((origin, []))
                last = depth
            parts[-1][1].append(record)
        for origin, part in parts:
            self._run_part(part, run_as_written=False, origin=origin)
        self.records = []
        self._forget_done()
        self.after, self.level = chain, len(chain)
        if chain:
            self.origin, self.origin_depth = (chain[-1][1], chain[-1][2]), len(chain) - 1

    def _in_loop(self) -> bool:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code is not self.code:
            frame = frame.f_back
        if frame is None:
            return False
        return any(start <= frame.f_lasti < end for start, end in _loops(self.code))

    def flush(self, run_as_written: bool = False) -> None:
        """Compile and run the whole current segment."""
        if self.records:
            self._run_part(self.records, run_as_written, self.origin)
        self.records = []
        self._forget_done()

    def _run_part(self, part: list[_Record], run_as_written: bool, origin: tuple) -> None:
        """One graph of `part`'s records: compiled, run, its results bound."""
        rest = self.records[self.records.index(part[-1]) + 1:] if part is not self.records \
            else []
        key, inputs, outputs = _segment_of(part, rest)
        self.quiet += 1
        try:
            with dispatch.disabled(self):
                if run_as_written:
                    results = _as_written(_graph_of(part, outputs), inputs)
                else:
                    results = self.owner.run_segment(
                        (origin, key), lambda: _graph_of(part, outputs), inputs)
        finally:
            self.quiet -= 1
        if not isinstance(results, (list, tuple)) or len(results) != len(outputs):
            raise EmberError(f"compile backend {self.owner.backend_name!r}: the callable it "
                             f"returned gave {_count(results)} results for a graph with "
                             f"{len(outputs)} outputs")
        for value, real in zip(outputs, results):
            pending = value.pending()
            if pending is not None:
                _bind(pending, real)
            value.real = real if isinstance(real, Tensor) else None
        for record in part:
            for value in record.outs:
                if value is not None:
                    value.done = True

    def _forget_done(self) -> None:
        """Only a live segment's values are remembered (results are plain tensors)."""
        self.touched = set()
        self.values = {k: entry for k, entry in self.values.items()
                       if entry[1].made and not entry[1].done and entry[0]() is not None}

    # --- the run -----------------------------------------------------------------------
    def __call__(self, fn, args: tuple, kwargs: dict):
        self.code = _code_of(fn)
        self.origin = (self.code, "entry")
        self.__enter__()
        try:
            result = fn(*args, **kwargs)
            if self._mode is not None:
                self.flush()
            return result
        finally:
            self.__exit__()

    def __enter__(self):
        _RUNS.append(self)
        for name, wrapper in _patches(self).items():
            self.saved[name] = Tensor.__dict__[name]
            setattr(Tensor, name, wrapper)
        self.saved_fast = _without_fast_paths(self)
        self._mode = dispatch.enabled(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        if self._mode is None:
            return False
        self._mode.__exit__(None, None, None)
        self._mode = None
        _RUNS.remove(self)
        for name, original in self.saved.items():
            setattr(Tensor, name, original)
        self.saved.clear()
        for module, name, original in self.saved_fast:
            setattr(module, name, original)
        return False


_RUNS: list[LazyRun] = []


def recording() -> LazyRun | None:
    """The run recording op calls right now (torch.compiler.is_compiling() is True
    there), or None."""
    run = _RUNS[-1] if _RUNS else None
    return run if run is not None and not run.quiet else None


def run_eagerly(run: LazyRun, fn, args: tuple, kwargs: dict):
    """`fn` runs on values, unrecorded, between two graphs (torch.compiler.disable'd
    code, torch._dynamo.graph_break())."""
    if run.records:
        run.graph_break()
    run.quiet += 1
    try:
        return fn(*args, **kwargs)
    finally:
        run.quiet -= 1


def _without_fast_paths(run: LazyRun) -> list:
    """The optimizers' fused updates write parameters' memory directly, around the
    dispatch point: while ops are deferred they take their op-by-op path, which is
    recorded (as torch.compile traces `opt.step()` into its graph)."""
    from ..frontend.optim import inplace_cpu, multi_tensor_cuda, optimizer, optimizers
    saved = []
    for module, name, declined in ((inplace_cpu, "applies", False),
                                   (multi_tensor_cuda, "sgd", None),
                                   (multi_tensor_cuda, "adam", False)):
        original = getattr(module, name)

        def fast(*args, _original=original, _declined=declined, **kwargs):
            return _original(*args, **kwargs) if run.quiet else _declined
        saved.append((module, name, original))
        setattr(module, name, fast)
    from .compile import CompiledFunction
    compiled_call = CompiledFunction.__call__

    def compiled_eagerly(self, *args, **kwargs):
        """A function compiled by ember's own backends runs its plan on values: the
        graph breaks before it."""
        if run.quiet:
            return compiled_call(self, *args, **kwargs)
        if run.records:
            run.graph_break()
        run.quiet += 1
        try:
            return compiled_call(self, *args, **kwargs)
        finally:
            run.quiet -= 1
    saved.append((CompiledFunction, "__call__", compiled_call))
    CompiledFunction.__call__ = compiled_eagerly
    write = optimizer._write

    def recorded_write(dst, src):     # the update's copy into its buffer, as an op
        if run.quiet:
            return write(dst, src)
        from ..ir.registry import get_op
        grad = _GRAD_STATE.enabled
        _GRAD_STATE.enabled = False
        try:
            dispatch.dispatch(get_op("copy_"), (dst, src, False))
        finally:
            _GRAD_STATE.enabled = grad
    for module in (optimizer, optimizers):
        saved.append((module, "_write", module._write))
        module._write = recorded_write
    return saved


_USERS: dict = {}


def _is_users(code) -> bool:
    """Code of the user's (or of ember's layers, which are torch's Python)."""
    found = _USERS.get(code)
    if found is None:
        name = code.co_filename
        found = _USERS[code] = not (name.startswith(EMBER_DIR) and
                                    not name.startswith(_USER_LIKE))
    return found


def _placement(op, args: tuple) -> tuple:
    """Where an op's results will live, and whether autograd will record them."""
    asked = _device_argument(op, args)
    wants_grad = False
    first = None
    for value in _leaves(args):
        if isinstance(value, Tensor):
            if first is None:
                first = value._storage.real_device if is_pending(value) else \
                    value._storage.device
            wants_grad = wants_grad or value.requires_grad
    device = asked if asked is not None else first if first is not None else \
        get_default_device().type
    return device, wants_grad and _GRAD_STATE.enabled


# (op, argument signature) -> how its results look (or the error its meta rule raised)
_META_CACHE: dict = {}


def _meta_key(op, args: tuple):
    """The op and what its meta rule can see of its arguments; None: not cacheable."""
    parts = [op]
    for value in _leaves(args):
        if isinstance(value, Tensor):
            if type(value) not in _PLAIN_TENSORS:
                return None
            parts.append((value.shape, value.stride(), value.dtype, value.requires_grad,
                          value._storage.real_device if is_pending(value)
                          else value._storage.device))
        else:
            try:
                hash(value)
            except TypeError:
                return None
            parts.append((type(value), value))
    parts.append(tuple(len(a) if isinstance(a, (list, tuple)) else -1 for a in args))
    return tuple(parts)


def _remember(key, what) -> None:
    if len(_META_CACHE) > 20000:
        _META_CACHE.clear()
    _META_CACHE[key] = what


def _describe(result, arg_leaves):
    """A result as ("arg", i) (an in-place op's argument), ("new", shape, strides,
    numpy dtype), None, or a container of those."""
    tensors = [v for v in arg_leaves if isinstance(v, Tensor)]
    if isinstance(result, (list, tuple)):
        return (type(result), tuple(_describe(v, tensors) for v in result))
    if result is None:
        return None
    for i, value in enumerate(tensors):
        if value is result:
            return ("arg", i)
    return ("new", tuple(result.shape), result.stride(), result._array.dtype)


def _rebuild(known, arg_leaves):
    tensors = [v for v in arg_leaves if isinstance(v, Tensor)]
    if known is None:
        return None
    if isinstance(known[0], type):
        kind, items = known
        built = [_rebuild(item, tensors) for item in items]
        return kind(*built) if hasattr(kind, "_fields") else kind(built)
    if known[0] == "arg":
        return tensors[known[1]]
    return empty_meta(*known[1:])


def _random_streams(op, args: tuple) -> list:
    """The numpy generators a random op draws from, with their states."""
    if not op.has_tag(_RANDOM):
        return []
    from ..frontend.random import Generator, default_generator
    generators = [v for v in _leaves(args) if isinstance(v, Generator)]
    return [(g.numpy, g.numpy.bit_generator.state) for g in [default_generator] + generators]


def _common_prefix(stack: tuple, chain: tuple, limit: int) -> int:
    """How many of `chain`'s frames `stack` was inside of, at the same call."""
    depth = 0
    for mine, theirs in zip(stack, chain):
        if depth >= limit or mine != theirs:
            break
        depth += 1
    return depth


def _segment_of(part: list[_Record], rest: list[_Record]):
    """What identifies a segment's graph (its ops, constants, wiring and grad modes),
    the real tensors it reads from outside, and the values it must output: those later
    records read or whose tensors are alive."""
    codes: dict[int, tuple] = {}
    inputs: list[Tensor] = []

    def code(value):
        if isinstance(value, _Value):
            found = codes.get(id(value))
            if found is None:           # read from outside: a real tensor by now
                found = codes[id(value)] = ("in", len(inputs))
                inputs.append(value.real)
            return found
        return _constant_key(value, code)
    records = []
    for position, record in enumerate(part):
        records.append((record.op, record.grad, record.multi, code(record.args),
                        code(record.kwargs)))
        for i, value in enumerate(record.outs):
            if value is not None:
                codes[id(value)] = ("out", position, i)
    later = {id(v) for record in rest
             for v in _leaves((record.args, tuple(record.kwargs.values())))
             if isinstance(v, _Value)}
    outputs = [value for record in part for value in record.outs
               if value is not None and (id(value) in later or value.pending() is not None)]
    key = (tuple(records), tuple(codes[id(v)] for v in outputs), _GRAD_STATE.enabled)
    return key, inputs, outputs


def _constant_key(value, code):
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(code(v) for v in value)
    if isinstance(value, dict):
        return ("dict",) + tuple((k, code(v)) for k, v in value.items())
    if isinstance(value, slice):
        return ("slice", code(value.start), code(value.stop), code(value.step))
    if isinstance(value, float) and value != value:
        return ("nan",)
    try:
        hash(value)
    except TypeError:
        return (type(value).__name__, id(value))
    return (type(value), value)


def _graph_of(part: list[_Record], outputs: list[_Value]) -> Graph:
    """The fx graph of these records: a placeholder per value read from outside (in
    _segment_of's order), `outputs` as its outputs."""
    from .. import _C
    graph = Graph()
    nodes: dict[int, Node] = {}
    count = [0]
    entry = grad = _GRAD_STATE.enabled        # the mode the graph will be called in

    def node_of(value):
        if not isinstance(value, _Value):
            return value
        node = nodes.get(id(value))
        if node is None:
            node = nodes[id(value)] = graph.placeholder(f"arg{count[0]}")
            count[0] += 1
        return node
    for record in part:
        if record.grad != grad:         # a no_grad region: set, as dynamo's graphs do
            graph.call_function(_C._set_grad_enabled, (record.grad,))
            grad = record.grad
        node = graph.call_function(record.op, _map(record.args, node_of),
                                   {k: _map(v, node_of) for k, v in record.kwargs.items()})
        for i, value in enumerate(record.outs):
            if value is not None:
                nodes[id(value)] = graph.call_function(operator.getitem, (node, i)) \
                    if record.multi else node
    if grad != entry:
        graph.call_function(_C._set_grad_enabled, (entry,))
    graph.output(tuple(nodes[id(v)] for v in outputs))
    _drop_unused_getitems(graph)
    return graph


def _patches(run: LazyRun) -> dict:
    """Tensor's value reads end the segment first; its device says where a pending
    tensor will live; detach/.data of a pending tensor are recorded ops."""
    patches = {}

    def reading(name: str, always: bool):
        original = Tensor.__dict__[name]

        def read(self, *args, **kwargs):
            # the user's reads break as torch's do; ember's own (its C++ in torch) only
            # when they would see what the segment has not computed yet
            if not run.quiet and run.records and (
                    (always and _is_users(sys._getframe(1).f_code)) or run.stale(self)):
                run.graph_break()
            return original(self, *args, **kwargs)
        read.__name__ = name
        return read
    for name in _READS:
        patches[name] = reading(name, True)
    for name in _MEMORY_READS:
        patches[name] = reading(name, False)
    backward = Tensor.__dict__["backward"]

    def backward_eagerly(self, *args, **kwargs):
        """torch.compile breaks the graph at .backward(): autograd runs eagerly."""
        if not run.quiet and run.records:
            run.graph_break()
        run.quiet += 1
        try:
            return backward(self, *args, **kwargs)
        finally:
            run.quiet -= 1
    patches["backward"] = backward_eagerly

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
        if not run.quiet and run.records:
            run.graph_break()
        data.fset(self, value)
    patches["data"] = property(lambda self: self.detach(), set_data)
    patches.update(_operator_patches(run))
    return patches


def _operator_patches(run: LazyRun) -> dict:
    """`a * b`, `2 - a`, `-a`, `a += b` are recorded as dynamo records them: a call of
    the Python operator (operator.mul, ...), when the operator ran as one op."""
    from ..ir.operators import BINARY, UNARY
    patches = {}
    forms = []
    for row in BINARY:
        forms.append((row.dunder, row.fn, False))
        if row.reflected:
            forms.append((row.dunder.replace("__", "__r", 1), row.fn, True))
        inplace = getattr(operator, "i" + row.fn.__name__.rstrip("_"), None)
        if row.inplace_op is not None and inplace is not None:
            forms.append((row.dunder.replace("__", "__i", 1), inplace, False))
    forms += [(f"__{fn.__name__.rstrip('_')}__", fn, None) for fn, name in UNARY if name]
    for dunder, fn, reflected in forms:
        original = Tensor.__dict__.get(dunder)
        if original is not None:
            patches[dunder] = _recorded_operator(run, original, fn, reflected)
    return patches


def _recorded_operator(run: LazyRun, original, fn, reflected):
    def method(self, *other):
        if run.quiet or run._mode is None:
            return original(self, *other)
        operands = (other[0], self) if reflected else (self,) + other
        values = [run._value_of(v) for v in operands]
        records, before = run.records, len(run.records)
        result = original(self, *other)
        if run.records is records and len(records) == before + 1:
            record = records[-1]
            used = [v for v in _leaves((record.args, tuple(record.kwargs.values())))
                    if isinstance(v, _Value)]
            out = record.outs[0] if len(record.outs) == 1 else None
            if out is not None and out.ref is not None and out.ref() is result and \
                    all(any(u is v for v in values) for u in used):
                record.op, record.args, record.kwargs = fn, tuple(values), {}
        return result
    method.__name__ = original.__name__
    return method


# methods that read values (or memory) on the host: the segment ends before them
_READS = ("__bool__", "item", "tolist", "__int__", "__float__", "__index__", "__complex__",
          "numpy", "__array__", "__repr__", "__format__", "__reduce_ex__", "__deepcopy__")
# ember's own ways to a tensor's memory: the segment ends before them when they would
# read a pending tensor or memory the segment reads or writes
_MEMORY_READS = ("_values", "data_ptr", "untyped_storage", "storage_offset")

_PLACEMENT = {"device": _device,
              "is_cuda": lambda d: d.startswith("cuda"),
              "is_cpu": lambda d: d == "cpu",
              "is_meta": lambda d: False}

# tensors whose ops are deferred; a subclass (a quantized tensor, a user's) runs eagerly
_PLAIN_TENSORS = (Tensor, Parameter)
_RANDOM = Tag.RANDOM


def _code_of(fn):
    """The code object whose frame is the compiled function's (a module's forward, a
    callable object's __call__)."""
    if not hasattr(fn, "__code__"):
        fn = getattr(type(fn), "forward", None) or getattr(type(fn), "__call__", None)
    return getattr(getattr(fn, "__func__", fn), "__code__", None)


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

