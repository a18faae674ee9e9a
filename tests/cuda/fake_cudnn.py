"""A stand-in for NVIDIA's cuDNN frontend module (`import cudnn`) over emulated CUDA
memory (host memory): the graph calls ember makes are recorded, the heuristics list
`ENGINES` engine configs of which the first refuses to build (a deselected config, as
cuDNN's numerical-note filters make), and executing a plan computes the convolution
with torch on the tensors at the given pointers, recording which config ran. For tests
of code paths that need cuDNN where no GPU is (tests/cuda/test_aot_cuda_cudnn_emulated.py)."""
from __future__ import annotations

import ctypes
import pickle
import types

import numpy as np

ENGINES = ("eng7_k2=0_k3=1", "eng0_k2=3", "eng31_k5=2")
VERSION = 91900

data_type = types.SimpleNamespace(FLOAT="FLOAT", HALF="HALF", BFLOAT16="BFLOAT16")
numerical_note = types.SimpleNamespace(DOWN_CONVERT_INPUTS="DOWN_CONVERT_INPUTS",
                                       TENSOR_CORE="TENSOR_CORE",
                                       NONDETERMINISTIC="NONDETERMINISTIC")
heur_mode = types.SimpleNamespace(A="A", FALLBACK="FALLBACK")
build_plan_policy = types.SimpleNamespace(ALL="ALL", HEURISTICS_CHOICE="HEURISTICS_CHOICE")
executed: list = []           # (engine tag, workspace pointer) of each execution
serializable = False          # as frontends that serialize runtime-compiled engines only
serialized: list = []         # graphs asked to serialize, and those deserialized
deserialized: list = []       # (tests/cuda/test_cudnn_plan_cache.py)
engines = list(ENGINES)       # what the heuristics list (a test may change it)


def backend_version() -> int:
    return VERSION


def create_handle():
    return object()


def set_stream(handle, stream) -> None:
    if not isinstance(stream, int):
        raise TypeError(f"set_stream takes the stream's handle as an int, got {stream!r}")


class Tensor:
    def __init__(self, name, dim=None, stride=None, op=None, inputs=(), uid=0):
        self.name, self.dim, self.stride, self.op, self.inputs = name, dim, stride, op, inputs
        self.uid = uid

    def get_uid(self):
        return self.uid

    def set_output(self, flag):
        return self

    def set_dim(self, dim):
        self.dim = list(dim)
        return self

    def set_stride(self, stride):
        self.stride = list(stride)
        return self

    def set_data_type(self, dtype):
        return self


