"""Where the Triton tests run their kernels: Triton's interpreter on torch CPU tensors (CI:
TRITON_INTERPRET=1, the default these tests set), or a real GPU when run on the GPU machine
with TRITON_INTERPRET=0 (`TRITON_INTERPRET=0 pytest tests/codegen/triton`)."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
INTERPRETED = os.environ["TRITON_INTERPRET"] not in ("", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

DEVICE = "cpu" if INTERPRETED else "cuda"
if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip("TRITON_INTERPRET=0 but torch sees no CUDA device", allow_module_level=True)


def dev(array: np.ndarray):
    """A torch tensor on the test device holding a copy of `array`."""
    return torch.from_numpy(np.ascontiguousarray(array).copy()).to(DEVICE)


def host(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()
