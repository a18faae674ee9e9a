"""`ember.fx.experimental.schema_type_annotation` (torch.fx.experimental's)."""
from ...frontend.fx.normalize import AnnotateTypesWithSchema  # noqa: F401
