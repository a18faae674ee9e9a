"""`ember.fx.operator_schemas` (torch.fx.operator_schemas' names)."""
from ..ir.graph import ArgsKwargsPair  # noqa: F401
