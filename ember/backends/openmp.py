"""ember.backends.openmp: torch.backends.openmp.is_available(): False, ember's CPU thread
pool is its own (ember.set_num_threads), not OpenMP's."""


def is_available() -> bool:
    return False
