"""Names and behaviours that library code (torchvision, torchaudio) reaches for, each
compared with torch: they were gaps found by importing torchvision's models against
ember (tests/compat/test_torchvision.py)."""
from __future__ import annotations


import numpy as np
import pytest
import torch

import ember


def test_state_dict_records_each_module_version_like_torch():
    def build(nn):
        class Versioned(nn.Module):
            _version = 3

            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)
        return nn.Sequential(Versioned(), nn.Sequential(nn.Linear(1, 1)))

    expected = build(torch.nn).state_dict()._metadata
    assert dict(build(ember.nn).state_dict()._metadata) == dict(expected)


def test_load_state_dict_hands_the_recorded_version_to_the_module():
    seen = []

    class Versioned(ember.nn.Module):
        _version = 2

        def __init__(self):
            super().__init__()
            self.fc = ember.nn.Linear(2, 2)

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args):
            seen.append(local_metadata.get("version"))
            super()._load_from_state_dict(state_dict, prefix, local_metadata, *args)

    Versioned().load_state_dict(Versioned().state_dict())
    Versioned().load_state_dict(dict(Versioned().state_dict()))   # no metadata: None
    assert seen == [2, None]


def test_pair_and_friends_match_torch():
    from torch.nn.modules import utils as expected
    from ember.nn.modules import utils as actual
    for name in ("_single", "_pair", "_triple", "_quadruple"):
        for value in (3, [1, 2], (4, 5, 6), "ab"):
            assert getattr(actual, name)(value) == getattr(expected, name)(value)
    assert actual._reverse_repeat_tuple((1, 2, 3), 2) == expected._reverse_repeat_tuple(
        (1, 2, 3), 2)
    assert actual._list_with_default([None, 3], [1, 2, 5, 6]) == \
        expected._list_with_default([None, 3], [1, 2, 5, 6])


@pytest.mark.parametrize("file_name", ["batchnorm", "instancenorm", "upsampling",
                                       "pixelshuffle", "channelshuffle", "distance", "fold"])
def test_layers_import_from_torchs_file_names(file_name):
    import importlib
    expected = importlib.import_module(f"torch.nn.modules.{file_name}")
    actual = importlib.import_module(f"ember.nn.modules.{file_name}")
    for name in expected.__all__:
        assert getattr(actual, name) is getattr(ember.nn, name)
    assert issubclass(actual.BatchNorm2d if file_name == "batchnorm" else ember.nn.Module,
                      ember.nn.Module)


def test_batchnorm_file_has_the_private_base():
    from ember.nn.modules.batchnorm import _BatchNorm
    assert isinstance(ember.nn.BatchNorm2d(3), _BatchNorm)


def test_concat_dataset_matches_torch():

    def pieces(lib):
        return (lib.utils.data.TensorDataset(lib.arange(3)),
                lib.utils.data.TensorDataset(lib.arange(10, 15)))
    ta, tb = pieces(torch)
    ea, eb = pieces(ember)
    expected, actual = ta + tb, ember.utils.data.ConcatDataset([ea, eb])
    assert len(actual) == len(expected) and actual.cumulative_sizes == expected.cumulative_sizes
    for index in (0, 2, 3, 7, -1, -8):
        assert int(actual[index][0]) == int(expected[index][0])
    assert isinstance(ea + eb, ember.utils.data.ConcatDataset)
    with pytest.raises(ValueError, match="should not exceed dataset length"):
        actual[-9]
    with pytest.raises(AssertionError, match="should not be an empty iterable"):
        ember.utils.data.ConcatDataset([])


def test_model_zoo_names():
    import ember.utils.model_zoo as model_zoo
    assert model_zoo.load_url is ember.hub.load_state_dict_from_url
    with model_zoo.tqdm(total=3, disable=True) as bar:
        bar.update(2)


def test_quant_stubs_are_identity_before_conversion():
    from ember.ao.quantization import DeQuantStub, QuantStub
    x = ember.tensor([1.5, -2.0])
    model = ember.nn.Sequential(QuantStub(), ember.nn.ReLU(), DeQuantStub())
    np.testing.assert_array_equal(model(x).numpy(), [1.5, 0.0])
    assert QuantStub(qconfig="q").qconfig == "q" and not hasattr(QuantStub(), "qconfig")


def test_load_library_refuses_torch_extensions_with_oserror():
    with pytest.raises(OSError, match="cannot load PyTorch C.. extension"):
        ember.ops.load_library("/nonexistent/_C.so")


