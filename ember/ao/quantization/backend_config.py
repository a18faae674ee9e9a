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
import warnings
from dataclasses import dataclass

from ...frontend import nn
from ...ir import dtypes
from ...ir.ops import OPS_NS
from ...passes import quantize as qpass


# the kind of a node matched by a user's BackendPatternConfig (see is_user_pattern)
USER_PATTERN = "backend_pattern"


class ObservationType(enum.Enum):
    OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT = 0
    OUTPUT_SHARE_OBSERVER_WITH_INPUT = 1
    INPUT_OUTPUT_NOT_OBSERVED = 2


@dataclass(frozen=True)
class DTypeWithConstraints:
    """A dtype with bounds a qconfig must respect (torch.ao's); ember matches on the
    dtype."""
    dtype: object = None
    quant_min_lower_bound: int | None = None
    quant_max_upper_bound: int | None = None
    scale_min_lower_bound: float | None = None
    scale_max_upper_bound: float | None = None
    scale_exact_match: float | None = None
    zero_point_exact_match: int | None = None


def _plain_dtype(value):
    return value.dtype if isinstance(value, DTypeWithConstraints) else value


@dataclass(frozen=True)
class DTypeConfig:
    input_dtype: object = None
    output_dtype: object = None
    weight_dtype: object = None
    bias_dtype: object = None
    is_dynamic: bool | None = None

    def __post_init__(self):
        for name in ("input_dtype", "output_dtype", "weight_dtype", "bias_dtype"):
            object.__setattr__(self, name, _plain_dtype(getattr(self, name)))

    @classmethod
    def from_dict(cls, d: dict) -> "DTypeConfig":
        return cls(d.get("input_dtype"), d.get("output_dtype"), d.get("weight_dtype"),
                   d.get("bias_dtype"), d.get("is_dynamic"))

    def to_dict(self) -> dict:
        return {k: v for k, v in (("input_dtype", self.input_dtype),
                                  ("output_dtype", self.output_dtype),
                                  ("weight_dtype", self.weight_dtype),
                                  ("bias_dtype", self.bias_dtype),
                                  ("is_dynamic", self.is_dynamic)) if v is not None}


# torch.ao's BackendPatternConfig setters whose values ember keeps for to_dict (the module
# swaps they describe are the pass's own, chosen by the pattern's kind)
_PATTERN_FIELDS = ("root_module", "qat_module", "reference_quantized_module", "fused_module",
                   "fuser_method", "root_node_getter", "extra_inputs_getter",
                   "num_tensor_args_to_observation_type", "input_type_to_index",
                   "input_output_observed", "overwrite_output_fake_quantize",
                   "overwrite_output_observer")


