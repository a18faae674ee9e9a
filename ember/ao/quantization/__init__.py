"""ember.ao.quantization: torch.ao.quantization's user API under the same names.

Observers and fake quantization (observer.py, fake_quantize.py), qconfigs and their
mappings (qconfig.py, qconfig_mapping.py), backend patterns (backend_config/), and the
FX graph-mode pipeline (quantize_fx.py; its graph rewrites live in ember/passes/).
"""
from .observer import *  # noqa: F401,F403
from .observer import (ObserverBase, UniformQuantizationObserverBase, MinMaxObserver,  # noqa
                       MovingAverageMinMaxObserver, PerChannelMinMaxObserver,
                       MovingAveragePerChannelMinMaxObserver, PlaceholderObserver,
                       FixedQParamsObserver, NoopObserver, HistogramObserver)
