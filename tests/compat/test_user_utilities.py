"""Training utilities PyTorch users reach for (module state-dict hooks, orthogonal
parametrization, generators, torch.utils.data's modules and loaders), each checked
against torch on the same weights and data."""
from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402


def _weights(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _hook_log(lib):
    model = lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.ReLU())
    log = []

    def add_extra(module, state_dict, prefix, local_metadata):
        state_dict[prefix + "extra"] = lib.ones(1)

    def drop_extra(module, state_dict, prefix, *rest):
        state_dict.pop(prefix + "extra", None)
        log.append(("load_pre", type(module).__name__, prefix))

    def forgive_missing(module, keys):
        log.append(("load_post", type(module).__name__, list(keys.missing_keys)))
        keys.missing_keys.clear()

    model[0].register_state_dict_post_hook(add_extra)
    model[0].register_load_state_dict_pre_hook(drop_extra)
    handle = model.register_state_dict_pre_hook(
        lambda module, prefix, keep_vars: log.append(("pre", prefix, keep_vars)))
    state = model.state_dict(keep_vars=True)
    handle.remove()
    model.state_dict()
    model.load_state_dict(state)
    model[0].register_load_state_dict_post_hook(forgive_missing)
    model.register_load_state_dict_post_hook(forgive_missing)
    result = model.load_state_dict({"0.weight": lib.ones(2, 2)})   # strict, yet forgiven
    return log, sorted(state), repr(result)


def test_state_dict_hooks_run_where_torch_runs_them():
    assert _hook_log(ember) == _hook_log(torch)


def test_a_state_dict_post_hook_may_not_return_a_new_dict():
    model = ember.nn.Linear(2, 2)
    model.register_state_dict_post_hook(lambda module, state, prefix, meta: {})
    with pytest.raises(RuntimeError, match="must return None"):
        model.state_dict()


def test_load_state_dict_leaves_the_callers_dict_alone():
    model = ember.nn.Linear(2, 2)
    model._register_load_state_dict_pre_hook(
        lambda state, prefix, *rest: state.pop(prefix + "junk", None))
    state = dict(model.state_dict(), junk=ember.ones(1))
    model.load_state_dict(state, strict=False)
    assert "junk" in state


def test_generator_device_is_a_device():
    generator = ember.Generator()
    assert generator.device.type == torch.Generator().device.type == "cpu"
    assert generator.device == "cpu"


_ORTHOGONAL_CASES = [((4, 4), None, True), ((5, 3), None, True), ((3, 5), None, True),
                     ((4, 4), "cayley", True), ((4, 4), "householder", True),
                     ((5, 3), "householder", False), ((3, 5), "householder", False),
                     ((2, 4, 4), None, True), ((4, 4), None, False),
                     ((4, 4), "cayley", False)]


def _orthogonal_step(lib, shape, orthogonal_map, use_trivialization):
    module = lib.nn.Module()
    module.weight = lib.nn.Parameter(lib.tensor(_weights(shape)))
    lib.nn.utils.parametrizations.orthogonal(module, orthogonal_map=orthogonal_map,
                                             use_trivialization=use_trivialization)
    initial = module.weight.detach().numpy().copy()
    optimizer = lib.optim.SGD(module.parameters(), lr=0.1)
    target = lib.tensor(np.arange(np.prod(shape), dtype=np.float32).reshape(shape))
    (module.weight * target).sum().backward()
    grad = module.parametrizations.weight.original.grad.numpy().copy()
    optimizer.step()
    return initial, grad, module.weight.detach().numpy(), sorted(module.state_dict())


@pytest.mark.parametrize("shape,orthogonal_map,use_trivialization", _ORTHOGONAL_CASES)
def test_orthogonal_matches_torch(shape, orthogonal_map, use_trivialization):
    want = _orthogonal_step(torch, shape, orthogonal_map, use_trivialization)
    got = _orthogonal_step(ember, shape, orthogonal_map, use_trivialization)
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    square = shape[-1] == shape[-2]
    if square or not use_trivialization:
        # a tall or wide base is completed with random columns, so only square (or
        # untrivialized) gradients are the same numbers in both
        np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got[2], want[2], atol=1e-5)
    after = got[2] if shape[-2] >= shape[-1] else np.swapaxes(got[2], -1, -2)
    gram = np.swapaxes(after, -1, -2) @ after
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(gram.shape[-1]), gram.shape),
                               atol=1e-5)
    assert got[3] == want[3]


