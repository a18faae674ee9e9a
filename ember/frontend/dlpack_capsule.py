"""Reading a bare legacy DLPack capsule ("dltensor", what torch.utils.dlpack.to_dlpack and
ember's to_dlpack return) as a writable NumPy array over the producer's memory.

NumPy imports such capsules read-only (the legacy struct has no read-only flag), but
PyTorch's from_dlpack shares them writable: a write through the result is seen by the
producer. So the struct is read here with ctypes, the capsule renamed "used_dltensor"
(the protocol's mark that a consumer owns it), and the producer's deleter called when
the last array over the memory goes away.
"""
from __future__ import annotations

import ctypes
import enum

import numpy as np


class DLDeviceType(enum.IntEnum):
    """DLPack's device codes (the standard's numbering), as torch.utils.dlpack names them."""
    kDLCPU = 1
    kDLCUDA = 2
    kDLCUDAHost = 3
    kDLOpenCL = 4
    kDLVulkan = 7
    kDLMetal = 8
    kDLVPI = 9
    kDLROCM = 10
    kDLROCMHost = 11
    kDLExtDev = 12
    kDLCUDAManaged = 13
    kDLOneAPI = 14
    kDLWebGPU = 15
    kDLHexagon = 16
    kDLMAIA = 17


_CPU = DLDeviceType.kDLCPU
# DLDataTypeCode -> NumPy kind; kDLBfloat (4) is ml_dtypes' bfloat16
_KINDS = {0: "i", 1: "u", 2: "f", 5: "c", 6: "b"}


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32),
                ("dtype", _DataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _Managed(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_Managed))
_Managed._fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                     ("deleter", _DELETER)]

class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class _ManagedVersioned(ctypes.Structure):
    pass


_ManagedVersioned._fields_ = [("version", _Version), ("manager_ctx", ctypes.c_void_p),
                              ("deleter", ctypes.c_void_p), ("flags", ctypes.c_uint64),
                              ("dl_tensor", _DLTensor)]

_api = ctypes.pythonapi
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_SetName.restype = ctypes.c_int
_api.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]
_USED = ctypes.c_char_p(b"used_dltensor")     # SetName keeps the pointer: must outlive it


def is_legacy_capsule(obj) -> bool:
    return type(obj).__name__ == "PyCapsule" and bool(_api.PyCapsule_IsValid(obj, b"dltensor"))


class _Owner:
    """Holds the producer's memory; NumPy keeps it as the array's base."""

    def __init__(self, managed, interface) -> None:
        self._managed = managed
        self.__array_interface__ = interface

    def __del__(self) -> None:
        deleter = self._managed.contents.deleter
        if deleter:
            deleter(self._managed)


def array_of_capsule(capsule) -> np.ndarray:
    """A writable array sharing the memory a legacy CPU DLPack capsule describes."""
    address = _api.PyCapsule_GetPointer(capsule, b"dltensor")
    managed = ctypes.cast(address, ctypes.POINTER(_Managed))
    t = managed.contents.dl_tensor
    if t.device.device_type != _CPU:
        raise BufferError(f"from_dlpack: ember imports CPU memory only (DLPack device type "
                          f"{t.device.device_type})")
    dtype = _numpy_dtype(t.dtype)
    shape = tuple(t.shape[i] for i in range(t.ndim))
    strides = None if not t.strides else tuple(t.strides[i] * dtype.itemsize
                                               for i in range(t.ndim))
    interface = {"version": 3, "shape": shape, "typestr": dtype.str,
                 "data": ((t.data or 0) + t.byte_offset, False), "strides": strides}
    _api.PyCapsule_SetName(capsule, _USED)      # ours now: the capsule won't free it
    return np.asarray(_Owner(managed, interface)).view(dtype)


def mark_bfloat16(capsule):
    """A capsule NumPy made of bfloat16 memory viewed as uint16, relabelled bfloat16
    (kDLBfloat, 16 bits): NumPy has no bfloat16 to export, the bits are the same."""
    if _api.PyCapsule_IsValid(capsule, b"dltensor_versioned"):
        address = _api.PyCapsule_GetPointer(capsule, b"dltensor_versioned")
        tensor = ctypes.cast(address, ctypes.POINTER(_ManagedVersioned)).contents.dl_tensor
    else:
        address = _api.PyCapsule_GetPointer(capsule, b"dltensor")
        tensor = ctypes.cast(address, ctypes.POINTER(_Managed)).contents.dl_tensor
    tensor.dtype.code = 4
    return capsule


def _numpy_dtype(dt) -> np.dtype:
    if dt.lanes != 1:
        raise BufferError(f"from_dlpack: vector dtypes (lanes={dt.lanes}) are not supported")
    if dt.code == 4 and dt.bits == 16:
        from ..ir.dtypes import bfloat16
        return bfloat16.np_dtype
    if dt.code not in _KINDS:
        raise BufferError(f"from_dlpack: unsupported DLPack dtype code {dt.code}")
    return np.dtype(f"{_KINDS[dt.code]}{dt.bits // 8}") if dt.code != 6 else np.dtype(bool)
