"""functional_call: run a module with some parameters and buffers replaced (torch.func's).

The replacement values may be Tensors or symbolic values of a transform, which is how
per-example gradients are written: vmap(grad(lambda p, x, y: loss(functional_call(
model, p, (x,)), y)), in_dims=(None, 0, 0))(params, xs, ys).
"""
from __future__ import annotations

import contextlib


def functional_call(module, parameters_and_buffers, args=(), kwargs=None, *,
                    tie_weights: bool = True, strict: bool = False):
    """module(*args, **kwargs) with the named tensors swapped in for the call only."""
    mapping = _merge(parameters_and_buffers)
    if strict:
        _check_strict(module, mapping)
    if tie_weights:
        mapping = _with_tied_names(module, mapping)
    if not isinstance(args, tuple):
        args = (args,)
    with _swapped(module, mapping):
        return module(*args, **(kwargs or {}))


def _merge(parameters_and_buffers) -> dict:
    if isinstance(parameters_and_buffers, dict):
        return dict(parameters_and_buffers)
    merged: dict = {}
    for part in parameters_and_buffers:
        overlap = set(merged) & set(part)
        if overlap:
            raise ValueError(f"functional_call: {sorted(overlap)} appear in more than one "
                             "of the given dictionaries")
        merged.update(part)
    return merged


def _with_tied_names(module, mapping: dict) -> dict:
    """tie_weights=True: a value given for one name of a tensor the module holds under
    several names (`decoder.weight = encoder.weight`) replaces it under all of them."""
    from itertools import chain
    names_of: dict[int, list[str]] = {}
    for name, tensor in chain(module.named_parameters(remove_duplicate=False),
                              module.named_buffers(remove_duplicate=False)):
        names_of.setdefault(id(tensor), []).append(name)
    tied = dict(mapping)
    for names in names_of.values():
        given = [n for n in names if n in mapping]
        if len(names) < 2 or not given:
            continue
        if len({id(mapping[n]) for n in given}) > 1:
            raise ValueError(f"functional_call got multiple values for keys {sorted(given)}, "
                             "which are tied. Consider using tie_weights=False")
        for name in names:
            tied.setdefault(name, mapping[given[0]])
    return tied


def _check_strict(module, mapping: dict) -> None:
    expected = {n for n, _ in module.named_parameters()} | {n for n, _ in
                                                          module.named_buffers()}
    missing, unexpected = sorted(expected - set(mapping)), sorted(set(mapping) - expected)
    if missing or unexpected:
        lines = ([f"Missing key(s): {', '.join(repr(k) for k in missing)}."] if missing else []) \
            + ([f"Unexpected key(s): {', '.join(repr(k) for k in unexpected)}."]
               if unexpected else [])
        raise RuntimeError(f"functional_call got missing keys {missing} and unexpected "
                           f"keys {unexpected}: Error(s) in reparametrizing for "
                           f"{type(module).__name__}:\n\t" + "\n\t".join(lines))


_ABSENT = object()


def _owner(module, name: str):
    """(the dict holding `name`, its key): the parameter or buffer table, or else the
    module's plain attributes (PyTorch's non-strict call sets an unknown name as an
    attribute for the call)."""
    *path, leaf = name.split(".")
    for part in path:
        module = getattr(module, part)
    if leaf in module._parameters:
        return module._parameters, leaf
    if leaf in module._buffers:
        return module._buffers, leaf
    return module.__dict__, leaf


@contextlib.contextmanager
def _swapped(module, mapping: dict):
    saved = []
    try:
        for name, value in mapping.items():
            table, leaf = _owner(module, name)
            saved.append((table, leaf, table.get(leaf, _ABSENT)))
            table[leaf] = value
        yield
    finally:
        for table, leaf, old in reversed(saved):
            if old is _ABSENT:
                del table[leaf]
            else:
                table[leaf] = old


def stack_module_state(models) -> tuple[dict, dict]:
    """The parameters and buffers of same-shaped models, each stacked along a new first
    dimension (for vmap over an ensemble with functional_call). Stacked parameters are
    new leaves that require grad when the models' do."""
    from ...ir.registry import OPS
    models = list(models)
    if not models:
        raise RuntimeError("stack_module_state: Expected at least one model, got 0.")
    if not (all(m.training for m in models) or not any(m.training for m in models)):
        raise RuntimeError("stack_module_state: Expected all models to have the same "
                           "training/eval mode.")
    reference = type(models[0])
    if not all(type(m) is reference for m in models):
        raise RuntimeError("stack_module_state: Expected all models to be of the same class.")

    def stacked(named, name: str, leaf: bool):
        tensors = [dict(named(m))[name] for m in models]
        result = OPS["stack"](tensors, 0)
        if leaf:
            wants_grad = {t.requires_grad for t in tensors}
            if len(wants_grad) > 1:
                raise RuntimeError(f"Expected {name} from each model to have the same "
                                   ".requires_grad")
            result = result.detach().requires_grad_(wants_grad.pop())
        return result

    params = {name: stacked(lambda m: m.named_parameters(), name, True)
              for name, _ in models[0].named_parameters()}
    buffers = {name: stacked(lambda m: m.named_buffers(), name, False)
               for name, _ in models[0].named_buffers()}
    return params, buffers
