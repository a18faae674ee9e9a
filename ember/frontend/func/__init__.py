"""ember.func: composable function transforms (torch.func's API), built on graph passes."""
from .vmap import vmap

__all__ = ["vmap"]
