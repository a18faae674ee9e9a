"""More compiled user programs (dynamo's test_misc/test_repros/test_functions styles, in
our own words): Tensor methods called through the class, finfo/iinfo and default
dtypes, Size arithmetic, generators and decorators inside, module state written in
forward, `__call__` overrides, unbound methods, operator helpers. Each runs under
torch eager, torch.compile, ember eager and ember.compile (compile_suite_common.check)."""
import dataclasses
import importlib
import operator

import pytest

from tests.compile.compile_suite_common import G, T, arr, check, case_registry

CASES, case = case_registry()


X = arr(3, 4)
Y = arr(3, 4, seed=1)
B = arr(2, 3, 4, seed=3)


@case((X, Y))
def unbound_tensor_methods(lib):
    def f(x, y):
        return lib.Tensor.add(x, y), lib.Tensor.relu(x), lib.Tensor.sum(y, 0)
    return f


@case((X,))
def finfo_eps_inside(lib):
    def f(x):
        eps = lib.finfo(x.dtype).eps
        tiny = lib.finfo(x.dtype).tiny
        return x / (x.abs() + eps) + tiny
    return f


@case((arr(3, 4, dtype="int64"),))
def iinfo_max_inside(lib):
    def f(x):
        return x.clamp(max=lib.iinfo(x.dtype).max - 1) + lib.iinfo(lib.int8).max
    return f


@case((X,))
def default_dtype_inside(lib):
    def f(x):
        return lib.zeros(2, dtype=lib.get_default_dtype()), x.to(lib.get_default_dtype())
    return f


@case((B,))
def size_arithmetic(lib):
    def f(x):
        new_shape = x.shape[:-1] + (2, 2)
        return x.reshape(new_shape), x.shape.numel(), x.size()[1:]
    return f


@case((B,))
def view_as_expand_as(lib):
    def f(x):
        flat = x.flatten()
        return flat.view_as(x) * 2, x[:, :1].expand_as(x)
    return f


@case((X,))
def transpose_properties(lib):
    def f(x):
        return x.T @ x, x.mT.shape, x.T.contiguous().is_contiguous()
    return f


@case((X,))
def generator_helper_inside(lib):
    def rows(t):
        for i in range(t.shape[0]):
            yield t[i] * (i + 1)

    def f(x):
        return lib.stack(list(rows(x)))
    return f


@case((X,))
def no_grad_decorated_helper(lib):
    @lib.no_grad()
    def stats(t):
        return t.mean(), t.std()

    def f(x):
        m, s = stats(x)
        return (x - m) / s
    return f


@case((G(X),), grad=True)
def no_grad_decorated_helper_grad(lib):
    @lib.no_grad()
    def scale_of(t):
        return t.abs().max()

    def f(x):
        return x / scale_of(x)
    return f


@case((X,))
def operator_itemgetter_attrgetter(lib):
    def f(x):
        first = operator.itemgetter(0)
        shape_of = operator.attrgetter("shape")
        return first(x) * shape_of(x)[1]
    return f


@case((X,))
def string_format_key(lib):
    def f(x):
        parts = {"{}_{}".format("p", i): x * i for i in range(3)}
        return parts["p_2"] - parts["p_1"]
    return f


@case((X,))
def enumerate_zip_nested(lib):
    def f(x):
        out = []
        for i, (a, b) in enumerate(zip(x.unbind(0), x.flip(0).unbind(0))):
            out.append(a * b + i)
        return lib.stack(out)
    return f


