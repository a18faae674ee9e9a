"""The bytes of an RPC message: pickled Python structure plus raw tensor buffers.

A message is `[8-byte length of the pickle][pickle][buffer 0][buffer 1]...`. Tensors are
never pickled as Python objects: the pickler replaces each one by a persistent id
holding only (tensor or Parameter, numpy dtype, shape, requires_grad, offset, nbytes),
and its contiguous bytes go after the pickle; a tensor that required grad arrives as a
leaf that requires grad. Functions travel as pickle does them, by qualified name, so a
function must be importable (module level) on the receiving worker.

Sending copies each tensor's bytes once, into the message (gRPC's Python API takes a
bytes object). The receiver copies the message once into a writable bytearray and
builds each tensor as a numpy view into it.
"""
from __future__ import annotations

import io
import pickle
import struct
import threading

import numpy as np

from ...frontend.factories import from_numpy
from ...frontend.nn.parameter import Parameter
from ...frontend.tensor import Tensor

_HEADER = struct.Struct("<Q")
_sending = threading.local()
UNKNOWN_PEER = -1


def destination():
    """While encode() runs: the rank the message goes to (UNKNOWN_PEER for replies), or
    None when a message is only encoded to list its tensors. RRefs read it to know
    whether they are being shared with a worker other than their owner."""
    return getattr(_sending, "rank", None)


class _TensorPickler(pickle.Pickler):
    def __init__(self, file, buffers: list, tensors: list):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._buffers = buffers
        self._tensors = tensors
        self._offset = 0

    def persistent_id(self, obj):
        if not isinstance(obj, Tensor):
            return None
        if obj.device.type != "cpu":
            raise RuntimeError("RPC sends CPU tensors only; move the tensor to CPU first "
                               f"(got a tensor on {obj.device})")
        array = obj.detach().numpy()
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)    # keeps 0-d shapes (only when strided)
        raw = array.reshape(-1).view(np.uint8)
        kind = "parameter" if isinstance(obj, Parameter) else "tensor"
        meta = (kind, array.dtype, tuple(array.shape), bool(obj.requires_grad),
                self._offset, raw.nbytes)
        self._buffers.append(raw)
        self._tensors.append(obj)
        self._offset += raw.nbytes
        return meta


class _TensorUnpickler(pickle.Unpickler):
    def __init__(self, file, data: bytearray, base: int):
        super().__init__(file)
        self._data = data
        self._base = base
        self.tensors: list = []        # (tensor, requires_grad) in message order

    def persistent_load(self, pid):
        kind, dtype, shape, requires_grad, offset, nbytes = pid
        start = self._base + offset
        array = np.frombuffer(self._data, dtype=np.uint8, count=nbytes, offset=start)
        tensor = from_numpy(array.view(dtype).reshape(shape))
        if kind == "parameter":
            tensor = Parameter(tensor, requires_grad=requires_grad)
        elif requires_grad:
            tensor.requires_grad_()            # arrives as a leaf, as in PyTorch's RPC
        self.tensors.append((tensor, requires_grad))
        return tensor


def encode(obj, tensors: list | None = None, to: int | None = None) -> bytes:
    """obj -> message bytes (tensors as raw buffers after the pickle). The tensors met
    are appended to `tensors`, in message order, when a list is given; `to` is the
    receiving rank (None: the message is not sent, only scanned). The tensors'
    bytes are copied once, straight into the message (gRPC's Python API sends bytes)."""
    buffers: list = []
    tensors = [] if tensors is None else tensors
    stream = io.BytesIO()
    previous, _sending.rank = destination(), to
    try:
        _TensorPickler(stream, buffers, tensors).dump(obj)
    finally:
        _sending.rank = previous
    pickled = stream.getbuffer()
    return b"".join([_HEADER.pack(pickled.nbytes), pickled, *(memoryview(b) for b in buffers)])


def decode(message: bytes):
    """message bytes -> (obj, [(tensor, requires_grad), ...])."""
    data = bytearray(message)
    (length,) = _HEADER.unpack_from(data, 0)
    pickled = memoryview(data)[_HEADER.size:_HEADER.size + length]
    unpickler = _TensorUnpickler(io.BytesIO(pickled), data, _HEADER.size + length)
    obj = unpickler.load()
    return obj, unpickler.tensors
