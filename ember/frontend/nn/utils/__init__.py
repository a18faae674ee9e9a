"""ember.nn.utils: torch.nn.utils' gradient clipping, parameter/vector conversion and
conv-batchnorm fusion helpers."""
from . import fusion  # noqa: F401
from .clip_grad import clip_grad_norm_, clip_grad_value_  # noqa: F401
from .convert_parameters import parameters_to_vector, vector_to_parameters  # noqa: F401
from .fusion import fuse_conv_bn_eval, fuse_conv_bn_weights  # noqa: F401
from . import rnn  # noqa: F401,E402
import sys as _sys  # noqa: E402
_sys.modules.setdefault("ember.nn.utils.rnn", rnn)   # `import ember.nn.utils.rnn`: the same module
