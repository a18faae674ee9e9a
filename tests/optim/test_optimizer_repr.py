"""print(optimizer) matches torch's text, parameter groups separated by a blank line
(found by the user-program probe)."""
import pytest

torch = pytest.importorskip("torch")
import ember  # noqa: E402


@pytest.mark.parametrize("name,kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                         ("AdamW", {"lr": 1e-3})])
def test_optimizer_repr_with_two_groups_matches_torch(name, kwargs):
    def text(lib):
        a, b = lib.nn.Linear(2, 2), lib.nn.Linear(2, 1)
        opt = getattr(lib.optim, name)(a.parameters(), **kwargs)
        opt.add_param_group({"params": b.parameters(), "lr": 0.01})
        return repr(opt)
    assert text(ember) == text(torch)