class BackendPatternConfig:
    def __init__(self, pattern=None):
        self.pattern = pattern
        self.observation_type = ObservationType.OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT
        self.dtype_configs: list[DTypeConfig] = []
        for field in _PATTERN_FIELDS:
            setattr(self, field, None)

    def __repr__(self) -> str:
        return f"BackendPatternConfig({self.pattern!r}, kind={self.kind!r})"

    def set_pattern(self, pattern) -> "BackendPatternConfig":
        self.pattern = pattern
        return self

    def _set_pattern_complex_format(self, pattern) -> "BackendPatternConfig":
        # torch's reversed nested form: (nn.ReLU, nn.Linear) is linear followed by relu
        if isinstance(pattern, tuple) and len(pattern) == 2:
            pattern = (pattern[1], pattern[0])
        return self.set_pattern(pattern)

    def set_observation_type(self, observation_type) -> "BackendPatternConfig":
        self.observation_type = observation_type
        return self

    def add_dtype_config(self, dtype_config: DTypeConfig) -> "BackendPatternConfig":
        self.dtype_configs.append(dtype_config)
        return self

    def set_dtype_configs(self, dtype_configs) -> "BackendPatternConfig":
        self.dtype_configs = list(dtype_configs)
        return self

    def _setter(field):
        def set_(self, value) -> "BackendPatternConfig":
            setattr(self, field, value)
            return self
        set_.__name__ = f"set_{field}"
        return set_

    set_root_module = _setter("root_module")
    set_qat_module = _setter("qat_module")
    set_reference_quantized_module = _setter("reference_quantized_module")
    set_fused_module = _setter("fused_module")
    set_fuser_method = _setter("fuser_method")
    _set_root_node_getter = _setter("root_node_getter")
    _set_extra_inputs_getter = _setter("extra_inputs_getter")
    _set_num_tensor_args_to_observation_type = _setter("num_tensor_args_to_observation_type")
    _set_input_type_to_index = _setter("input_type_to_index")
    _set_input_output_observed = _setter("input_output_observed")
    _set_overwrite_output_fake_quantize = _setter("overwrite_output_fake_quantize")
    _set_overwrite_output_observer = _setter("overwrite_output_observer")
    del _setter

    @property
    def kind(self) -> str | None:
        known = pattern_kind(self.pattern)
        if known is None and self.is_user_pattern():
            return USER_PATTERN
        return known

    def is_user_pattern(self) -> bool:
        """A single module class, function or method name ember has no pattern of its
        own for, observed on its inputs and output: it runs in float between a
        dequantize and a quantize once converted, as torch.ao's reference form."""
        if pattern_kind(self.pattern) is not None or isinstance(self.pattern, tuple):
            return False
        return self.observation_type is \
            ObservationType.OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT and \
            (isinstance(self.pattern, (type, str)) or callable(self.pattern))

    def matches(self, node, modules: dict) -> bool:
        """Whether a graph node is this (user) pattern: a call of a module of exactly
        the pattern's class, of the pattern function (or the registry op of its name),
        or of the method named by a string pattern."""
        from ...ir.graph import OpKind
        from ...ir.registry import is_op
        pattern = self.pattern
        if node.op == OpKind.call_module:
            return isinstance(pattern, type) and type(modules.get(str(node.target))) is pattern
        if node.op == OpKind.call_method:
            return isinstance(pattern, str) and node.target == pattern
        if node.op != OpKind.call_function or isinstance(pattern, (type, str)):
            return False
        if node.target is pattern:
            return True
        name = getattr(pattern, "name", None) or getattr(pattern, "__name__", None)
        return is_op(node.target) and name is not None and node.target.name == name

    @classmethod
    def from_dict(cls, d: dict) -> "BackendPatternConfig":
        conf = cls(d.get("pattern"))
        if "pattern_complex_format" in d:
            conf._set_pattern_complex_format(d["pattern_complex_format"])
        if "observation_type" in d:
            conf.set_observation_type(d["observation_type"])
        conf.set_dtype_configs([c if isinstance(c, DTypeConfig) else DTypeConfig.from_dict(c)
                                for c in d.get("dtype_configs", [])])
        for field in _PATTERN_FIELDS:
            if field in d:
                setattr(conf, field, d[field])
        return conf

    def to_dict(self) -> dict:
        d = {"pattern": self.pattern, "observation_type": self.observation_type,
             "dtype_configs": [c.to_dict() for c in self.dtype_configs]}
        d.update({f: getattr(self, f) for f in _PATTERN_FIELDS if getattr(self, f) is not None})
        return d


