"""What the shape-generic implicit-GEMM conv compiles to, against its literal form (no GPU).

For resnet18's convolutions at batch 64 (channels-last, float32 TF32: the forward convs and
the stride-1 convolutions of the input gradients' phases) generate the Triton kernel both
ways (EMBER_TRITON_LITERAL_SIZES=1 and ember's default, where the "conv" family is
shape-generic), compile each for sm_90 and count in the PTX: global loads, stores and
cp.async copies by width, integer divisions and remainders, and the SASS-facing figures
Triton reports (registers, spills, shared memory). Prints one row per conv and form, and
how many distinct bodies each form has.

    python tools/conv_ptx_widths.py [--batch 64] [--shapes N]
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (Cin, H, W, Cout, kernel, stride, padding): resnet18's forward convs, then the stride-1
# convs its input gradients run (stride-1 layers as such; a stride-2 layer's phases)
RESNET18 = [
    (3, 224, 224, 64, (7, 7), 2, 3),
    (64, 56, 56, 64, (3, 3), 1, 1), (64, 56, 56, 128, (3, 3), 2, 1),
    (128, 28, 28, 128, (3, 3), 1, 1), (64, 56, 56, 128, (1, 1), 2, 0),
    (128, 28, 28, 256, (3, 3), 2, 1), (256, 14, 14, 256, (3, 3), 1, 1),
    (128, 28, 28, 256, (1, 1), 2, 0), (256, 14, 14, 512, (3, 3), 2, 1),
    (512, 7, 7, 512, (3, 3), 1, 1), (256, 14, 14, 512, (1, 1), 2, 0),
    # input-gradient phases of the stride-2 3x3 layers (output gradient's channels in)
    (128, 28, 28, 64, (2, 2), 1, 1), (128, 28, 28, 64, (1, 2), 1, 0),
    (256, 14, 14, 128, (2, 2), 1, 1), (512, 7, 7, 256, (2, 2), 1, 1),
    (512, 7, 7, 256, (1, 1), 1, 0),
]


def problem_for(batch, cin, h, w, cout, kernel, stride, padding):
    from ember.codegen.triton.gemm import ConvProblem
    from ember.ir.dtypes import float32
    kh, kw = kernel
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w + 2 * padding - kw) // stride + 1
    x_strides = (h * w * cin, 1, w * cin, cin)                    # channels-last
    w_strides = (kh * kw * cin, 1, kw * cin, cin)
    out_strides = (ho * wo * cout, 1, wo * cout, cout)
    return ConvProblem((batch, cin, h, w), x_strides, (cout, cin, kh, kw), w_strides,
                       out_strides, (stride, stride), (padding, padding), (1, 1), 1,
                       float32, float32, None, "tf32")


def generate(problem, literal: bool):
    from ember.codegen.triton.autotune import default_config
    from ember.codegen.triton.gemm import generate_gemm
    if literal:
        os.environ["EMBER_TRITON_LITERAL_SIZES"] = "1"
    else:
        os.environ.pop("EMBER_TRITON_LITERAL_SIZES", None)
    try:
        return generate_gemm(problem, default_config(problem), None, "conv2d")
    finally:
        os.environ.pop("EMBER_TRITON_LITERAL_SIZES", None)


def counts(generated) -> dict:
    from ember.frontend.eager_cuda import compile_triton
    compiled = compile_triton(generated, [True] * len(generated.launch.args), (9, 0))
    ptx = compiled.asm["ptx"]
    found = collections.Counter()
    for op in re.findall(r"^\s*(?:@%p\d+\s+)?((?:ld|st)\.global[\w.]*|cp\.async\.[\w.]+)",
                         ptx, re.M):
        found[op] += 1
    meta = compiled.metadata
    meta = meta._asdict() if hasattr(meta, "_asdict") else dict(meta)
    return {"mem": dict(sorted(found.items())),
            "div/rem": len(re.findall(r"^\s*(?:@%p\d+\s+)?(?:div|rem)\.", ptx, re.M)),
            **resources(compiled.asm["cubin"]),
            "shared": meta.get("shared"), "ptx_lines": ptx.count("\n")}


def resources(cubin: bytes) -> dict:
    """Registers and local memory (spills) per thread, and SASS instructions, from
    Triton's own cuobjdump."""
    import subprocess
    import tempfile
    import triton
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin",
                        "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        usage = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True,
                               text=True).stdout
        sass = subprocess.run([tool, "--dump-sass", f.name], capture_output=True,
                              text=True).stdout
    reg = re.search(r"REG:(\d+)", usage)
    local = re.search(r"LOCAL:(\d+)", usage)
    return {"regs": int(reg.group(1)) if reg else None,
            "local": int(local.group(1)) if local else None,
            "sass": len(re.findall(r"^\s+/\*[0-9a-f]{4}\*/", sass, re.M))}


def body(generated) -> str:
    text = "\n".join(x for x in generated.source.splitlines() if not x.lstrip().startswith("#"))
    return re.sub(r"^def \w+\(", "def K(", text, flags=re.M)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--shapes", type=int, default=len(RESNET18))
    args = parser.parse_args()
    bodies = {True: set(), False: set()}
    for shape in RESNET18[:args.shapes]:
        problem = problem_for(args.batch, *shape)
        for literal in (True, False):
            generated = generate(problem, literal)
            bodies[literal].add(body(generated))
            row = counts(generated)
            print(f"{'literal' if literal else 'default'} Cin{shape[0]} {shape[1]}x{shape[2]} "
                  f"Cout{shape[3]} k{shape[4][0]}x{shape[4][1]} s{shape[5]} p{shape[6]}: "
                  f"{row}", flush=True)
    print(f"distinct bodies: literal {len(bodies[True])}, default {len(bodies[False])} "
          f"(of {args.shapes} convs)")


if __name__ == "__main__":
    main()
