"""Import third-party PyTorch model code with `torch` replaced by `ember`.

Issue 17 asks that ecosystem model code (timm's ResNet, ConvNeXt, ViT, ...) run on
ember after changing imports only. Editing a package's source is not practical, so
`torch_as_ember()` does the import change for it: while the context is active,
`import torch`, `import torch.nn.functional as F`, `from torch.utils.checkpoint import
checkpoint` and so on resolve to ember's modules (`ember`, `ember.nn.functional`, ...),
and the named packages (e.g. "timm") are imported fresh against them. On exit the real
torch and the real packages come back into sys.modules, so the same test can run the
PyTorch reference next to the ember port. The ember-bound copies of the packages are
cached and reinstalled on the next entry: a package is only imported once per process.

`copy_state_dict(torch_model, ember_model)` copies weights by key name, so both models
compute with the same numbers.
"""
from __future__ import annotations

import builtins
import collections
import contextlib
import copy
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

import numpy as np
import pytest

#: packages that are never imported with torch aliased (the oracle and its friends)
_ALIASED_ROOT = "torch"


def _is_under(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


class _AliasLoader(importlib.abc.Loader):
    """Hands an existing ember module to the import system under a torch name."""

    def __init__(self, module: types.ModuleType):
        self.module = module
        self.original_spec = getattr(module, "__spec__", None)

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        # the import system rewrites __spec__ to the alias's spec; keep ember's own
        module.__spec__ = self.original_spec


def _ember_counterpart(fullname: str) -> types.ModuleType:
    """ember's module for torch's module `fullname` (imported if need be)."""
    ember_name = "ember" + fullname[len(_ALIASED_ROOT):]
    try:
        return importlib.import_module(ember_name)
    except ModuleNotFoundError as error:
        if error.name is not None and not _is_under(error.name, "ember"):
            raise      # a real third-party dependency of ember is missing
        raise ModuleNotFoundError(
            f"ember has no counterpart of module '{fullname}' (looked for "
            f"'{ember_name}')", name=fullname) from None


#: how many torch_as_ember blocks are running (their finder aliases torch's modules)
_ACTIVE_BLOCKS = [0]


#: the arguments (shims, hidden) of the block that ported each package, to enter it again
_PORT_BLOCKS: dict[str, tuple] = {}


def _ported_package_of(absolute: str) -> str | None:
    return next((package for package in _PORT_BLOCKS if _is_under(absolute, package)), None)


def _reentered(package: str):
    """A torch_as_ember block for `package` as it was ported (its copy reinstalled)."""
    shims, hidden = _PORT_BLOCKS[package]
    return torch_as_ember(package, shims=shims, hidden=hidden)


def _aliasing_import(name, globals=None, locals=None, fromlist=(), level=0):
    """__import__ for a ported package's modules. Run inside one of its functions after
    the `torch_as_ember` block ended: `import torch...` still gives ember, and imports of
    the package's own modules (`from .integrations import x`) give its ember-bound copy,
    importing any not loaded yet in a block again. Within a block the import system's
    own aliasing serves both."""
    if not _ACTIVE_BLOCKS[0]:
        if level == 0 and _is_under(name, _ALIASED_ROOT):
            module = _ember_counterpart(name)
            return module if fromlist else sys.modules["ember"]
        absolute = importlib.util.resolve_name("." * level + name, (globals or {}).get(
            "__package__")) if level else name
        package = _ported_package_of(absolute)
        if package is not None:
            with _reentered(package):
                return builtins.__import__(name, globals, locals, fromlist, level)
    return builtins.__import__(name, globals, locals, fromlist, level)


class _PortedView(types.ModuleType):
    """What a block yields for a ported package: the ember-bound module, whose lazily
    loaded attributes (transformers' `transformers.BertModel`) are loaded in a block
    again when first read after the block ended, so they are the ember-bound ones too."""

    def __init__(self, module: types.ModuleType, package: str):
        super().__init__(module.__name__, module.__doc__)
        object.__setattr__(self, "_ported", (module, package))

    def __getattr__(self, name):
        module, package = object.__getattribute__(self, "_ported")
        if _ACTIVE_BLOCKS[0] or name in module.__dict__:
            return getattr(module, name)
        with _reentered(package):
            return getattr(module, name)

    def __setattr__(self, name, value):
        setattr(object.__getattribute__(self, "_ported")[0], name, value)

    def __dir__(self):
        return dir(object.__getattribute__(self, "_ported")[0])


#: the builtins a ported package's modules run with (their own __import__)
_PORTED_BUILTINS = {**builtins.__dict__, "__import__": _aliasing_import}


class _PortedLoader(importlib.abc.Loader):
    """Runs a ported package's module with _PORTED_BUILTINS: functions keep the builtins
    of the globals they were created in, so imports inside them resolve as at import."""

    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        module.__dict__["__builtins__"] = _PORTED_BUILTINS
        self.inner.exec_module(module)

    def __getattr__(self, name):        # get_source, get_code, is_package, ...
        return getattr(self.inner, name)


class _TorchToEmberFinder(importlib.abc.MetaPathFinder):
    """Resolves `torch` and `torch.<sub>` to `ember` and `ember.<sub>`, and loads the
    modules of the packages being ported with _PortedLoader."""

    def __init__(self, packages: tuple[str, ...] = ()):
        self.packages = packages

    def find_spec(self, fullname, path=None, target=None):
        if _owned(fullname, self.packages):
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and spec.loader is not None and \
                    hasattr(spec.loader, "exec_module"):
                spec.loader = _PortedLoader(spec.loader)
            return spec
        if not _is_under(fullname, _ALIASED_ROOT):
            return None
        module = _ember_counterpart(fullname)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(module))


