"""torch.distributions.constraint_registry: biject_to(constraint) and
transform_to(constraint), the transforms from unconstrained reals onto a constraint's
set (biject_to's are bijective; transform_to's need only reach the set), registered
per constraint class and extensible with `.register`."""
from __future__ import annotations

from . import constraints, transforms

__all__ = ["ConstraintRegistry", "biject_to", "transform_to"]


class ConstraintRegistry:
    """A factory per constraint class: registry(constraint) -> Transform."""

    def __init__(self) -> None:
        self._registry: dict = {}

    def register(self, constraint, factory=None):
        if factory is None:      # the decorator form
            return lambda factory: self.register(constraint, factory)
        if isinstance(constraint, constraints.Constraint):
            constraint = type(constraint)
        if not isinstance(constraint, type) or \
                not issubclass(constraint, constraints.Constraint):
            raise TypeError("Expected constraint to be either a Constraint subclass or "
                            f"instance, but got {constraint}")
        self._registry[constraint] = factory
        return factory

    def __call__(self, constraint):
        for cls in type(constraint).__mro__:
            if cls in self._registry:
                return self._registry[cls](constraint)
        raise NotImplementedError(f"Cannot transform {type(constraint).__name__} constraints")


biject_to = ConstraintRegistry()
transform_to = ConstraintRegistry()


def _real(constraint):
    return transforms.identity_transform


def _independent_biject(constraint):
    return transforms.IndependentTransform(biject_to(constraint.base_constraint),
                                           constraint.reinterpreted_batch_ndims)


def _independent_transform(constraint):
    return transforms.IndependentTransform(transform_to(constraint.base_constraint),
                                           constraint.reinterpreted_batch_ndims)


def _greater_than(constraint):
    return transforms.ComposeTransform([transforms.ExpTransform(),
                                        transforms.AffineTransform(constraint.lower_bound, 1)])


def _less_than(constraint):
    return transforms.ComposeTransform([transforms.ExpTransform(),
                                        transforms.AffineTransform(constraint.upper_bound, -1)])


def _interval(constraint):
    lower, upper = constraint.lower_bound, constraint.upper_bound
    if _is_number(lower, 0) and _is_number(upper, 1):
        return transforms.SigmoidTransform()
    return transforms.ComposeTransform([transforms.SigmoidTransform(),
                                        transforms.AffineTransform(lower, upper - lower)])


def _is_number(value, target) -> bool:
    return isinstance(value, (int, float)) and value == target


for _registry in (biject_to, transform_to):
    _registry.register(constraints._Real, _real)
    _registry.register(constraints._GreaterThan, _greater_than)
    _registry.register(constraints._LessThan, _less_than)
    _registry.register(constraints._Interval, _interval)
transform_to.register(constraints._LowerCholesky,
                      lambda constraint: transforms.LowerCholeskyTransform())
biject_to.register(constraints._Independent, _independent_biject)
transform_to.register(constraints._Independent, _independent_transform)
biject_to.register(constraints._Simplex, lambda constraint: transforms.StickBreakingTransform())
transform_to.register(constraints._Simplex, lambda constraint: transforms.SoftmaxTransform())


def _cat_biject(constraint):
    return transforms.CatTransform([biject_to(c) for c in constraint.cseq], constraint.dim,
                                   constraint.lengths)


def _cat_transform(constraint):
    return transforms.CatTransform([transform_to(c) for c in constraint.cseq],
                                   constraint.dim, constraint.lengths)


def _stack_biject(constraint):
    return transforms.StackTransform([biject_to(c) for c in constraint.cseq], constraint.dim)


def _stack_transform(constraint):
    return transforms.StackTransform([transform_to(c) for c in constraint.cseq],
                                     constraint.dim)


for _registry in (biject_to, transform_to):
    _registry.register(constraints._CorrCholesky,
                       lambda constraint: transforms.CorrCholeskyTransform())
biject_to.register(constraints._Cat, _cat_biject)
transform_to.register(constraints._Cat, _cat_transform)
biject_to.register(constraints._Stack, _stack_biject)
transform_to.register(constraints._Stack, _stack_transform)
transform_to.register(constraints._PositiveDefinite,
                      lambda constraint: transforms.PositiveDefiniteTransform())
transform_to.register(constraints._PositiveSemidefinite,
                      lambda constraint: transforms.PositiveDefiniteTransform())