def test_private_queries_libraries_make():
    ember._C._log_api_usage_once("torchvision.models.resnet.ResNet")
    assert ember._C._get_tracing_state() is None
    seen = []

    def fn(x):
        seen.append(ember._C._get_tracing_state() is not None)
        return x + 1
    ember.jit.trace(fn, (ember.ones(2),))
    assert seen and all(seen)
    assert ember._dynamo.utils.is_compile_supported("cpu")
    assert not ember._dynamo.utils.is_compile_supported("mps")


def test_script_if_tracing_runs_the_function():
    @ember.jit._script_if_tracing
    def double(x):
        return x * 2
    np.testing.assert_array_equal(double(ember.tensor([1.0, 2.0])).numpy(), [2.0, 4.0])


def test_lazy_placeholders_import_from_parameter_module():
    from ember.nn.parameter import UninitializedParameter, is_lazy
    layer = ember.nn.LazyLinear(3)
    assert isinstance(layer.weight, UninitializedParameter) and is_lazy(layer.weight)
    layer(ember.ones(2, 4))
    assert not is_lazy(layer.weight)


def test_where_with_only_a_condition_is_nonzero_as_tuple():
    condition = np.array([[0, 1, 0], [1, 1, 0]])
    expected = torch.where(torch.tensor(condition))
    actual = ember.where(ember.tensor(condition))
    assert len(actual) == len(expected) == 2
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a.numpy(), e.numpy())
        assert a.dtype == ember.int64
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(
        ember.where(ember.tensor(x) > 0, ember.tensor(x), 0.0).numpy(),
        torch.where(torch.tensor(x) > 0, torch.tensor(x), 0.0).numpy())
    np.testing.assert_array_equal(
        ember.where(ember.tensor(x) > 0, input=ember.tensor(x), other=-1.0).numpy(),
        torch.where(torch.tensor(x) > 0, input=torch.tensor(x), other=-1.0).numpy())
    with pytest.raises(TypeError, match="where"):
        ember.where(ember.tensor(x) > 0, ember.tensor(x))


def test_to_another_tensor_takes_its_dtype():
    """Tensor.to(other) (torchvision's batched_nms: `idxs.to(boxes)`); it used to compare
    the tensor argument with `float` by == and fail."""
    idxs, boxes = np.array([0, 2, 1]), np.array([[0.5]], dtype=np.float64)
    expected = torch.tensor(idxs).to(torch.tensor(boxes))
    actual = ember.tensor(idxs).to(ember.tensor(boxes))
    assert str(actual.dtype).split(".")[-1] == str(expected.dtype).split(".")[-1]
    np.testing.assert_array_equal(actual.numpy(), expected.numpy())
    source = ember.tensor([1.0, 2.0])
    assert source.to(ember.tensor([3.0])) is source          # same dtype/device: no copy
    assert source.to(ember.tensor([3.0]), copy=True) is not source


