"""The eager autograd tape: backward nodes and the engine that runs them.

Each differentiable op call records an `OpNode` holding the op, its bound
arguments (tensors with their version at record time) and, when the rule asks,
its output. `backward` walks nodes in reverse topological order, summing
gradients per (node, output) edge; leaves accumulate into `.grad` through their
`AccumulateGrad` node. The rules themselves are the registry's derivative
entries, written with ember ops, so `create_graph=True` simply runs them with
grad mode on and the gradients get histories of their own.
"""
from __future__ import annotations

import numpy as np

from ...ir import autodiff, profiling
from ...ir.dispatch import _modes as _MODES   # the live list: empty when no mode is on
from ...ir.meta import meta_of
from ...ir.errors import AutogradError
from ..tensor import Storage, Tensor, _HookHandle
from . import anomaly, grad_mode

_ANOMALY = anomaly._STATE               # the live state dict
_GRAD_STATE = grad_mode.STATE           # the live (per-thread) grad-mode flags
_MASK_UNSET = object()                  # OpNode._mask before its first backward
_COLLECTORS = profiling._collectors     # the live list: empty when nothing profiles


class NodeName(str):
    """A node's name: PyTorch spells it `grad_fn.name()` and ember's messages read it as
    the string `grad_fn.name`; a callable str serves both."""

    def __call__(self) -> str:
        return str(self)


class Node:
    """A backward function: `apply(grads per output) -> grads per input`."""
    name = NodeName("Node")
    n_outputs = 1                         # multi-output nodes set their own count

    def __init__(self):
        self.next_functions: tuple = ()   # one (node | None, output_nr) per input
        self.freed = False
        self.pre_hooks: dict[int, list] = {}
        if anomaly._STATE["enabled"]:      # where forward made this node, for the report
            self.__dict__["forward_trace"] = anomaly.forward_trace()

    def apply(self, grads: list):
        raise NotImplementedError

    def release(self) -> None:
        self.freed = True

    def __repr__(self) -> str:
        return f"<{self.name} object>"

    def register_hook(self, hook):
        """hook(grad_inputs, grad_outputs) -> new grad_inputs or None, called after this
        node runs (PyTorch's Node hooks); returns a removable handle."""
        hooks = self.__dict__.setdefault("post_hooks", [])
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def register_prehook(self, hook):
        """hook(grad_outputs) -> new grad_outputs or None, called before this node runs
        (after the hooks of the tensors it is the grad_fn of)."""
        hooks = self.__dict__.setdefault("node_pre_hooks", [])
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    @property
    def metadata(self) -> dict:
        """A dict for the user's own annotations, as torch's Node.metadata."""
        return self.__dict__.setdefault("_metadata", {})

    def name_(self) -> str:
        return self.name


_NAMED_CLASSES: dict = {}


def take_type_name(node: Node) -> None:
    """Make type(node).__name__ the node's name (MulBackward0, MyFnBackward), as torch's
    node classes are named: a subclass per (class, name), made once and cached."""
    by_name = _NAMED_CLASSES.get(type(node))
    if by_name is None:
        by_name = _NAMED_CLASSES[type(node)] = {}
    cls = by_name.get(node.name)
    if cls is None:
        name = str(node.name)
        cls = by_name[name] = type(name, (type(node),), {
            "__slots__": (), "__module__": type(node).__module__, "__qualname__": name})
    node.__class__ = cls


def edge_of(t) -> tuple:
    """Where the gradient of `t` goes: its grad_fn, its AccumulateGrad, or nowhere."""
    if not isinstance(t, Tensor) or not t.requires_grad:
        return (None, 0)
    if t.grad_fn is not None:
        return (t.grad_fn, t._output_nr)
    if t._grad_accumulator is None:
        t._grad_accumulator = AccumulateGrad(t)
    return (t._grad_accumulator, 0)


