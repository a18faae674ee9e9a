"""Small llvmlite.ir helpers shared by the kernel emitters: types, loops, vectors, pointers.

Pointers are opaque (`ptr`); element types are given at each `gep`/`load`, so one
helper serves float32 and float64 buffers alike.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from llvmlite import ir

F32 = ir.FloatType()
F64 = ir.DoubleType()
I1 = ir.IntType(1)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()


def i64(value: int) -> ir.Constant:
    return ir.Constant(I64, value)


def vec(elem: ir.Type, lanes: int) -> ir.VectorType:
    return ir.VectorType(elem, lanes)


def splat(b: ir.IRBuilder, scalar: ir.Value, lanes: int) -> ir.Value:
    """A vector with `scalar` in every lane (folds to a broadcast / embedded broadcast)."""
    vt = vec(scalar.type, lanes)
    one = b.insert_element(ir.Constant(vt, ir.Undefined), scalar, ir.Constant(I32, 0))
    return b.shuffle_vector(one, ir.Constant(vt, ir.Undefined),
                            ir.Constant(vec(I32, lanes), [0] * lanes))


def const_like(ty: ir.Type, value: float | int) -> ir.Constant:
    """`value` as a scalar or splatted vector constant of type `ty`."""
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [value] * ty.count)
    return ir.Constant(ty, value)


def elem_ptr(b: ir.IRBuilder, base: ir.Value, index: ir.Value, elem: ir.Type = F32) -> ir.Value:
    """&base[index]; `base` may be opaque or typed (alloca gives typed pointers)."""
    return b.gep(base, [index], source_etype=elem)


def _as_pointer_to(b: ir.IRBuilder, ptr: ir.Value, ty: ir.Type) -> ir.Value:
    # llvmlite checks pointee types on typed pointers; LLVM itself sees only `ptr`.
    return ptr if ptr.type.is_opaque else b.bitcast(ptr, ty.as_pointer())


def load_vec(b: ir.IRBuilder, base: ir.Value, index: ir.Value, lanes: int,
             elem: ir.Type = F32) -> ir.Value:
    """`lanes` consecutive elements at base[index] (unaligned load)."""
    vt = vec(elem, lanes)
    ptr = _as_pointer_to(b, elem_ptr(b, base, index, elem), vt)
    return b.load(ptr, typ=vt, align=elem_size(elem))


def store_vec(b: ir.IRBuilder, value: ir.Value, base: ir.Value, index: ir.Value,
              elem: ir.Type = F32) -> None:
    ptr = _as_pointer_to(b, elem_ptr(b, base, index, elem), value.type)
    b.store(value, ptr, align=elem_size(elem))


def elem_size(elem: ir.Type) -> int:
    return {F32: 4, F64: 8, I32: 4, I64: 8}[elem]


def _mangle(ty: ir.Type) -> str:
    """LLVM's overload suffix: float -> f32, <16 x float> -> v16f32, i8 -> i8, half -> f16."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{_mangle(ty.element)}"
    if isinstance(ty, ir.IntType):
        return f"i{ty.width}"
    return {F32: "f32", F64: "f64", ir.HalfType(): "f16"}[ty]


def intrinsic(b: ir.IRBuilder, name: str, ty: ir.Type, *args: ir.Value) -> ir.Value:
    """Call `llvm.<name>.<ty>`, all operands and the result of type `ty` (fma, fabs, ...)."""
    full = f"llvm.{name}.{_mangle(ty)}"
    fn = b.module.globals.get(full)
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(ty, [a.type for a in args]), name=full)
    return b.call(fn, list(args))


def clamp(b: ir.IRBuilder, x: ir.Value, lo: ir.Value, hi: ir.Value) -> ir.Value:
    """min(max(x, lo), hi) as compare-and-select: the same values as minnum(maxnum(..))
    (NaN becomes lo, and what the max leaves is never NaN), in one vmaxps and one vminps
    where the intrinsics' NaN rules cost x86 a compare and a blend each."""
    x = b.select(b.fcmp_ordered(">", x, lo), x, lo)
    return b.select(b.fcmp_ordered("<", x, hi), x, hi)


def fma(b: ir.IRBuilder, x: ir.Value, y: ir.Value, z: ir.Value) -> ir.Value:
    """x*y + z with one rounding."""
    return intrinsic(b, "fma", x.type, x, y, z)


@contextlib.contextmanager
def counted_loop(b: ir.IRBuilder, start: ir.Value, stop: ir.Value, step: int = 1,
                 name: str = "i") -> Iterator[ir.Value]:
    """`for i in range(start, stop, step)` (step > 0); the body may be empty-trip safe.

    Yields the induction variable; the builder is left after the loop on exit.
    """
    pre = b.block
    head = b.append_basic_block(f"{name}.head")
    body = b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.done")
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, name=name)
    i.add_incoming(start, pre)
    b.cbranch(b.icmp_signed("<", i, stop), body, done)
    b.position_at_end(body)
    yield i
    nxt = b.add(i, i64(step), name=f"{name}.next")
    i.add_incoming(nxt, b.block)
    b.branch(head)
    b.position_at_end(done)


def carried_loop(b: ir.IRBuilder, start: ir.Value, stop: ir.Value, inits: list[ir.Value],
                 step: Callable[[ir.Value, list[ir.Value]], list[ir.Value]],
                 name: str = "k") -> list[ir.Value]:
    """`for k in range(start, stop): values = step(k, values)`, the values carried in phis
    (so a GEMM's accumulators stay in registers across the loop); returns their final
    values. `step` emits the body at the builder's position and returns the new values."""
    pre = b.block
    head = b.append_basic_block(f"{name}.head")
    body = b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.done")
    b.branch(head)
    b.position_at_end(head)
    k = b.phi(I64, name=name)
    k.add_incoming(start, pre)
    phis = []
    for i, init in enumerate(inits):
        phi = b.phi(init.type, name=f"{name}.v{i}")
        phi.add_incoming(init, pre)
        phis.append(phi)
    b.cbranch(b.icmp_signed("<", k, stop), body, done)
    b.position_at_end(body)
    new = step(k, phis)
    tail = b.block
    for phi, value in zip(phis, new):
        phi.add_incoming(value, tail)
    k.add_incoming(b.add(k, i64(1)), tail)
    b.branch(head)
    b.position_at_end(done)
    return phis


def imin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def define(module: ir.Module, name: str, ret: ir.Type, args: list[tuple[str, ir.Type]],
           noalias_ptrs: bool = True) -> tuple[ir.Function, ir.IRBuilder]:
    """A function with named arguments and an entry block; pointers marked noalias."""
    fn = ir.Function(module, ir.FunctionType(ret, [t for _, t in args]), name=name)
    for arg, (arg_name, ty) in zip(fn.args, args):
        arg.name = arg_name
        if noalias_ptrs and isinstance(ty, ir.PointerType):
            arg.add_attribute("noalias")
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))