def test_float_functional_matches_torch():
    x, y = np.array([1.0, -2.0, 0.5]), np.array([0.5, 1.0, -3.0])
    expected_module, actual_module = torch.nn.quantized.FloatFunctional(), \
        ember.nn.quantized.FloatFunctional()
    for method, args in (("add", (x, y)), ("mul", (x, y)), ("add_relu", (x, y)),
                         ("add_scalar", (x, 2.0)), ("mul_scalar", (x, 2.0))):
        def call(lib, module):
            return getattr(module, method)(*[lib.tensor(a) if isinstance(a, np.ndarray)
                                             else a for a in args])
        np.testing.assert_array_equal(call(ember, actual_module).numpy(),
                                      call(torch, expected_module).numpy(), err_msg=method)
    np.testing.assert_array_equal(
        actual_module.cat([ember.tensor(x), ember.tensor(y)]).numpy(),
        expected_module.cat([torch.tensor(x), torch.tensor(y)]).numpy())
    with pytest.raises(RuntimeError, match="not intended to use the 'forward'"):
        actual_module(ember.tensor(x))
    assert ember.ao.nn.quantized.FloatFunctional is ember.nn.quantized.FloatFunctional


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_optimizers_accept_torchs_implementation_flags(name):
    """nanoGPT: `'fused' in inspect.signature(torch.optim.AdamW).parameters`, then
    AdamW(..., fused=True) on CUDA; other code passes foreach=False. Same update."""
    import inspect
    expected = set(inspect.signature(getattr(torch.optim, name)).parameters)
    actual = set(inspect.signature(getattr(ember.optim, name)).parameters)
    assert {"foreach", "fused", "differentiable"} <= expected & actual
    rng = np.random.default_rng(0)
    start, grad = rng.standard_normal(4), rng.standard_normal(4)
    results = []
    for flags in ({}, {"foreach": True}, {"fused": True}):   # (torch refuses both at once)
        parameter = ember.nn.Parameter(ember.tensor(start))
        optimizer = getattr(ember.optim, name)([parameter], lr=0.1, **flags)
        parameter.grad = ember.tensor(grad)
        optimizer.step()
        results.append(parameter.detach().numpy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    # differentiable=True is accepted; its step refuses leaf parameters, as torch's does
    for lib in (torch, ember):
        parameter = lib.nn.Parameter(lib.ones(2))
        optimizer = getattr(lib.optim, name)([parameter], lr=0.1, differentiable=True)
        parameter.grad = lib.ones(2)
        with pytest.raises(RuntimeError, match="leaf Variable"):
            optimizer.step()


def test_cudnn_flags_like_torch():
    import torch.backends.cudnn as expected
    from ember.runtime.cuda import cudnn as runtime_cudnn
    actual = ember.backends.cudnn
    for flag in ("enabled", "benchmark", "deterministic", "allow_tf32"):
        assert getattr(actual, flag) == getattr(expected, flag), flag
    if runtime_cudnn.library() is None:   # no cuDNN frontend here: like a torch build without
        assert actual.is_available() is False and actual.version() is None
    else:
        assert actual.is_available() is True and actual.version() >= 8000
    actual.benchmark = True             # scripts set it: cuDNN then times its plans
    actual.benchmark = False


def test_canonical_mask_and_none_or_dtype_match_torch():
    import warnings
    import torch.nn.functional as TF
    import ember.nn.functional as EF
    mask = np.array([[True, False, True]])
    expected = TF._canonical_mask(mask=torch.tensor(mask), mask_name="key_padding_mask",
                                  other_type=None, other_name="attn_mask",
                                  target_type=torch.float32)
    actual = EF._canonical_mask(mask=ember.tensor(mask), mask_name="key_padding_mask",
                                other_type=None, other_name="attn_mask",
                                target_type=ember.float32)
    np.testing.assert_array_equal(actual.numpy(), expected.numpy())
    assert actual.dtype == ember.float32
    floats = ember.tensor([[0.5, -1.0]])
    assert EF._canonical_mask(floats, "m", None, "o", ember.float32) is floats
    with pytest.raises(AssertionError, match="only bool and floating types of m"):
        EF._canonical_mask(ember.tensor([[1, 0]]), "m", None, "o", ember.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        EF._canonical_mask(ember.tensor(mask), "m", ember.float32, "o", ember.float32)
    assert any("mismatched m and o" in str(w.message) for w in caught)
    assert EF._none_or_dtype(None) is None and EF._none_or_dtype(ember.tensor(mask)) == \
        ember.bool
    with pytest.raises(RuntimeError, match="must be None or torch.Tensor"):
        EF._none_or_dtype(3)


def test_math_constants_and_distribution_file_names():
    for name in ("pi", "e", "inf", "nan", "newaxis"):
        expected, actual = getattr(torch, name), getattr(ember, name)
        assert actual is expected or actual == expected or (
            isinstance(expected, float) and np.isnan(expected) and np.isnan(actual)), name
    from ember.distributions.categorical import Categorical
    from ember.distributions.multivariate_normal import MultivariateNormal
    assert Categorical is ember.distributions.Categorical
    assert MultivariateNormal is ember.distributions.MultivariateNormal
    assert ember.distributions.normal.Normal is ember.distributions.Normal


def test_assert_async_and_shape_as_tensor_match_torch():
    ember._assert_async(ember.tensor(1))
    ember._assert_async(ember.tensor([True]))
    for value, message in ((0, "single nonzero value, but got zero"),
                           ([1, 1], "more than one value is ambiguous")):
        with pytest.raises(RuntimeError, match=message):
            torch._assert_async(torch.tensor(value))
        with pytest.raises(RuntimeError, match=message):
            ember._assert_async(ember.tensor(value))
    with pytest.raises(RuntimeError, match="boom"):
        ember._assert_async(ember.tensor(0.0), "boom")
    shape = ember._shape_as_tensor(ember.ones(2, 3, 4))
    np.testing.assert_array_equal(shape.numpy(), torch._shape_as_tensor(torch.ones(2, 3, 4)))
    assert shape.dtype == ember.int64