class AccumulateGrad(Node):
    name = NodeName("AccumulateGrad")

    def __init__(self, variable: Tensor):
        super().__init__()
        self.variable = variable
        # the .grad this node allocated itself (a sum it computed): nothing else shares
        # its memory, so later accumulations may add into it in place
        self._owned_grad = None

    def apply(self, grads):
        (grad,) = grads
        var = self.variable
        if var._hooks:
            grad = _run_tensor_hooks(var, grad)
            if grad is None:
                return ()
        elif grad is None:
            return ()
        if type(grad) is Tensor and grad._array.dtype != var._array.dtype and \
                grad.dtype != var.dtype and var.dtype.is_floating_point:
            grad = grad.to(var.dtype)       # a Function's backward in another precision
        enabled = _GRAD_STATE.enabled       # create_graph: .grad gets a history
        if var._grad is None:
            if enabled:
                self._first_grad_with_graph(var, grad)
            else:
                self._first_grad(var, grad)
        elif type(var._grad) is not Tensor or type(grad) is not Tensor:
            from ..sparse_coo import add_grads      # a sparse gradient on either side
            var._grad = add_grads(var._grad, grad if enabled else grad.detach())
        elif enabled:
            var._grad = var._grad + grad
        elif _accumulate_in_place(var._grad, grad):
            pass                            # PyTorch's `grad += new` (no new tensor)
        else:
            var._grad = self._owned_grad = (var._grad + grad).detach()
        if "post_accumulate_hooks" in self.__dict__:
            for hook in list(self.__dict__["post_accumulate_hooks"]):
                hook(var)
        return ()

    @staticmethod
    def _first_grad_with_graph(var: Tensor, grad) -> None:
        """create_graph=True: .grad is the gradient itself (its history kept), dense."""
        if type(grad) is Tensor and grad._storage.device == "cpu" and \
                _overlaps_itself(grad._array):
            grad = grad.contiguous()        # a dense .grad, through an op
        var._grad = grad
        if type(grad) is Tensor and grad._base is not None:
            var._grad = grad.clone()

    def _first_grad(self, var: Tensor, grad) -> None:
        """.grad = the gradient, detached, unless its memory is shared (below)."""
        if _aliases_root_cotangent(grad) or _already_given_to_a_leaf(grad):
            # a gradient that is (a view of) the cotangent passed to backward (Flatten,
            # reshape), or the very memory another leaf's .grad got (a + b hands both
            # the same gradient): copied, so zeroing one .grad leaves the others alone
            # and the next backward adds into this .grad in place, as into torch's
            new = self._owned_grad = grad.detach().clone()
        else:
            new = grad.detach()
            _given_to_a_leaf(new)
        var._grad = _in_layout_of(var, new) if type(new) is Tensor else new


_IN_PLACE_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def _accumulate_in_place(acc: Tensor, grad: Tensor) -> bool:
    """acc += grad on the CPU when the sum keeps acc's dtype and shape (the same values
    as the out-of-place add); False when it cannot, and then nothing was written."""
    if acc.requires_grad or acc.is_cuda or not isinstance(grad, Tensor) or grad.is_cuda:
        return False
    a, g = acc._array, grad._array
    if a.dtype != g.dtype or a.dtype.type not in _IN_PLACE_DTYPES or a.shape != g.shape or \
            not a.flags.writeable or np.may_share_memory(a, g):
        return False
    np.add(a, g, out=a)
    acc._bump_version()
    return True


#: (pack, unpack) pairs of the active autograd.graph.saved_tensors_hooks blocks
SAVED_TENSORS_HOOKS: list = []


class SavedTensor:
    """A tensor saved for backward, with the version it had; checked on unpack. Inside
    saved_tensors_hooks, what is kept is pack(tensor), and unpack(packed) returns it."""
    __slots__ = ("tensor", "version", "unpack_hook")

    def __init__(self, t: Tensor):
        if getattr(t._storage, "inference", False) and not grad_mode.is_inference_mode_enabled():
            raise AutogradError(
                "Inference tensors cannot be saved for backward. Please do not use Tensors "
                "created in inference mode in computation tracked by autograd. To work around "
                "this, you can make a clone to get a normal tensor and use it in autograd.")
        if SAVED_TENSORS_HOOKS:
            pack, self.unpack_hook = SAVED_TENSORS_HOOKS[-1]
            active = SAVED_TENSORS_HOOKS[:]
            SAVED_TENSORS_HOOKS.clear()       # ops inside pack save tensors unhooked
            try:
                self.tensor, self.version = pack(t), None
            finally:
                SAVED_TENSORS_HOOKS[:] = active
            return
        self.tensor = t
        self.version = t._version
        self.unpack_hook = None

    def unpack(self, node: "Node") -> Tensor:
        if self.unpack_hook is not None:
            return self.unpack_hook(self.tensor)
        t = self.tensor
        if t._version != self.version:
            raise AutogradError(
                "one of the variables needed for gradient computation has been modified by "
                f"an inplace operation: [{t.dtype} {list(t.shape)}] is at version {t._version}; "
                f"expected version {self.version} instead (saved by {node.name}). "
                "Hint: clone the tensor before modifying it in place.")
        return t


def _on_cpu(grads) -> bool:
    """True when no gradient lives on a device and no derivative rule's device is set:
    creation_device_like(grads) would keep the creation device at the CPU."""
    for t in grads:
        if isinstance(t, Tensor) and t._storage.device != "cpu":
            return False
    return _creation_device() == "cpu"


_CREATION_DEVICE: list = []             # devices.creation_device (devices imports this module)


def _creation_device():
    if not _CREATION_DEVICE:
        from ..devices import creation_device
        _CREATION_DEVICE.append(creation_device)
    return _CREATION_DEVICE[0]()


def _device_of(grads):
    from ..devices import creation_device_like
    return creation_device_like(grads)


