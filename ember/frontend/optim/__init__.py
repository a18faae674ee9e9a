"""ember.optim: optimizers, their pure functional updates, and LR schedulers.

User code imports `ember.optim` (a thin re-export of this package), as with torch.optim.
"""
from __future__ import annotations

from . import functional, lr_scheduler
from .optimizer import Optimizer, required
from .optimizers import SGD, Adam, AdamW, Adagrad, RMSprop

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "functional",
           "lr_scheduler", "required"]
