"""vmap over PyTorch's OpInfo samples (op_db), as functorch's test_vmap checks that
every op has a batch rule: for every in-scope entry ember resolves, its first float64
sample as two examples, batched two ways ("all": every tensor at dim 0; "input": only
the input, at its last dim), must give the op's per-example results stacked
(tests/func/opdb_vmap.py has the check). Where torch.func.vmap refuses the same call
(running statistics updated in place from a batched input, split points read from a
tensor), ember must raise too. Also vmap of vjp over the same samples (functorch's
test_vmapvjp), and a few later samples that once failed."""
from __future__ import annotations

import pytest

pytest.importorskip("expecttest", reason="PyTorch's OpInfo database needs expecttest")
import opdb_vmap  # noqa: E402

ENTRIES = dict(opdb_vmap.candidates())


@pytest.mark.parametrize("mode", ["all", "input"])
@pytest.mark.parametrize("key", sorted(ENTRIES))
def test_vmap_over_opinfo_sample(key, mode):
    info = ENTRIES[key]
    samples = opdb_vmap.first_samples(info)
    if not samples:
        pytest.skip(f"{key}: no float64 samples")
    try:
        why = opdb_vmap.check(info, samples[0], mode)
    except opdb_vmap.Unsuited as exc:
        pytest.skip(f"{key}: {exc}")
    if isinstance(why, opdb_vmap.Raised) and opdb_vmap.torch_refuses(info, samples[0], mode):
        return      # ember raises where torch.func.vmap does
    assert why is None, f"vmap over {key} [{mode}]: {why}"


# (entry, sample index) pairs past the first sample that once failed, kept as regressions
# (0-d examples through dim-taking ops, namedtuple results of reductions over a dim,
# linspace's tensor ends with one step, cat's legacy skip of 1-d empty tensors); and those
# that still fail, with the reason
LATER_SAMPLES = ["cummax:2", "cummin:2", "cumprod:3", "cumsum:2", "logcumsumexp:2",
                 "max.reduction_with_dim:3", "min.reduction_with_dim:3", "median:1",
                 "nanmedian:1", "linspace.tensor_overload:3", "gather:5", "gather:6",
                 "scatter_add:6", "squeeze:7", "squeeze.multiple:5", "squeeze_copy:7",
                 "linalg.ldl_solve:4", "nn.functional.cross_entropy:5",
                 "nn.functional.cross_entropy:7", "cat:5"]
EXPECTED_FAILURES = {
    "linalg.pinv:2": "ember's pinv schema takes float atol/rtol; a Tensor tolerance is read "
                     "eagerly only, so a traced (vmapped) one cannot be",
    "nn.functional.ctc_loss:1": "ctc_loss needs concrete input/target lengths; under vmap "
                                "the length tensors are traced values",
    "nn.functional.embedding:5": "max_norm renormalizes the shared weight in place "
                                 "(embedding_renorm_), which vmap has no in-place rule for",
}


@pytest.mark.parametrize("mode", ["all", "input"])
@pytest.mark.parametrize("case", LATER_SAMPLES + [
    pytest.param(k, marks=pytest.mark.xfail(reason=why, strict=True))
    for k, why in EXPECTED_FAILURES.items()])
def test_vmap_over_later_opinfo_samples(case, mode):
    key, index = case.rsplit(":", 1)
    sample = opdb_vmap.first_samples(ENTRIES[key], int(index) + 1)[int(index)]
    why = opdb_vmap.check(ENTRIES[key], sample, mode)
    assert why is None, f"vmap over {key} sample {index} [{mode}]: {why}"


# vmap of vjp (functorch's test_vmapvjp): the op's vjp over two examples, cotangents
# batched too, against each example's eager autograd.grad
VJP_EXPECTED_FAILURES = {
    "tensor_split": "split points from a tensor need its values (torch's vmap has no batch "
                    "rule for that overload either)",
}


def _vjp_params():
    out = []
    for key in sorted(ENTRIES):
        if not ENTRIES[key].supports_autograd:
            continue
        why = VJP_EXPECTED_FAILURES.get(key)
        marks = [pytest.mark.xfail(reason=why, strict=True)] if why else []
        out.append(pytest.param(key, marks=marks, id=key))
    return out


@pytest.mark.parametrize("key", _vjp_params())
def test_vmap_of_vjp_over_opinfo_sample(key):
    info = ENTRIES[key]
    samples = opdb_vmap.first_samples(info)
    if not samples:
        pytest.skip(f"{key}: no float64 samples")
    try:
        why = opdb_vmap.check_vjp(info, samples[0])
    except opdb_vmap.Unsuited as exc:
        pytest.skip(f"{key}: {exc}")
    assert why is None, f"vmap of vjp over {key}: {why}"


def test_the_survey_covers_many_entries():
    assert len(ENTRIES) > 450, sorted(ENTRIES)