@case((X,))
def chunk_variable_count(lib):
    def f(x):
        parts = x.chunk(x.shape[-1] // 2, dim=-1)
        return sum(p.sum(-1) for p in parts), len(parts)
    return f


@case((X,))
def jit_is_scripting_inside(lib):
    def f(x):
        if lib.jit.is_scripting():
            return x
        return x * 2
    return f


@case((X, Y))
def broadcast_shapes_inside(lib):
    def f(x, y):
        shape = lib.broadcast_shapes(x.shape, y[:1].shape)
        return x.expand(shape) + y
    return f


@case((X,), (X,), observe=lambda m, args: m.last)
def forward_stores_tensor_attribute(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.last = None

        def forward(self, x):
            y = x * 2
            self.last = y.detach()
            return y + 1
    return M()


@case((X,), (X,), observe=lambda m, args: len(m.history))
def forward_appends_to_list_attribute(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.history = []

        def forward(self, x):
            self.history.append(x.shape[0])
            return x * len(self.history)
    return M()


@case((X,), (X,), observe=lambda m, args: m.calls)
def forward_counts_calls(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return x + self.calls
    return M()


@case((X,))
def call_override_on_module(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x)

        def __call__(self, x):
            return super().__call__(x * 2) + 1
    return M()


@case((X,))
def module_method_other_than_forward(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def encode(self, x):
            return self.lin(x).tanh()

        def forward(self, x):
            return self.encode(x) + self.encode(x * 2)
    return M()


@case((X,))
def module_list_subclass_with_super(lib):
    nn = lib.nn

    class Stack(nn.ModuleList):
        def forward(self, x):
            for layer in self:
                x = layer(x)
            return x

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.stack = Stack([nn.Linear(4, 4), nn.ReLU()])

        def forward(self, x):
            return self.stack(x)
    return M()


@case((X,))
def dataclass_with_default_factory(lib):
    @dataclasses.dataclass
    class Config:
        scales: list = dataclasses.field(default_factory=lambda: [1.0, 2.0])

    def f(x):
        cfg = Config()
        return sum(x * s for s in cfg.scales)
    return f


@case((X,))
def frozen_dataclass_constant(lib):
    @dataclasses.dataclass(frozen=True)
    class Config:
        k: float = 0.5
        act: str = "tanh"

    cfg = Config()

    def f(x):
        return getattr(x * cfg.k, cfg.act)()
    return f


@case((X,))
def sorted_dict_of_tensors(lib):
    def f(x):
        d = {"b": x * 2, "a": x, "c": x * 3}
        return [d[k] for k in sorted(d)]
    return f


@case((X,))
def tensor_in_tuple_membership_by_identity(lib):
    def f(x):
        y = x * 2
        items = [x, y]
        return items.index(y), len([t for t in items if t is x])
    return f


@case((X,))
def global_constant_list(lib):
    def f(x):
        return sum(x * w for w in WEIGHTS)
    return f


WEIGHTS = [0.1, 0.2, 0.7]


@case((X,))
def class_instantiated_inside(lib):
    class Acc:
        def __init__(self):
            self.total = 0

        def add(self, t):
            self.total = self.total + t
            return self

    def f(x):
        return Acc().add(x).add(x * 2).total
    return f


@case((X,))
def tensor_hash_as_dict_key(lib):
    def f(x):
        y = x + 1
        cache = {x: "in", y: "out"}
        return cache[y], y * 2
    return f


@case((G(X),), grad=True)
def grad_through_helper_with_kwargs(lib):
    def gelu(t, *, approximate="none"):
        return lib.nn.functional.gelu(t, approximate=approximate)

    def f(x):
        return gelu(x) + gelu(x, approximate="tanh")
    return f


@case((G(B),), grad=True)
def grad_einsum_and_bmm(lib):
    def f(x):
        a = lib.einsum("bij,bkj->bik", x, x)
        return lib.bmm(a, x).sum(-1)
    return f


@case((G(X),), grad=True)
def grad_clone_and_inplace(lib):
    def f(x):
        y = x.clone()
        y.mul_(2)
        y[0] = 0.0
        return y * x
    return f


@case((X,))
def where_with_scalar_and_nan_to_num(lib):
    def f(x):
        y = lib.where(x > 0, x.log(), float("nan"))
        return lib.nan_to_num(y, nan=0.0), y.isnan().sum()
    return f


@case((arr(2, 6),))
def topk_sort_argsort(lib):
    def f(x):
        v, i = x.topk(2, dim=-1)
        return v, i, x.argsort(-1), x.sort(-1, descending=True).values
    return f


@case((X,))
def cumulative_ops(lib):
    def f(x):
        return x.cumsum(0), x.cumprod(1), lib.cummax(x, 0).values
    return f


@case((T(arr(4, 3)),), (arr(3, 4),))
def non_contiguous_input(lib):
    def f(x):
        return x * 2 + x.sum(0)
    return f


@case((arr(1).reshape(()),))
def zero_dim_input(lib):
    def f(x):
        return x * 3, (x + 1).item() > 0, x.dim()
    return f


@case((arr(0, 4),))
def empty_input(lib):
    def f(x):
        return x.sum(0), x * 2, x.shape[0]
    return f


@case((arr(3, 4, dtype="float16"),), rtol=1e-2, atol=1e-2)
def half_input(lib):
    def f(x):
        return (x * 2).float().softmax(-1), x.dtype
    return f


@case((arr(3, 4).astype("complex64"),))
def complex_input(lib):
    def f(x):
        return (x * 1j).real + x.abs(), x.conj().imag
    return f


@case((X,), observe=lambda f, args: args)
def returns_view_then_input_mutated_outside(lib):
    def f(x):
        return x.view(-1), x.t()
    return f


@case((X,))
def scalar_tensor_outputs(lib):
    def f(x):
        return x.sum(), x.max(), lib.tensor(3.0), x.norm() > 1
    return f


@case((arr(2, 1, 4),))
def expand_stride_zero_input(lib):
    def f(x):
        e = x.expand(2, 3, 4)
        return e * lib.arange(3.0).view(1, 3, 1)
    return f


@case((arr(3, 4, dtype="int32"),))
def int32_ops(lib):
    def f(x):
        return x + 1, x * 2.5, x.sum(), (x // 2).dtype
    return f


# ---- higher-order ops inside compiled functions (test_higher_order_ops's kind) --------------


def _submodule(lib, path):
    return importlib.import_module(f"{lib.__name__}.{path}")


@case((abs(X) + 0.1,), (-abs(X),))
def cond_on_tensor_predicate(lib):
    def f(x):
        return lib.cond(x.sum() > 0, lambda t: t.sin() * 2, lambda t: t.cos() - 1, (x,))
    return f


@case((G(X),), grad=True)
def cond_grad(lib):
    def f(x):
        return lib.cond(x.mean() > 0, lambda t: (t * t).sum(0), lambda t: t.exp().sum(0), (x,))
    return f


@case((X,))
def cond_in_module_with_parameter(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return lib.cond(x.shape[0] > 2, lambda t: self.lin(t), lambda t: t, (x,))
    return M()


@case((X,))
def while_loop_module_path(lib):
    while_loop = _submodule(lib, "_higher_order_ops.while_loop").while_loop

    def f(x):
        return while_loop(lambda i, t: i < 3, lambda i, t: (i + 1, t * 2 + 1),
                          (lib.tensor(0), x))
    return f


@case((B,))
def control_flow_map(lib):
    hop = _submodule(lib, "_higher_order_ops")

    def f(x):
        return hop.map(lambda row, k: row.relu() * k, x, 2.0)
    return f


@case((G(X),), grad=True)
def checkpoint_inside(lib):
    checkpoint = _submodule(lib, "utils.checkpoint").checkpoint

    def f(x):
        return checkpoint(lambda t: t.sin().exp(), x, use_reentrant=False)
    return f


@case((X,))
def vmap_inside(lib):
    def f(x):
        return lib.func.vmap(lambda r: r.dot(r) + r.sum())(x)
    return f


@case((X,))
def func_grad_inside(lib):
    def f(x):
        return lib.func.grad(lambda r: (r.sin() * r).sum())(x)
    return f


@case((X,), rtol=2e-2, atol=2e-2)
def autocast_block_inside(lib):
    def f(x):
        with lib.autocast("cpu", dtype=lib.bfloat16):
            y = x @ x.t()
        return y.float(), y.dtype
    return f


@pytest.mark.parametrize("name", list(CASES))
def test_more_case(name):
    program, calls, kw = CASES[name]
    check(program, *calls, **kw)
