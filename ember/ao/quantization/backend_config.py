"""BackendConfig: which patterns a backend quantizes, and with which dtypes
(torch.ao.quantization.backend_config's classes, for the native x86/fbgemm/qnnpack
backends).

prepare_fx reads it to check each quantized node's qconfig against its pattern's
DTypeConfigs: a qconfig whose dtypes the backend has no kernel for is an error that
names the node and the dtypes, never a silently float node. The patterns themselves
are ember/passes/quantize.py's kinds ("linear", "conv2d_relu", "add", ...); a
BackendPatternConfig's `pattern` may be given as torch.ao does (nn.Linear,
(nn.Conv2d, nn.ReLU), ember.add, operator.add, "add") and is mapped to its kind.
"""
from __future__ import annotations

import enum
import operator
from dataclasses import dataclass

from ...frontend import nn
from ...ir import dtypes
from ...ir.ops import OPS_NS
from ...passes import quantize as qpass


class ObservationType(enum.Enum):
    OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT = 0
    OUTPUT_SHARE_OBSERVER_WITH_INPUT = 1
    INPUT_OUTPUT_NOT_OBSERVED = 2


@dataclass(frozen=True)
class DTypeConfig:
    input_dtype: object = None
    output_dtype: object = None
    weight_dtype: object = None
    bias_dtype: object = None
    is_dynamic: bool | None = None


class BackendPatternConfig:
    def __init__(self, pattern=None):
        self.pattern = pattern
        self.observation_type = ObservationType.OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT
        self.dtype_configs: list[DTypeConfig] = []

    def set_observation_type(self, observation_type) -> "BackendPatternConfig":
        self.observation_type = observation_type
        return self

    def add_dtype_config(self, dtype_config: DTypeConfig) -> "BackendPatternConfig":
        self.dtype_configs.append(dtype_config)
        return self

    def set_dtype_configs(self, dtype_configs) -> "BackendPatternConfig":
        self.dtype_configs = list(dtype_configs)
        return self

    @property
    def kind(self) -> str | None:
        return pattern_kind(self.pattern)


class BackendConfig:
    def __init__(self, name: str = ""):
        self.name = name
        self.configs: list[BackendPatternConfig] = []

    def set_name(self, name: str) -> "BackendConfig":
        self.name = name
        return self

    def set_backend_pattern_config(self, config: BackendPatternConfig) -> "BackendConfig":
        self.configs.append(config)
        return self

    def set_backend_pattern_configs(self, configs) -> "BackendConfig":
        for c in configs:
            self.set_backend_pattern_config(c)
        return self

    def dtype_configs_for(self, kind: str) -> list[DTypeConfig] | None:
        """The DTypeConfigs of every pattern of `kind` (None: the backend has none)."""
        found = [d for c in self.configs if c.kind == kind for d in c.dtype_configs]
        return found if any(c.kind == kind for c in self.configs) else None

    def __repr__(self) -> str:
        return f"BackendConfig({self.name!r}, {len(self.configs)} patterns)"


def pattern_kind(pattern) -> str | None:
    """torch.ao-style pattern -> ember's pattern kind."""
    relu = (nn.ReLU, OPS_NS.relu, "relu")
    if isinstance(pattern, tuple) and len(pattern) == 2 and pattern[1] in relu:
        base = pattern_kind(pattern[0])
        return f"{base}_relu" if base in ("linear", "conv2d", "conv3d") else base
    if pattern in (nn.Linear, OPS_NS.linear):
        return "linear"
    if pattern in (nn.Conv2d, OPS_NS.conv2d):
        return "conv2d"
    if pattern is nn.Conv3d:
        return "conv3d"
    if pattern in (operator.add, OPS_NS.add, "add"):
        return "add"
    if pattern in (operator.mul, OPS_NS.mul, "mul"):
        return "mul"
    name = pattern if isinstance(pattern, str) else getattr(pattern, "name", None) or \
        getattr(pattern, "__name__", "")
    name = name.lower()
    if name in qpass.SHARED or name in qpass.FIXED or name in qpass.OWN_OBSERVER:
        return name
    return None


