"""`ember.fx.immutable_collections` (torch.fx.immutable_collections' names)."""
from ..frontend.fx.immutable_collections import immutable_dict, immutable_list  # noqa: F401
