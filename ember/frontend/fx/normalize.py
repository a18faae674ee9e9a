"""torch.fx.experimental.normalize's Transformers, on ember's graphs.

`NormalizeArgs` rewrites each call_function and each call of an ember.nn layer so its
arguments are bound to parameter names (`Node.normalized_arguments`): all keywords by
default, or leading positionals kept with `normalize_to_only_use_kwargs=False`; calls
whose signature is unknown (methods, user modules) stay as they are.
`NormalizeOperators` turns two-argument calls of ember's arithmetic and comparison
functions into the Python operators (`ember.add(a, b)` -> `a + b`), so passes match
one spelling; a call with other arguments (`alpha=`) stays a function call. Like
torch's, it also annotates return types (`AnnotateTypesWithSchema`).
"""
from __future__ import annotations

import operator

from ...ir.graph import OpKind
from .interpreter import Transformer


def _return_type(fn):
    """`fn`'s return annotation as a class (string annotations resolved), or None."""
    import inspect
    import typing
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:                   # an annotation naming something unimportable
        hint = inspect.signature(fn).return_annotation
    return hint if isinstance(hint, type) else None


class AnnotateTypesWithSchema(Transformer):
    """Give call nodes the return types their Python signatures declare: ember.nn
    functionals, calls of ember.nn's layers, and tensors read with get_attr
    (torch.fx.experimental.schema_type_annotation's)."""

    def __init__(self, module, annotate_functionals: bool = True,
                 annotate_modules: bool = True, annotate_get_attrs: bool = True):
        super().__init__(module)
        self.annotate_functionals = annotate_functionals
        self.annotate_modules = annotate_modules
        self.annotate_get_attrs = annotate_get_attrs

    @staticmethod
    def _typed(proxy, kind):
        if proxy.node.type is None and kind is not None:
            proxy.node.type = kind
        return proxy

    def call_function(self, target, args, kwargs):
        from .codegen import public_name
        kind = None
        if self.annotate_functionals and (public_name(target) or "").startswith(
                "ember.nn.functional."):
            kind = _return_type(target)
        return self._typed(super().call_function(target, args, kwargs), kind)

    def call_module(self, target, args, kwargs):
        import ember.nn as enn
        kind = None
        module = self.fetch_attr(target)
        if self.annotate_modules and getattr(enn, type(module).__name__, None) is type(module):
            kind = _return_type(module.forward)
        return self._typed(super().call_module(target, args, kwargs), kind)

    def get_attr(self, target, args, kwargs):
        from ..tensor import Tensor
        proxy = super().get_attr(target, args, kwargs)
        if self.annotate_get_attrs:
            value = self.fetch_attr(target)
            if isinstance(value, Tensor):
                import ember
                self._typed(proxy, ember.Tensor)
        return proxy


class NormalizeArgs(Transformer):
    def __init__(self, module, normalize_to_only_use_kwargs: bool = True):
        super().__init__(module)
        self.normalize_to_only_use_kwargs = normalize_to_only_use_kwargs

    def run_node(self, n):
        if n.op in (OpKind.call_function, OpKind.call_module):
            pair = n.normalized_arguments(
                self.module, normalize_to_only_use_kwargs=self.normalize_to_only_use_kwargs)
            if pair is not None:
                args = self.map_nodes_to_values(pair.args, n)
                kwargs = self.map_nodes_to_values(pair.kwargs, n)
                result = getattr(self, n.op.value)(n.target, args, kwargs)
                result.node.meta.update(n.meta)
                return result
        return super().run_node(n)


def _binary_remap() -> dict:
    import ember
    return {ember.add: operator.add, ember.mul: operator.mul, ember.sub: operator.sub,
            ember.div: operator.truediv, ember.floor_divide: operator.floordiv,
            ember.remainder: operator.mod, ember.eq: operator.eq, ember.ne: operator.ne,
            ember.lt: operator.lt, ember.le: operator.le, ember.gt: operator.gt,
            ember.ge: operator.ge}


class NormalizeOperators(AnnotateTypesWithSchema):
    binary_magic_method_remap = None     # filled on first use (ember loads lazily)

    def call_function(self, target, args, kwargs):
        remap = type(self).binary_magic_method_remap
        if remap is None:
            remap = type(self).binary_magic_method_remap = _binary_remap()
        if target in remap and len(args) == 2 and not kwargs:
            return super().call_function(remap[target], args, {})
        return super().call_function(target, args, kwargs)
