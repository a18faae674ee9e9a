"""ember.ao.nn: torch.ao.nn's modules: fused (intrinsic) and quantized."""
