"""ember.func: composable function transforms (torch.func's API), built on graph passes.

vmap batches a traced graph (passes/vmap.py); grad/vjp use the reverse-mode joint graph
(passes/autograd.py); jvp the forward-mode graph (passes/forward_ad.py); jacrev, jacfwd
and hessian compose them. See docs/autograd.md, "vmap and ember.func".
"""
from .autodiff import grad, grad_and_value, jvp, vjp
from .functional_call import functional_call, stack_module_state
from .jacobians import hessian, jacfwd, jacrev
from .linearize import functionalize, linearize, replace_all_batch_norm_modules_
from .vmap import vmap

__all__ = ["vmap", "grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian",
           "functional_call", "stack_module_state", "linearize", "functionalize",
           "replace_all_batch_norm_modules_"]