class OpNode(Node):
    """Backward of one registry op call."""

    def __init__(self, op, bound: tuple, out, input_metas: tuple):
        # Node.__init__, inline: every recorded op call makes one of these
        self.next_functions = ()
        self.freed = False
        self.pre_hooks = {}
        if _ANOMALY["enabled"]:             # where forward made this node, for the report
            self.__dict__["forward_trace"] = anomaly.forward_trace()
        self.op = op
        plan = _NODE_PLANS.get(op)
        if plan is None:
            plan = _node_plan(op)
        keeps, name, cls = plan
        if name is None:                    # sum(dim=...), pow...: the arguments name it
            self.name = _node_name(op, bound, out)
            take_type_name(self)
        else:
            self.name = name
            self.__class__ = cls
        saved, unpacks = [], []
        for v, keep in zip(bound, keeps):   # _save, with the common cases inline
            if isinstance(v, Tensor):
                if keep:
                    unpacks.append(len(saved))
                    saved.append(SavedTensor(v))
                else:
                    saved.append(_meta_of_tensor(v))
            elif type(v) is list or type(v) is tuple:
                v = _save(v, keep)
                if _nested_saved(v):
                    unpacks.append(len(saved))
                saved.append(v)
            else:
                saved.append(v)
        self._saved = tuple(saved)
        # which saved arguments hold tensor values (unpacked, version-checked, freed):
        # found once here instead of type-testing every argument per backward
        self._unpacks = tuple(unpacks)
        self._out = _save(out) if op._derivative_wants_out else None
        self._mask = _MASK_UNSET
        self.input_metas = input_metas          # (shape, dtype) per tensor input, for reduction
        # a Tensor[] result of length 1 still gets its gradient as a tuple (split, unbind)
        self.multi_output = isinstance(out, (tuple, list))
        if self.multi_output:
            flat = output_tensors(out)      # a custom op's (List[Tensor], int): its tensors
            self.n_outputs = len(flat)
            self.output_metas = tuple((o.shape, o.dtype) for o in flat)
        else:
            self.n_outputs = 1
            self.output_metas = ((out._array.shape, out.dtype),)

    def __getattr__(self, attr: str):
        """torch's `grad_fn._saved_<argument>` (and `_saved_result`): what this node
        saved for its backward, unpacked (version-checked); an argument ember kept only
        the shape of has no such attribute."""
        if not attr.startswith("_saved_") or attr.startswith("_saved_tensor"):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{attr}'")
        want = attr[len("_saved_"):]
        if want == "result":
            if self.__dict__.get("_out") is None:
                self._raise_if_freed()
                raise AttributeError(f"'{type(self).__name__}' object has no attribute "
                                     f"'{attr}'")
            return _unpack(self._out, self)
        names = [arg.name for arg in self.op.schema.args]
        if want not in names:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{attr}'")
        self._raise_if_freed()
        value = self._saved[names.index(want)]
        if isinstance(value, (Tensor, SavedTensor)) or _holds_saved(value) or \
                not _holds_meta(value):
            return _unpack(value, self)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{attr}'")

    def _raise_if_freed(self):
        if self.__dict__.get("_saved") is None:
            raise AutogradError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time or "
                "if you need to access saved tensors after calling backward.")

    def release(self):
        self.freed = True
        # a node that saved no tensor values can run again, as in PyTorch (SumBackward0)
        if self._out is not None or self._unpacks:
            self._saved = None
            self._out = None

    def apply(self, grads):
        saved = self._saved
        if saved is None:
            raise AutogradError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                f"graph are freed when you call .backward() or autograd.grad(); op: "
                f"{self.op.name} ({self.name}). Specify retain_graph=True if you need to "
                "backward through the graph a second time.")
        if self._unpacks:
            bound = list(saved)
            for i in self._unpacks:
                v = saved[i]
                bound[i] = v.unpack(self) if type(v) is SavedTensor else _unpack(v, self)
            bound = tuple(bound)
        else:
            bound = saved
        out = self._out
        if out is not None:
            out = out.unpack(self) if type(out) is SavedTensor else _unpack(out, self)
        op = self.op
        if op.name == "embedding" and bound[4]:       # sparse=True: a sparse weight grad
            return _sparse_embedding_backward(self, grads, bound)
        rule = ARRAY_BACKWARD.get(op)
        if rule is not None and not _GRAD_STATE.enabled:
            done = _array_backward(self, rule, grads, bound, out)
            if done is not None:
                return done
        if _on_cpu(grads):                 # creation_device_like would change nothing
            raw = self._derivative(grads, bound, out)
        else:
            with _device_of(grads):        # tensors a rule creates live where grads do
                raw = self._derivative(grads, bound, out)
        return tuple(autodiff.fit_grad(g, shape, dtype) if g is not None else None
                     for g, (shape, dtype) in _flatten_grads(raw, self.input_metas))

    def _derivative(self, grads, bound, out):
        grad = self._materialize(grads)
        # autodiff.input_grad_mask's setting, without a generator context per node
        saved, autodiff._INPUT_MASK[0] = autodiff._INPUT_MASK[0], self._input_mask()
        try:
            return self.op.call_derivative(grad, bound, out)
        finally:
            autodiff._INPUT_MASK[0] = saved

    def _input_mask(self):
        """Per tensor argument, whether its gradient goes anywhere (None: all do, or
        list arguments make the mapping ambiguous); found once per node, since its edges
        are set when it is recorded and never change after."""
        mask = self._mask
        if mask is _MASK_UNSET:
            edges = self.next_functions
            if len(edges) != len(self.op.schema.tensor_arg_indices) or \
                    all(node is not None for node, _ in edges):
                mask = None
            else:
                mask = tuple(node is not None for node, _ in edges)
            self._mask = mask
        return mask

    def _materialize(self, grads):
        if not self.multi_output:
            (g,) = grads
            if g is None:
                shape, dtype = self.output_metas[0]
                return autodiff.zeros(shape, dtype)
            return g
        return tuple(g if g is not None else autodiff.zeros(shape, dtype)
                     for g, (shape, dtype) in zip(grads, self.output_metas))