class BackendConfig:
    def __init__(self, name: str = ""):
        self.name = name
        self.configs: list[BackendPatternConfig] = []

    def set_name(self, name: str) -> "BackendConfig":
        self.name = name
        return self

    def set_backend_pattern_config(self, config: BackendPatternConfig) -> "BackendConfig":
        # a pattern set again replaces the earlier config, as in torch.ao
        self.configs = [c for c in self.configs if c.pattern != config.pattern] + [config]
        return self

    def set_backend_pattern_configs(self, configs) -> "BackendConfig":
        for c in configs:
            self.set_backend_pattern_config(c)
        return self

    def dtype_configs_for(self, kind: str) -> list[DTypeConfig] | None:
        """The DTypeConfigs of every pattern of `kind` (None: the backend has none)."""
        found = [d for c in self.configs if c.kind == kind for d in c.dtype_configs]
        return found if any(c.kind == kind for c in self.configs) else None

    @classmethod
    def from_dict(cls, d: dict) -> "BackendConfig":
        conf = cls(d.get("name", ""))
        return conf.set_backend_pattern_configs(
            c if isinstance(c, BackendPatternConfig) else BackendPatternConfig.from_dict(c)
            for c in d.get("configs", []))

    def to_dict(self) -> dict:
        return {"name": self.name, "configs": [c.to_dict() for c in self.configs]}

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
    return "cat" if name in qpass.CAT else None


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
    for name_ in sorted(qpass.SHARED) + ["cat"]:
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


def get_onednn_backend_config() -> BackendConfig:
    return _native("onednn")


def warn_unknown_patterns(config: BackendConfig) -> None:
    """A user's BackendConfig may list patterns ember has no quantized form for; say so
    (they match nothing, so those ops stay float) rather than ignore them silently."""
    import warnings
    unknown = [c.pattern for c in config.configs if c.kind is None]     # user patterns match
    if unknown:
        names = ", ".join(getattr(p, "__name__", repr(p)) for p in unknown)
        warnings.warn(f"backend config {config.name!r}: ember cannot quantize the pattern(s) "
                      f"{names}; ops matching them stay float (ember quantizes linear, conv "
                      f"(+relu), add, mul, pooling/shape ops and fixed-range activations, "
                      f"and single modules/functions observed on inputs and output)")


def check_qconfig(config: BackendConfig, kind: str, activation, weight, node_name: str,
                  where: str) -> bool:
    """False where the backend has no pattern for the node's kind (it stays float); raise
    when no DTypeConfig of the node's pattern accepts the qconfig's dtypes."""
    from .quantize_fx import QuantizationError
    accepted = config.dtype_configs_for(kind)
    if accepted is None:          # the backend does not quantize this pattern: float, as
        return False              # torch.ao leaves it (convert_fx's quantization_report)
    act_dtype = getattr(activation, "dtype", None)
    w_dtype = getattr(weight, "dtype", None) if kind in qpass.WEIGHTED else None
    if kind in qpass.FIXED and act_dtype is not dtypes.float16 and \
            not _fixed_qparams_observer(activation):
        # torch.ao's constraint: the op's output range is known, so only a fixed-qparams
        # observer may quantize it; any other qconfig leaves the op in float
        warnings.warn(f"QConfig must specify a FixedQParamsObserver or a "
                      f"FixedQParamsFakeQuantize for fixed qparams ops, ignoring the qconfig "
                      f"of node {node_name} ({where}); it stays in float. Please use "
                      f"get_default_qconfig_mapping or get_default_qat_qconfig_mapping.",
                      stacklevel=3)
        return False
    for d in accepted:
        if d.is_dynamic:
            continue
        if d.input_dtype is act_dtype and (w_dtype is None or d.weight_dtype is w_dtype):
            return True
    wanted = ", ".join(sorted({f"activation {d.input_dtype}" + (
        f" / weight {d.weight_dtype}" if w_dtype is not None else "")
        for d in accepted if not d.is_dynamic}))
    got = f"activation {act_dtype}" + (f" / weight {w_dtype}" if w_dtype is not None else "")
    raise QuantizationError(f"prepare_fx: node {node_name} ({where}): the qconfig asks for "
                            f"{got}, which backend config {config.name!r} does not support "
                            f"for {kind!r} (supported: {wanted})")


def _fixed_qparams_observer(activation) -> bool:
    from .fake_quantize import FixedQParamsFakeQuantize
    from .observer import FixedQParamsObserver
    return isinstance(activation, (FixedQParamsObserver, FixedQParamsFakeQuantize))
