"""`ember.fx.passes.infra.pass_base` (torch's PassBase, PassResult)."""
from ....frontend.fx.pass_infra import PassBase, PassResult  # noqa: F401