# op -> rule(grad array, bound arguments, output, input mask) -> one array (or None) per
# tensor argument, or None to decline: NumPy backwards for ops whose op-composed rule
# costs more in dispatch than in arithmetic (eager_backward.py registers them). They run
# only where the composed rule would run the same NumPy kernels unobserved: no graph
# of the gradients (create_graph=False), no dispatch mode, CPU arrays.
ARRAY_BACKWARD: dict = {}


def _sparse_embedding_backward(node: OpNode, grads, bound):
    from ..sparse_coo import embedding_grad
    weight, indices, padding_idx, scale_grad_by_freq, _ = bound
    with _device_of(grads):
        grad = node._materialize(grads)
        shape = node.input_metas[0][0]
        return (embedding_grad(grad, indices, padding_idx, scale_grad_by_freq, shape), None)


def _array_backward(node: OpNode, rule, grads, bound, out):
    if node.multi_output or len(grads) != 1:
        return None
    g = grads[0]
    if type(g) is not Tensor or g._storage.device != "cpu" or _MODES:
        return None
    mask = node._mask
    if mask is _MASK_UNSET:
        mask = node._input_mask()
    # a rule flagged `takes_tensor` gets the gradient tensor (to return views of it)
    raw = rule(g if getattr(rule, "takes_tensor", False) else g._array, bound, out, mask)
    if raw is None:
        return None
    return tuple(None if a is None else _fit_array(a, shape, dtype)
                 for a, (shape, dtype) in zip(raw, node.input_metas))


def _fit_array(a, shape, dtype) -> Tensor:
    if type(a) is Tensor:
        a, tensor = a._array, a
    else:
        tensor = None
    if a.shape != tuple(shape) or a.dtype != dtype.np_dtype:
        raise AutogradError(f"internal: a backward rule gave {a.dtype}{list(a.shape)} for an "
                            f"input of {dtype}{list(shape)}")
    if tensor is not None:
        return tensor
    flags = a.flags
    if a.base is None and flags.c_contiguous and flags.writeable and a.ndim:
        # a fresh dense array (most rules' results): its flat view is its storage
        return Tensor._make(a, Storage(a if a.ndim == 1 else a.reshape(-1)))
    return Tensor._from_array(a, copy=False)


def _flatten_grads(raw, input_metas):
    """Pair each gradient with its input's (shape, dtype), expanding Tensor[] arguments."""
    flat = []
    for g in raw:
        if isinstance(g, (list, tuple)):
            flat.extend(g)
        else:
            flat.append(g)
    if len(flat) != len(input_metas):
        raise AutogradError(f"derivative produced {len(flat)} gradients for "
                            f"{len(input_metas)} tensor inputs")
    return zip(flat, input_metas)


_RENAMED = {"convert_element_type": "ToCopy", "contiguous": "Clone"}


_SPECIAL_NAMES = {"sum", "mean", "squeeze", "pow", "sub", "reshape"}
_PLAIN_NAMES: dict = {}                  # op -> its name when no argument changes it


