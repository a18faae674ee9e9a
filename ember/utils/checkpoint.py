"""ember.utils.checkpoint: torch.utils.checkpoint's names (implemented in
ember/frontend/autograd/checkpoint.py)."""
from ..frontend.autograd.checkpoint import checkpoint, checkpoint_sequential  # noqa: F401

__all__ = ["checkpoint", "checkpoint_sequential"]
