"""Reductions split along the reduced space: several programs per kept column.

A looped reduction kernel (source.py) gives each program XBLOCK kept points and walks
the whole reduced space. BatchNorm's statistics and gradients keep few points (the
channels) and reduce many (N*H*W): resnet18's first BatchNorm keeps 64 channels and
reduces 802816 rows each, so the column tiles make 8 programs on a GPU of 132
multiprocessors, and one program's bytes in flight set the time.

Here the reduced space is cut into `splits` chunks of CHUNK rows, and every kernel runs
on a (kept blocks, splits) grid, in phases:

- a partial kernel per reduction level: each program reduces its chunk for every Reduce
  stage of that level and stores the partial result into a float32 workspace
  `[slot, split, kept]`. A Reduce's level is 0 when its value reads no earlier Reduce,
  else one more than the deepest one it reads (BatchNorm's variance reads the mean:
  level 1);
- a final kernel: each program finishes every Reduce by combining the `splits` partials
  of its kept points in split order (a fixed tree: deterministic, and the same on every
  program), then stores its chunk of the over-inner results; results stored once per kept
  point are stored by the programs of split 0. It walks its chunk last row first: the
  partial kernel just read every chunk first row to last (the grid is about one wave, so
  all chunks at once), so what L2 still holds is each chunk's tail, which the final now
  reads before it is evicted (a BatchNorm's second pass over resnet18's layer1 / layer2
  activations, 51 / 26 MB a tensor against H100's 50 MB L2). The stores are pointwise,
  so the order changes no value; the partials keep their order (it sets the sums').

The bytes read are what the single kernel reads (each Reduce and the final stores walk
the input once), plus each program's reading of the partials (kilobytes, from L2).
Every kernel takes the original buffers followed by the workspace (`ws_ptr`), so one
argument list serves all phases.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ...ir.dtypes import float32
from .. import kernel as K
from . import source
from .reduce_levels import flatten_levels
from .source import Blocks, Emitter, GeneratedKernel, LaunchSpec, Scope

TARGET_PROGRAMS = 4 * 132   # at least four programs per multiprocessor of an H100
MAX_SPLITS = 256            # partials each final program combines per Reduce (their reads
                            # from L2 grow with splits^2 over the whole grid)
MIN_CHUNK_BLOCKS = 2        # each program walks at least this many RBLOCK rows
COLUMN_XBLOCK_BYTES = 128   # split column tiles span one cache line of kept elements
COLUMN_SPLIT_TILE = 1024    # ... and this many elements: 8 a thread at 4 warps
COLUMN_SPLIT_WARPS = 4
FINISH_SBLOCK = 32          # partials combined per step of the final's loop over splits
FINISH_TILE = 1024          # ... or more, up to an [XBLOCK, SBLOCK] tile of this many
# Row splits (NCHW BatchNorm, a sum over a whole tensor): one row a program, [1, 2048] at 4
# warps (16 elements a thread, four 16-byte loads per tensor: 46-80 registers for
# BatchNorm, so every program of the split is resident at once). A final program re-reads
# only its own row's partials, so a single row may take up to ROW_MAX_SPLITS programs
ROW_SPLIT_RBLOCK = 2048
ROW_SPLIT_WARPS = 4
ROW_MAX_SPLITS = 1024


@dataclass(frozen=True)
class SplitPlan:
    blocks: Blocks
    splits: int
    chunk: int               # reduced rows per split (a multiple of RBLOCK)


@dataclass
class SplitReduction:
    """The kernels to launch in order (same arguments: buffers, then the workspace) and
    the workspace's size in float32 elements."""
    kernels: list[GeneratedKernel]
    workspace: int
    plan: SplitPlan
    kernel: K.Kernel | None = None     # the description the phases run (flatten_levels)


