"""`ember.fx.passes.shape_prop` (torch.fx.passes.shape_prop's names)."""
from ...frontend.fx.shape_prop import ShapeProp, TensorMetadata  # noqa: F401
