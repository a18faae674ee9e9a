"""ember.ao: torch.ao's namespace (architecture optimization): quantization, and the
numeric suite (ember.ao.ns)."""