def test_orthogonal_errors_match_torch():
    for lib in (torch, ember):
        with pytest.raises(ValueError, match="Expected a matrix"):
            lib.nn.utils.parametrizations.orthogonal(lib.nn.Linear(3, 3), "bias")
        with pytest.raises(ValueError, match="orthogonal_map has to be one of"):
            lib.nn.utils.parametrizations.orthogonal(lib.nn.Linear(3, 3),
                                                     orthogonal_map="qr")
        # registering keeps the weight as the unconstrained matrix; assigning has no
        # inverse to run
        module = lib.nn.utils.parametrizations.orthogonal(lib.nn.Linear(3, 3),
                                                          use_trivialization=False)
        with pytest.raises(NotImplementedError, match="use_trivialization=False"):
            module.weight = lib.eye(3)


class _Draws(ember.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return ember.rand(1).item()


def test_loader_workers_draw_from_their_own_streams():
    """Worker draws leave the main process's stream where one base-seed draw puts it,
    differ between workers, and repeat when the main process is reseeded."""
    def epoch():
        ember.manual_seed(0)
        drawn = [float(x) for x in ember.utils.data.DataLoader(_Draws(), batch_size=None,
                                                                 num_workers=2)]
        return drawn, ember.rand(1).item()

    (first, after_first), (second, after_second) = epoch(), epoch()
    assert first == second and after_first == after_second
    assert first[0::2] != first[1::2]
    ember.manual_seed(0)
    ember.randint(0, 2 ** 62, ())          # the one draw an epoch with workers makes
    assert ember.rand(1).item() == after_first


def test_persistent_workers_initialize_once_and_keep_their_dataset_copies():
    calls = []

    class Counting(ember.utils.data.Dataset):
        seen = 0

        def __len__(self):
            return 4

        def __getitem__(self, index):
            self.seen += 1
            return self.seen

    def init(worker_id):
        calls.append(worker_id)

    for persistent, want_calls in ((True, [0, 1]), (False, [0, 1, 0, 1])):
        calls.clear()
        dataset = Counting()
        loader = ember.utils.data.DataLoader(dataset, num_workers=2, worker_init_fn=init,
                                             persistent_workers=persistent)
        epochs = [[int(b) for b in loader] for _ in range(2)]
        assert calls == want_calls
        assert epochs[1] == ([3, 3, 4, 4] if persistent else [1, 1, 2, 2])
        assert dataset.seen == 0       # workers count on their own copies


def test_torch_utils_data_module_paths_import():
    from ember.utils.data.dataloader import DataLoader, default_collate  # noqa: F401
    from ember.utils.data.dataset import StackDataset, ChainDataset  # noqa: F401
    from ember.utils.data.sampler import Sampler  # noqa: F401
    from ember.utils.data.distributed import DistributedSampler
    assert ember.utils.data.DistributedSampler is DistributedSampler


def _python_maps(lib):
    a = lib.arange(6.).view(2, 3).t()
    a.apply_(lambda x: x * x + 1)
    b = lib.arange(3)
    b.map_(lib.tensor([10, 20, 30]), lambda x, y: x + 2 * y)
    c = lib.arange(4.).view(2, 2)
    c.map_(lib.tensor([1., -1.]), lambda x, y: x * y)
    return a.numpy(), b.numpy(), c.numpy()


def test_apply_and_map_match_torch():
    for got, want in zip(_python_maps(ember), _python_maps(torch)):
        np.testing.assert_array_equal(got, want)
    for lib in (torch, ember):
        with pytest.raises(RuntimeError, match="requires grad"):
            lib.ones(2, requires_grad=True).apply_(lambda x: x)


def test_dlpack_shares_memory_with_torch_and_numpy():
    x = ember.arange(3.)
    seen_by_torch = torch.from_dlpack(x)
    seen_by_torch[2] = -1.0
    assert x.tolist() == [0.0, 1.0, -1.0]
    alias = ember.utils.dlpack.from_dlpack(ember.utils.dlpack.to_dlpack(x))
    np.testing.assert_array_equal(alias.numpy(), x.numpy())
    ours = ember.from_dlpack(x)
    ours[0] = 5.0
    assert x[0].item() == 5.0
    t = torch.arange(3.)
    ember.from_dlpack(t)[1] = 9.0
    assert t[1].item() == 9.0


def test_deprecated_spellings_warn_as_torch_does():
    with pytest.warns(FutureWarning, match=r"torch.amp.autocast\('cpu'"):
        context = ember.cpu.amp.autocast()
    with context:
        assert ember.nn.Linear(2, 2)(ember.ones(1, 2)).dtype is ember.bfloat16
    from ember.nn.utils.stateless import functional_call
    linear = ember.nn.Linear(2, 1)
    with pytest.warns(FutureWarning, match="torch.func.functional_call"):
        out = functional_call(linear, {"weight": ember.ones(1, 2), "bias": ember.zeros(1)},
                              (ember.ones(1, 2),))
    assert out.item() == 2.0
    from ember.utils.hooks import RemovableHandle
    assert isinstance(linear.register_forward_hook(lambda *args: None), RemovableHandle)


def test_stack_module_state_refuses_mixed_models():
    with pytest.raises(RuntimeError, match="same training/eval mode"):
        ember.func.stack_module_state([ember.nn.Linear(2, 2), ember.nn.Linear(2, 2).eval()])
    frozen = ember.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(RuntimeError, match="same .requires_grad"):
        ember.func.stack_module_state([ember.nn.Linear(2, 2), frozen])


def _inference_flags(lib):
    x = lib.ones(2, requires_grad=True)
    with lib.no_grad():
        normal = x * 2
        with lib.inference_mode():
            made = x * 2
            view_of_normal = x[0:1]
            x.data.add_(0)
    return [made.is_inference(), lib.is_inference(made), made[0:1].is_inference(),
            made.clone().is_inference(), view_of_normal.is_inference(), x.is_inference(),
            normal.is_inference()]


def test_tensors_made_in_inference_mode_are_inference_tensors():
    assert _inference_flags(ember) == _inference_flags(torch)


def _storage_facts(lib):
    t = lib.arange(6.).view(2, 3)
    untyped = t.untyped_storage()
    with warnings.catch_warnings():     # torch warns on its first call only
        warnings.simplefilter("ignore")
        typed = t[1].storage()
    return [untyped.size(), untyped.nbytes(), len(untyped), untyped.element_size(),
            untyped.data_ptr() == t.data_ptr(), untyped.tolist()[4:8], typed.size(),
            typed.element_size(), typed.nbytes(), typed.data_ptr() == t.data_ptr(),
            typed.tolist(), typed[4], str(typed.device),
            t.t().contiguous().untyped_storage().data_ptr() == t.data_ptr()]


def test_storages_describe_the_buffer_as_torch_does():
    assert _storage_facts(ember) == _storage_facts(torch)


def test_rng_state_is_a_byte_tensor_that_round_trips(tmp_path):
    """torch's checkpointing idiom: save torch.get_rng_state() with the model, restore it
    later (ember's state is its own generator's, so its length differs from torch's)."""
    state = ember.get_rng_state()
    assert state.dtype is ember.uint8 and state.dim() == 1
    assert torch.get_rng_state().dtype == torch.uint8
    ember.save({"rng": state.clone()}, tmp_path / "ckpt.pt")
    first = ember.rand(4)
    ember.set_rng_state(ember.load(tmp_path / "ckpt.pt")["rng"])
    assert ember.equal(ember.rand(4), first)
    generator = ember.Generator().manual_seed(-3)
    assert generator.initial_seed() == torch.Generator().manual_seed(-3).initial_seed()
    saved = generator.get_state()
    draw = ember.randn(3, generator=generator)
    assert ember.equal(ember.randn(3, generator=generator.set_state(saved)), draw)
    with pytest.raises(TypeError, match="ByteTensor"):
        ember.set_rng_state(ember.zeros(3))


def _optimizer_hook_log(lib):
    log = []
    param = lib.nn.Parameter(lib.ones(2))
    optimizer = lib.optim.SGD([param], lr=0.5)

    def record_step(opt, args, kwargs):
        log.append(("pre", type(opt).__name__, args[0] is opt, len(args), sorted(kwargs)))

    handles = [optimizer.register_step_pre_hook(record_step),
               optimizer.register_step_post_hook(lambda opt, a, k: log.append(("post",))),
               importlib.import_module(f"{lib.__name__}.optim.optimizer")
               .register_optimizer_step_pre_hook(
                   lambda opt, a, k: log.append(("global",))),
               optimizer.register_state_dict_pre_hook(lambda opt: log.append(("sd_pre",))),
               optimizer.register_state_dict_post_hook(
                   lambda opt, sd: log.append(("sd_post", sorted(sd))) or sd),
               optimizer.register_load_state_dict_pre_hook(
                   lambda opt, sd: log.append(("load_pre",))),
               optimizer.register_load_state_dict_post_hook(
                   lambda opt: log.append(("load_post",)))]
    param.grad = lib.ones(2)
    optimizer.step()
    optimizer.load_state_dict(optimizer.state_dict())
    for handle in handles:
        handle.remove()
    optimizer.step()
    return log, param.detach().numpy().tolist()


def test_optimizer_hooks_run_where_torch_runs_them():
    assert _optimizer_hook_log(ember) == _optimizer_hook_log(torch)


def test_set_submodule_matches_torch():
    for lib in (torch, ember):
        model = lib.nn.Sequential(lib.nn.Sequential(lib.nn.Linear(2, 2)), lib.nn.ReLU())
        model.set_submodule("0.0", lib.nn.Identity())
        model.set_submodule("0.extra", lib.nn.Tanh())
        assert [type(m).__name__ for m in model[0]] == ["Identity", "Tanh"]
        with pytest.raises(AttributeError, match="has no attribute `missing`"):
            model.set_submodule("0.missing", lib.nn.ReLU(), strict=True)
        with pytest.raises(ValueError, match="is not an nn.Module"):
            model.set_submodule("1", 3)


def test_step_hooks_run_once_around_a_subclass_step_and_may_replace_arguments():
    class LoggedSGD(ember.optim.SGD):
        def step(self, closure=None):
            return super().step(closure)

    param = ember.nn.Parameter(ember.ones(2))
    optimizer = LoggedSGD([param], lr=1.0)
    calls = []
    optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: calls.append("pre") or (args, {"closure": lambda: 7.0}))
    param.grad = ember.ones(2)
    assert optimizer.step() == 7.0 and calls == ["pre"]
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: "wrong")
    with pytest.raises(RuntimeError, match="must return None or a tuple"):
        optimizer.step()


