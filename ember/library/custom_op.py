"""ember.library's custom operators: the implementation lives in ember/frontend/custom_op.py
(autograd.Function tracing uses it too); this module keeps the names importable here."""
from ..frontend.custom_op import *  # noqa: F401,F403
from ..frontend.custom_op import (  # noqa: F401 - names triton_op and callers use
    CustomOpDef, CustomOpError, DataDependentOutput, Library, custom_op, get_ctx,
    infer_schema, register_autograd, register_fake, register_kernel, register_vmap)
