"""Compiled programs with graph breaks, recompiles and random ops (dynamo's test_misc,
test_repros, test_recompiles styles, in our own words): data-dependent control flow,
`.item()`/`.tolist()`/`int()`, ops whose output shape needs values, `compiler.disable`d
calls and `graph_break()` inside, new shapes and dtypes, `dynamic=`, `mark_dynamic`,
random ops under manual_seed, errors raised inside. Values and gradients against torch
eager, and with `counts=True` the number of graphs a counting backend is handed against
torch.compile's (compile_suite_common.check)."""
import pytest

from tests.compile.compile_suite_common import G, T, arr, check, case_registry

CASES, case = case_registry()


X = arr(3, 4)
NEG = -abs(arr(3, 4))
POS = abs(arr(3, 4)) + 0.1
V = arr(6)

# ---- data-dependent control flow: breaks that must still give eager's result -----------------


@case((POS,), (NEG,), counts=True)
def if_on_tensor_sum(lib):
    def f(x):
        y = x * 2
        if y.sum() > 0:
            return y + 1
        return y - 1
    return f


@case((POS,), (NEG,), grad=True)
def if_on_tensor_sum_grad(lib):
    def f(x):
        y = x.sin()
        if y.mean() > 0:
            return y * x
        return y / 2
    return f


@case((X,), counts=True)
def item_in_arithmetic(lib):
    def f(x):
        s = x.abs().max().item()
        return x / s
    return f


@case((X,))
def item_returned(lib):
    def f(x):
        return x.sum().item(), x.shape[0]
    return f


@case((X,), counts=True)
def tolist_loop(lib):
    def f(x):
        total = x.new_zeros(x.shape[1])
        for k in x[:, 0].tolist():
            total = total + k
        return total
    return f


@case((X,))
def int_of_tensor(lib):
    def f(x):
        n = int((x > 0).sum())
        return x[:, :1] * n
    return f


@case((X,))
def float_of_tensor(lib):
    def f(x):
        return x - float(x.mean())
    return f


@case((POS,), (NEG,))
def bool_of_tensor_any(lib):
    def f(x):
        if (x < 0).any():
            return x.abs()
        return x.sqrt()
    return f


@case((X,))
def while_on_tensor_condition(lib):
    def f(x):
        n = 0
        while x.abs().max() > 0.5 and n < 10:
            x = x * 0.5
            n += 1
        return x, n
    return f


@case((X,))
def for_with_data_dependent_exit(lib):
    def f(x):
        for i in range(8):
            x = x.tanh() * 1.5
            if x.norm() < 1.0:
                break
        return x
    return f


@case((X,))
def data_dependent_in_helper(lib):
    def clip(t):
        if t.max() > 1:
            return t.clamp(max=1)
        return t

    def f(x):
        return clip(x * 3).exp()
    return f


@case((G(X),), grad=True)
def data_dependent_in_submodule(lib):
    nn = lib.nn

    class Gate(nn.Module):
        def forward(self, x):
            return x if x.mean() > 0 else -x

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.gate = Gate()

        def forward(self, x):
            return self.gate(self.lin(x)).relu()
    return M()


@case((X,), counts=True)
def nonzero_inside(lib):
    def f(x):
        idx = (x > 0).nonzero()
        return idx.shape[0] * x + 1
    return f


@case((X,))
def boolean_mask_read(lib):
    def f(x):
        return x[x > 0].sum() + x.mean()
    return f


@case((V,))
def masked_select_and_unique(lib):
    def f(v):
        r = (v * 2).round()
        return r.unique(), lib.masked_select(v, v > 0)
    return f


@case((X,), counts=True)
def explicit_graph_break(lib):
    def f(x):
        y = x.cos()
        lib._dynamo.graph_break()
        return y.sin()
    return f


@case((X,), counts=True)
def disabled_helper_in_middle(lib):
    @lib.compiler.disable
    def helper(t):
        return t * 10

    def f(x):
        return helper(x.sin()).cos()
    return f


@case((X,), counts=True)
def dynamo_disable_decorator_args(lib):
    @lib._dynamo.disable(recursive=True)
    def helper(t):
        return t + 5

    def f(x):
        return helper(x * 2) - 1
    return f


@case((X,), counts=True)
def no_break_one_graph(lib):
    def f(x):
        return (x * 2).relu().sum(0)
    return f


@case((X,))
def python_only_function(lib):
    def f(x):
        return x.shape[0] + x.shape[1]
    return f


@case((X,), counts=True)
def two_breaks(lib):
    def f(x):
        a = x.sum().item()
        y = x * a
        b = y.max().item()
        return y - b
    return f


@case((X,))
def print_inside(lib):
    def f(x):
        y = x + 1
        print("shape", tuple(y.shape))
        return y * 2
    return f


@case((X,))
def numpy_inside(lib):
    def f(x):
        n = x.numpy().sum()
        return x + float(n)
    return f


@case((X,))
def assert_on_tensor_value(lib):
    def f(x):
        assert (x.abs() >= 0).all(), "abs is negative"
        return x.abs()
    return f


@case((X,))
def data_dependent_index(lib):
    def f(x):
        i = x.sum(1).argmax()
        return x[i] * 2
    return f


@case((X,))
def item_as_shape(lib):
    def f(x):
        n = int(x.new_tensor(2.0).item())
        return x[:n].reshape(n, 2, 2)
    return f


@case((X,), (X,), observe=lambda f, args: f.log, counts=True)
def side_effect_list_append(lib):
    log = []

    def f(x):
        log.append(x.shape[0])
        return x + len(log)
    f.log = log
    return f


