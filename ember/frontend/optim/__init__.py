"""ember.optim: optimizers, their pure functional updates, and LR schedulers.

User code imports `ember.optim` (a thin re-export of this package), as with torch.optim.
"""
from __future__ import annotations

from . import functional, lr_scheduler
from .optimizer import Optimizer, required
from .optimizers import SGD, Adam, AdamW, Adagrad, RMSprop
from .more_optimizers import Adadelta, Adamax, NAdam, RAdam, Rprop, ASGD, Adafactor, SparseAdam, Muon
from .lbfgs import LBFGS

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax",
           "NAdam", "RAdam", "Rprop", "LBFGS", "ASGD", "Adafactor", "SparseAdam", "Muon", "functional",
           "lr_scheduler", "required"]
