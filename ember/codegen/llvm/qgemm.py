"""int8 GEMM with AVX-512 VNNI: C[m, n] (int32) = sum_k A[m, k] (uint8) * B[n, k] (int8).

`vpdpbusd` (llvm.x86.avx512.vpdpbusd.512) multiplies 4 unsigned bytes of A by 4 signed
bytes of B in each of 16 int32 lanes and adds the four products to the lane, without
saturation. So B is packed once (at convert time) in the layout the instruction reads:
for each 16 output columns, for each group of 4 k, 16 lanes x 4 bytes:

    packed[nb, kq, lane, j] = B[nb * 16 + lane, kq * 4 + j]     (zero padded in n and k)

and each step of the microkernel broadcasts 4 bytes of an A row (one int32) against
NV such 64-byte panels. The microkernel keeps an MR x (NV * 16) tile of C in MR * NV
zmm accumulators (6 x 64: 24 of 32 registers). Threads split the column panels.

What the caller does around it (ember/codegen/qlinear.py): zero points and the
requantization epilogue. With A = x_q and B = w_q, sum((x_q - x_zp) * (w_q - w_zp)) =
C - x_zp * colsum(w_q) - w_zp * rowsum(x_q) + K * x_zp * w_zp.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir

from ...runtime.threads import default_pool
from . import irutil as u
from .jit import compile_ir
from .target import Isa, host_features, target_for

MR, NV, LANES = 6, 4, 16
NR = NV * LANES
I8 = ir.IntType(8)
V16 = u.vec(u.I32, LANES)


def available() -> bool:
    """True where the CPU has AVX-512 VNNI (vpdpbusd on zmm registers)."""
    feats = host_features()
    return bool(feats.get("avx512vnni")) and bool(feats.get("avx512bw"))


def _vpdpbusd(b: ir.IRBuilder, acc, a, w):
    name = "llvm.x86.avx512.vpdpbusd.512"
    fn = b.module.globals.get(name)
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(V16, [V16, V16, V16]), name=name)
    return b.call(fn, [acc, a, w])


def _emit(module: ir.Module) -> None:
    """qgemm(nb_begin, nb_end, worker, m, kq, a, lda, packed, c, ldc): column panels
    [nb_begin, nb_end) of NR columns (the thread pool's chunk signature); m a multiple of
    MR; A rows padded to kq * 4 bytes."""
    args = [("nb_begin", u.I64), ("nb_end", u.I64), ("worker", u.I64), ("m", u.I64),
            ("kq", u.I64), ("a", u.PTR), ("lda", u.I64), ("packed", u.PTR), ("c", u.PTR),
            ("ldc", u.I64)]
    fn, b = u.define(module, "qgemm", u.VOID, args)
    nb_begin, nb_end, _, m, kq, a, lda, packed, c, ldc = fn.args
    zero = ir.Constant(V16, None)
    with u.counted_loop(b, nb_begin, nb_end, 1, "nb") as nb:
        with u.counted_loop(b, u.i64(0), m, MR, "m0") as m0:
            entry_acc = [[zero] * NV for _ in range(MR)]
            pre = b.block
            head = b.append_basic_block("k.head")
            body = b.append_basic_block("k.body")
            done = b.append_basic_block("k.done")
            b.branch(head)
            b.position_at_end(head)
            kk = b.phi(u.I64, name="kk")
            kk.add_incoming(u.i64(0), pre)
            phis = [[b.phi(V16, name=f"acc{r}_{v}") for v in range(NV)] for r in range(MR)]
            for r in range(MR):
                for v in range(NV):
                    phis[r][v].add_incoming(entry_acc[r][v], pre)
            b.cbranch(b.icmp_signed("<", kk, kq), body, done)
            b.position_at_end(body)
            # B panels: packed[(nb * NV + v) * kq + kk] of 16 int32 lanes
            panels = []
            for v in range(NV):
                idx = b.add(b.mul(b.add(b.mul(nb, u.i64(NV)), u.i64(v)), kq), kk)
                ptr = b.gep(packed, [b.mul(idx, u.i64(LANES))], source_etype=u.I32)
                panels.append(b.load(ptr, typ=V16, align=4))
            new = []
            for r in range(MR):
                row = b.add(m0, u.i64(r))
                off = b.add(b.mul(row, lda), b.mul(kk, u.i64(4)))
                aptr = b.gep(a, [off], source_etype=I8)
                word = b.load(aptr, typ=u.I32, align=1)
                bcast = u.splat(b, word, LANES)
                new.append([_vpdpbusd(b, phis[r][v], bcast, panels[v]) for v in range(NV)])
            nxt = b.add(kk, u.i64(1))
            kk.add_incoming(nxt, b.block)
            for r in range(MR):
                for v in range(NV):
                    phis[r][v].add_incoming(new[r][v], b.block)
            b.branch(head)
            b.position_at_end(done)
            for r in range(MR):
                row = b.add(m0, u.i64(r))
                for v in range(NV):
                    col = b.add(b.mul(nb, u.i64(NR)), u.i64(v * LANES))
                    cptr = b.gep(c, [b.add(b.mul(row, ldc), col)], source_etype=u.I32)
                    b.store(phis[r][v], cptr, align=4)
    b.ret_void()


@functools.lru_cache(maxsize=1)
def _kernel():
    module = ir.Module(name="ember_qgemm")
    _emit(module)
    lib = compile_ir(module, target_for(Isa.AVX512))
    argtypes = [ctypes.c_int64] * 5 + [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                                       ctypes.c_void_p, ctypes.c_int64]
    return lib, lib.function("qgemm", None, *argtypes)


class PackedWeight:
    """int8 weights [N, K] in vpdpbusd's layout, with their per-row sums."""

    def __init__(self, w_q: np.ndarray):
        w_q = np.asarray(w_q, np.int8)
        self.n, self.k = w_q.shape
        self.kq = -(-self.k // 4)
        self.n_pad = -(-self.n // NR) * NR
        padded = np.zeros((self.n_pad, self.kq * 4), np.int8)
        padded[:self.n, :self.k] = w_q
        # [nb16, kq, lane, 4]
        self.data = np.ascontiguousarray(
            padded.reshape(self.n_pad // LANES, LANES, self.kq, 4).transpose(0, 2, 1, 3))
        self.row_sums = w_q.astype(np.int64).sum(axis=1)


def qgemm(a_q: np.ndarray, packed: PackedWeight, threads: int | None = None) -> np.ndarray:
    """int32 [M, N] = uint8 A [M, K] @ int8 B[N, K].T through the VNNI kernel."""
    m, k = a_q.shape
    if k != packed.k:
        raise ValueError(f"qgemm: A has K={k}, the packed weight K={packed.k}")
    m_pad = -(-m // MR) * MR
    a = np.zeros((m_pad, packed.kq * 4), np.uint8)
    a[:m, :k] = a_q
    c = np.empty((m_pad, packed.n_pad), np.int32)
    _, fn = _kernel()
    default_pool().parallel_for(fn, packed.n_pad // NR, m_pad, packed.kq, a.ctypes.data,
                                a.shape[1], packed.data.ctypes.data, c.ctypes.data, c.shape[1],
                                max_threads=threads)
    return c[:m, :packed.n]
