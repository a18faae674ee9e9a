"""torch.ao.ns._numeric_suite: the Eager Mode Numeric Suite (`import
torch.ao.ns._numeric_suite as ns`) for a float model and its eager convert() result.

- compare_weights(float_sd, quantized_sd): numeric_suite.py's;
- compare_model_outputs(float_model, q_model, *data): attaches an OutputLogger as the
  `activation_post_process` of every leaf module of both models whose type eager
  quantization knows (get_default_compare_output_module_list: the float, QAT and
  quantized types of the mappings; never a DeQuantStub), runs `data` through both and
  returns {"<module>.stats": {"float": [outputs], "quantized": [outputs]}} for the modules
  logged in both (quantized outputs stay quantized tensors), as torch does. Both models
  keep their loggers (printing them shows `(activation_post_process): OutputLogger()`).
- prepare_model_outputs, get_logger_dict, get_matching_activations: its steps.
- compare_model_stub(float_model, q_model, module_swap_list, *data): each submodule of
  the quantized model whose float counterpart's type is listed becomes a Shadow (the
  quantized module, the float one run on dequantized inputs, a ShadowLogger), in place;
  returns {"<module>.stats": {"float": [...], "quantized": [...]}}. As torch's
  ShadowLogger, a result with more than one row keeps its first (`x[0]`).
"""
from __future__ import annotations

from ...frontend.nn.modules.module import Module
from ...frontend.tensor import Tensor
from ..nn.intrinsic import _FusedModule
from ..nn.quantized.functional_modules import FloatFunctional, QFunctional
from ..nn.quantized.modules import DeQuantize
from ..quantization import quantization_mappings as mappings
from ..quantization.stubs import DeQuantStub
from .numeric_suite import compare_weights  # noqa: F401


class Logger(Module):
    """Base class of the loggers: `stats` holds what was recorded."""

    def __init__(self):
        super().__init__()
        self.stats: dict = {}
        self.dtype = None      # torch's loggers carry a dtype slot for observers' API

    def forward(self, x):
        """The base class records nothing and returns None, as torch's does; OutputLogger
        and ShadowLogger record."""
        return None


class OutputLogger(Logger):
    """Records each value passing through it in `stats["tensor_val"]` and returns it."""

    def __init__(self):
        super().__init__()
        self.stats["tensor_val"] = []

    def forward(self, x):
        self.stats["tensor_val"].append(x)
        return x


class ShadowLogger(Logger):
    """Records a Shadow's quantized output and its float shadow's output: of a result
    with more than one element along its first dim, torch keeps the first (`x[0]`)."""

    def __init__(self):
        super().__init__()
        self.stats["float"] = []
        self.stats["quantized"] = []

    def forward(self, x, y):
        self.stats["quantized"].append(_first(_detached(x)))
        self.stats["float"].append(_first(_detached(y)))


def _detached(value):
    return value.detach() if isinstance(value, Tensor) else value


def _first(value):
    return value[0] if len(value) > 1 else value


def _dequantized(values: list) -> list:
    return [v.dequantize() if isinstance(v, Tensor) and v.is_quantized else
            _dequantized(v) if isinstance(v, (list, tuple)) else v for v in values]


class Shadow(Module):
    """A quantized module with its float module beside it: the quantized one's result is
    returned; the float one runs on the dequantized inputs, and the logger gets both."""

    def __init__(self, q_module, float_module, logger_cls):
        super().__init__()
        self.orig_module = q_module
        self.shadow_module = float_module
        self.dequant = DeQuantize()
        self.logger = logger_cls()

    def forward(self, *x):
        output = self.orig_module(*x)
        self.logger(output, self.shadow_module(*_dequantized(list(x))))
        return output

    def _both(self, method: str, *args):
        output = getattr(self.orig_module, method)(*args)
        self.logger(output, getattr(self.shadow_module, method)(*_dequantized(list(args))))
        return output

    def add(self, x, y):
        return self._both("add", x, y)

    def add_scalar(self, x, y):
        return self._both("add_scalar", x, y)

    def mul(self, x, y):
        return self._both("mul", x, y)

    def mul_scalar(self, x, y):
        return self._both("mul_scalar", x, y)

    def cat(self, x, dim=0):
        return self._both("cat", x, dim)

    def add_relu(self, x, y):
        return self._both("add_relu", x, y)


