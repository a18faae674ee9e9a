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
"""
from __future__ import annotations

from ...frontend.nn.modules.module import Module
from ..nn.intrinsic import _FusedModule
from ..nn.quantized.functional_modules import FloatFunctional, QFunctional
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
        raise NotImplementedError("Logger subclasses record in forward")


class OutputLogger(Logger):
    """Records each value passing through it in `stats["tensor_val"]` and returns it."""

    def __init__(self):
        super().__init__()
        self.stats["tensor_val"] = []

    def forward(self, x):
        self.stats["tensor_val"].append(x)
        return x


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
    """{"<module>.stats": stats} for every logger in `mod` (a module's logger is keyed by
    that module's name)."""
    found = {}
    for name, module in mod.named_modules(prefix=prefix.rstrip(".")):
        logger = module if isinstance(module, Logger) else None
        if logger is None:
            continue
        owner = name.rsplit(".", 1)[0] if name.endswith("activation_post_process") else name
        owner = "" if owner == "activation_post_process" else owner
        found[(owner + "." if owner else "") + "stats"] = logger.stats
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
           "Logger", "OutputLogger"]
