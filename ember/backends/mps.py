"""torch.backends.mps: Apple's Metal backend, which ember does not have (tutorials ask
`torch.backends.mps.is_available()` when picking a device)."""


def is_available() -> bool:
    return False


def is_built() -> bool:
    return False
