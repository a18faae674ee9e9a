"""The grad-mode flags (per thread), apart from ember.autograd so that the tensor
module can read them without importing autograd: `enabled` (grad mode) and `inference`
(inside inference_mode, where new storage makes inference tensors)."""
from __future__ import annotations

import threading


class _State(threading.local):
    enabled = True
    inference = False


STATE = _State()
