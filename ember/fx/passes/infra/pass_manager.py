"""`ember.fx.passes.infra.pass_manager` (torch's PassManager)."""
from ....frontend.fx.pass_infra import PassManager, PassResult  # noqa: F401