def _node_name(op, bound: tuple, out) -> str:
    """PyTorch's grad_fn class name for this call (`SumBackward1` for sum over dims...)."""
    name, overload = op.name.split("::")[-1].strip("_"), 0   # custom ops: no namespace
    if name not in _SPECIAL_NAMES:
        plain = _PLAIN_NAMES.get(op)
        if plain is None:
            plain = _PLAIN_NAMES[op] = NodeName(f"{_RENAMED.get(name) or _camel(name)}Backward0")
        return plain
    args = dict(zip((a.name for a in op.schema.args), bound))
    if name in ("sum", "mean") and args.get("dim") is not None:
        overload = 1
    elif name == "squeeze" and args.get("dim") is not None:
        overload = 1
    elif name == "pow":
        overload = 2 if not isinstance(args.get("self"), Tensor) else \
            1 if isinstance(args.get("exponent"), Tensor) else 0
    elif name == "sub" and not isinstance(args.get("self"), Tensor):
        name, overload = "rsub", 1
    elif name == "reshape":
        src = args.get("self")
        shares = isinstance(out, Tensor) and isinstance(src, Tensor) and \
            out._storage is src._storage
        name = "view" if shares else "unsafe_view"
    return NodeName(f"{_RENAMED.get(name) or _camel(name)}Backward{overload}")


# op -> (per argument whether its value is saved, the node name and class when no
# argument changes the name, else None and None): what OpNode works out once per op
_NODE_PLANS: dict = {}


def _node_plan(op) -> tuple:
    keeps = tuple(_keeps_value(op, arg.name) for arg in op.schema.args)
    name = cls = None
    if op.name.split("::")[-1].strip("_") not in _SPECIAL_NAMES:
        name = _node_name(op, (), None)
        probe = OpNode.__new__(OpNode)      # take_type_name's class for that name
        probe.name = name
        take_type_name(probe)
        cls = type(probe)
    plan = _NODE_PLANS[op] = (keeps, name, cls)
    return plan


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.strip("_").split("_"))


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _keeps_value(op, arg_name: str) -> bool:
    return op.saves is None or arg_name in op.saves


_METAS: dict = {}                        # (dtype, shape, strides) -> TensorMeta, CPU


def _meta_of_tensor(t: Tensor):
    """meta_of(t), shared between CPU tensors of the same geometry (TensorMeta is
    immutable): a node that saves only metadata costs a dict lookup."""
    a = t._array
    if type(a) is not np.ndarray:
        return meta_of(t)
    key = (a.dtype, a.shape, a.strides)
    meta = _METAS.get(key)
    if meta is None:
        if len(_METAS) >= 4096:
            _METAS.clear()
        meta = _METAS[key] = meta_of(t)
    return meta


def output_tensors(out) -> tuple:
    """An op's output tensors in order, through nested lists (a custom op's
    `(List[Tensor], int)`); Python scalar outputs have no gradient and are skipped.
    These are the outputs' `output_nr` positions."""
    if isinstance(out, Tensor):
        return (out,)
    if isinstance(out, (list, tuple)):
        return tuple(t for o in out for t in output_tensors(o))
    return ()


def _nested_tensors(v) -> bool:
    return any(isinstance(x, Tensor) or (isinstance(x, (list, tuple)) and _nested_tensors(x))
               for x in v)


def _nested_saved(v) -> bool:
    return any(isinstance(x, SavedTensor) or (isinstance(x, (list, tuple)) and _nested_saved(x))
               for x in v)


def _holds_meta(v) -> bool:
    """A tensor argument ember kept only the geometry of (no value to hand out)."""
    from ...ir.meta import TensorMeta
    if isinstance(v, TensorMeta):
        return True
    return isinstance(v, (list, tuple)) and any(_holds_meta(x) for x in v)


def _save(v, keep_value: bool = True):
    if isinstance(v, Tensor):
        return SavedTensor(v) if keep_value else _meta_of_tensor(v)
    if isinstance(v, (list, tuple)) and _nested_tensors(v):
        return type(v)(_save(x, keep_value) for x in v)
    return v


def _holds_saved(v) -> bool:
    if isinstance(v, SavedTensor):
        return True
    return isinstance(v, (list, tuple)) and _nested_saved(v)


def _unpack(v, node):
    if isinstance(v, SavedTensor):
        return v.unpack(node)
    if isinstance(v, (list, tuple)) and _nested_saved(v):
        return type(v)(_unpack(x, node) for x in v)
    return v


def _run_tensor_hooks(t: Tensor, grad):
    if t._hooks:
        for hook in list(t._hooks):
            new = hook(grad)
            if new is not None:
                grad = new
    return grad


def _topological_order(roots) -> list:
    """Nodes reachable from `roots`, each after every node that feeds it a gradient."""
    order, seen = [], set()
    stack = [(n, False) for n in roots if n is not None]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for nxt, _ in node.next_functions:
            if nxt is not None and nxt not in seen:
                stack.append((nxt, False))
    order.reverse()
    return order


# the NumPy arrays of the cotangents each running backward() started from (nested runs
# stack): a leaf gradient sharing memory with one is copied before it becomes .grad
_ROOT_COTANGENTS: list = []


# per running backward(): the NumPy buffers (by id, kept alive) already made some leaf's
# .grad, so a second leaf handed the same memory copies it
_GIVEN_TO_LEAVES: list = []


