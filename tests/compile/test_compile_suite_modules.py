"""Compiled nn.Modules using Python inside forward (dynamo's test_modules/test_repros
styles, in our own words): inheritance with super(), properties, staticmethods and
classmethods, ModuleList/ModuleDict/Sequential iteration, dataclasses and namedtuples as
inputs and outputs, buffers, in-place ops and aliasing, no_grad/enable_grad inside,
tensor creation inside forward, hooks, train/eval. Each runs under torch eager,
torch.compile, ember eager and ember.compile, gradients of inputs and parameters included
(compile_suite_common.check)."""
import collections
import dataclasses

import pytest

from tests.compile.compile_suite_common import G, arr, check, case_registry

CASES, case = case_registry()


X = arr(2, 4)
X3 = arr(2, 3, 4, seed=5)
IMG = arr(2, 3, 6, 6, seed=6)

Pair = collections.namedtuple("Pair", ["a", "b"])


@dataclasses.dataclass
class Batch:
    x: object
    scale: float = 1.0


@dataclasses.dataclass
class Output:
    logits: object
    hidden: object


# ---- inheritance, properties, static/class methods --------------------------------------


@case((G(X),), grad=True)
def inheritance_super_forward(lib):
    nn = lib.nn

    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x).relu()

    class Child(Base):
        def forward(self, x):
            return super().forward(x) * 2 + x
    return Child()