class pygraph:  # noqa: N801 - the frontend's name
    def __init__(self, **kwargs):
        self.calls, self.candidate, self.built = [("pygraph", sorted(kwargs))], None, set()
        self.tensors: list = []           # by uid - 1, for serialize and uid-keyed packs

    def _add(self, tensor):
        self.tensors.append(tensor)
        tensor.uid = len(self.tensors)
        return tensor

    def _node(self, op, inputs, **kwargs):
        self.calls.append((op, kwargs.get("name")))
        return self._add(Tensor(kwargs.get("name"), op=(op, kwargs), inputs=inputs))

    def tensor(self, name, dim, stride, data_type):
        self.calls.append(("tensor", name, tuple(dim), tuple(stride)))
        return self._add(Tensor(name, list(dim), list(stride)))

    def serialize(self):
        """The built plan and its tensors (the real frontend's blob is cuDNN's own)."""
        serialized.append(self)                 # each attempt
        if not serializable or self.candidate is None:
            raise RuntimeError("this engine config does not serialize")
        return pickle.dumps((self.tensors, self.candidate))

    def deserialize(self, handle, data):
        if isinstance(data, (bytes, str)):
            raise TypeError("deserialize takes the serialized plan as a list of ints")
        self.tensors, self.candidate = pickle.loads(bytes(data))
        self.built = {self.candidate}
        self.calls.append(("deserialize",))
        deserialized.append(self)

    def conv_fprop(self, image, weight, **kw):
        return self._node("conv_fprop", (image, weight), **kw)

    def bias(self, input, bias, **kw):  # noqa: A002 - the frontend's keyword
        return self._node("bias", (input, bias), **kw)

    def add(self, a, b, **kw):
        return self._node("add", (a, b), **kw)

    def relu(self, input, **kw):  # noqa: A002
        return self._node("relu", (input,), **kw)

    def __getattr__(self, name):
        if name in ("validate", "build_operation_graph", "create_execution_plans",
                    "deselect_numeric_notes", "check_support"):
            return lambda *args: self.calls.append((name,) + tuple(map(str, args)))
        raise AttributeError(name)

    def get_execution_plan_count(self):
        return len(engines)

    def get_plan_name_at_index(self, index):
        return engines[index]

    def build_plan_at_index(self, index):
        if index == 0:
            raise RuntimeError("Deselecting execution plan")
        self.built.add(index)

    def build_plans(self, policy):
        for index in range(len(engines)):
            try:
                self.build_plan_at_index(index)
            except RuntimeError:
                continue
            self.candidate = index
            return

    def get_workspace_size(self):
        return 256

    def get_workspace_size_plan_at_index(self, index):
        return 256

    def execute(self, pack, workspace, handle=None):
        pack = {self.tensors[t - 1] if isinstance(t, int) else t: p for t, p in pack.items()}
        self.execute_plan_at_index(pack, workspace, self.candidate, handle=handle)

    def execute_plan_at_index(self, pack, workspace, index, handle=None):
        if index not in self.built:
            raise RuntimeError(f"plan {index} was not built")
        executed.append((engines[index], workspace))
        _fprop(pack)


def _view(t: Tensor, ptr: int) -> np.ndarray:
    extent = 1 + sum((n - 1) * s for n, s in zip(t.dim, t.stride))
    raw = (ctypes.c_char * (extent * 4)).from_address(ptr)
    flat = np.frombuffer(raw, np.float32, extent)
    return np.lib.stride_tricks.as_strided(flat, t.dim, [s * 4 for s in t.stride])


def _fprop(pack: dict) -> None:
    """y = conv(x, w) (+ b) (+ z) (relu) for the graph whose output is among pack's keys."""
    import torch
    (out,) = [t for t in pack if t.op is not None]
    values = {t.name: torch.from_numpy(np.array(_view(t, p))) for t, p in pack.items()
              if t.op is None}

    def value(t):
        if t.op is None:
            return values[t.name]
        op, kw = t.op
        args = [value(i) for i in t.inputs]
        if op == "conv_fprop":
            return torch.nn.functional.conv2d(args[0], args[1], None, kw["stride"],
                                              kw["padding"], kw["dilation"])
        if op == "bias":
            return args[0] + args[1]
        if op == "add":
            return args[0] + args[1]
        return torch.relu(args[0])
    _view(out, pack[out])[...] = value(out).numpy()


def install(monkeypatch) -> None:
    """Make ember's cuDNN runtime load this stand-in (its module state, one handle, empty
    plan caches) with workspaces in host memory, for the duration of `monkeypatch`."""
    import sys
    from ember.runtime.cuda import cudnn as runtime_cudnn
    monkeypatch.setitem(sys.modules, "cudnn", sys.modules[__name__])
    monkeypatch.setattr(runtime_cudnn, "_state", {"module": sys.modules[__name__],
                                                  "tried": True, "why": None})
    monkeypatch.setattr(runtime_cudnn, "_handles", {0: create_handle()})
    monkeypatch.setattr(runtime_cudnn, "_plans", {})
    monkeypatch.setattr(runtime_cudnn, "_failed", {})
    workspaces: list = []          # kept alive while the plans may use them

    def host_workspace(nbytes, index):
        workspaces.append(np.zeros(nbytes, np.uint8))
        return workspaces[-1].ctypes.data
    monkeypatch.setattr(runtime_cudnn, "_workspace", host_workspace)
