"""torch.optim.optimizer: Optimizer and the global step hooks."""
from ..frontend.optim.optimizer import (Optimizer, register_optimizer_step_post_hook,  # noqa
                                        register_optimizer_step_pre_hook, required)

__all__ = ["Optimizer", "required", "register_optimizer_step_pre_hook",
           "register_optimizer_step_post_hook"]
