"""Run PyTorch's `custom_op_db` against ember.library.

`torch.testing._internal.custom_op_db` is a list of OpInfos whose ops are defined with
`torch.library.custom_op` at module level: NumPy kernels, `register_fake` (some with
data-dependent output sizes), `register_autograd` with setup_context (one taking the
keyword-only inputs apart), `register_vmap`, list inputs and outputs, plus a
`torch.library.Library` fragment with `define` and `register_fake(..., lib=lib)`. The
module's source runs again with `torch` naming ember (`tools/opinfo_dbs.py`), so every op
is defined through ember.library the same way; each entry (`ember.ops._torch_testing.*`)
is then checked against torch's op: values (float32/float64/int64), float64 gradients
and second derivatives, ember.func's vjp and vmap (through the op's vmap rule),
ember.compile of the call and ember.fx.symbolic_trace of it (the GraphModule run).

    python tools/custom_op_db.py                 # every entry: a pass/fail table
    python tools/custom_op_db.py NumpyCubeCustomOp -v
    python tools/custom_op_db.py --write-expected tests/utils/custom_op_db_expected.txt

Needs torch (the oracle); ember itself never imports torch.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import opinfo_dbs  # noqa: E402

MODULE = "torch.testing._internal.custom_op_db"


def ember_scope() -> dict:
    """The database module's namespace, its ops defined through ember.library."""
    return opinfo_dbs.ported_scope(MODULE, drop=("custom_op_db",))


def entries(names=None) -> dict:
    from torch.testing._internal.custom_op_db import custom_op_db
    return {info.name: info for info in custom_op_db
            if not names or info.name in names}


def check_entry(info, checks=opinfo_dbs.CHECKS + ("fx",)) -> dict:
    try:
        fn = opinfo_dbs.twin_of(info.op, ember_scope())
    except Exception as exc:  # noqa: BLE001
        return {"name": info.name, "passed": 0,
                "failures": [f"port: {opinfo_dbs._err(exc)}"]}
    return opinfo_dbs.check_entry(info, fn, checks)


def main(argv=None):
    return opinfo_dbs.main(argv, __doc__.splitlines()[0], entries, check_entry,
                           "custom_op_db.py", "tests/utils/test_custom_op_db.py")


if __name__ == "__main__":
    sys.exit(main())
