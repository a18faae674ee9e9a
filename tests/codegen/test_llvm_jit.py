"""The LLVM JIT and its disk cache: compile, call, cold then warm, keys, damaged entries."""
import ctypes

import numpy as np
import pytest

from ember.codegen.llvm import cache
from ember.codegen.llvm.jit import compile_ir
from ember.codegen.llvm.target import Isa, host_target, target_for
from ember.ir.errors import LoweringError

SCALE_IR = """
define void @scale(i64 %n, float %a, ptr noalias %x) {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%next, %loop]
  %p = getelementptr float, ptr %x, i64 %i
  %v = load float, ptr %p
  %m = fmul float %v, %a
  store float %m, ptr %p
  %next = add i64 %i, 1
  %more = icmp slt i64 %next, %n
  br i1 %more, label %loop, label %exit
exit:
  ret void
}
"""


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    return tmp_path / "llvm"


def _scale(lib, x, a):
    fn = lib.function("scale", None, ctypes.c_int64, ctypes.c_float, ctypes.c_void_p)
    fn(x.size, a, x.ctypes.data)


def test_compiled_function_runs(cache_dir, rng):
    x = rng.standard_normal(37).astype(np.float32)
    want = x * np.float32(2.5)
    _scale(compile_ir(SCALE_IR), x, 2.5)
    np.testing.assert_array_equal(x, want)


def test_cold_compile_then_warm_load_from_disk(cache_dir, rng):
    cold = compile_ir(SCALE_IR + "; cold-warm\n", reuse_loaded=False)
    assert not cold.from_cache
    assert len(list(cache_dir.glob("*.o"))) == 1
    warm = compile_ir(SCALE_IR + "; cold-warm\n", reuse_loaded=False)
    assert warm.from_cache and warm.key == cold.key and warm.object_code == cold.object_code
    x = rng.standard_normal(9).astype(np.float32)
    want = x * np.float32(-3.0)
    _scale(warm, x, -3.0)
    np.testing.assert_array_equal(x, want)


def test_key_changes_with_ir_and_target():
    target = host_target()
    base = cache.cache_key(SCALE_IR, target)
    assert cache.cache_key(SCALE_IR, target) == base
    assert cache.cache_key(SCALE_IR.replace("fmul", "fadd"), target) != base
    assert cache.cache_key(SCALE_IR, target_for(Isa.PORTABLE)) != base


def test_changed_ir_is_a_new_entry(cache_dir):
    compile_ir(SCALE_IR + "; a\n", reuse_loaded=False)
    compile_ir(SCALE_IR + "; b\n", reuse_loaded=False)
    assert len(list(cache_dir.glob("*.o"))) == 2


def test_damaged_entry_is_recompiled(cache_dir, rng):
    lib = compile_ir(SCALE_IR + "; damaged\n", reuse_loaded=False)
    path = cache_dir / f"{lib.key}.o"
    path.write_bytes(path.read_bytes()[:-50])          # truncated object file
    again = compile_ir(SCALE_IR + "; damaged\n", reuse_loaded=False)
    assert not again.from_cache
    x = np.ones(4, np.float32)
    _scale(again, x, 4.0)
    np.testing.assert_array_equal(x, 4.0)
    assert compile_ir(SCALE_IR + "; damaged\n", reuse_loaded=False).from_cache


def test_cache_off_with_empty_dir(monkeypatch):
    monkeypatch.setenv("EMBER_CACHE_DIR", "")
    assert cache.cache_dir() is None
    assert not compile_ir(SCALE_IR + "; off\n", reuse_loaded=False).from_cache


def test_invalid_ir_is_a_lowering_error(cache_dir):
    with pytest.raises(LoweringError, match="invalid LLVM IR"):
        compile_ir("define void @f() { ret i32 0 }")


def test_missing_symbol_is_named(cache_dir):
    with pytest.raises(LoweringError, match="no function 'nope'"):
        compile_ir(SCALE_IR).address("nope")


BUILDS = []


def _scale_module(tag: str) -> str:
    """A module builder as the kernels have (module-level, plain arguments); counts calls."""
    BUILDS.append(tag)
    return SCALE_IR + f"; built for {tag}\n"


def test_a_built_module_loads_by_its_recipe_without_building_it(cache_dir, monkeypatch, rng):
    from ember.codegen.llvm import jit
    BUILDS.clear()
    monkeypatch.setattr(jit, "_BUILT", {})
    cold = jit.compile_built(_scale_module, "recipe-test")
    assert BUILDS == ["recipe-test"] and not cold.from_cache
    # a new process: nothing in memory, the disk cache warm
    monkeypatch.setattr(jit, "_BUILT", {})
    monkeypatch.setattr(jit, "_LOADED", {})
    warm = jit.compile_built(_scale_module, "recipe-test")
    assert BUILDS == ["recipe-test"], "a warm recipe built its module again"
    assert warm.from_cache and warm.key == cold.key
    x = rng.standard_normal(11).astype(np.float32)
    want = x * np.float32(1.5)
    _scale(warm, x, 1.5)
    np.testing.assert_array_equal(x, want)
    # other arguments are another recipe
    other = jit.compile_built(_scale_module, "other")
    assert BUILDS == ["recipe-test", "other"] and other.key != cold.key


def test_a_damaged_recipe_alias_is_a_miss(cache_dir, monkeypatch):
    from ember.codegen.llvm import jit
    BUILDS.clear()
    monkeypatch.setattr(jit, "_BUILT", {})
    jit.compile_built(_scale_module, "damaged")
    for alias in cache_dir.glob("recipe-*.key"):
        alias.write_text("not a key")
    monkeypatch.setattr(jit, "_BUILT", {})
    monkeypatch.setattr(jit, "_LOADED", {})
    jit.compile_built(_scale_module, "damaged")
    assert BUILDS == ["damaged", "damaged"]


def test_a_closure_is_no_recipe():
    from ember.codegen.llvm import jit
    tag = "captured"
    with pytest.raises(ValueError, match="module-level builder"):
        jit.compile_built(lambda: SCALE_IR + tag)
