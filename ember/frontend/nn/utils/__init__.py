"""ember.nn.utils: torch.nn.utils' gradient clipping, parameter/vector conversion,
conv/linear-batchnorm fusion, weight and spectral normalization (the hook API and the
parametrizations), and parametrize."""
from . import fusion  # noqa: F401
from .clip_grad import (clip_grad_norm_, clip_grad_value_, clip_grad_norm,  # noqa: F401
                        get_total_norm, clip_grads_with_norm_)
from .convert_parameters import parameters_to_vector, vector_to_parameters  # noqa: F401
from .fusion import (fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_linear_bn_eval,  # noqa
                     fuse_linear_bn_weights)
from .memory_format import (convert_conv2d_weight_memory_format,  # noqa: F401
                            convert_conv3d_weight_memory_format, skip_init)
from .weight_norm import weight_norm, remove_weight_norm  # noqa: F401
from .spectral_norm import spectral_norm, remove_spectral_norm  # noqa: F401
from . import parametrize, parametrizations  # noqa: F401,E402
from . import rnn  # noqa: F401,E402
from . import prune  # noqa: F401,E402
from . import stateless  # noqa: F401,E402
import sys as _sys  # noqa: E402
_sys.modules.setdefault("ember.nn.utils.rnn", rnn)   # `import ember.nn.utils.rnn`: the same module
_sys.modules.setdefault("ember.nn.utils.prune", prune)
_sys.modules.setdefault("ember.nn.utils.stateless", stateless)