@case((X,), (X,), observe=lambda f, args: f.state["calls"])
def side_effect_dict_counter(lib):
    state = {"calls": 0}

    def f(x):
        state["calls"] += 1
        return x * 2
    f.state = state
    return f


# ---- errors raised inside compiled code -------------------------------------------------------


@case((arr(2, 3, 4),))
def raises_value_error_on_shape(lib):
    def f(x):
        if x.dim() != 2:
            raise ValueError(f"expected a 2-d input, got {x.dim()}-d")
        return x
    return f


@case((X, arr(5, 2)))
def raises_on_matmul_shapes(lib):
    def f(a, b):
        return a @ b
    return f


@case((X,))
def raises_key_error(lib):
    def f(x):
        return {"a": x}["b"]
    return f


@case((X,))
def raises_on_bad_view(lib):
    def f(x):
        return x.view(5, 3)
    return f


@case((X,))
def raises_type_error_bad_arg(lib):
    def f(x):
        return x.sum(dim="rows")
    return f


# ---- recompiles: shapes, dtypes, Python values ---------------------------------------------


@case((arr(2, 4),), (arr(5, 4),), counts=True)
def new_shape_recompiles(lib):
    def f(x):
        return x.softmax(-1) * x.shape[0]
    return f


@case((arr(2, 4),), (arr(2, 4, dtype="float64"),), counts=True)
def new_dtype_recompiles(lib):
    def f(x):
        return x.exp() + 1
    return f


@case((arr(2, 4),), (arr(2, 4, dtype="int64"),))
def float_then_int(lib):
    def f(x):
        return x * 2 + x.sum()
    return f


@case((arr(2, 4),), (arr(3, 4),), (arr(4, 4),), (arr(2, 4),))
def many_shapes_then_first_again(lib):
    def f(x):
        return (x @ x.t()).diagonal()
    return f


@case((arr(2, 4),), (arr(3, 4),), (arr(7, 4),), compile_kwargs={"dynamic": True})
def dynamic_true(lib):
    def f(x):
        return x.relu().sum(-1) + x.shape[0]
    return f


@case((arr(2, 4),), (arr(3, 4),), compile_kwargs={"dynamic": False}, counts=True)
def dynamic_false(lib):
    def f(x):
        return x * 3
    return f


@case((arr(1, 4),), (arr(2, 4),), (arr(1, 4),))
def size_one_specialized(lib):
    def f(x):
        return x.squeeze(0) if x.shape[0] == 1 else x.sum(0)
    return f


@case((arr(3, 4),), (arr(3, 5),))
def shape_branch_flips(lib):
    def f(x):
        if x.shape[1] % 2 == 0:
            return x[:, ::2]
        return x[:, 1:]
    return f


@case((X, 1.0), (X, 2.0), (X, 3.0))
def float_argument_changes(lib):
    def f(x, k):
        return x * k
    return f


@case((X, [1, 2]), (X, [1, 2, 3]))
def list_argument_length_changes(lib):
    def f(x, ks):
        return sum(x * k for k in ks)
    return f


@case((arr(3, 4),), (T(arr(4, 3)),))
def strides_change(lib):
    def f(x):
        return x.t() + 1
    return f


@case(({"x": X},), ({"x": X, "y": X},))
def dict_keys_change(lib):
    def f(d):
        return sum(d.values()) * len(d)
    return f


@case((X,), (None,))
def none_then_tensor(lib):
    def f(x):
        return 0 if x is None else x.sum()
    return f


@case((G(arr(2, 4)),), (G(arr(5, 4)),), grad=True)
def new_shape_with_grad(lib):
    def f(x):
        return (x * x.sigmoid()).sum(0)
    return f


@case((G(X),), (X,), grad=True)
def requires_grad_changes(lib):
    def f(x):
        return x.exp() * 2
    return f


# ---- random ops under manual_seed --------------------------------------------------------


@case((X,), random_seed=0)
def rand_like_inside(lib):
    def f(x):
        return x + lib.rand_like(x)
    return f


@case((X,), random_seed=1)
def randn_inside(lib):
    def f(x):
        return x * lib.randn(x.shape[-1])
    return f


@case((arr(4, 8),), random_seed=2)
def dropout_train(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.ReLU())


@case((G(arr(4, 8)),), random_seed=3, grad=True)
def dropout_train_grad(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.3))


@case((arr(4, 8),), random_seed=4)
def dropout_eval_is_identity(lib):
    nn = lib.nn
    m = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5))
    m.eval()
    return m


@case((X,), (X,), random_seed=5)
def randint_and_bernoulli(lib):
    def f(x):
        return lib.randint(0, 5, (3,)), lib.bernoulli(lib.full_like(x, 0.5))
    return f


@case((X,), random_seed=6)
def functional_dropout(lib):
    def f(x):
        return lib.nn.functional.dropout(x, p=0.25, training=True)
    return f


@case((X,), random_seed=7)
def manual_seed_inside(lib):
    def f(x):
        lib.manual_seed(123)
        a = lib.rand(4)
        lib.manual_seed(123)
        b = lib.rand(4)
        return x + a - b
    return f


@case((V,), random_seed=8)
def randperm_inside(lib):
    def f(v):
        return v[lib.randperm(v.shape[0])].sort().values
    return f


@pytest.mark.parametrize("name", list(CASES))
def test_break_case(name):
    program, calls, kw = CASES[name]
    check(program, *calls, **kw)
