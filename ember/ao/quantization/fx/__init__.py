"""ember.ao.quantization.fx: the FX pipeline's configuration objects under torch.ao's
module path (custom_config)."""
from . import custom_config  # noqa: F401
