"""`ember.fx.passes.infra.pass_manager` (torch's PassManager and helpers)."""
from ....frontend.fx.pass_infra import (PassManager, PassResult,  # noqa: F401
                                        pass_result_wrapper, this_before_that_pass_constraint)
