"""ember.ao: torch.ao's namespace (architecture optimization): quantization, and the
numeric suite (ember.ao.ns)."""

# Loaded on first use, as torch.ao's are: `import ember; ember.ao.nn.quantized.Linear`
_LAZY_SUBMODULES = frozenset({"quantization", "nn", "ns"})


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib
        value = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ember.ao' has no attribute '{name}'")
