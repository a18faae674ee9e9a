"""`ember.fx.passes`: torch.fx.passes' module locations (graph passes themselves live in
ember.passes)."""
from . import (shape_prop, split_module, split_utils, graph_drawer, infra,  # noqa: F401
               utils, tools_common, operator_support)
