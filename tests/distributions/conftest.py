"""Argument validation on for both libraries in every distributions test: torch turns its
default off process-wide when a function is wrapped by torch.compile (another test
module in the same worker may do that at import), and these tests compare refusals."""
import pytest


@pytest.fixture(autouse=True)
def _validated_distributions():
    torch = pytest.importorskip("torch")
    import ember
    torch_default = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(True)
    ember.distributions.Distribution.set_default_validate_args(True)   # ember's default
    yield
    torch.distributions.Distribution.set_default_validate_args(torch_default)