#: ember-bound copies of ported packages, by module name, reused across entries
_PORTED_MODULES: dict[str, types.ModuleType] = {}


def _owned(name: str, roots: tuple[str, ...]) -> bool:
    return any(_is_under(name, root) for root in roots)


#: packages compiled against torch (their C++ ops register with torch's dispatcher), which
#: cannot be imported against ember; torchao also imports submodules lazily, so even an
#: already imported torchao would load pieces against ember inside a block
_TORCH_EXTENSIONS = ("torchvision", "torchaudio", "torchcodec", "torch_xla", "torch_npu")
_ALWAYS_HIDDEN = ("torchao",)


#: pure-Python modules that bind a format library to torch (safetensors.torch: a state
#: dict to and from files): ported along with every package, so that a ported library
#: saves and loads ember tensors (transformers' save_pretrained / from_pretrained)
_TORCH_BINDINGS = ("safetensors.torch",)


def _bindings_to_port(packages) -> tuple[str, ...]:
    return tuple(name for name in _TORCH_BINDINGS if name not in packages
                 and importlib.util.find_spec(name.split(".")[0]) is not None)


def _default_hidden() -> tuple[str, ...]:
    """The extensions a block hides unless asked for: torchao, and the others that are
    not imported yet (an imported torchvision, with its real torch, serves as it is)."""
    return (*_ALWAYS_HIDDEN, *(name for name in _TORCH_EXTENSIONS if name not in sys.modules))


