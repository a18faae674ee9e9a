"""The meta device against torch: data-less tensors' shapes, dtypes, strides, repr and
errors; ops, views and autograd on them; building models on meta then to_empty +
load_state_dict(assign=True)."""
import warnings

import numpy as np
import pytest
import torch

import ember


def both(fn):
    """fn(lib) with ember and with torch."""
    return fn(ember), fn(torch)


def same_geometry(e, t):
    assert e.device.type == t.device.type == "meta"
    assert tuple(e.shape) == tuple(t.shape)
    assert str(e.dtype).split(".")[1] == str(t.dtype).split(".")[1]
    assert e.stride() == t.stride()
    assert e.storage_offset() == t.storage_offset()
    assert e.is_meta and t.is_meta


@pytest.mark.parametrize("make", [
    lambda m: m.empty(2, 3, device="meta"),
    lambda m: m.zeros(4, dtype=m.int64, device="meta"),
    lambda m: m.ones((), device=m.device("meta")),
    lambda m: m.full((2, 0, 3), 7.0, device="meta"),
    lambda m: m.randn(3, 5, device="meta"),
    lambda m: m.arange(6, device="meta"),
    lambda m: m.tensor([[1, 2], [3, 4]], device="meta"),
    lambda m: m.empty_like(m.empty(2, 3, 4, 5, device="meta")),
    lambda m: m.empty(2, 3, 4, 5).to(memory_format=m.channels_last).to("meta"),
    lambda m: m.ones(3, 4).to("meta"),
    lambda m: m.ones(3, 4, dtype=m.float16).to(device="meta"),
])
def test_factories_and_moves(make):
    same_geometry(*both(make))


X = "x = m.empty(2, 3, 4, device='meta')"


@pytest.mark.parametrize("expr", [
    "x + 1", "x * x", "x.sum(1)", "x.mean((0, 2), keepdim=True)", "x.transpose(0, 2)",
    "x[:, 1]", "x[1:, :, ::2]", "x.view(6, 4)", "x.reshape(-1)", "x.permute(2, 0, 1)",
    "x.unsqueeze(1).expand(2, 5, 3, 4)", "x.permute(2, 0, 1).contiguous()",
    "x.permute(2, 0, 1).reshape(4, 6)", "m.matmul(x, x.transpose(1, 2))",
    "x.to(m.float64)", "x > 0", "x.argmax(-1)", "m.cat([x, x], 1)", "x.chunk(2, 2)[1]",
    "m.nn.functional.softmax(x, -1)", "m.nn.functional.linear(x, m.empty(5, 4, device='meta'))",
    "m.nn.functional.conv2d(m.empty(1, 3, 8, 8, device='meta'),"
    " m.empty(6, 3, 3, 3, device='meta'), padding=1)",
    "x.clone()", "m.empty_like(x)", "x.new_zeros(3)", "x.add_(1)", "x.mul_(2)",
    "x[0].fill_(3)",
])
def test_ops_compute_shapes_dtypes_strides(expr):
    def run(m):
        ns = {"m": m}
        exec(X, ns)
        return eval(expr, ns)
    same_geometry(*both(run))


def test_mixed_devices_are_refused():
    x = ember.empty(2, 3, device="meta")
    with pytest.raises(RuntimeError, match="same device"):
        x + ember.ones(2, 3)


def test_repr_matches_torch():
    for make in (lambda m: m.empty(2, 3, device="meta"),
                 lambda m: m.empty((), dtype=m.int64, device="meta"),
                 lambda m: m.empty(0, device="meta"),
                 lambda m: m.nn.Parameter(m.empty(2, device="meta")),
                 lambda m: m.empty(2, device="meta", requires_grad=True) * 2):
        e, t = both(make)
        assert repr(e).replace("ember.", "torch.") == repr(t)


@pytest.mark.parametrize("read, error", [
    (lambda x: x.numpy(), TypeError), (lambda x: x.cpu(), NotImplementedError),
    (lambda x: x.to("cpu"), NotImplementedError), (lambda x: x.tolist(), NotImplementedError),
    (lambda x: x[0, 0].item(), RuntimeError), (lambda x: x.item(), RuntimeError),
])
def test_reading_values_raises_torch_errors(read, error):
    for m in (ember, torch):
        with pytest.raises(error):
            read(m.empty(2, 3, device="meta"))