def prepare_model_with_stubs(float_module, q_module, module_swap_list, logger_cls) -> None:
    """In `q_module`, each submodule whose float counterpart (same name in
    `float_module`) has a type in `module_swap_list` becomes a Shadow of the two."""
    float_children = dict(float_module.named_children())
    for name, child in list(q_module.named_children()):
        float_child = float_children.get(name)
        if float_child is None:
            continue
        if type(float_child) in tuple(module_swap_list):
            setattr(q_module, name, Shadow(child, float_child, logger_cls))
        else:
            prepare_model_with_stubs(float_child, child, module_swap_list, logger_cls)


def compare_model_stub(float_model, q_model, module_swap_list, *data,
                       logger_cls=ShadowLogger) -> dict:
    """Shadow the quantized model's modules of the listed float types with their float
    modules, run `data` and return {"<module>.stats": {"float", "quantized"}}."""
    prepare_model_with_stubs(float_model, q_model, module_swap_list, logger_cls)
    q_model(*data)
    return get_logger_dict(q_model)


def get_default_compare_output_module_list() -> set:
    """The module types compare_model_outputs logs: every float, QAT and quantized type
    of eager quantization's static, QAT and dynamic mappings."""
    types = set()
    for table in (mappings.DEFAULT_STATIC_QUANT_MODULE_MAPPINGS,
                  mappings.DEFAULT_QAT_MODULE_MAPPINGS,
                  mappings.DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS):
        types |= set(table) | set(table.values())
    return types


def _log_output(module, inputs, output):
    return module.activation_post_process(output)


def _loggable(model: Module, allow_list: set) -> list:
    """Leaf modules of an allowed type, and fused modules as one (not their parts)."""
    found = []

    def visit(module):
        children = [child for name, child in module.named_children()
                    if name != "activation_post_process"]
        fused = isinstance(module, _FusedModule)
        if (fused or not children) and type(module) in allow_list and \
                not isinstance(module, DeQuantStub):
            found.append(module)
        if not fused:
            for child in children:
                visit(child)
    visit(model)
    return found


def _attach_loggers(model: Module, logger_cls, allow_list: set) -> None:
    for module in _loggable(model, allow_list):
        module.activation_post_process = logger_cls()
        # FloatFunctional / QFunctional pass their results through it themselves
        if not isinstance(module, (FloatFunctional, QFunctional)):
            module.register_forward_hook(_log_output)


def prepare_model_outputs(float_module, q_module, logger_cls=OutputLogger, allow_list=None):
    """Attach `logger_cls` loggers to both models' loggable modules, in place."""
    allow_list = get_default_compare_output_module_list() if allow_list is None \
        else set(allow_list)
    _attach_loggers(float_module, logger_cls, allow_list)
    _attach_loggers(q_module, logger_cls, allow_list)


def get_logger_dict(mod, prefix: str = "") -> dict:
    """{"<module>.stats": stats} for every module holding a logger (its first Logger
    child: an `activation_post_process`, a Shadow's `logger`), keyed by that module's
    name, as torch keys them."""
    found = {}
    for name, module in mod.named_modules(prefix=prefix.rstrip(".")):
        logger = next((child for child in module.children() if isinstance(child, Logger)),
                      None)
        if logger is not None:
            found[(name + "." if name else "") + "stats"] = logger.stats
    return found


def get_matching_activations(float_module, q_module) -> dict:
    """{key: {"float": values, "quantized": values}} for the loggers both models have."""
    float_dict, q_dict = get_logger_dict(float_module), get_logger_dict(q_module)
    return {key: {"float": float_dict[key]["tensor_val"],
                  "quantized": q_dict[key]["tensor_val"]}
            for key in q_dict if key in float_dict}


def compare_model_outputs(float_model, q_model, *data, logger_cls=OutputLogger,
                          allow_list=None) -> dict:
    """Each loggable layer's output in the float model and in the quantized model on
    `data`, matched by module name (torch.ao.ns._numeric_suite's function)."""
    prepare_model_outputs(float_model, q_model, logger_cls, allow_list)
    float_model(*data)
    q_model(*data)
    return get_matching_activations(float_model, q_model)


__all__ = ["compare_weights", "compare_model_outputs", "prepare_model_outputs",
           "get_logger_dict", "get_matching_activations", "get_default_compare_output_module_list",
           "Logger", "OutputLogger", "ShadowLogger", "Shadow", "prepare_model_with_stubs",
           "compare_model_stub"]
