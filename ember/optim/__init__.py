"""ember.optim (user-facing name): re-exports ember.frontend.optim, as torch.optim."""
from ..frontend.optim import *  # noqa: F401,F403
from ..frontend.optim import Optimizer, SGD, Adam, AdamW, Adagrad, RMSprop, required  # noqa
from ..frontend.optim import Adadelta, Adamax, NAdam, RAdam, Rprop, LBFGS  # noqa: F401
from ..frontend.optim import ASGD, Adafactor, SparseAdam, Muon  # noqa: F401
from . import functional, lr_scheduler, optimizer, swa_utils  # noqa: F401
