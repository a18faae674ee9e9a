"""ember.ao.nn: torch.ao.nn's modules: fused (intrinsic), QAT, quantizable and quantized."""

_LAZY_SUBMODULES = frozenset({"quantized", "intrinsic", "qat", "quantizable"})


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib
        value = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ember.ao.nn' has no attribute '{name}'")
