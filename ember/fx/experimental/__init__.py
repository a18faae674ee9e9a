"""`ember.fx.experimental` (torch.fx.experimental's module locations)."""
from . import (const_fold, optimization, proxy_tensor, normalize,  # noqa: F401
               symbolic_shapes, schema_type_annotation)
