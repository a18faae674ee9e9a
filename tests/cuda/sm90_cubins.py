"""Shared by the CUDA tests: what CI can check of a GPU path without a GPU. Generated
Triton kernels are compiled to sm_90 cubins in a fresh process (the emulated tests set
TRITON_INTERPRET=1 at import, which would make Triton interpret them instead), and each
kernel's PTX must take exactly the parameters the launcher packs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_SCRIPT = r'''
import json, re
{imports}
from ember.frontend.eager_cuda import compile_triton
from ember.runtime.cuda.module import LaunchMetadata
out = {{}}
for gen in ({kernels},):
    types = gen.launch.arg_types()       # the caller's arguments, then any bound sizes
    flags = [t.startswith("*") for _, t in gen.launch.args] if {typed_flags} else \
        [True] * len(gen.launch.args)
    compiled = compile_triton(gen, flags, (9, 0))
    meta = LaunchMetadata.from_dict(compiled.metadata._asdict(), types)
    params = re.search(r"\.entry\s+\w+\s*\((.*?)\)", compiled.asm["ptx"], re.S).group(1)
    out[gen.name] = [params.count(".param"), len(types) + meta.scratch_params,
                     compiled.asm["cubin"][:4] == b"\x7fELF"]
print(json.dumps(out))
'''


def compile_for_sm90(imports: str, kernels: str, typed_flags: bool = True) -> dict:
    """{kernel name: (PTX parameters, parameters the launcher packs, cubin is ELF)} for
    the kernels that the expression list `kernels` builds after `imports`. typed_flags:
    the compile flags mark pointer arguments (else every argument is flagged)."""
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    script = _SCRIPT.format(imports=imports, kernels=kernels, typed_flags=typed_flags)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def assert_launchable(results: dict) -> None:
    for name, (params, expected, elf) in results.items():
        assert params == expected and elf, name
