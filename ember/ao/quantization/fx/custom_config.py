"""Custom configurations of the FX pipeline (torch.ao.quantization.fx.custom_config):
PrepareCustomConfig, ConvertCustomConfig, FuseCustomConfig, with torch.ao's setters and
their dict forms (from_dict / to_dict; prepare_fx and convert_fx accept either).

- non-traceable module names/classes: the tracer does not enter them; they stay float.
- standalone modules (by name or class): prepared and converted as a model of their own,
  with their own QConfigMapping and example inputs; the parent calls them with float
  values (torch.ao's default input/output_quantized_indexes, the empty lists).
- float -> observed (prepare) and observed -> quantized (convert) custom module classes:
  the float module is replaced by `observed_class.from_float(module)` (its `qconfig` set),
  its inputs and output observed; convert replaces it by
  `quantized_class.from_observed(observed)`, which takes and returns quantized tensors.
- preserved attributes: copied from the model onto the prepared / converted GraphModule.
- input/output_quantized_indexes are accepted; only the empty lists (float model
  boundaries) are supported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..quant_type import QuantType, _get_quant_type_to_str, _quant_type_from_str

__all__ = ["ConvertCustomConfig", "FuseCustomConfig", "PrepareCustomConfig",
           "StandaloneModuleConfigEntry"]


@dataclass
class StandaloneModuleConfigEntry:
    qconfig_mapping: Any
    example_inputs: tuple
    prepare_custom_config: Any
    backend_config: Any


def _as_quant_type(value) -> QuantType:
    return value if isinstance(value, QuantType) else _quant_type_from_str(value)


class PrepareCustomConfig:
    def __init__(self):
        self.standalone_module_names: dict[str, StandaloneModuleConfigEntry] = {}
        self.standalone_module_classes: dict[type, StandaloneModuleConfigEntry] = {}
        self.float_to_observed_mapping: dict[QuantType, dict[type, type]] = {}
        self.non_traceable_module_names: list[str] = []
        self.non_traceable_module_classes: list[type] = []
        self.input_quantized_indexes: list[int] = []
        self.output_quantized_indexes: list[int] = []
        self.preserved_attributes: list[str] = []

    def __repr__(self):
        items = {k: v for k, v in self.__dict__.items() if v}
        return f"PrepareCustomConfig({items})"

    def set_standalone_module_name(self, module_name: str, qconfig_mapping, example_inputs,
                                   prepare_custom_config=None, backend_config=None):
        self.standalone_module_names[module_name] = StandaloneModuleConfigEntry(
            qconfig_mapping, example_inputs, prepare_custom_config, backend_config)
        return self

    def set_standalone_module_class(self, module_class: type, qconfig_mapping, example_inputs,
                                    prepare_custom_config=None, backend_config=None):
        self.standalone_module_classes[module_class] = StandaloneModuleConfigEntry(
            qconfig_mapping, example_inputs, prepare_custom_config, backend_config)
        return self

    def set_float_to_observed_mapping(self, float_class: type, observed_class: type,
                                      quant_type: QuantType = QuantType.STATIC):
        if quant_type != QuantType.STATIC:
            raise ValueError("set_float_to_observed_mapping is currently only supported for "
                             "static quantization")
        self.float_to_observed_mapping.setdefault(quant_type, {})[float_class] = observed_class
        return self

    def set_non_traceable_module_names(self, module_names: list[str]):
        self.non_traceable_module_names = list(module_names)
        return self

    def set_non_traceable_module_classes(self, module_classes: list[type]):
        self.non_traceable_module_classes = list(module_classes)
        return self

    def set_input_quantized_indexes(self, indexes: list[int]):
        self.input_quantized_indexes = list(indexes)
        return self

    def set_output_quantized_indexes(self, indexes: list[int]):
        self.output_quantized_indexes = list(indexes)
        return self

    def set_preserved_attributes(self, attributes: list[str]):
        self.preserved_attributes = list(attributes)
        return self

    @classmethod
    def from_dict(cls, prepare_custom_config_dict: dict) -> "PrepareCustomConfig":
        conf = cls()
        d = prepare_custom_config_dict
        for key, setter in (("standalone_module_name", conf.set_standalone_module_name),
                            ("standalone_module_class", conf.set_standalone_module_class)):
            for entry in d.get(key, []):
                name, mapping, example_inputs, custom, backend = (list(entry) + [None] * 5)[:5]
                if isinstance(mapping, dict):
                    from ..qconfig_mapping import QConfigMapping
                    mapping = QConfigMapping.from_dict(mapping)
                if isinstance(custom, dict):
                    custom = cls.from_dict(custom)
                setter(name, mapping, example_inputs, custom, backend)
        for quant_type, mapping in d.get("float_to_observed_custom_module_class", {}).items():
            for float_class, observed_class in mapping.items():
                conf.set_float_to_observed_mapping(float_class, observed_class,
                                                   _as_quant_type(quant_type))
        conf.set_non_traceable_module_names(d.get("non_traceable_module_name", []))
        conf.set_non_traceable_module_classes(d.get("non_traceable_module_class", []))
        conf.set_input_quantized_indexes(d.get("input_quantized_idxs", []))
        conf.set_output_quantized_indexes(d.get("output_quantized_idxs", []))
        conf.set_preserved_attributes(d.get("preserved_attributes", []))
        return conf

    def to_dict(self) -> dict:
        def entries(table):
            return [(k, e.qconfig_mapping, e.example_inputs, e.prepare_custom_config,
                     e.backend_config) for k, e in table.items()]
        d: dict = {}
        if self.standalone_module_names:
            d["standalone_module_name"] = entries(self.standalone_module_names)
        if self.standalone_module_classes:
            d["standalone_module_class"] = entries(self.standalone_module_classes)
        if self.float_to_observed_mapping:
            d["float_to_observed_custom_module_class"] = {
                _get_quant_type_to_str(k): dict(v)
                for k, v in self.float_to_observed_mapping.items()}
        for key, value in (("non_traceable_module_name", self.non_traceable_module_names),
                           ("non_traceable_module_class", self.non_traceable_module_classes),
                           ("input_quantized_idxs", self.input_quantized_indexes),
                           ("output_quantized_idxs", self.output_quantized_indexes),
                           ("preserved_attributes", self.preserved_attributes)):
            if value:
                d[key] = list(value)
        return d


class ConvertCustomConfig:
    def __init__(self):
        self.observed_to_quantized_mapping: dict[QuantType, dict[type, type]] = {}
        self.preserved_attributes: list[str] = []

    def __repr__(self):
        items = {k: v for k, v in self.__dict__.items() if v}
        return f"ConvertCustomConfig({items})"

    def set_observed_to_quantized_mapping(self, observed_class: type, quantized_class: type,
                                          quant_type: QuantType = QuantType.STATIC):
        self.observed_to_quantized_mapping.setdefault(quant_type, {})[observed_class] = \
            quantized_class
        return self

    def set_preserved_attributes(self, attributes: list[str]):
        self.preserved_attributes = list(attributes)
        return self

    @classmethod
    def from_dict(cls, convert_custom_config_dict: dict) -> "ConvertCustomConfig":
        conf = cls()
        d = convert_custom_config_dict
        for quant_type, mapping in d.get("observed_to_quantized_custom_module_class",
                                         {}).items():
            for observed_class, quantized_class in mapping.items():
                conf.set_observed_to_quantized_mapping(observed_class, quantized_class,
                                                       _as_quant_type(quant_type))
        conf.set_preserved_attributes(d.get("preserved_attributes", []))
        return conf

    def to_dict(self) -> dict:
        d: dict = {}
        if self.observed_to_quantized_mapping:
            d["observed_to_quantized_custom_module_class"] = {
                _get_quant_type_to_str(k): dict(v)
                for k, v in self.observed_to_quantized_mapping.items()}
        if self.preserved_attributes:
            d["preserved_attributes"] = list(self.preserved_attributes)
        return d


class FuseCustomConfig:
    def __init__(self):
        self.preserved_attributes: list[str] = []

    def __repr__(self):
        return f"FuseCustomConfig({self.preserved_attributes or ''})"

    def set_preserved_attributes(self, attributes: list[str]):
        self.preserved_attributes = list(attributes)
        return self

    @classmethod
    def from_dict(cls, fuse_custom_config_dict: dict) -> "FuseCustomConfig":
        return cls().set_preserved_attributes(fuse_custom_config_dict.get(
            "preserved_attributes", []))

    def to_dict(self) -> dict:
        return {"preserved_attributes": list(self.preserved_attributes)} \
            if self.preserved_attributes else {}