@contextlib.contextmanager
def torch_as_ember(*packages: str, shims: dict[str, types.ModuleType] | None = None,
                   hidden: tuple[str, ...] = ()):
    """Within the block, `torch` is ember and `packages` are imported against it.

    shims: extra modules to place in sys.modules while the block runs (for a
    dependency that has no ember port, e.g. a stand-in `torchvision.ops.misc`).
    hidden: installed packages the block's imports must not find, besides the defaults
    (`_default_hidden`): extensions compiled against torch, such as torchao, which a
    package imports only where it finds them (an environment with ember in place of
    torch has none of them). A package named in `packages` or `shims` is never hidden.
    Yields a dict of the imported packages by name.
    """
    shims = shims or {}
    asked = (dict(shims), tuple(hidden))     # to enter the block again (_reentered)
    packages = (*packages, *_bindings_to_port(packages))
    hidden = {*hidden, *_default_hidden()} - {root for root in packages}
    shims = {**{name: None for name in hidden if name not in shims}, **shims}
    roots = (_ALIASED_ROOT, *packages, *{name.split(".")[0] for name in shims})
    saved = {name: module for name, module in sys.modules.items() if _owned(name, roots)}
    for name in saved:
        del sys.modules[name]
    finder = _TorchToEmberFinder(packages)
    sys.meta_path.insert(0, finder)
    # `from torch import x` falls back to sys.modules["<torch's __name__>.x"], and
    # torch's __name__ is "ember": a shim for torch.x is also seen as ember.x
    ember_aliases = {"ember" + name[len(_ALIASED_ROOT):]: module for name, module in
                     shims.items() if _is_under(name, _ALIASED_ROOT)}
    ember_aliases = {name: module for name, module in ember_aliases.items()
                     if name not in sys.modules and module is not None}
    _ACTIVE_BLOCKS[0] += 1
    try:
        sys.modules.update(ember_aliases)
        sys.modules.update(shims)
        # only this block's packages: reinstalling another package's ember-bound copy
        # would leave it in sys.modules after the block (it is not among `roots`), in
        # place of the real one
        sys.modules.update({name: module for name, module in _PORTED_MODULES.items()
                            if _owned(name, packages)})
        for package in packages:
            _PORT_BLOCKS.setdefault(package, asked)
        yield {package: _PortedView(importlib.import_module(package), package)
               for package in packages}
    finally:
        _ACTIVE_BLOCKS[0] -= 1
        sys.meta_path.remove(finder)
        for name in ember_aliases:
            sys.modules.pop(name, None)
        for name in [name for name in sys.modules if _owned(name, roots)]:
            module = sys.modules.pop(name)
            if _owned(name, packages):
                _PORTED_MODULES[name] = module
        sys.modules.update(saved)


def copy_state_dict(torch_model, ember_model) -> None:
    """Copies every parameter and buffer of `torch_model` into `ember_model` by key."""
    import ember
    source = {key: value.detach().cpu().numpy() for key, value in
              torch_model.state_dict().items()}
    target_keys = set(ember_model.state_dict())
    if set(source) != target_keys:
        raise AssertionError(
            f"state_dict keys differ: only in torch {sorted(set(source) - target_keys)}, "
            f"only in ember {sorted(target_keys - set(source))}")
    state = collections.OrderedDict((key, ember.tensor(np.array(value)))
                                    for key, value in source.items())
    # the per-module versions that layout-changing modules (MNASNet, BatchNorm) read back
    state._metadata = copy.deepcopy(getattr(torch_model.state_dict(), "_metadata", {}))
    ember_model.load_state_dict(state)


# --- comparing a program's results from the two libraries ------------------------------------
def plain(value):
    """Tensors as NumPy arrays (bfloat16 as float32: NumPy has no such type of its own),
    sizes as lists, dtypes and strings without the library's name."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        value = value.detach().cpu()
        if "bfloat16" in str(value.dtype):
            value = value.float()
        return value.numpy()
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if type(value).__name__ in ("dtype", "DType"):
        return str(value).split(".")[-1]
    if isinstance(value, str):
        return value.replace("torch.", "").replace("ember.", "")
    return value


def assert_same(got, want, where="result"):
    """plain() results equal: arrays to 1e-4 (same shape and dtype), floats likewise,
    everything else exactly; `where` names the failing element."""
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{where}: keys differ"
        for key in want:
            assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{where}: {type(got)} is not an array"
        assert got.shape == want.shape and got.dtype == want.dtype, \
            f"{where}: {got.shape} {got.dtype} != {want.shape} {want.dtype}"
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, equal_nan=True,
                                   err_msg=where)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5), where
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