def _buffer_of(arr):
    while isinstance(getattr(arr, "base", None), np.ndarray):
        arr = arr.base
    return arr


def _already_given_to_a_leaf(grad) -> bool:
    if not _GIVEN_TO_LEAVES or type(grad) is not Tensor or grad._storage.device != "cpu":
        return False
    return id(_buffer_of(grad._array)) in _GIVEN_TO_LEAVES[-1]


def _given_to_a_leaf(grad) -> None:
    if _GIVEN_TO_LEAVES and type(grad) is Tensor and grad._storage.device == "cpu":
        buf = _buffer_of(grad._array)
        _GIVEN_TO_LEAVES[-1][id(buf)] = buf


def _in_layout_of(var: Tensor, grad: Tensor) -> Tensor:
    """A new .grad laid out as its parameter when the parameter is dense and not
    overlapping (channels_last weights, transposed parameters), as torch's AccumulateGrad:
    the optimizer then updates both with one memory order."""
    a, g = var._array, grad._array
    if var._storage.device != "cpu" or type(a) is not np.ndarray or type(g) is not np.ndarray:
        return grad
    if _overlaps_itself(g) and a.size == g.size:
        # an expanded gradient (sum's): a dense .grad, which in-place updates may write
        # (grad.mul_(clip) in gradient clipping), as torch's AccumulateGrad makes
        dense = np.empty(g.shape, dtype=g.dtype)
        np.copyto(dense, g)
        grad = Tensor._adopt(dense)
        g = dense
    if a.ndim < 2 or a.strides == g.strides or a.size != g.size or a.size == 0:
        return grad
    order = sorted(range(a.ndim), key=lambda d: (-a.strides[d], -d))
    dense = np.empty(tuple(a.shape[d] for d in order), dtype=g.dtype).transpose(
        np.argsort(order))
    if dense.strides != a.strides:
        return grad                     # overlapping or gapped: torch keeps the grad's own
    np.copyto(dense, g)
    return Tensor._adopt(dense)


def _overlaps_itself(arr: np.ndarray) -> bool:
    return arr.size > 1 and any(st == 0 and n > 1 for st, n in zip(arr.strides, arr.shape))


def _aliases_root_cotangent(grad) -> bool:
    if not _ROOT_COTANGENTS or type(grad) is not Tensor or grad._storage.device != "cpu":
        return False
    arr = grad._array
    return any(np.may_share_memory(arr, root) for root in _ROOT_COTANGENTS[-1])


def run_backward(outputs, grad_outputs, retain_graph, create_graph, capture=None,
                 accumulate=True):
    """Core engine. `capture` maps (node, nr) -> slot for autograd.grad; returns captured grads."""
    roots = [g._array for g in grad_outputs if type(g) is Tensor and g._storage.device == "cpu"]
    _ROOT_COTANGENTS.append(roots)
    _GIVEN_TO_LEAVES.append({})
    try:
        return _run_backward(outputs, grad_outputs, retain_graph, create_graph, capture,
                             accumulate)
    finally:
        _ROOT_COTANGENTS.pop()
        _GIVEN_TO_LEAVES.pop()


def _run_backward(outputs, grad_outputs, retain_graph, create_graph, capture, accumulate):
    buffers: dict = {}
    for out, g in zip(outputs, grad_outputs):
        node, nr = edge_of(out)
        if node is None:
            raise AutogradError("element 0 of tensors does not require grad and does not have "
                                "a grad_fn")
        # several outputs may be outputs of one multi-output node (chunk, eigh...)
        _add_to_buffer(buffers, node, nr, g, node.n_outputs)
    captured = {}
    order = _topological_order([edge_of(o)[0] for o in outputs])
    runs = _leading_to_captured(order, capture) if capture is not None else None
    with grad_mode.set_grad_enabled(create_graph):
        if capture is None and accumulate:
            _walk(order, buffers, retain_graph)
            return captured
        for node in order:
            if runs is not None and node not in runs and not any(
                    (node, nr) in capture for nr in range(node.n_outputs)):
                continue     # autograd.grad: nothing below this node is asked for
            n_out = node.n_outputs
            grads = buffers.pop(node, None) or [None] * n_out
            if node.pre_hooks or "node_pre_hooks" in node.__dict__:
                grads = _run_pre_hooks(node, grads)
            if capture is not None:
                for nr, g in enumerate(grads):
                    if (node, nr) in capture:
                        if isinstance(node, AccumulateGrad) and g is not None:
                            g = _run_tensor_hooks(node.variable, g)    # a leaf's hooks
                        captured[capture[(node, nr)]] = g
            if runs is not None and node not in runs:
                continue     # a captured input's own history is not differentiated
            if not accumulate and isinstance(node, AccumulateGrad):
                continue
            if grads[0] is None if n_out == 1 else all(g is None for g in grads):
                continue
            _apply_and_pass_on(node, grads, buffers, retain_graph)
    return captured


