"""ember.ao.quantization: torch.ao.quantization's user API under the same names.

Observers and fake quantization (observer.py, fake_quantize.py), qconfigs and their
mappings (qconfig.py, qconfig_mapping.py), backend patterns (backend_config/), and the
FX graph-mode pipeline (quantize_fx.py; its graph rewrites live in ember/passes/).
"""
from .observer import *  # noqa: F401,F403
from .observer import (ObserverBase, UniformQuantizationObserverBase, MinMaxObserver,  # noqa
                       MovingAverageMinMaxObserver, PerChannelMinMaxObserver,
                       MovingAveragePerChannelMinMaxObserver, PlaceholderObserver,
                       FixedQParamsObserver, NoopObserver, HistogramObserver,
                       ReuseInputObserver)
from .fake_quantize import *  # noqa: F401,F403
from .fake_quantize import (FakeQuantizeBase, FakeQuantize, FusedMovingAvgObsFakeQuantize,  # noqa
                            FixedQParamsFakeQuantize)
from .qconfig import *  # noqa: F401,F403
from .qconfig import QConfig, get_default_qconfig, get_default_qat_qconfig  # noqa: F401
from .qconfig_mapping import (QConfigMapping, get_default_qconfig_mapping,  # noqa: F401
                              get_default_qat_qconfig_mapping)
from . import quantize_fx  # noqa: F401,E402
from .quantize_fx import PrepareCustomConfig, ConvertCustomConfig, QuantizationError  # noqa
from .fx.custom_config import FuseCustomConfig  # noqa: F401,E402
from .quant_type import QuantType  # noqa: F401,E402
from .quantize import quantize_dynamic  # noqa: F401,E402
from . import backend_config  # noqa: F401,E402
from . import utils  # noqa: F401,E402
from .utils import MatchAllNode, Pattern, get_combined_dict  # noqa: F401,E402
from .observer import get_observer_state_dict, load_observer_state_dict  # noqa: F401,E402
from .fuse_modules import (fuse_conv_bn, fuse_conv_bn_relu, fuse_linear_bn,  # noqa: E402,F401
                           get_fuser_method, fuse_known_modules)
from .observer import ObserverBase as _ObserverBase  # noqa: E402
from .fake_quantize import FakeQuantizeBase as _FakeQuantizeBase  # noqa: E402
ObserverOrFakeQuantize = _ObserverBase | _FakeQuantizeBase   # torch.ao's type alias
from .stubs import QuantStub, DeQuantStub  # noqa: F401,E402
from .stubs import QuantWrapper  # noqa: F401,E402
from .quantize import (propagate_qconfig_, prepare, prepare_qat, convert, quantize,  # noqa
                       quantize_qat, add_quant_dequant, swap_module, no_observer_set,
                       default_eval_fn, get_default_custom_config_dict)
from .fuse_modules import fuse_modules, fuse_modules_qat  # noqa: F401,E402
from .quantization_mappings import *  # noqa: F401,F403,E402


_PT2E_NAMES = ("move_exported_model_to_eval", "move_exported_model_to_train",
               "allow_exported_model_train_eval")


def __getattr__(name):
    # torch.ao.quantization exports these pt2e helpers; quantize_pt2e is imported only
    # when they are asked for (it pulls in the export machinery)
    if name in _PT2E_NAMES:
        from . import quantize_pt2e
        return getattr(quantize_pt2e, name)
    raise AttributeError(f"module 'ember.ao.quantization' has no attribute '{name}'")
