"""GraphModule.to_folder: write a GraphModule as an importable Python package.

    folder/__init__.py        from .module import *
    folder/module.py          class FxModule(ember.nn.Module): __init__ + forward
    folder/weights.safetensors  every parameter, buffer and tensor constant
    folder/<name>.pkl         (only for a submodule its repr cannot rebuild)

`__init__` rebuilds the module tree: ember.nn layers from their repr (checked at
write time: the rebuilt layer has the same type and state_dict shapes), plain
containers as `ember.nn.Module()`, parameters/buffers as empty tensors of the right
shape and dtype; then it loads weights.safetensors into the whole tree (strict), so
the package computes exactly what the GraphModule does. Functions the code calls
that are not ember's own are imported by name (`from math import sqrt as
math_sqrt`); one that cannot be imported by name is refused with its name.
"""
from __future__ import annotations

import importlib
import keyword
import os
import pickle
import types

import numpy as np

from ...ir.errors import EmberError
from ..nn.modules.module import Module
from ..tensor import Tensor
from .codegen import python_code

WEIGHTS = "weights.safetensors"


def write_folder(gm, folder: str, class_name: str) -> None:
    os.makedirs(folder, exist_ok=True)
    code = python_code(gm.graph)
    init_lines, tensors = [], {}
    _emit_members(gm, "self", "", folder, init_lines, tensors)
    info = getattr(gm.graph._codegen, "pytree_info", None)
    if info is not None:        # the code reads self._in_spec / self._out_spec
        with open(os.path.join(folder, "pytree_specs.pkl"), "wb") as f:
            pickle.dump((info.in_spec, info.out_spec), f)
        init_lines.append("self._in_spec, self._out_spec = pickle.load(open(os.path.join("
                          "os.path.dirname(__file__), 'pytree_specs.pkl'), 'rb'))")
    _save_tensors(tensors, os.path.join(folder, WEIGHTS))
    lines = ["import os", "import pickle", "", "import ember", "import operator"]
    lines += _global_imports(code.globals)
    lines += ["", "", f"class {class_name}(ember.nn.Module):", "    def __init__(self):",
              "        super().__init__()"]
    lines += ["        " + line for line in init_lines]
    lines += ["        ember.load_weights(self, os.path.join(os.path.dirname(__file__), "
              f"{WEIGHTS!r}))", ""]
    lines += ["    " + line for line in code.src.strip("\n").rstrip().splitlines()]
    with open(os.path.join(folder, "module.py"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(folder, "__init__.py"), "w") as f:
        f.write(f"from .module import {class_name}  # noqa: F401\n")


def _emit_members(module: Module, expr: str, prefix: str, folder: str, lines: list,
                  tensors: dict) -> None:
    """Statements that rebuild `module`'s direct members under `expr` (recursing into
    plain containers); the values they need go into `tensors` by qualified name."""
    for name, param in module._parameters.items():
        if param is not None:
            lines.append(f"{expr}.register_parameter({name!r}, ember.nn.Parameter("
                         f"{_empty(param)}, requires_grad={param.requires_grad}))")
            tensors[prefix + name] = param
    for name, buf in module._buffers.items():
        if buf is not None:
            lines.append(f"{expr}.register_buffer({name!r}, {_empty(buf)})")
            tensors[prefix + name] = buf
    for name, value in vars(module).items():       # tensor constants set as attributes
        if isinstance(value, Tensor) and not name.startswith("__"):
            lines.append(f"{expr}.register_buffer({name!r}, {_empty(value)})")
            tensors[prefix + name] = value
    for name, child in module._modules.items():
        if child is None:
            continue
        qualname = prefix + name
        constructor = _constructor(child)
        if constructor is None and type(child) is Module:
            lines.append(f"{expr}.add_module({name!r}, ember.nn.Module())")
            _emit_members(child, _member(expr, name), qualname + ".", folder, lines,
                          tensors)
            continue
        if constructor is None:
            constructor = _pickled(child, qualname, folder)
        lines.append(f"{expr}.add_module({name!r}, {constructor})")
        for key, value in child.state_dict().items():
            tensors[f"{qualname}.{key}"] = value


def _member(expr: str, name: str) -> str:
    """`self.inner`; `getattr(self.seq, "0")` where the name is no identifier."""
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"{expr}.{name}"
    return f'getattr({expr}, "{name}")'


def _empty(t: Tensor) -> str:
    return f"ember.empty({list(t.shape)}, dtype=ember.{t.dtype.name})"


def _constructor(child: Module) -> str | None:
    """`ember.nn.Linear(in_features=4, ...)` when evaluating the layer's repr rebuilds
    a layer of the same type and state_dict shapes; None otherwise."""
    import ember.nn
    text = repr(child)
    if "\n" in text or not type(child).__module__.startswith(("ember.frontend.nn",
                                                              "ember.nn")):
        return None
    try:
        rebuilt = eval(text, dict(vars(ember.nn)))   # noqa: S307 - our own layers' repr
    except Exception:  # noqa: BLE001 - a repr that is not a constructor call
        return None
    if type(rebuilt) is not type(child) or _shapes(rebuilt) != _shapes(child):
        return None
    return "ember.nn." + text


def _shapes(module: Module) -> dict:
    return {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}


def _pickled(child: Module, qualname: str, folder: str) -> str:
    filename = qualname.replace(".", "_") + ".pkl"
    with open(os.path.join(folder, filename), "wb") as f:
        pickle.dump(child, f)
    return (f"pickle.load(open(os.path.join(os.path.dirname(__file__), {filename!r}), "
            "'rb'))")


def _save_tensors(tensors: dict, path: str) -> None:
    from safetensors.numpy import save_file
    # np.array, not ascontiguousarray: that one turns 0-d values into shape [1]
    save_file({k: np.array(v.detach().numpy(), order="C") for k, v in tensors.items()},
              path)


def _global_imports(globals_: dict) -> list[str]:
    """`from math import sqrt as math_sqrt` for each global the code needs besides
    ember and operator."""
    lines = []
    for name, obj in globals_.items():
        if name in ("ember", "operator"):
            continue
        if isinstance(obj, types.ModuleType):     # the pytree code's helpers
            lines.append(f"import {obj.__name__} as {name}")
            continue
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if not module or not qualname or not _importable(obj, module, qualname):
            raise EmberError(f"GraphModule.to_folder: the code calls {obj!r}, which "
                             "cannot be imported by name")
        lines.append(f"from {module} import {qualname} as {name}")
    return lines


def _importable(obj, module: str, qualname: str) -> bool:
    if "." in qualname or "<" in qualname:
        return False
    try:
        return getattr(importlib.import_module(module), qualname, None) is obj
    except ImportError:
        return False


__all__ = ["write_folder"]