def test_data_ptr_and_storage_as_torch():
    for m in (ember, torch):
        x = m.empty(2, 3, device="meta")
        assert x.data_ptr() == 0
        storage = x.t()[1].untyped_storage()
        assert storage.nbytes() == 24 and len(storage) == 24 and storage.data_ptr() == 0


def test_backward_gives_meta_gradients():
    def run(m):
        w = m.empty(4, 3, device="meta", requires_grad=True)
        x = m.empty(2, 3, device="meta")
        (m.nn.functional.linear(x, w).relu().sum()).backward()
        return w.grad
    same_geometry(*both(run))


def _model(nn):
    return nn.Sequential(nn.Embedding(10, 16),
                         nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True),
                         nn.Conv1d(7, 7, 3, padding=1), nn.BatchNorm1d(7), nn.LayerNorm(16),
                         nn.Linear(16, 5))


def test_layers_take_device_argument():
    e, t = both(lambda m: m.nn.Linear(3, 4, device="meta"))
    same_geometry(e.weight, t.weight)
    same_geometry(e.bias, t.bias)
    e, t = both(lambda m: m.nn.Conv2d(3, 8, 3, bias=False, device=m.device("meta")))
    same_geometry(e.weight, t.weight)


def test_build_on_meta_then_to_empty_and_assign_load():
    with ember.device("meta"):
        model = _model(ember.nn)
    with torch.device("meta"):
        ref = _model(torch.nn)
    e_params, t_params = dict(model.named_parameters()), dict(ref.named_parameters())
    assert e_params.keys() == t_params.keys()
    for name in e_params:
        same_geometry(e_params[name], t_params[name])
    for (name, e), (_, t) in zip(model.named_buffers(), ref.named_buffers()):
        same_geometry(e, t)
    # shape inference through the whole model, forward and backward
    out = model(ember.zeros(2, 7, dtype=ember.int64, device="meta"))
    expected = ref(torch.zeros(2, 7, dtype=torch.int64, device="meta"))
    same_geometry(out, expected)
    out.sum().backward()
    same_geometry(model[5].weight.grad, model[5].weight)

    # a copy into meta parameters is a no-op torch warns about
    state = {k: torch.randn(v.shape) if v.is_floating_point() else v.clone()
             for k, v in _model(torch.nn).state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in state.items()})
    assert any("no-op" in str(w.message) for w in caught)
    assert model[5].weight.is_meta

    model.to_empty(device="cpu")
    model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in state.items()}, assign=True)
    ref.to_empty(device="cpu")
    ref.load_state_dict(state, assign=True)
    for name, p in model.named_parameters():
        assert p.device.type == "cpu" and p.requires_grad and p.is_leaf
    model.eval()
    ref.eval()
    tokens = np.array([[1, 2, 3, 4, 5, 6, 7]])
    got = model(ember.tensor(tokens)).detach().numpy()
    want = ref(torch.tensor(tokens)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_init_empty_weights_pattern():
    """accelerate's init_empty_weights: register_parameter patched to move to meta."""
    def build(m):
        original = m.nn.Module.register_parameter

        def register_on_meta(module, name, param):
            original(module, name, param)
            if param is not None:
                kwargs = dict(module._parameters[name].__dict__)
                kwargs["requires_grad"] = param.requires_grad
                module._parameters[name] = type(param)(
                    module._parameters[name].to("meta"), **kwargs)
        m.nn.Module.register_parameter = register_on_meta
        try:
            return m.nn.Sequential(m.nn.Linear(8, 4), m.nn.GELU(), m.nn.Linear(4, 2))
        finally:
            m.nn.Module.register_parameter = original
    e, t = both(build)
    for (_, a), (_, b) in zip(e.named_parameters(), t.named_parameters()):
        same_geometry(a, b)
        assert a.requires_grad and isinstance(a, ember.nn.Parameter)


def test_functional_call_with_meta_params():
    def run(m):
        net = m.nn.Linear(3, 4, device="meta")
        params = {k: m.empty(v.shape, device="meta") for k, v in net.named_parameters()}
        return m.func.functional_call(net, params, (m.empty(5, 3, device="meta"),))
    same_geometry(*both(run))


def test_random_like_factories_follow_the_input_device():
    for name in ("rand_like", "randn_like"):
        same_geometry(*both(lambda m: getattr(m, name)(m.empty(2, 3, device="meta"))))
    same_geometry(*both(lambda m: m.randint_like(m.empty(4, device="meta"), 5)))


def test_pickle_deepcopy_and_save_keep_meta_tensors():
    import copy
    import io
    import pickle
    model = ember.nn.Linear(2, 3, device="meta")
    for back in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert isinstance(back.weight, ember.nn.Parameter) and back.weight.requires_grad
        assert back.weight.is_meta and tuple(back.weight.shape) == (3, 2)
    view = ember.empty(2, 3, dtype=ember.float16, device="meta").t()
    same_geometry(pickle.loads(pickle.dumps(view)),
                  pickle.loads(pickle.dumps(torch.empty(2, 3, dtype=torch.float16,
                                                        device="meta").t())))
    buffer = io.BytesIO()
    ember.save({"state": model.state_dict(), "x": ember.ones(2)}, buffer)
    buffer.seek(0)
    loaded = ember.load(buffer)
    same_geometry(loaded["state"]["weight"], torch.nn.Linear(2, 3, device="meta").weight.detach())
    assert loaded["x"].tolist() == [1.0, 1.0]


def test_building_on_meta_draws_no_random_numbers():
    for m in (ember, torch):
        m.manual_seed(3)
        expected = m.randn(4)
        m.manual_seed(3)
        with m.device("meta"):
            m.nn.Sequential(m.nn.Linear(300, 200), m.nn.Embedding(50, 8), m.nn.Conv2d(3, 4, 3))
        assert m.equal(m.randn(4), expected)


def test_views_of_storages_larger_than_memory():
    e, t = both(lambda m: m.empty(1 << 20, 1 << 20, device="meta")[3:, 7])
    same_geometry(e, t)
    e, t = both(lambda m: m.empty(1 << 20, 1 << 20, device="meta").t()[5])
    same_geometry(e, t)


def test_assert_close_compares_meta_tensors_by_metadata():
    for m in (ember, torch):
        m.testing.assert_close(m.empty(2, 3, device="meta"), m.empty(2, 3, device="meta"))
        with pytest.raises(AssertionError, match="dtype"):
            m.testing.assert_close(m.empty(2, device="meta"),
                                   m.empty(2, dtype=m.float64, device="meta"))


def test_module_to_from_meta_points_to_to_empty():
    for m in (ember, torch):
        with pytest.raises(NotImplementedError, match="to_empty"):
            m.nn.Linear(2, 2, device="meta").to("cpu")
        with pytest.raises(RuntimeError, match="meta tensors"):
            bool(m.empty((), device="meta"))


@pytest.mark.parametrize("expr", [
    "x.copy_(m.ones(2, 3))", "x[m.tensor([0, 1, 1])]", "x[:, m.tensor([2, 0])]",
])
def test_meta_accepts_cpu_copy_sources_and_indices(expr):
    def run(m):
        ns = {"m": m, "x": m.empty(2, 3, device="meta")}
        return eval(expr, ns)
    same_geometry(*both(run))


@pytest.mark.parametrize("layer, shape", [
    (lambda m: m.nn.LSTM(4, 8, device="meta"), (5, 2, 4)),
    (lambda m: m.nn.GRU(4, 8, batch_first=True, num_layers=2, device="meta"), (2, 5, 4)),
    (lambda m: m.nn.LSTMCell(4, 8, device="meta"), (5, 4)),
    (lambda m: m.nn.MultiheadAttention(8, 2, batch_first=True, device="meta"), (2, 5, 8)),
])
def test_recurrent_and_attention_layers_on_meta(layer, shape):
    def run(m):
        x = m.empty(*shape, device="meta")
        out = layer(m)(*([x] * 3 if "Multihead" in repr(layer(m)) else [x]))
        return out[0]
    same_geometry(*both(run))


def test_skip_init_builds_on_meta_then_to_empty():
    for m in (ember, torch):
        layer = m.nn.utils.skip_init(m.nn.Linear, 3, 4)
        assert layer.weight.device.type == "cpu" and tuple(layer.weight.shape) == (4, 3)
        with pytest.raises(RuntimeError, match="device"):
            m.nn.utils.skip_init(m.nn.ReLU)
