"""`ember.fx._pytree` (torch.fx._pytree's): flatten a structure in a spec's order."""
from ..frontend.fx.pytree_codegen import tree_flatten_spec  # noqa: F401
