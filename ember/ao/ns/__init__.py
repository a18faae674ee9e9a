"""ember.ao.ns: the numeric suite. How far a quantized model is from its float model,
layer by layer, and which layers to leave in float.

- `compare_weights(float_sd, quantized_sd)`: torch.ao.ns._numeric_suite's function, also
  matching convert_fx's packed weights (`_packed_<module>_weight`) to `<module>.weight`.
- `report(float_model, quantized_model, data)` (beyond torch.ao): per-layer SQNR and max
  absolute error of the quantized model's activations against the float model's on
  `data`; printed as a table (rich) and returned as a list of dicts.
- `sensitivity(float_model, qconfig_mapping, example_inputs, data, n)` (beyond torch.ao):
  scores every quantizable layer by how much quantizing it damages the model's output
  and returns a QConfigMapping that leaves the n most damaging layers in float;
  `layer_sensitivity` returns the scores themselves.
- `compute_sqnr`, `compute_normalized_l2_error`, `compute_cosine_similarity`: torch.ao.ns.fx.utils'
  metrics (also importable from ember.ao.ns.fx.utils).
- `_numeric_suite_fx`: torch's extract_weights / add_loggers / extract_logger_info /
  extend_logger_results_with_comparison for a float model and its quantized version.
"""
from .numeric_suite import (compare_weights, compute_cosine_similarity,  # noqa: F401
                            compute_normalized_l2_error, compute_sqnr, layer_sensitivity,
                            report, sensitivity)
from . import _numeric_suite, _numeric_suite_fx  # noqa: F401,E402

__all__ = ["compare_weights", "report", "sensitivity", "layer_sensitivity", "compute_sqnr",
           "compute_normalized_l2_error", "compute_cosine_similarity"]
