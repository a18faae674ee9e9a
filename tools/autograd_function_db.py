"""Run PyTorch's `autograd_function_db` against ember.autograd.Function.

`torch.testing._internal.autograd_function_db` is a list of OpInfos whose ops are
user-written `torch.autograd.Function` classes: NumPy forwards, `setup_context` with
`save_for_backward` / `save_for_forward`, `mark_dirty`, `mark_non_differentiable`,
`once_differentiable`, `jvp` and `vmap` staticmethods, `generate_vmap_rule = True`,
forwards with default arguments. The module's source runs again with `torch` naming
ember (`tools/opinfo_dbs.py`), so each class is re-created on ember.autograd.Function
exactly as written; each entry is then checked against torch's class: values
(float32/float64/int64), float64 gradients and second derivatives, forward AD through
dual tensors, and ember.func's vjp, jvp and vmap where torch.func runs them.

    python tools/autograd_function_db.py                 # every entry: a pass/fail table
    python tools/autograd_function_db.py NumpyCubeAutogradFunction -v
    python tools/autograd_function_db.py --write-expected tests/autograd/autograd_function_db_expected.txt

Needs torch (the oracle); ember itself never imports torch.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import opinfo_dbs  # noqa: E402

MODULE = "torch.testing._internal.autograd_function_db"


def ember_scope() -> dict:
    """The database module's namespace, its classes re-created on ember."""
    return opinfo_dbs.ported_scope(MODULE, drop=("autograd_function_db",))


def entries(names=None) -> dict:
    from torch.testing._internal.autograd_function_db import autograd_function_db
    return {info.name: info for info in autograd_function_db
            if not names or info.name in names}


def check_entry(info, checks=opinfo_dbs.CHECKS) -> dict:
    try:
        fn = opinfo_dbs.twin_of(info.op, ember_scope())
    except Exception as exc:  # noqa: BLE001
        return {"name": info.name, "passed": 0,
                "failures": [f"port: {opinfo_dbs._err(exc)}"]}
    return opinfo_dbs.check_entry(info, fn, checks)


def main(argv=None):
    return opinfo_dbs.main(argv, __doc__.splitlines()[0], entries, check_entry,
                           "autograd_function_db.py", "tests/autograd/test_autograd_function_db.py")


if __name__ == "__main__":
    sys.exit(main())