def test_typed_storage_warns_once_as_torch_does():
    from ember.frontend import storage
    storage._warned[0] = False
    with pytest.warns(UserWarning, match="TypedStorage is deprecated"):
        ember.ones(2).storage()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ember.ones(2).storage()


def _layout_facts(lib):
    x = lib.ones(2, 3, 4, 5)
    nhwc = x.to(memory_format=lib.channels_last)
    a, b = lib.ones(3, requires_grad=True).unbind(0)[1:]
    return [x.dim_order(), nhwc.dim_order(), x.permute(2, 0, 3, 1).dim_order(),
            x.const_data_ptr() == x.data_ptr(), a.output_nr, b.output_nr]


def test_layout_queries_match_torch():
    assert _layout_facts(ember) == _layout_facts(torch)


def test_distributed_sampler_reached_from_a_fresh_process():
    # ember.utils.data.DistributedSampler loads its submodule on first use; a fresh
    # interpreter is the only place where that first use is certain
    import subprocess
    import sys
    code = ("import ember.utils.data as d; s = d.DistributedSampler(range(10), num_replicas=3,"
            " rank=1, shuffle=False); print(list(s))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    from torch.utils.data.distributed import DistributedSampler
    expected = list(DistributedSampler(range(10), num_replicas=3, rank=1, shuffle=False))
    assert out.stdout.strip() == str(expected)
