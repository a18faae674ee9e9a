"""ember.ao: torch.ao's namespace (architecture optimization): quantization."""