def plan(kernel: K.Kernel) -> SplitPlan | None:
    """The split for a looped reduction that would run on too few programs, else None."""
    if not kernel.inner or not kernel.is_reduction:
        return None
    reduces = [s for s in kernel.stages if isinstance(s, K.Reduce)]
    if any(s.acc_dtype != float32 for s in reduces):
        return None                  # the workspace holds float32 partials
    default = source.default_blocks(kernel)
    if default.persistent:
        return None
    x, r = math.prod(kernel.outer), math.prod(kernel.inner)
    if source.is_column_reduction(kernel):
        itemsize = max(e.dtype.itemsize for e in source._loads(kernel))
        xblock = min(source.next_pow2(x), max(1, COLUMN_XBLOCK_BYTES // itemsize))
        warps = column_split_warps()
        tile = COLUMN_SPLIT_TILE * warps // COLUMN_SPLIT_WARPS      # 8 elements a thread
        rblock = max(1, min(tile, source.COLUMN_TILE) // xblock)
        blocks = Blocks(xblock, rblock, False, warps)
        target, max_splits = TARGET_PROGRAMS, MAX_SPLITS
    else:
        blocks = Blocks(1, min(default.rblock, ROW_SPLIT_RBLOCK), False, ROW_SPLIT_WARPS)
        target, max_splits = TARGET_PROGRAMS, ROW_MAX_SPLITS
    kept_programs = math.ceil(x / blocks.xblock)
    if kept_programs * 2 > TARGET_PROGRAMS:
        return None
    most = max(1, r // (blocks.rblock * MIN_CHUNK_BLOCKS))
    splits = min(max_splits, most, math.ceil(target / kept_programs))
    if splits < 2:
        return None
    chunk = math.ceil(math.ceil(r / splits) / blocks.rblock) * blocks.rblock
    splits = math.ceil(r / chunk)
    if kept_programs * splits < 2 * math.ceil(x / default.xblock):
        return None                  # not twice the programs: one kernel is as good
    return SplitPlan(blocks, splits, chunk)


def generate_split(kernel: K.Kernel, split: SplitPlan | None = None) -> SplitReduction | None:
    """The phase kernels for `kernel` (None when it is better left as one kernel)."""
    kernel = flatten_levels(kernel)        # one walk for the statistics: fewer phases
    split = split or plan(kernel)
    if split is None:
        return None
    levels = _levels(kernel)
    slots = {name: i for i, name in enumerate(levels)}
    last = max(levels.values())
    kernels = source.generic_or_literal("split", lambda literal: [
        _phase(kernel, split, levels, slots, phase, literal) for phase in range(last + 2)])
    workspace = len(slots) * split.splits * math.prod(kernel.outer)
    return SplitReduction(kernels, workspace, split, kernel)


def _levels(kernel: K.Kernel) -> dict[str, int]:
    levels: dict[str, int] = {}
    for stage in kernel.stages:
        if isinstance(stage, K.Reduce):
            refs = [e.name for e in K._walk(stage.value) if isinstance(e, K.ReduceRef)]
            levels[stage.name] = 1 + max((levels[n] for n in refs), default=-1)
    return levels


def _phase(kernel: K.Kernel, split: SplitPlan, levels: dict, slots: dict,
           phase: int, literal: bool) -> GeneratedKernel:
    final = phase > max(levels.values())
    wide = source.needs_int64(kernel)
    sizes = source.Sizes(literal=literal, wide=wide)
    # the split count only bounds loops and masks and scales the workspace's rows: its
    # divisibility by 16 would only make another cubin (resnet18: 256 splits for the stem,
    # 33-251 for the rest)
    size_lines = [f"X = {sizes.int(math.prod(kernel.outer), 'X')}",
                  f"R = {sizes.int(math.prod(kernel.inner), 'R')}",
                  f"S = {sizes.int(split.splits, 'S', specialize=False)}",
                  f"CHUNK = {sizes.int(split.chunk, 'CHUNK')}"]
    em = Emitter(kernel, wide=wide, sizes=sizes)
    backward = final and not final_walks_forward()
    em.loop_range = "range(0, CHUNK, RBLOCK)" if backward else \
        "range(rstart, rstart + CHUNK, RBLOCK)"
    em.outer_store_mask = "xmask_first"
    x = math.prod(kernel.outer)
    pid = "tl.program_id(1).to(tl.int64)" if em.wide else "tl.program_id(1)"
    lines = [f"xindex = {em._program_start()} + tl.arange(0, XBLOCK){em._widen()}[:, None]",
             "xmask = xindex < X", f"sid = {pid}", "rstart = sid * CHUNK",
             "xmask_first = xmask & ((xindex * 0 + sid) == 0)"]   # a block (Triton's interpreter
    # rejects a mask made with a scalar comparison)
    if backward:
        lines.append("rlast = rstart + CHUNK - RBLOCK")
    em.unravel(lines, "xindex", 0, kernel.outer)
    outer = Scope(lines, "xmask", inner=False)
    row_start = "tl.multiple_of(rlast - roff, RBLOCK)" if backward else "roff"

    def inner_header() -> Scope:
        body = [f"rindex = {row_start} + tl.arange(0, RBLOCK){em._widen()}[None, :]",
                "rmask = rindex < R"]
        # a column reduction's vector accesses walk the kept (channel) points: its rows'
        # indices may divide by runtime magic numbers (a BatchNorm that also stores an
        # NCHW copy for a weight gradient walks (N, H*W) rows)
        em.unravel(body, "rindex", em.n_outer, kernel.inner, magic=source.DIVISIBILITY if
                   source.is_column_reduction(kernel) and split.blocks.rblock % source.DIVISIBILITY
                   == 0 else 0)
        body.append("rxmask = xmask & rmask")
        return Scope(body, "rxmask", inner=True)

    # every earlier level's results first; then one walk of the chunk for all of this
    # level's Reduces (or, in the final phase, for all stores over the inner space)
    reduced, stores = [], []
    _finish(em, [s for s in kernel.stages if isinstance(s, K.Reduce) and levels[s.name] < phase],
            slots, outer)
    for stage in kernel.stages:
        if isinstance(stage, K.Reduce):
            if levels[stage.name] == phase:
                reduced.append(stage)
        elif final and stage.over_inner:
            stores.append(stage)
        elif final:
            em.store(stage, outer, outer)
    if reduced:
        em.reduce_loops(reduced, outer, inner_header)
        for stage in reduced:
            lines.append(f"tl.store(ws_ptr + (({slots[stage.name]} * S + sid) * X + "
                         f"xindex), red_{stage.name}, mask=xmask)")
    if stores:
        em.store_loop(stores, outer, inner_header)

    role = "final" if final else f"partial{phase}"
    name = f"{source.function_name(kernel.name)}_{role}"
    blocks = split.blocks
    constexprs = {"XBLOCK": blocks.xblock, "RBLOCK": blocks.rblock,
                  "SBLOCK": min(max(FINISH_SBLOCK, FINISH_TILE // blocks.xblock),
                                source.next_pow2(split.splits))}
    buffers = [b.name for b in kernel.inputs + kernel.outputs]
    params = [f"{b}_ptr" for b in buffers] + ["ws_ptr"] + [a for a, _, _ in sizes.args] + \
        [f"{c}: tl.constexpr" for c in constexprs]
    comment = "\n".join("# " + line for line in str(kernel).splitlines())
    text = "\n".join([comment, f"# {split.splits} chunks of {split.chunk} over outer "
                      f"{list(kernel.outer)}, inner {list(kernel.inner)}",
                      "@triton.jit", f"def {name}({', '.join(params)}):",
                      f'    """split {role}."""']
                     + ["    " + line for line in size_lines + lines]) + "\n"
    args = [(f"{b.name}_ptr", source.pointer_type(b.dtype))
            for b in kernel.inputs + kernel.outputs] + [("ws_ptr", "*fp32")]
    grid = (math.ceil(x / blocks.xblock), split.splits, 1)
    launch = LaunchSpec(name, args, constexprs, grid, f"(cdiv({x}, XBLOCK), {split.splits})",
                        blocks.num_warps, 1, buffers + ["workspace"], sizes.args,
                        sizes.plain)
    return GeneratedKernel(text, launch)


def column_split_warps() -> int:
    """Warps of a split column program: COLUMN_SPLIT_WARPS, or EMBER_SPLIT_COLUMN_WARPS (8
    or 16; the tile grows with them, 8 elements a thread). The split's grid is about four
    programs an SM (the splits stop at MAX_SPLITS), so 4-warp programs leave an SM 16 warps
    of the 64 it can hold (resnet18's stem BatchNorm phases take 40-54 registers a thread:
    32 warps would fit); 8 warps doubles the bytes each SM has in flight. Opt-in until timed
    on a GPU; the partials' sums change order with the tile (still fixed run to run)."""
    value = os.environ.get("EMBER_SPLIT_COLUMN_WARPS", "").strip()
    return int(value) if value in ("8", "16") else COLUMN_SPLIT_WARPS


def final_walks_forward() -> bool:
    """EMBER_SPLIT_FINAL_FORWARD=1: the final phase walks its chunk first row to last, as
    the partials do (the A/B switch for the backward walk, see the module docstring)."""
    return os.environ.get("EMBER_SPLIT_FINAL_FORWARD", "").strip() in ("1", "true", "on")


def _finish(em: Emitter, stages: list, slots: dict, outer: Scope) -> None:
    """red_<name> for every Reduce of `stages` from the partials of every split: SBLOCK
    splits a step into an [XBLOCK, SBLOCK] accumulator per Reduce, then across it (a fixed
    order, the same in every program). A step's tiles stay a few registers a thread where
    one [XBLOCK, 256] load of every partial took 64 a thread at 4 warps. One loop serves
    every Reduce, so their loads from L2 are in flight together (a BatchNorm backward's
    final waited on three loops of 8 steps, one after another, before its first row)."""
    if not stages:
        return
    accs, parts = [em.fresh("acc") for _ in stages], [em.fresh("parts") for _ in stages]
    idents = [source._identity(s.combine, s.acc_dtype) for s in stages]
    outer.lines += [f"{acc} = tl.full([XBLOCK, SBLOCK], {ident}, tl.float32)"
                    for acc, ident in zip(accs, idents)]
    outer.lines += ["for s0 in range(0, S, SBLOCK):",
                    "    sidx = s0 + tl.arange(0, SBLOCK)[None, :]"]
    for stage, acc, part, ident in zip(stages, accs, parts, idents):
        outer.lines += [
            f"    {part} = tl.load(ws_ptr + (({slots[stage.name]} * S + sidx) * X + xindex), "
            f"mask=xmask & (sidx < S), other=0)",
            f"    {part} = tl.where(sidx < S, {part}, {ident})",
            f"    {acc} = {source._combine(stage, acc, part)}"]
    for stage, acc in zip(stages, accs):
        outer.lines.append(f"red_{stage.name} = {source._reduce_call(stage, acc)}[:, None]")
        em.reduced[stage.name] = f"red_{stage.name}"
