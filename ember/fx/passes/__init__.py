"""`ember.fx.passes`: torch.fx.passes' module locations (graph passes themselves live in
ember.passes)."""
from . import shape_prop, split_module, graph_drawer, infra, utils  # noqa: F401
