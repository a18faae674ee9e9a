"""`ember.fx.graph` (torch.fx.graph's names)."""
from ..ir.graph import Graph  # noqa: F401
from ..frontend.fx.codegen import PythonCode  # noqa: F401
from ..frontend.fx.pytree_codegen import CodeGen, _PyTreeCodeGen, _PyTreeInfo  # noqa: F401
