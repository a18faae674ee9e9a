"""Graph -> Graph rewrites and analyses, and the pass manager (see docs/passes.md).

Importing this package registers every pass in `manager.PASSES`; each pass module
adds itself with one import line below.
"""
from .manager import (PASSES, PIPELINES, Pass, PassContext, PassError, PassManager,  # noqa: F401
                      PassReport, extend_pipeline, register_pass, register_pipeline,
                      run_passes)
from . import normalize  # noqa: F401
from . import cleanup  # noqa: F401
from . import decompose  # noqa: F401
from . import fold_bn  # noqa: F401
from . import autograd, forward_ad, partition  # noqa: F401
from . import layout  # noqa: F401
from . import fuse  # noqa: F401
from . import in_place, recompute, train_layout  # noqa: F401
from . import qfuse  # noqa: F401
from . import memory  # noqa: F401

from . import qdq_lower  # noqa: F401
