"""Optimizer updates as one multi-tensor Triton kernel per parameter group.

One launch updates every tensor of a chunk (up to MAX_TENSORS parameters, so the kernel's
argument block stays far below CUDA's 4 KiB): each parameter, its gradient and its state
buffers are pointer arguments, and the grid is the concatenation of every tensor's blocks.
A program finds its tensor with a chain of comparisons against the tensors' first blocks
(sizes are fixed for a parameter list, so they are literals in the source) and then runs
one update body over BLOCK elements of it. Pointers being arguments, not a table in
device memory, nothing is uploaded per step: the launch is capture-safe, and a CUDA graph
that recorded it replays it against the same parameters and state.

Hyperparameters are float64 scalar arguments, rounded to the parameters' dtype in the
kernel as the per-tensor path rounds a Python float (so an LR scheduler never
recompiles); whether a term exists at all (weight decay, momentum, nesterov, maximize,
amsgrad, Adam's bias correction on the device) is part of the source. The arithmetic is
`optim.functional`'s, operation by operation in the same order and dtype, so under the
interpreter the result equals the per-tensor update bit for bit; compiled for a GPU,
Triton may contract a multiply and an add into one FMA (within an ulp of it).

Adam with its step count on the device (`fused=True` / `capturable=True`): every program
reads its tensor's step and computes the bias corrections from step + 1 in float64; the program that
finishes last (an atomic counter, reset by that program) stores the incremented steps, so
no program can read a step already incremented, and a replayed graph keeps counting.
"""
from __future__ import annotations

import functools
import re

from ...ir.dtypes import DType
from .source import GeneratedKernel, LaunchSpec, pointer_type, tl_type

BLOCK = 1024
MAX_TENSORS = 48        # per launch: 48 x 6 pointers x 8 bytes of arguments at most


