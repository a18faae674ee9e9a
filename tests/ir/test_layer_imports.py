"""The import rules of ember's layers (docs/design.md, "Layers and the direction of
imports"), checked by parsing every source file under ember/ with `ast`: a violation
fails with the file, the line and the rule it breaks.

Layers, lowest first: ir <- runtime <- codegen <- passes <- frontend <- compiler. An import
is "lazy" when it sits inside a function body (it runs on first call, not at import).
A relative import must name a module that exists: after files move between layers, an
import another branch wrote against the old place fails here with its file and line,
not at run time.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ember

EMBER = Path(ember.__file__).resolve().parent
LAYERS = ("ir", "runtime", "codegen", "passes", "frontend", "compiler")
ROOT = "ember (the package root)"

# layer -> (ember layers it may never import, even lazily; third-party packages it may never import)
FORBIDDEN = {
    "ir": ({"runtime", "codegen", "passes", "frontend", "compiler", ROOT}, set()),
    "runtime": ({"codegen", "passes", "frontend", "compiler", ROOT},
                {"llvmlite", "lark", "networkx", "triton"}),
    "codegen": ({"passes", "frontend", "compiler", ROOT}, set()),
    "passes": ({"codegen", "runtime", "frontend", "compiler", ROOT}, set()),
    "frontend": (set(), set()),
    "compiler": (set(), set()),
}
# the frontend reaches the compiler (the layer above it) only lazily, inside a function
FORBIDDEN_AT_MODULE_LEVEL = {"frontend": {"compiler"}}


def _layer_of(path: Path, root: Path) -> str | None:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 and parts[0] in LAYERS else None


def _absolute(node: ast.ImportFrom, path: Path, root: Path) -> str:
    if node.level == 0:
        return node.module or ""
    package = ["ember", *path.relative_to(root).parent.parts]   # the file's package
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(node: ast.AST, path: Path, root: Path) -> list[str]:
    """The modules an import statement names, absolute ('ember.passes.manager', 'numpy')."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    module = _absolute(node, path, root)
    if module == "ember":   # `from ember import x` / `from .. import x`: a layer or the root
        return [f"ember.{a.name}" if a.name in LAYERS else "ember" for a in node.names]
    return [module]


def _kind(target: str) -> str:
    parts = target.split(".")
    if parts[0] != "ember":
        return parts[0]
    if len(parts) == 1:
        return ROOT
    return parts[1]


def _imports(tree: ast.AST):
    """(import node, inside a function?) for every import in the module."""
    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, in_function
            yield from walk(child, in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
    yield from walk(tree, False)


def layer_violations(root: Path = EMBER) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        layer = _layer_of(path, root)
        if layer is None:
            continue
        never_layers, never_packages = FORBIDDEN[layer]
        not_at_top = FORBIDDEN_AT_MODULE_LEVEL.get(layer, set())
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, lazy in _imports(tree):
            for target in _targets(node, path, root):
                kind = _kind(target)
                where = f"ember/{path.relative_to(root)}:{node.lineno}"
                if kind in never_layers or kind in never_packages:
                    found.append(f"{where}: {layer} imports {target} ({layer} never imports "
                                 f"{kind})")
                elif kind in not_at_top and not lazy:
                    found.append(f"{where}: {layer} imports {target} at module level "
                                 f"({layer} reaches {kind} only lazily, inside a function)")
    return found


def test_every_layer_keeps_its_import_rules():
    violations = layer_violations()
    assert not violations, "layer import rules broken:\n" + "\n".join(violations)


def _module_exists(dotted: str, root: Path) -> bool:
    path = root.joinpath(*dotted.split(".")[1:])
    return path.with_suffix(".py").exists() or path.is_dir()     # a file or a package


def missing_modules(root: Path = EMBER) -> list[str]:
    """Relative imports of ember modules that do not exist (a file moved between layers
    while another branch added a relative import of it at its old place)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, _ in _imports(tree):
            if not isinstance(node, ast.ImportFrom) or node.level == 0 or node.module is None:
                continue      # absolute imports may name modules made at import time
            for target in _targets(node, path, root):
                if target.split(".")[0] == "ember" and target != "ember" and \
                        not _module_exists(target, root):
                    found.append(f"ember/{path.relative_to(root)}:{node.lineno}: no module "
                                 f"{target}")
    return found


def test_every_import_of_an_ember_module_names_one_that_exists():
    missing = missing_modules()
    assert not missing, "imports of missing modules:\n" + "\n".join(missing)


def test_a_stale_import_after_a_move_is_named(tmp_path):
    fake = tmp_path / "ember"
    (fake / "compiler").mkdir(parents=True)
    (fake / "compiler" / "compile_x.py").write_text("from .tensor import Tensor\n")
    assert missing_modules(fake) == ["ember/compiler/compile_x.py:1: no module "
                                     "ember.compiler.tensor"]


def test_ember_never_imports_torch_at_module_level():
    """torch is the tests' oracle: only an op's `torch_ref` (called by the tests) reaches it,
    lazily; no ember module imports it when loaded."""
    found = []
    for path in sorted(EMBER.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, lazy in _imports(tree):
            if not lazy and any(_kind(t) == "torch" for t in _targets(node, path, EMBER)):
                found.append(f"ember/{path.relative_to(EMBER)}:{node.lineno}")
    assert not found, "ember imports torch (the tests' oracle only):\n" + "\n".join(found)


@pytest.mark.parametrize("source, layer, expected", [
    ("from ..passes import run_passes\n", "codegen", "codegen never imports passes"),
    ("def f():\n    from ..compiler import aot\n", "codegen", "codegen never imports compiler"),
    ("import ember\n", "runtime", "runtime never imports ember (the package root)"),
    ("from .. import passes\n", "ir", "ir never imports passes"),
    ("import llvmlite.binding\n", "runtime", "runtime never imports llvmlite"),
    ("from ..compiler.compile import compile\n", "frontend", "only lazily, inside a function"),
])
def test_a_violation_names_file_line_and_rule(tmp_path, source, layer, expected):
    """The checker itself catches each kind of violation (it must be able to fail)."""
    fake = tmp_path / "ember"
    (fake / layer).mkdir(parents=True)
    (fake / layer / "__init__.py").write_text("")
    (fake / layer / "bad.py").write_text("x = 1\n" + source)
    violations = layer_violations(fake)
    line = 1 + source.count("\n")     # the import is the file's last line
    assert len(violations) == 1 and violations[0].startswith(f"ember/{layer}/bad.py:{line}: ")
    assert expected in violations[0]


def test_lazy_frontend_import_of_the_compiler_is_allowed(tmp_path):
    fake = tmp_path / "ember"
    (fake / "frontend").mkdir(parents=True)
    (fake / "frontend" / "ok.py").write_text("def f():\n    from ..compiler import export\n")
    assert layer_violations(fake) == []
