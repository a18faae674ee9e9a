"""ember.backends.opt_einsum: torch.backends.opt_einsum's switches. ember.einsum picks its
contraction order itself; is_available() says whether the opt_einsum package is installed,
as torch's does, and `enabled`/`strategy` are the settings scripts set."""
from __future__ import annotations

import contextlib
import importlib.util

enabled = importlib.util.find_spec("opt_einsum") is not None
strategy = "auto" if enabled else None


def is_available() -> bool:
    return importlib.util.find_spec("opt_einsum") is not None


def get_opt_einsum():
    """The opt_einsum module, or None where it is not installed."""
    return importlib.import_module("opt_einsum") if is_available() else None


@contextlib.contextmanager
def flags(enabled=None, strategy=None):
    module = globals()
    saved = {"enabled": module["enabled"], "strategy": module["strategy"]}
    if enabled is not None:
        module["enabled"] = enabled
    if strategy is not None:
        module["strategy"] = strategy
    try:
        yield
    finally:
        module.update(saved)
