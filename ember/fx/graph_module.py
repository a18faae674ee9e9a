"""`ember.fx.graph_module` (torch.fx.graph_module's names)."""
from ..frontend.fx.graph_module import (GraphModule, _copy_attr,  # noqa: F401
                                        _CodeOnlyModule, _USER_PRESERVED_ATTRIBUTES_KEY)
