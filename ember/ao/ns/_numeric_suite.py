"""torch.ao.ns._numeric_suite's module path (the Eager Mode Numeric Suite tutorial's
`import torch.ao.ns._numeric_suite as ns`): compare_weights, from numeric_suite.py."""
from .numeric_suite import compare_weights  # noqa: F401

__all__ = ["compare_weights"]