def blocks_of(sizes: list[int]) -> list[int]:
    return [max(1, -(-n // BLOCK)) for n in sizes]


def _select(sizes: list[int], roles: list[str]) -> list[str]:
    """Lines that bind `offs`, `mask` and one pointer per role to the program's tensor."""
    lines, first = [], 0
    for i, (n, count) in enumerate(zip(sizes, blocks_of(sizes))):
        head = "if" if i == 0 else "elif"
        cond = f"pid < {first + count}" if i < len(sizes) - 1 else None
        lines.append(f"    {head} {cond}:" if cond else "    else:")
        lines.append(f"        offs = (pid - {first}).to(tl.int64) * BLOCK + "
                     f"tl.arange(0, BLOCK)")
        lines.append(f"        mask = offs < {n}")
        lines += [f"        {r} = {r}{i}" for r in roles]
        first += count
    if len(sizes) == 1:                # `else:` alone is not Python: unindent the one branch
        lines = ["    " + line.strip() for line in lines[1:]]
    return lines


def _kernel(name: str, sizes: list[int], dtype: DType, roles: list[str], scalars: list[str],
            body: list[str], doc: str, tail_args: list[tuple[str, str]] = ()) -> GeneratedKernel:
    ptr = pointer_type(dtype)
    args = [(f"{r}{i}", ptr) for i in range(len(sizes)) for r in roles]
    args += list(tail_args)
    args += [(f"{s}_arg", "fp64") for s in scalars]     # rounded to dtype below, as the
    #                                                       per-tensor path rounds a Python float
    dt = tl_type(dtype)
    lines = ["@triton.jit",
             f"def {name}({', '.join(a for a, _ in args)}, BLOCK: tl.constexpr):",
             f'    """{doc} over {len(sizes)} tensors of {sum(sizes)} elements."""',
             "    pid = tl.program_id(0)"]
    # tl.full keeps a float64 argument exact under the interpreter too (a bare Python
    # float would become a float32 constant there)
    lines += [f"    {s} = tl.full([], {s}_arg, {dt})" for s in scalars]
    lines += _select(sizes, roles) + body
    grid = (sum(blocks_of(sizes)), 1, 1)
    return GeneratedKernel("\n".join(lines) + "\n",
                           LaunchSpec(name, args, {"BLOCK": BLOCK}, grid,
                                      "sum of cdiv(numel, BLOCK)", 4, 1,
                                      [a for a, _ in args]))


@functools.lru_cache(maxsize=256)      # a model's groups ask for the same kernels every step
def sgd_kernel(sizes: tuple[int, ...], dtype: DType, *, weight_decay: bool, momentum: bool,
               first: bool, nesterov: bool, maximize: bool) -> GeneratedKernel:
    """functional.sgd in place. Arguments per tensor: param, grad (and its momentum buffer
    when momentum != 0: on the `first` step it is written with the gradient); scalars
    neg_lr, weight_decay, momentum, one_minus_dampening."""
    roles = ["p", "g"] + (["b"] if momentum else [])
    body = ["    grad = tl.load(g + offs, mask=mask, other=0.0)",
            "    param = tl.load(p + offs, mask=mask, other=0.0)"]
    if maximize:
        body.append("    grad = -grad")
    if weight_decay:
        body.append("    grad = grad + param * weight_decay")
    if momentum:
        if first:
            body.append("    buf = grad")
        else:
            body.append("    buf = tl.load(b + offs, mask=mask, other=0.0) * momentum + "
                        "grad * one_minus_dampening")
        body.append("    tl.store(b + offs, buf, mask=mask)")
        body.append("    grad = grad + buf * momentum" if nesterov else "    grad = buf")
    body.append("    tl.store(p + offs, param + grad * neg_lr, mask=mask)")
    flags = "".join(c for c, on in zip("wmfnx", (weight_decay, momentum, first, nesterov,
                                                  maximize)) if on)
    return _kernel(f"multi_sgd_{dtype.name}_{flags or 'plain'}", sizes, dtype, roles,
                   ["neg_lr", "weight_decay", "momentum", "one_minus_dampening"], body,
                   "SGD")


@functools.lru_cache(maxsize=256)
def adam_kernel(sizes: tuple[int, ...], dtype: DType, *, weight_decay: bool, decoupled: bool,
                amsgrad: bool, maximize: bool, lerp_low: bool,
                device_step: bool) -> GeneratedKernel:
    """functional.adam / adamw in place. Per tensor: param, grad, exp_avg, exp_avg_sq
    (max_exp_avg_sq with amsgrad), then either its float32 step on the device
    (`device_step`, plus one int32 counter after all tensors) or two scalars per tensor,
    step_size and bias_correction2_sqrt, computed on the host from the host step.
    `lerp_low`: 1 - beta1 < 0.5, which of torch.lerp's two formulas applies."""
    roles = ["p", "g", "m", "v"] + (["mx"] if amsgrad else [])
    n = len(sizes)
    body = ["    grad = tl.load(g + offs, mask=mask, other=0.0)",
            "    param = tl.load(p + offs, mask=mask, other=0.0)"]
    if maximize:
        body.append("    grad = -grad")
    if weight_decay:
        body.append("    param = param * one_minus_lr_wd" if decoupled else
                    "    grad = grad + param * weight_decay")
    body.append("    exp_avg = tl.load(m + offs, mask=mask, other=0.0)")
    body.append("    exp_avg = exp_avg + (grad - exp_avg) * w1" if lerp_low else
                "    exp_avg = grad - (grad - exp_avg) * one_minus_w1")
    body.append("    exp_avg_sq = tl.load(v + offs, mask=mask, other=0.0) * beta2 + "
                "grad * grad * one_minus_beta2")
    sqrt = "tl.sqrt" if dtype.name == "float64" else "tl.sqrt_rn"
    if device_step:
        roles.append("st")
        # in float64 as torch's fused Adam does: 1 - beta2 ** step cancels, and float32
        # corrections would move the update by ~1e-5 relative
        f64 = "tl.float64"
        body += [f"    step = (tl.load(st) + 1.0).to({f64})",
                 f"    bc1 = 1.0 - emath.pow(tl.full([], beta1_arg, {f64}), step)",
                 f"    step_size = (tl.full([], lr_arg, {f64}) / bc1).to({tl_type(dtype)})",
                 f"    bc2 = 1.0 - emath.pow(tl.full([], beta2_arg, {f64}), step)",
                 f"    bc2_sqrt = tl.sqrt(bc2).to({tl_type(dtype)})"]
    else:
        roles += ["ss", "bc"]           # scalars, not pointers: bound by the chain as well
        body += [f"    step_size = tl.full([], ss, {tl_type(dtype)})",
                 f"    bc2_sqrt = tl.full([], bc, {tl_type(dtype)})"]
    if amsgrad:
        body += ["    max_sq = tl.maximum(tl.load(mx + offs, mask=mask, other=0.0), exp_avg_sq)",
                 "    tl.store(mx + offs, max_sq, mask=mask)",
                 f"    denom = {sqrt}(max_sq) / bc2_sqrt + eps"]
    else:
        body.append(f"    denom = {sqrt}(exp_avg_sq) / bc2_sqrt + eps")
    body += ["    tl.store(m + offs, exp_avg, mask=mask)",
             "    tl.store(v + offs, exp_avg_sq, mask=mask)",
             "    tl.store(p + offs, param + (exp_avg / denom) * (-step_size), mask=mask)"]
    if device_step:
        body += ["    done = tl.atomic_add(counter, 1)",
                 f"    if done == {sum(blocks_of(sizes)) - 1}:"]
        body += [f"        tl.store(st{i}, tl.load(st{i}) + 1.0)" for i in range(n)]
        body.append("        tl.store(counter, 0)")
    flags = "".join(c for c, on in zip("wdaxls", (weight_decay, decoupled, amsgrad, maximize,
                                                   lerp_low, device_step)) if on)
    name = f"multi_adam_{dtype.name}_{flags or 'plain'}"
    scalars = ["lr", "beta1", "beta2", "w1", "one_minus_w1", "one_minus_beta2", "eps",
               "weight_decay", "one_minus_lr_wd"]
    kernel = _kernel(name, sizes, dtype, roles, scalars, body, "Adam" + "W" * decoupled,
                     [("counter", "*i32")] if device_step else [])
    return _retype(kernel, dtype, device_step)


def _retype(kernel: GeneratedKernel, dtype: DType, device_step: bool) -> GeneratedKernel:
    """Adam's per-tensor roles that are not the param's pointer type: the float32 step
    pointers, or the host-computed scalars (float64, rounded in the kernel)."""
    scalar = "fp64"
    args = []
    for name, sig in kernel.launch.args:
        role = name.rstrip("0123456789")
        if role == "st":
            sig = "*fp32"
        elif role in ("ss", "bc") and not device_step:
            sig = scalar
        args.append((name, sig))
    kernel.launch.args = args
    return kernel


# --- gradient norm clipping (nn.utils.clip_grad_norm_) ------------------------------------
# Three launches for any number of gradients, none of them reading back to the host: the
# per-block partial norms (sum of squares, or max |g| for the inf norm), one program that
# reduces the partials in a fixed order (deterministic, no atomics) into the total norm and
# the clip coefficient, and the multi-tensor scale by that coefficient.
@functools.lru_cache(maxsize=256)
def norm_partials_kernel(sizes: tuple[int, ...], dtype: DType, inf: bool) -> GeneratedKernel:
    """partials[program] = sum(g * g) (or max |g|) over the program's block."""
    body = ["    x = tl.load(g + offs, mask=mask, other=0.0)",
            "    tl.store(partials + pid, " +
            ("tl.max(tl.abs(x), axis=0))" if inf else "tl.sum(x * x, axis=0))")]
    return _kernel(f"multi_norm_partials_{dtype.name}{'_inf' if inf else ''}", list(sizes),
                   dtype, ["g"], [], body, "partial norms",
                   [("partials", pointer_type(dtype))])


@functools.lru_cache(maxsize=256)
def norm_total_kernel(count: int, dtype: DType, inf: bool) -> GeneratedKernel:
    """total = sqrt(sum(partials)) (or max); coef = min(max_norm / (total + 1e-6), 1),
    a NaN total giving a NaN coefficient as torch's clamp does. One program."""
    dt = tl_type(dtype)
    sqrt = "tl.sqrt" if dtype.name == "float64" else "tl.sqrt_rn"
    combine = "tl.maximum(acc, v)" if inf else "acc + v"
    name = f"multi_norm_total_{dtype.name}{'_inf' if inf else ''}"
    source = "\n".join([
        "@triton.jit",
        f"def {name}(partials, total_ptr, coef_ptr, max_norm_arg, BLOCK: tl.constexpr):",
        f'    """the total of {count} partial norms and the clip coefficient."""',
        f"    max_norm = tl.full([], max_norm_arg, {dt})",
        f"    acc = tl.zeros([BLOCK], {dt})",
        f"    for start in range(0, {count}, BLOCK):",
        "        offs = start + tl.arange(0, BLOCK)",
        f"        v = tl.load(partials + offs, mask=offs < {count}, other=0.0)",
        f"        acc = {combine}",
        "    total = " + ("tl.max(acc, axis=0)" if inf else f"{sqrt}(tl.sum(acc, axis=0))"),
        "    tl.store(total_ptr, total)",
        "    coef = max_norm / (total + 1e-6)",
        "    tl.store(coef_ptr, tl.where(coef > 1.0, 1.0, coef))",
    ]) + "\n"
    ptr = pointer_type(dtype)
    args = [("partials", ptr), ("total_ptr", ptr), ("coef_ptr", ptr), ("max_norm_arg", "fp64")]
    return GeneratedKernel(source, LaunchSpec(name, args, {"BLOCK": BLOCK}, (1, 1, 1), "1", 4,
                                              1, [a for a, _ in args]))


@functools.lru_cache(maxsize=256)
def scale_kernel(sizes: tuple[int, ...], dtype: DType) -> GeneratedKernel:
    """g *= coef[0] in place over every tensor (coef read on the device)."""
    body = ["    c = tl.load(coef)",
            "    tl.store(g + offs, tl.load(g + offs, mask=mask, other=0.0) * c, mask=mask)"]
    return _kernel(f"multi_scale_{dtype.name}", list(sizes), dtype, ["g"], [], body,
                   "scale by a device scalar", [("coef", pointer_type(dtype))])


# --- GradScaler.unscale_ ---------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def unscale_kernel(sizes: tuple[int, ...], dtype: DType) -> GeneratedKernel:
    """g *= inv[0] in place (inv: the float32 inverse scale on the device); found[0] = NaN
    where any gradient element is inf or NaN (every finding stores the same value, so
    programs racing on it agree), left alone otherwise."""
    body = ["    x = tl.load(g + offs, mask=mask, other=0.0)",
            "    bad = (x != x) | (tl.abs(x) == float('inf'))",
            "    if tl.sum(bad.to(tl.int32), axis=0) > 0:",
            "        tl.store(found, float('nan'))",
            "    tl.store(g + offs, x * tl.load(inv).to(x.dtype), mask=mask)"]
    return _kernel(f"multi_unscale_{dtype.name}", list(sizes), dtype, ["g"], [], body,
                   "unscale and check for inf/NaN",
                   [("inv", "*fp32"), ("found", "*fp32")])


# --- counters (BatchNorm's num_batches_tracked) ------------------------------------------------
@functools.lru_cache(maxsize=64)
def increment_kernel(count: int, dtype: DType) -> GeneratedKernel:
    """t_i += 1 for `count` one-element tensors, in one program: a training step's
    BatchNorm batch counters in one launch instead of one (or two) per module."""
    name = f"multi_increment_{count}_{dtype.name}"
    args = [(f"t{i}", pointer_type(dtype)) for i in range(count)]
    lines = ["@triton.jit",
             f"def {name}({', '.join(a for a, _ in args)}, BLOCK: tl.constexpr):",
             f'    """add one to {count} counters."""']
    lines += [f"    tl.store(t{i}, tl.load(t{i}) + 1)" for i in range(count)]
    return GeneratedKernel("\n".join(lines) + "\n",
                           LaunchSpec(name, args, {"BLOCK": 1}, (1, 1, 1), "1", 1, 1,
                                      [a for a, _ in args]))


# --- horizontal fusion: independent kernels as one launch ---------------------------------------
MAX_POINTERS = 256          # per horizontal launch: 2 KiB of pointer arguments
# parts per horizontal launch: Triton's compile time grows faster than the part count
# (sm_90, one CPU: 66 update kernels 4.5 s, 33 of them 1.3 s), and one long compile
# would hold up a cold first call that compiles everything else in parallel
MAX_PARTS = 16
_DEF = re.compile(r"^def (\w+)\((.*)\):$", re.M)


def horizontal_kernel(parts: tuple[GeneratedKernel, ...],
                      n_inputs: tuple[int, ...] | None = None) -> GeneratedKernel | None:
    """One launch running independent generated kernels side by side: the grid is the
    concatenation of their 1-D grids, and a program calls the kernel its id falls in
    with its id rebased (the part's own `tl.program_id(0)` becomes `program_id(0) -
    PID0`). Each part keeps its source, block sizes and masks, so it computes exactly
    what it computed alone. Arguments: every part's inputs (its first `n_inputs[i]`
    arguments), then every part's outputs, as a plan step passes them (default: each
    part's arguments in turn). None when a part cannot join: a 2-D or 3-D grid, a
    source that is not one function, scalar (non-pointer) arguments.

    One-program parts of one structure (the same source up to its element count and its
    float constants: the running-statistic updates of BatchNorms of different widths, with
    or without the unbiased-variance factor) share one body (`_shared_groups`): Triton
    inlines every call, so 16 parts compiled as 16 bodies (~0.3 CPU s where the shared
    form takes ~0.1); a program picks its part's pointers, count and constants in a
    chain of comparisons and runs the body once. The values are the same numbers (an
    element count bounds the same mask; a constant is the same float32)."""
    ins, outs, sizes, plain, warps = [], [], [], (), 1
    for i, part in enumerate(parts):
        spec = part.launch
        found = _DEF.findall(part.source)
        if spec.grid[1:] != (1, 1) or spec.grid[0] < 1 or len(found) != 1 or \
                found[0][0] != spec.name or part.source.count("@triton.jit") != 1 or \
                "program_id(1)" in part.source or "program_id(2)" in part.source or \
                any(not t.startswith("*") for _, t in spec.args):
            return None
        mine = {a: f"p{i}_{a}" for a, _ in spec.args}
        k = len(spec.args) if n_inputs is None else n_inputs[i]
        ins += [(mine[a], t) for a, t in spec.args[:k]]
        outs += [(mine[a], t) for a, t in spec.args[k:]]
        own_sizes = {n: f"p{i}_{n}" for n, _, _ in spec.sizes}   # bound sizes pass through
        sizes += [(own_sizes[n], t, v) for n, t, v in spec.sizes]
        plain += tuple(own_sizes[n] for n in spec.plain)
        names = _params(found[0][1])
        if any(n not in mine and n not in own_sizes and n not in spec.constexprs
               for n in names):
            return None
        warps = max(warps, spec.num_warps)
    functions, branches, first = [], [], 0
    for g, members in enumerate(_shared_groups(parts)):
        if len(members) == 1:
            function, branch, first = _own_part(parts[members[0]], members[0], first)
        else:
            function, branch, first = _shared_part(parts, members, g, first)
        functions.append(function)
        branches.append(branch)
    name, args = f"horizontal_{len(parts)}", ins + outs
    names = [a for a, _ in args] + [n for n, _, _ in sizes]
    lines = ["@triton.jit", f"def {name}({', '.join(names)}):",
             f'    """{len(parts)} independent kernels in one launch."""',
             "    pid = tl.program_id(0)"]
    for k, (end, body) in enumerate(branches):
        head = "if" if k == 0 else "elif"
        lines.append(f"    {head} pid < {end}:" if k < len(branches) - 1 else "    else:")
        lines += [f"        {line}" for line in body]
    if len(branches) == 1:
        lines[4:] = [f"    {line}" for line in branches[0][1]]
    source = "\n\n".join(functions + ["\n".join(lines)]) + "\n"
    return GeneratedKernel(source, LaunchSpec(name, args, {}, (first, 1, 1),
                                              "sum of the parts' grids", warps, 1,
                                              [a for a, _ in args], sizes, plain))


def _params(params: str) -> list[str]:
    return [p.split(":")[0].strip() for p in params.split(",")]


def _own_part(part: GeneratedKernel, i: int, first: int) -> tuple:
    """(function, (last program id + 1, branch lines), next first id) of a part compiled
    as its own function: its source renamed, its program ids rebased by PID0."""
    spec = part.launch
    params = _DEF.findall(part.source)[0][1]
    name = f"{spec.name}_part{i}"
    source = part.source.replace(f"def {spec.name}({params}):",
                                 f"def {name}({params}, PID0: tl.constexpr):")
    source = source.replace("tl.program_id(0)", "(tl.program_id(0) - PID0)")
    mine = {a: f"p{i}_{a}" for a, _ in spec.args}
    mine.update({n: f"p{i}_{n}" for n, _, _ in spec.sizes})
    call = [mine[n] if n in mine else str(spec.constexprs[n]) for n in _params(params)]
    end = first + spec.grid[0]
    return source, (end, [f"{name}({', '.join(call)}, {first})"]), end


# the literals of a part that may differ between parts of one shared body: a count bound
# at the top of the body and compared against only (`X = 64` ... `xindex < X`), and a
# float32 constant
_COUNT = re.compile(r"^    ([A-Z][A-Z0-9_]*) = (\d+)$", re.M)
_CONSTANT = re.compile(r"tl\.full\(\[\], (-?\d+\.\d*(?:e[-+]?\d+)?|-?\d+e[-+]?\d+), "
                       r"tl\.float32\)")


def _sites(part: GeneratedKernel) -> tuple[str, list[str]]:
    """(the part's source with its name and its variable literals as placeholders, those
    literals in order). A count is variable only where the body compares against it
    alone (a count that indexes or bounds a loop stays in the source)."""
    spec = part.launch
    source = re.sub(rf"^def {re.escape(spec.name)}\(", "def PART(", part.source, flags=re.M)
    # the comment block above the function names the node and its shapes
    source = re.sub(r"^[ \t]*#.*\n", "", source, flags=re.M)
    values: list[str] = []

    def count(match):
        name = match.group(1)
        uses = len(re.findall(rf"\b{name}\b", source)) - 1
        if uses != len(re.findall(rf"< {name}\b(?!\s*\()", source)):
            return match.group(0)
        values.append(match.group(2))
        return f"    {name} = \x00{len(values) - 1}\x00"

    def constant(match):
        values.append(match.group(1))
        return f"tl.full([], \x00{len(values) - 1}\x00, tl.float32)"
    template = _CONSTANT.sub(constant, _COUNT.sub(count, source))
    return template, values


def _shared_groups(parts: tuple[GeneratedKernel, ...]) -> list[list[int]]:
    """Part indices grouped by structure (`_sites`' template, block sizes, argument types),
    in order of first appearance; the grid follows this order. Only parts of one program
    share (a BatchNorm's running statistics, a bias's update): a count that is not a
    literal leaves Triton no divisibility to vectorize the masked loads by, which a
    one-program part does not feel and a large parameter's update would; parts with
    runtime sizes keep their own bodies too."""
    groups: dict = {}
    for i, part in enumerate(parts):
        spec = part.launch
        alone = spec.sizes or spec.grid[0] != 1
        key = (i,) if alone else (_sites(part)[0], tuple(sorted(spec.constexprs.items())),
                                  tuple(t for _, t in spec.args))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _shared_part(parts, members: list[int], g: int, first: int) -> tuple:
    """(function, (last program id + 1, branch lines), next first id) of parts sharing one
    body: the literals that differ between them become arguments, chosen with the
    pointers by program id in the branch."""
    lead = parts[members[0]]
    spec = lead.launch
    template, _ = _sites(lead)
    values = [_sites(parts[i])[1] for i in members]
    varying = [k for k in range(len(values[0])) if len({v[k] for v in values}) > 1]
    params = _DEF.findall(lead.source)[0][1]
    extra = [f"hz_l{k}" for k in varying] + ["hz_pid0"]
    body = template.replace("def PART(" + params + "):",
                            f"def shared{g}_{spec.name}({params}, {', '.join(extra)}):")
    for k, value in enumerate(values[0]):      # a varying constant: tl.full([], hz_lk, ...)
        body = body.replace(f"\x00{k}\x00", f"hz_l{k}" if k in varying else value)
    body = body.replace("tl.program_id(0)", "(tl.program_id(0) - hz_pid0)")
    pointers = [a for a, _ in spec.args]
    local = [f"hz_a{j}" for j in range(len(pointers))]
    lines, start = [], first
    for m, i in enumerate(members):
        chosen = [f"p{i}_{a}" for a in pointers] + [values[m][k] for k in varying] + [str(start)]
        start += parts[i].launch.grid[0]
        head = "if" if m == 0 else "elif"
        lines.append(f"{head} pid < {start}:" if m < len(members) - 1 else "else:")
        lines.append(f"    {', '.join(local + extra)} = {', '.join(chosen)}")
    mine = dict(zip(pointers, local))
    call = [mine[n] if n in mine else str(spec.constexprs[n]) for n in _params(params)]
    lines.append(f"shared{g}_{spec.name}({', '.join(call + extra)})")
    return body, (start, lines), start