def _walk(order: list, buffers: dict, retain_graph: bool) -> None:
    """backward()'s walk (no autograd.grad capture): the loop of _run_backward with its
    capture tests left out, the same steps per node in the same order."""
    for node in order:
        n_out = node.n_outputs
        grads = buffers.pop(node, None) or [None] * n_out
        if node.pre_hooks or "node_pre_hooks" in node.__dict__:
            grads = _run_pre_hooks(node, grads)
        if grads[0] is None if n_out == 1 else all(g is None for g in grads):
            continue
        _apply_and_pass_on(node, grads, buffers, retain_graph)


def _apply_and_pass_on(node, grads: list, buffers: dict, retain_graph: bool) -> None:
    """One node's step of both walks: its backward (under anomaly mode or a profiler
    row where on), its post hooks, its input gradients added to the next nodes'
    buffers, and its saved values freed unless retain_graph."""
    if _ANOMALY["enabled"]:
        results = anomaly.apply_reporting(node, grads)
    elif not _COLLECTORS:
        results = node.apply(grads)
    else:   # the profiler's row name for a backward node, as PyTorch's
        with profiling.record(f"autograd::engine::evaluate_function: {node.name}",
                              "autograd"):
            results = node.apply(grads)
    if "post_hooks" in node.__dict__:
        results = _run_post_hooks(node, results, grads)
    for (nxt, nr), g in zip(node.next_functions, results):
        if nxt is not None and g is not None:
            if nxt not in buffers and nxt.n_outputs == 1:
                buffers[nxt] = [g]          # _add_to_buffer's first gradient
            else:
                _add_to_buffer(buffers, nxt, nr, g, nxt.n_outputs)
    if not retain_graph:
        node.release()


def _leading_to_captured(order: list, capture: dict) -> set:
    """The nodes autograd.grad must run: those with a captured input below them (as
    PyTorch's engine, which leaves the rest of the graph, and its saved tensors,
    untouched)."""
    targets = {node for node, _ in capture}
    reaches: set = set()
    for node in reversed(order):               # every node after the nodes it feeds
        if any(nxt is not None and (nxt in targets or nxt in reaches)
               for nxt, _ in node.next_functions):
            reaches.add(node)
    return reaches


def _replaced_by_hook(hook, old, new):
    """A Node hook's return value: None keeps `old`; else as many values as `old`."""
    if new is None:
        return old
    new = tuple(new) if isinstance(new, (tuple, list)) else (new,)
    if len(new) != len(old):
        raise AutogradError(f"hook '{getattr(hook, '__name__', hook)}' has returned an "
                            f"incorrect number of values (got {len(new)}, but expected "
                            f"{len(old)})")
    return list(new)


def _run_post_hooks(node, results, grads):
    hooks = node.__dict__.get("post_hooks")
    if not hooks:
        return results
    # an input that does not require grad has no gradient, as torch's hooks see it
    results = tuple(None if nxt is None else g
                    for (nxt, _), g in zip(node.next_functions, results))
    for hook in list(hooks):
        results = tuple(_replaced_by_hook(hook, results, hook(results, tuple(grads))))
    return results


def _run_pre_hooks(node, grads):
    """Tensor hooks of non-leaf tensors live on their grad_fn, keyed by output number;
    the node's own pre-hooks (register_prehook) run after them on all its grads."""
    node_hooks = node.__dict__.get("node_pre_hooks")
    if node_hooks:
        grads = _run_tensor_pre_hooks(node, grads)
        for hook in list(node_hooks):
            grads = _replaced_by_hook(hook, grads, hook(tuple(grads)))
        return grads
    return _run_tensor_pre_hooks(node, grads)


def _run_tensor_pre_hooks(node, grads):
    if not node.pre_hooks:
        return grads
    grads = list(grads)
    for nr, hooks in node.pre_hooks.items():
        # retain_grad's store runs after the tensor's other hooks, whenever it was
        # registered, so .grad holds the gradient the hooks produced (as in PyTorch)
        for hook in sorted(hooks, key=_stores_retained_grad):
            if grads[nr] is not None:
                new = hook(grads[nr])
                if new is not None:
                    grads[nr] = new
    return grads


def _stores_retained_grad(hook) -> bool:
    return getattr(hook, "stores_retained_grad", False)


def _add_to_buffer(buffers, node, nr, g, n_out):
    slot = buffers.setdefault(node, [None] * n_out)
    if slot[nr] is None:
        slot[nr] = g
    elif type(slot[nr]) is Tensor and type(g) is Tensor:
        slot[nr] = slot[nr] + g
    else:                               # a sparse gradient (embedding's sparse=True)
        from ..sparse_coo import add_grads
        slot[nr] = add_grads(slot[nr], g)


