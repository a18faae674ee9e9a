"""porting.torch_as_ember: a package written for torch imports against ember, and the
real torch is back afterwards (the oracle stays usable in the same test)."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap

import numpy as np
import pytest
import torch

import ember
from porting import copy_state_dict, torch_as_ember

_PACKAGE_SOURCE = '''
import torch
import torch.nn.functional as F
from torch import nn


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer("shift", torch.zeros(3), persistent=True)

    def forward(self, x):
        if not torch.jit.is_scripting():
            x = F.gelu(x)
        return self.fc(x) + self.shift
'''


@pytest.fixture
def tiny_package(tmp_path, monkeypatch):
    (tmp_path / "tinynet_for_porting").mkdir()
    (tmp_path / "tinynet_for_porting" / "__init__.py").write_text(
        textwrap.dedent(_PACKAGE_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "tinynet_for_porting"
    sys.modules.pop("tinynet_for_porting", None)


def test_ported_package_uses_ember_and_torch_comes_back(tiny_package, rng):
    import tinynet_for_porting as reference_package
    reference = reference_package.TinyNet()
    with torch_as_ember(tiny_package) as ported:
        assert sys.modules["torch"] is ember
        assert sys.modules["torch.nn.functional"] is ember.nn.functional
        port = ported[tiny_package].TinyNet()
    assert sys.modules["torch"] is torch
    assert sys.modules[tiny_package] is reference_package
    assert ember.__spec__.name == "ember"          # aliasing left ember's identity alone
    assert isinstance(port, ember.nn.Module) and isinstance(reference, torch.nn.Module)
    copy_state_dict(reference, port)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(port(ember.tensor(x)).detach().numpy(),
                               reference(torch.from_numpy(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)   # float32 GEMMs may sum in another order
    with torch_as_ember(tiny_package) as again:      # the ember-bound copy is reused
        assert again[tiny_package].TinyNet is sys.modules[tiny_package].TinyNet
        assert type(port) is again[tiny_package].TinyNet


def test_missing_counterpart_names_the_torch_module():
    with torch_as_ember():
        with pytest.raises(ModuleNotFoundError, match="no counterpart of module "
                                                      "'torch.no_such_namespace'"):
            importlib.import_module("torch.no_such_namespace")
    assert sys.modules["torch"] is torch


def test_porting_one_package_leaves_another_ported_package_alone(tmp_path, monkeypatch):
    """The ember-bound copies are cached per package; entering the block for package B
    must not reinstall package A's copy (it stayed in sys.modules afterwards, so a later
    `import A` got the ember-bound copy instead of the torch one)."""
    first, second = "first_for_cache_test", "second_for_cache_test"
    for name in (first, second):
        (tmp_path / f"{name}.py").write_text("import torch\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reference = importlib.import_module(first)
    try:
        with torch_as_ember(first):
            pass
        with torch_as_ember(second):
            pass
        assert sys.modules[first] is reference and reference.torch is torch
    finally:
        for name in (first, second):
            sys.modules.pop(name, None)


def test_imports_inside_a_ported_function_still_give_ember(tmp_path, monkeypatch):
    """`import torch` run when a ported function is called (after the block) is ember's,
    as transformers' torch.compiler.is_compiling() probes are."""
    (tmp_path / "lazy_torch_for_porting.py").write_text(textwrap.dedent('''
        def library():
            import torch
            import torch.nn.functional as F
            from torch.compiler import is_compiling
            return torch, F, is_compiling
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    with torch_as_ember("lazy_torch_for_porting") as ported:
        module = ported["lazy_torch_for_porting"]
    root, functional, is_compiling = module.library()
    assert root is ember and functional is ember.nn.functional
    assert is_compiling is ember.compiler.is_compiling
    assert sys.modules["torch"] is torch


def test_torch_extension_packages_are_hidden_inside_a_block(tiny_package):
    """torchao (compiled against torch) is never found by a block's imports, so a
    package that imports it where available takes its path without it; afterwards the
    installed one is found again."""
    installed = importlib.util.find_spec("torchao") is not None
    with torch_as_ember(tiny_package):
        assert importlib.util.find_spec("torchao") is None
        with pytest.raises(ImportError):
            importlib.import_module("torchao")
    assert (importlib.util.find_spec("torchao") is not None) == installed


def test_lazy_attributes_read_after_the_block_are_ember_bound(tmp_path, monkeypatch):
    """A package that loads submodules on attribute access (transformers' lazy module)
    gives its ember-bound ones when the attribute is first read after the block."""
    package = tmp_path / "lazy_pkg_for_porting"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent('''
        import importlib

        def __getattr__(name):
            if name == "Net":
                return importlib.import_module(".models", __name__).Net
            raise AttributeError(name)
    '''))
    (package / "models.py").write_text(textwrap.dedent('''
        from torch import nn

        class Net(nn.Module):
            def helper(self):
                from . import helpers       # a package-relative import at call time
                return helpers.library()
    '''))
    (package / "helpers.py").write_text("import torch\n\n\ndef library():\n    return torch\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import lazy_pkg_for_porting as reference_package
    assert issubclass(reference_package.Net, torch.nn.Module)
    with torch_as_ember("lazy_pkg_for_porting") as ported:
        view = ported["lazy_pkg_for_porting"]
    net = view.Net()
    assert isinstance(net, ember.nn.Module)
    assert net.helper() is ember
    for name in [n for n in sys.modules if n.startswith("lazy_pkg_for_porting")]:
        sys.modules.pop(name)
