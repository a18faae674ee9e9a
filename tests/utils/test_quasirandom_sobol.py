"""ember.quasirandom.SobolEngine against torch.quasirandom.SobolEngine."""
import numpy as np
import pytest
import torch

import ember


@pytest.mark.parametrize("dimension", [1, 4, 300])
def test_unscrambled_points_equal_torchs(dimension):
    t, e = torch.quasirandom.SobolEngine(dimension), ember.quasirandom.SobolEngine(dimension)
    steps = [("draw", 7), ("fast_forward", 13), ("draw", 5), ("reset", None),
             ("fast_forward", 3), ("draw_base2", 0), ("draw_base2", 2), ("draw", 1)]
    for name, arg in steps:
        args = () if arg is None else (arg,)
        want, got = getattr(t, name)(*args), getattr(e, name)(*args)
        if name.startswith("draw"):
            assert got.dtype is ember.float32
            assert np.array_equal(got.numpy(), want.numpy()), (name, arg)
        else:
            assert got is e
        assert e.num_generated == t.num_generated


def test_float64_and_out():
    want = torch.quasirandom.SobolEngine(3).draw(9, dtype=torch.float64)
    assert np.array_equal(ember.quasirandom.SobolEngine(3).draw(9, dtype=ember.float64).numpy(),
                          want.numpy())
    out = ember.empty(2, 3)
    assert ember.quasirandom.SobolEngine(3).draw(4, out=out) is out and tuple(out.shape) == (4, 3)


def _stratified(points, bins):
    """Every one of `bins` equal intervals of each coordinate holds the same count."""
    counts = [np.bincount((points[:, d] * bins).astype(int), minlength=bins)
              for d in range(points.shape[1])]
    return all((c == len(points) // bins).all() for c in counts)


def test_scrambled_points_keep_the_nets_balance_and_repeat_by_seed():
    want = torch.quasirandom.SobolEngine(5, scramble=True, seed=3).draw(256).numpy()
    got = ember.quasirandom.SobolEngine(5, scramble=True, seed=3).draw(256).numpy()
    assert _stratified(want.astype(np.float64), 64) and _stratified(got.astype(np.float64), 64)
    again = ember.quasirandom.SobolEngine(5, scramble=True, seed=3).draw(256).numpy()
    other = ember.quasirandom.SobolEngine(5, scramble=True, seed=4).draw(256).numpy()
    assert np.array_equal(got, again) and not np.array_equal(got, other)
    unscrambled = ember.quasirandom.SobolEngine(5).draw(256).numpy()
    assert not np.array_equal(np.sort(got, 0), np.sort(unscrambled, 0))


def test_errors_match_torchs():
    for make in (lambda lib: lib.quasirandom.SobolEngine(0),
                 lambda lib: lib.quasirandom.SobolEngine(2).fast_forward(3).draw_base2(1)):
        with pytest.raises(ValueError) as want:
            make(torch)
        with pytest.raises(ValueError) as got:
            make(ember)
        assert str(got.value) == str(want.value)
    assert repr(ember.quasirandom.SobolEngine(3, scramble=True, seed=1)) == \
        repr(torch.quasirandom.SobolEngine(3, scramble=True, seed=1))