def _default_grad(t: Tensor, g):
    if g is not None:
        if not isinstance(g, Tensor):
            from ..factories import tensor
            g = tensor(g, dtype=t.dtype)
        if tuple(g.shape) != tuple(t.shape):
            raise AutogradError(f"Mismatch in shape: grad_output[0] has a shape of "
                                f"{list(g.shape)} and output[0] has a shape of {list(t.shape)}.")
        return g
    if t.numel() != 1:
        raise AutogradError(f"grad can be implicitly created only for scalar outputs; got an "
                            f"output of shape {list(t.shape)}")
    if t.dtype.is_complex:
        raise AutogradError(f"grad can be implicitly created only for real scalar outputs "
                            f"but got {t.dtype}")
    if type(t) is Tensor and t._storage.device == "cpu" and type(t._array) is np.ndarray \
            and not _MODES and not _COLLECTORS:
        # ones_like's result (a fresh dense array of t's shape and dtype), without an op
        # call that no mode or profiler watches
        one = np.ones(t._array.shape, t._array.dtype)
        return Tensor._make(one, Storage(one.reshape(-1)))
    return autodiff.ones_like_value(t)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """torch.autograd.backward."""
    tensors = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif not isinstance(grad_tensors, (list, tuple)):
        grad_tensors = [grad_tensors]
    if retain_graph is None:
        retain_graph = create_graph
    for t in tensors:
        if not t.requires_grad:
            raise AutogradError("element 0 of tensors does not require grad and does not "
                                "have a grad_fn")
    grads = [_default_grad(t, g) for t, g in zip(tensors, grad_tensors)]
    if inputs is not None:
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        got = grad(tensors, inputs, grads, retain_graph, create_graph, allow_unused=True)
        for t, g in zip(inputs, got):
            if g is not None:
                t.grad = g if t.grad is None else t.grad + g
        return
    run_backward(tensors, grads, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=None, is_grads_batched=False,
         materialize_grads=False):
    """torch.autograd.grad: gradients of `outputs` w.r.t. `inputs`, without touching .grad.
    only_inputs is PyTorch's deprecated no-op flag (WGAN-GP code still passes it).
    is_grads_batched: the first dim of every grad_outputs tensor is a batch of cotangents;
    each input's gradient gets that batch dim in front (one backward per row here)."""
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when "
                         "materialize_grads=True, but got: allow_unused=False.")
    if is_grads_batched:
        return _batched_grad(outputs, inputs, grad_outputs, retain_graph, create_graph,
                             allow_unused, materialize_grads)
    single = isinstance(outputs, Tensor)
    outputs = [outputs] if single else list(outputs)
    inputs_single = isinstance(inputs, Tensor)
    inputs = [inputs] if inputs_single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    if retain_graph is None:
        retain_graph = create_graph
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise AutogradError(f"One of the differentiated Tensors (input {i}) does not "
                                "require grad")
    capture = {}
    for i, t in enumerate(inputs):
        capture[edge_of(t)] = i
    live = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if not live:
        raise AutogradError("element 0 of tensors does not require grad and does not have a "
                            "grad_fn")
    grads = [_default_grad(o, g) for o, g in live]
    captured = run_backward([o for o, _ in live], grads, retain_graph, create_graph,
                            capture=capture, accumulate=False)
    result = []
    for i, t in enumerate(inputs):
        g = captured.get(i)
        if g is None:
            if materialize_grads:
                g = autodiff.zeros(tuple(t.shape), t.dtype)
            elif not allow_unused:
                raise AutogradError(f"One of the differentiated Tensors (input {i}) appears to "
                                    "not have been used in the graph. Set allow_unused=True if "
                                    "this is the desired behavior.")
        elif not create_graph:
            g = g.detach()
        result.append(g)
    return tuple(result)


def _batched_grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused,
                  materialize_grads):
    """autograd.grad(..., is_grads_batched=True): the per-row gradients, stacked."""
    from ...ir.ops import OPS_NS
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    cots = [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs or ())
    if len(cots) != len(outputs) or any(not isinstance(c, Tensor) or c.dim() == 0
                                        for c in cots):
        raise AutogradError("autograd.grad: is_grads_batched=True needs one grad_outputs "
                            "tensor per output, each with a leading batch dim")
    sizes = {int(c.shape[0]) for c in cots}
    if len(sizes) != 1:
        raise AutogradError(f"autograd.grad: is_grads_batched=True needs every grad_outputs "
                            f"tensor to have the same batch size, got {sorted(sizes)}")
    rows = []
    n = sizes.pop()
    for b in range(n):
        keep = True if b < n - 1 else retain_graph
        rows.append(grad(outputs, inputs, [c[b] for c in cots], keep, create_graph,
                         allow_unused=allow_unused, materialize_grads=materialize_grads))
    return tuple(None if col[0] is None else OPS_NS.stack(list(col), 0)
                 for col in zip(*rows))
