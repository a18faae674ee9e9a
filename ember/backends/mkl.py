"""ember.backends.mkl: torch.backends.mkl.is_available(): False, ember does not call MKL."""


def is_available() -> bool:
    return False