_WEIGHTED = DTypeConfig(dtypes.quint8, dtypes.quint8, dtypes.qint8, dtypes.float32)
_DYNAMIC = DTypeConfig(dtypes.quint8, dtypes.float32, dtypes.qint8, dtypes.float32, True)
_ACT = DTypeConfig(dtypes.quint8, dtypes.quint8)


# qnnpack's signed activations (torch.ao's qnnpack config: XNNPACK-style qint8 symmetric)
_WEIGHTED_QINT8 = DTypeConfig(dtypes.qint8, dtypes.qint8, dtypes.qint8, dtypes.float32)
_ACT_QINT8 = DTypeConfig(dtypes.qint8, dtypes.qint8)


def _native(name: str, signed: bool = False) -> BackendConfig:
    """The native patterns; `signed` adds qint8 activations (qnnpack), which run on the
    NumPy references (the int8 kernels take quint8 activations)."""
    config = BackendConfig(name)
    weighted = [_WEIGHTED, _DYNAMIC] + ([_WEIGHTED_QINT8] if signed else [])
    act = [_ACT] + ([_ACT_QINT8] if signed else [])
    for pattern in (nn.Linear, (nn.Linear, nn.ReLU), nn.Conv2d, (nn.Conv2d, nn.ReLU),
                    nn.Conv3d, (nn.Conv3d, nn.ReLU)):
        config.set_backend_pattern_config(
            BackendPatternConfig(pattern).set_dtype_configs(weighted))
    for pattern in (operator.add, operator.mul):
        config.set_backend_pattern_config(BackendPatternConfig(pattern).set_dtype_configs(act))
    for name_ in sorted(qpass.SHARED):
        config.set_backend_pattern_config(
            BackendPatternConfig(name_).set_dtype_configs(act).set_observation_type(
                ObservationType.OUTPUT_SHARE_OBSERVER_WITH_INPUT))
    for name_ in sorted(qpass.FIXED | qpass.OWN_OBSERVER):
        config.set_backend_pattern_config(BackendPatternConfig(name_).set_dtype_configs(act))
    return config


def get_native_backend_config() -> BackendConfig:
    return _native("native")


def get_x86_backend_config() -> BackendConfig:
    return _native("x86")


def get_fbgemm_backend_config() -> BackendConfig:
    return _native("fbgemm")


def get_qnnpack_backend_config() -> BackendConfig:
    return _native("qnnpack", signed=True)


def check_qconfig(config: BackendConfig, kind: str, activation, weight, node_name: str,
                  where: str) -> None:
    """Raise when no DTypeConfig of the node's pattern accepts the qconfig's dtypes."""
    from .quantize_fx import QuantizationError
    accepted = config.dtype_configs_for(kind)
    if accepted is None:
        raise QuantizationError(f"prepare_fx: node {node_name} ({where}): backend config "
                                f"{config.name!r} has no pattern for {kind!r}; give it a None "
                                f"qconfig to keep it in float")
    act_dtype = getattr(activation, "dtype", None)
    w_dtype = getattr(weight, "dtype", None) if kind in qpass.WEIGHTED else None
    for d in accepted:
        if d.is_dynamic:
            continue
        if d.input_dtype is act_dtype and (w_dtype is None or d.weight_dtype is w_dtype):
            return
    wanted = ", ".join(sorted({f"activation {d.input_dtype}" + (
        f" / weight {d.weight_dtype}" if w_dtype is not None else "")
        for d in accepted if not d.is_dynamic}))
    got = f"activation {act_dtype}" + (f" / weight {w_dtype}" if w_dtype is not None else "")
    raise QuantizationError(f"prepare_fx: node {node_name} ({where}): the qconfig asks for "
                            f"{got}, which backend config {config.name!r} does not support "
                            f"for {kind!r} (supported: {wanted})")
