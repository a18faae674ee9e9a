"""ember.utils: PyTorch's torch.utils namespace (benchmark, ...). Subpackages load on import."""
