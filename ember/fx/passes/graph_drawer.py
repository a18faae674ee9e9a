"""`ember.fx.passes.graph_drawer` (torch.fx.passes.graph_drawer's names)."""
from ...ir.drawer import GraphDrawer as FxGraphDrawer  # noqa: F401
