"""torch.ao.ns.fx.utils' comparison functions (compute_sqnr, ...), for
extend_logger_results_with_comparison."""
from ..numeric_suite import (compute_cosine_similarity, compute_normalized_l2_error,  # noqa
                             compute_sqnr)

__all__ = ["compute_sqnr", "compute_normalized_l2_error", "compute_cosine_similarity"]