@case((G(X),), grad=True)
def inheritance_super_init_args(lib):
    nn = lib.nn

    class Base(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.width = width
            self.lin = nn.Linear(4, width)

    class Head(Base):
        def __init__(self):
            super().__init__(3)
            self.out = nn.Linear(self.width, 2)

        def forward(self, x):
            return self.out(self.lin(x).tanh())
    return Head()


@case((G(X),), grad=True)
def mixin_method(lib):
    nn = lib.nn

    class ScaleMixin:
        def scale(self, t):
            return t * self.factor

    class M(ScaleMixin, nn.Module):
        def __init__(self):
            super().__init__()
            self.factor = 0.5
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            return self.scale(self.lin(x))
    return M()


@case((X,))
def property_in_forward(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        @property
        def out_features(self):
            return self.lin.out_features

        def forward(self, x):
            return self.lin(x) * self.out_features
    return M()


@case((X,))
def property_returning_tensor(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.raw = nn.Parameter(lib.ones(4))

        @property
        def weight(self):
            return self.raw.abs() + 0.5

        def forward(self, x):
            return x * self.weight
    return M()


@case((X,))
def staticmethod_in_forward(lib):
    nn = lib.nn

    class M(nn.Module):
        @staticmethod
        def act(t):
            return t * t.sigmoid()

        def forward(self, x):
            return self.act(x) + M.act(x * 2)
    return M()


@case((X,))
def classmethod_in_forward(lib):
    nn = lib.nn

    class M(nn.Module):
        base = 3.0

        @classmethod
        def offset(cls):
            return cls.base * 2

        def forward(self, x):
            return x + self.offset()
    return M()


@case((X,))
def class_attribute_constant(lib):
    nn = lib.nn

    class M(nn.Module):
        eps = 1e-3
        modes = ("a", "b")

        def forward(self, x):
            return x / (x.abs() + self.eps) * len(self.modes)
    return M()


@case((X,))
def instance_attribute_config(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self, use_gelu):
            super().__init__()
            self.use_gelu = use_gelu

        def forward(self, x):
            return nn.functional.gelu(x) if self.use_gelu else x.relu()
    return M(True)


@case((X,))
def getattr_on_self_by_name(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            for i in range(3):
                setattr(self, f"fc{i}", nn.Linear(4, 4))

        def forward(self, x):
            for i in range(3):
                x = getattr(self, f"fc{i}")(x)
            return x
    return M()


@case((X,))
def hasattr_optional_submodule(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def forward(self, x):
            if hasattr(self, "norm"):
                x = self.norm(x)
            if hasattr(self, "proj"):
                x = self.proj(x)
            return x
    return M()


@case((X,))
def optional_submodule_none(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = None
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            if self.norm is not None:
                x = self.norm(x)
            return self.lin(x)
    return M()


@case((X,))
def isinstance_of_submodule(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x) * 2 if isinstance(layer, nn.Linear) else layer(x)
            return x
    return M()


# ---- containers of modules ------------------------------------------------------------------


@case((G(X),), grad=True)
def module_list_loop(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

        def forward(self, x):
            for block in self.blocks:
                x = x + block(x).tanh()
            return x
    return M()


@case((X,))
def module_list_enumerate_and_index(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

        def forward(self, x):
            outs = []
            for i, block in enumerate(self.blocks):
                outs.append(block(x) * i)
            return outs[-1] + self.blocks[0](x) + self.blocks[-1](x)
    return M()


@case((X,))
def module_list_slice_and_len(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(4)])

        def forward(self, x):
            for block in self.blocks[1:3]:
                x = block(x)
            return x * len(self.blocks)
    return M()


@case((X,))
def module_list_zip(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
            self.b = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])

        def forward(self, x):
            for f, g in zip(self.a, self.b):
                x = f(x) * g(x).sigmoid()
            return x
    return M()


@case((X,))
def module_list_reversed(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])

        def forward(self, x):
            for block in reversed(self.blocks):
                x = block(x).relu()
            return x
    return M()


@case((G(X),), grad=True)
def module_dict_items(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "box": nn.Linear(4, 2)})

        def forward(self, x):
            return {name: head(x) for name, head in self.heads.items()}
    return M()


@case((X, "cls"), (X, "box"))
def module_dict_by_key_argument(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "box": nn.Linear(4, 2)})

        def forward(self, x, which):
            return self.heads[which](x)
    return M()


@case((X,))
def module_dict_keys_and_in(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"a": nn.Linear(4, 4)})

        def forward(self, x):
            if "a" in self.heads:
                x = self.heads["a"](x)
            return x * len(list(self.heads.keys()))
    return M()


@case((G(X),), grad=True)
def sequential_index_and_slice(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.Tanh())

        def forward(self, x):
            return self.seq[:2](x).sum(-1, keepdim=True) + self.seq(x)
    return M()


@case((X,))
def sequential_ordered_dict(lib):
    nn = lib.nn
    return nn.Sequential(collections.OrderedDict(
        [("fc", nn.Linear(4, 3)), ("act", nn.SiLU()), ("out", nn.Linear(3, 1))]))


@case((X,))
def parameter_list_sum(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = nn.ParameterList([nn.Parameter(lib.ones(4) * i) for i in range(3)])

        def forward(self, x):
            for w in self.ws:
                x = x * w + 1
            return x
    return M()


@case((G(X),), grad=True)
def parameter_dict_use(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.ParameterDict({"scale": nn.Parameter(lib.ones(4)),
                                       "shift": nn.Parameter(lib.zeros(4))})

        def forward(self, x):
            return x * self.p["scale"] + self.p["shift"]
    return M()


@case((X,))
def children_and_named_modules_loop(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)

        def forward(self, x):
            for child in self.children():
                x = child(x)
            return x
    return M()


@case((X,))
def parameters_count_in_forward(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            n = sum(p.numel() for p in self.parameters())
            return self.lin(x) / n
    return M()


@case((X,))
def nested_module_call_kwargs(lib):
    nn = lib.nn

    class Inner(nn.Module):
        def forward(self, x, *, scale=1.0, bias=None):
            y = x * scale
            return y if bias is None else y + bias

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return self.inner(x, scale=2.0) + self.inner(x, bias=x)
    return Outer()


@case((X,))
def shared_submodule_twice(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.again = self.lin

        def forward(self, x):
            return self.again(self.lin(x))
    return M()


# ---- dataclasses and namedtuples ------------------------------------------------------------


@case((Pair(X, X * 2),))
def namedtuple_input(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, p):
            return p.a * p.b + p[0]
    return M()


@case((X,))
def namedtuple_output(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            return Pair(x.sin(), x.cos())
    return M()


@case((G(X),), grad=True)
def namedtuple_output_grad(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            h = self.lin(x)
            return Pair(h, h.exp())
    return M()


@case((Batch(X, 3.0),))
def dataclass_input(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, batch):
            return batch.x * batch.scale
    return M()


@case((G(X),), grad=True)
def dataclass_output(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x):
            h = self.lin(x)
            return Output(logits=h.log_softmax(-1), hidden=h)
    return M()


@case((X,))
def dataclass_built_inside(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            b = Batch(x * 2)
            b.scale = 4.0
            return b.x + b.scale
    return M()


@case((X,))
def namedtuple_replace_and_fields(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            p = Pair(x, x + 1)._replace(b=x - 1)
            return p.b * len(p._fields)
    return M()


@case((X,))
def return_types_unpack(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            out = x.max(dim=-1)
            values, indices = out
            return out.values + values, indices
    return M()


# ---- buffers, in-place ops, aliasing ------------------------------------------------------


@case((X,), (X,), observe=lambda m, args: m.count)
def buffer_updated_in_place(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("count", lib.zeros(1))

        def forward(self, x):
            self.count.add_(1)
            return x * self.count
    return M()


@case((X,), (X,), observe=lambda m, args: m.running)
def buffer_running_average(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("running", lib.zeros(4))

        def forward(self, x):
            with lib.no_grad():
                self.running.mul_(0.9).add_(x.mean(0) * 0.1)
            return x - self.running
    return M()


@case((X,))
def non_persistent_buffer(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", lib.arange(4.0), persistent=False)

        def forward(self, x):
            return x + self.table
    return M()


@case((X,))
def inplace_on_intermediate(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            y = x * 2
            y.add_(1).mul_(3)
            y.clamp_(min=-2, max=2)
            return y
    return M()


@case((X,), observe=lambda m, args: args)
def inplace_on_input(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            x.mul_(2)
            return x + 1
    return M()


@case((X,))
def inplace_through_view(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            y = x.clone()
            row = y[0]
            row.fill_(0.5)
            y[:, 1] += 10
            return y
    return M()


@case((X,))
def setitem_on_new_tensor(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            out = lib.zeros(x.shape[0], 6)
            out[:, 1:5] = x
            out[:, 0] = x.sum(-1)
            return out
    return M()


@case((X,))
def aliasing_view_then_mutate(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            y = x.clone()
            v = y.view(-1)
            v.add_(1)
            return y, v
    return M()


@case((G(X),), grad=True)
def inplace_relu_module(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True), nn.Linear(4, 2))


@case((G(X),), grad=True)
def inplace_on_intermediate_with_grad(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            y = self.lin(x)
            y.mul_(2)
            return y.tanh()
    return M()


@case((X,))
def masked_fill_mask_built_inside(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            mask = lib.ones(x.shape[-1], x.shape[-1]).triu(1).bool()
            scores = x.unsqueeze(-1) * x.unsqueeze(-2)
            return scores.masked_fill(mask, float("-inf")).softmax(-1)
    return M()


# ---- grad mode inside forward -----------------------------------------------------------


@case((G(X),), grad=True)
def no_grad_block_inside(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            with lib.no_grad():
                scale = self.lin(x).abs().mean()
            return self.lin(x) * scale
    return M()


@case((G(X),), grad=True)
def enable_grad_inside_no_grad(lib):
    def f(x):
        with lib.no_grad():
            a = x * 2
            with lib.enable_grad():
                b = x * 3
        return a + b, a.requires_grad, b.requires_grad
    return f


@case((G(X),), grad=True)
def is_grad_enabled_branch(lib):
    def f(x):
        if lib.is_grad_enabled():
            return x.sin()
        return x.cos()
    return f


@case((G(X),), grad=True)
def set_grad_enabled_false_inside(lib):
    def f(x):
        with lib.set_grad_enabled(False):
            y = x * 4
        return x * 2 + y
    return f


@case((G(X),), grad=True)
def detach_inside_module(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            h = self.lin(x)
            return h - h.detach().mean()
    return M()


# ---- tensor creation, dtypes and devices inside forward -------------------------------------


@case((X,))
def arange_and_ones_inside(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            pos = lib.arange(x.shape[-1], dtype=x.dtype)
            return x + pos + lib.ones_like(x) + lib.full((1, x.shape[-1]), 0.5)
    return M()


@case((X,))
def eye_and_tensor_literal(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            w = lib.eye(4) * lib.tensor([1.0, 2.0, 3.0, 4.0])
            return x @ w
    return M()


@case((X,))
def linspace_and_zeros(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            ramp = lib.linspace(0, 1, steps=x.shape[-1])
            return lib.zeros(x.shape) + x * ramp
    return M()


@case((X,))
def new_factories(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            return x.new_ones(x.shape) + x.new_zeros(2, 4) + x.new_full((1, 4), 2.0) \
                + x.new_tensor([1.0, 2.0, 3.0, 4.0])
    return M()


@case((X,))
def dtype_cast_chain(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            i = (x * 10).to(lib.int64)
            return i.float() / 10, i.dtype, (i > 0).sum()
    return M()


@case((X,))
def type_as_and_to_other(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            mask = (x > 0).type_as(x)
            return x.double().to(x) * mask
    return M()


@case((X,))
def to_device_of_parameter(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            w = self.lin.weight
            return x.to(device=w.device, dtype=w.dtype) + lib.zeros(4, device=w.device)
    return M()


@case((arr(2, 4, dtype="float64"),))
def float64_input_module(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            return (x * x.exp()).sum(-1), x.dtype
    return M()


@case((arr(2, 4, dtype="int64"),))
def integer_input_arithmetic(lib):
    def f(x):
        return x * 3 + 1, x // 2, x % 3, (x == 2).any()
    return f


@case((arr(2, 4, dtype="bool"),))
def bool_input(lib):
    def f(m):
        return m.logical_not() | m, m.sum(), m.float().mean()
    return f


# ---- hooks, train/eval, functional layers -------------------------------------------------


@case((X,))
def forward_pre_hook(lib):
    nn = lib.nn
    m = nn.Linear(4, 2)
    m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    return m


@case((X,))
def forward_hook_changes_output(lib):
    nn = lib.nn
    m = nn.Linear(4, 2)
    m.register_forward_hook(lambda mod, args, out: out + 1)
    return m


@case((X,))
def training_flag_branch(lib):
    nn = lib.nn

    class M(nn.Module):
        def forward(self, x):
            return x * 2 if self.training else x * 3
    m = M()
    m.eval()
    return m


@case((IMG,))
def batchnorm_eval(lib):
    nn = lib.nn
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    m.eval()
    return m


@case((IMG,), (IMG,), observe=lambda m, args: (m[1].running_mean, m[1].num_batches_tracked))
def batchnorm_train_updates_stats(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())


@case((G(IMG),), grad=True)
def conv_pool_flatten_head(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Linear(4 * 3 * 3, 2)

        def forward(self, x):
            x = nn.functional.max_pool2d(self.conv(x).relu(), 2)
            return self.head(x.flatten(1))
    return M()


@case((G(X3),), grad=True)
def attention_by_hand(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(4, 12)

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            scores = q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5)
            return scores.softmax(-1) @ v
    return M()


@case((G(X3),), grad=True)
def layer_norm_and_gelu(lib):
    nn = lib.nn
    return nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 4))


@case((arr(2, 5, dtype="int64"),), grad=True)
def embedding_lookup(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(6, 4)

        def forward(self, ids):
            return self.emb(ids).mean(1)
    return M()


@case((G(X3),), grad=True)
def residual_block_with_functional(lib):
    nn = lib.nn
    F = nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.fc2 = nn.Linear(8, 4)

        def forward(self, x):
            return x + self.fc2(F.silu(self.fc1(F.layer_norm(x, (4,)))))
    return M()


@case((G(X),), grad=True)
def parameter_used_directly(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(lib.ones(4, 3) * 0.5)
            self.b = nn.Parameter(lib.zeros(3))

        def forward(self, x):
            return x @ self.w + self.b
    return M()


@case((G(X), X), grad=True)
def module_two_inputs_loss(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x, target):
            return nn.functional.mse_loss(self.lin(x), target)
    return M()


@case((G(X),), grad=True)
def frozen_parameter(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 2)
            self.a.weight.requires_grad_(False)

        def forward(self, x):
            return self.b(self.a(x))
    return M()


@case((G(X),), grad=True)
def module_returns_tuple_with_none(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            return self.lin(x), None
    return M()


@pytest.mark.parametrize("name", list(CASES))
def test_module_case(name):
    program, calls, kw = CASES[name]
    check(program, *calls, **kw)
