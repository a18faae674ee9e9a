"""ComposableQuantizer (torch's pt2e name): several quantizers as one, applied in order;
what an earlier quantizer covers, a later one leaves alone (torch: a node annotated by an
earlier quantizer is skipped by the later ones). Typical use: `ComposableQuantizer(
[EmbeddingQuantizer(), X86InductorQuantizer().set_global(...)])`.

On ember's QConfigMapping form of a quantizer: for each module name, module / function
type and the global setting, the first quantizer that says something about it decides. A
quantizer's specific settings (a type, a name) also win over an earlier quantizer's
global one, as torch's quantizers only annotate the ops they know (the x86 quantizer's
global config does not cover embeddings, so an EmbeddingQuantizer after it still
quantizes them)."""
from __future__ import annotations

from ..qconfig_mapping import QConfigMapping
from . import Quantizer


class ComposableQuantizer(Quantizer):
    def __init__(self, quantizers: list):
        super().__init__()
        for q in quantizers:
            if not isinstance(q, Quantizer):
                raise TypeError(f"ComposableQuantizer expects Quantizers, got "
                                f"{type(q).__name__}")
        self.quantizers = list(quantizers)

    @property
    def is_qat(self) -> bool:
        kinds = {bool(getattr(q, "is_qat", False)) for q in self.quantizers}
        if len(kinds) > 1:
            raise ValueError("ComposableQuantizer: QAT and post-training quantizers are "
                             "mixed; use one kind (is_qat) throughout")
        return kinds == {True}

    @property
    def uses_annotations(self) -> bool:
        kinds = {q.uses_annotations for q in self.quantizers}
        if len(kinds) > 1:
            raise NotImplementedError(
                "ComposableQuantizer: ember cannot mix quantizers that annotate nodes "
                "(annotate) with its built-in ones (X86InductorQuantizer, XNNPACKQuantizer, "
                "EmbeddingQuantizer); compose quantizers of one kind")
        return kinds == {True}

    def annotate(self, model):
        """Each quantizer in turn; one that changes or removes an earlier quantizer's
        annotation is an error (torch's rule: composition only adds)."""
        from .quantizer import Q_ANNOTATION_KEY
        seen: dict = {}
        for quantizer in self.quantizers:
            quantizer.annotate(model)
            for node in model.graph.nodes:
                ann = node.meta.get(Q_ANNOTATION_KEY)
                if ann is None and node in seen:
                    raise RuntimeError(f"Quantizer {type(quantizer).__name__} has removed "
                                       f"annotations on node {node}")
                if ann is not None and node in seen and seen[node] is not ann:
                    raise RuntimeError(f"Quantizer {type(quantizer).__name__} has changed "
                                       f"annotations on node {node}")
                if ann is not None:
                    seen[node] = ann
        return model

    def transform_for_annotation(self, model):
        for quantizer in self.quantizers:
            model = quantizer.transform_for_annotation(model) or model
        return model

    def qconfig_mapping(self) -> QConfigMapping:
        merged, has_global = QConfigMapping(), False
        for quantizer in self.quantizers:
            mapping = quantizer.qconfig_mapping()
            if not has_global and mapping.global_qconfig is not None:
                merged.set_global(mapping.global_qconfig)
                has_global = True
            for table in ("object_type_qconfigs", "module_name_regex_qconfigs",
                          "module_name_qconfigs", "module_name_object_type_order_qconfigs"):
                into = getattr(merged, table)
                for key, qconfig in getattr(mapping, table).items():
                    into.setdefault(key, qconfig)
        return merged

    def validate(self, model) -> None:
        for quantizer in self.quantizers:
            quantizer.validate(model)


__all__ = ["ComposableQuantizer"]
