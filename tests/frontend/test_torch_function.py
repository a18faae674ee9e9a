"""The __torch_function__ protocol against torch: the same subclass, Tensor-like and mode
code runs with both libraries (`lib` is torch or ember), and what it records must agree:
result types, the functions a logging subclass sees, mode stacking, error messages."""
import numpy as np
import pytest
import torch

import ember

LIBS = {"torch": torch, "ember": ember}


def both(scenario):
    """Run `scenario(lib)` with each library; the results must be equal, with the
    library's name spelled `lib` in strings."""
    got = {}
    for name, lib in LIBS.items():
        got[name] = _normalized(scenario(lib), name)
    if got["ember"] != got["torch"]:
        for e, t in zip(_parts(got["ember"]), _parts(got["torch"])):
            assert e == t
    assert got["ember"] == got["torch"]
    return got["ember"]


def _parts(value):
    return value if isinstance(value, (list, tuple)) else [value]


def _normalized(value, name):
    if isinstance(value, str):
        return value.replace(name + ".", "lib.").replace("torch._tensor.", "lib.")
    if isinstance(value, (list, tuple)):
        return type(value)(_normalized(v, name) for v in value)
    if isinstance(value, dict):
        return {k: _normalized(v, name) for k, v in value.items()}
    return value


def _logging_tensor(lib):
    class LoggingTensor(lib.Tensor):
        log = []

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            cls.log.append(func.__name__)
            return super().__torch_function__(func, types, args, kwargs or {})
    return LoggingTensor


def test_logging_subclass_sees_every_call_and_results_keep_the_subclass():
    def scenario(lib):
        LoggingTensor = _logging_tensor(lib)
        F = lib.nn.functional
        x = lib.tensor([1.0, -2.0, 3.0]).as_subclass(LoggingTensor)
        y = lib.tensor([1.0, 1.0, 1.0])
        results = [x + y, y + x, x * 2, 2 * x, 1 - x, x / 2, x ** 2, -x, abs(x), x > 0,
                   x == y, x.sum(), x.add(y), y.add(x), lib.add(x, y), lib.add(y, x),
                   F.relu(x), x.relu(), x[0], x.shape, x.dtype.is_floating_point,
                   lib.stack([y, x]),
                   lib.cat((x, y)), x.max(0).values, lib.max(x, 0)[0], x.unbind(),
                   x.view(3, 1), x.reshape(1, 3), x.tolist(), F.softmax(x, dim=0)]
        z = x.clone()
        z += 1
        z.mul_(2)
        results.append(z)
        types = [type(r).__name__ for r in results]
        types = [t if t != "LoggingTensor" else "sub" for t in types]
        return types, LoggingTensor.log
    both(scenario)


def test_module_forward_and_linear_on_a_subclass():
    def scenario(lib):
        LoggingTensor = _logging_tensor(lib)
        lib.manual_seed(0)
        layer = lib.nn.Linear(3, 2)
        x = lib.ones(4, 3).as_subclass(LoggingTensor)
        out = layer(x)
        p_plus = layer.weight + 1
        return type(out).__name__, LoggingTensor.log, type(p_plus).__name__, \
            type(layer.weight).__name__
    both(scenario)


def test_metadata_subclass_carries_its_attribute_through_ops():
    def scenario(lib):
        class Tagged(lib.Tensor):
            @staticmethod
            def __new__(cls, data, tag):
                t = lib.Tensor._make_subclass(cls, data)
                t.tag = tag
                return t

            def __init__(self, data, tag):
                pass

            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                tags = [a.tag for a in args if isinstance(a, Tagged)]
                out = super().__torch_function__(func, types, args, kwargs or {})
                if isinstance(out, Tagged):
                    out.tag = "+".join(tags)
                return out
        a = Tagged(lib.tensor([1.0, 2.0]), "a")
        b = Tagged(lib.tensor([3.0, 4.0]), "b")
        c = a + b
        d = (c * 2).sum()
        return c.tag, d.tag, c.tolist(), type(d).__name__, a.tag
    both(scenario)


def test_subclass_requires_grad_and_backward():
    def scenario(lib):
        class Sub(lib.Tensor):
            pass
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        s = x.as_subclass(Sub)
        loss = (s * s).sum()
        loss.backward()
        return type(loss).__name__, x.grad.tolist(), s.is_leaf, s.requires_grad
    both(scenario)


def test_legacy_constructor_and_make_subclass():
    def scenario(lib):
        class Sub(lib.Tensor):
            pass
        a = Sub([5])
        b = Sub(2, 3)
        c = lib.Tensor._make_subclass(Sub, lib.ones(2), True)
        return (type(a).__name__, a.tolist(), str(a.dtype).split(".")[-1], list(b.shape),
                type(c).__name__, c.requires_grad, c.is_leaf)
    both(scenario)


def _diagonal(lib):
    """torch's documentation example: a Tensor-like that is not a Tensor."""
    HANDLED = {}

    class ScalarTensor:
        def __init__(self, n, value):
            self.n, self.value = n, value

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if func not in HANDLED or not all(issubclass(t, (lib.Tensor, ScalarTensor))
                                              for t in types):
                return NotImplemented
            return HANDLED[func](*args, **(kwargs or {}))

    HANDLED[lib.mean] = lambda t: float(t.value)
    HANDLED[lib.add] = lambda a, b: ("add", getattr(a, "value", None), getattr(b, "value", None))
    HANDLED[lib.nn.functional.relu] = lambda t, inplace=False: ("relu", max(t.value, 0))
    return ScalarTensor


def test_tensor_like_class_dispatches_and_declines():
    def scenario(lib):
        ScalarTensor = _diagonal(lib)
        s = ScalarTensor(5, -2)
        out = [lib.mean(s), lib.add(s, 3), lib.add(lib.ones(1), s),
               lib.nn.functional.relu(s)]
        errors = []
        for call in (lambda: lib.sum(s), lambda: lib.nn.functional.softmax(s, 0),
                     lambda: lib.stack([s, s])):
            with pytest.raises(TypeError) as info:
                call()
            errors.append(str(info.value).replace("ScalarTensor", "S"))
        return out, errors
    result = both(scenario)
    assert "no implementation found for 'lib.nn.functional.softmax'" in result[1][1]


def test_priority_most_derived_first_and_not_implemented_passes_on():
    def scenario(lib):
        calls = []

        class A(lib.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                calls.append(("A", sorted(t.__name__ for t in types)))
                return super().__torch_function__(func, types, args, kwargs or {})

        class B(A):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                calls.append(("B", sorted(t.__name__ for t in types)))
                return NotImplemented

        class C(lib.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                calls.append(("C", sorted(t.__name__ for t in types)))
                return "C"
        a = lib.ones(2).as_subclass(A)
        b = lib.ones(2).as_subclass(B)
        c = lib.ones(2).as_subclass(C)
        outcomes = []
        for x, y in ((a, b), (b, c), (b, b), (a, a), (c, a)):
            try:                                 # A's default declines B in `types`
                outcomes.append(type(lib.add(x, y)).__name__)
            except TypeError as e:
                outcomes.append(str(e).replace("test_torch_function.", ""))
        return outcomes, calls
    both(scenario)


def test_disable_torch_function_subclass():
    def scenario(lib):
        LoggingTensor = _logging_tensor(lib)
        x = lib.ones(2).as_subclass(LoggingTensor)
        with lib._C.DisableTorchFunctionSubclass():
            inside = type(x + 1).__name__
            enabled = lib._C._is_torch_function_enabled()
        return inside, LoggingTensor.log, enabled, lib._C._is_torch_function_enabled()
    both(scenario)


def test_modes_see_every_call_and_stack():
    def scenario(lib):
        log = []

        class Named(lib.overrides.TorchFunctionMode):
            def __init__(self, name):
                super().__init__()
                self.name = name

            def __torch_function__(self, func, types, args=(), kwargs=None):
                log.append((self.name, func.__name__))
                return func(*args, **(kwargs or {}))
        with Named("outer"):
            with Named("inner"):
                a = lib.ones(2)
                b = (a + a).sum()
                n = a.shape
                lib.nn.functional.relu(a)
            c = a * 2
        return log, type(b).__name__, list(n), c.tolist()
    both(scenario)


def test_mode_declining_raises_and_mode_can_replace_results():
    def scenario(lib):
        class Declines(lib.overrides.TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                return NotImplemented

        class Doubles(lib.overrides.TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                return out * 2 if func is lib.add else out
        x = lib.ones(2)
        with pytest.raises(TypeError) as info:
            with Declines():
                lib.add(x, x)
        with Doubles():
            doubled = lib.add(x, x).tolist()
        message = str(info.value)
        return message.split(";")[0], doubled, lib.add(x, x).tolist()
    both(scenario)


def test_overrides_helpers():
    def scenario(lib):
        ov = lib.overrides
        Sub = _logging_tensor(lib)
        s = lib.ones(1).as_subclass(Sub)
        plain = lib.ones(1)

        @ov.wrap_torch_function(lambda x: (x,))
        def double(x):
            return x * 2

        class Like:
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                return ("like", func.__name__)
        return (ov.has_torch_function((plain, 1)), ov.has_torch_function((plain, s)),
                ov.has_torch_function_unary(s), ov.has_torch_function_variadic(plain, Like()),
                ov.is_tensor_like(plain), ov.is_tensor_like(Like()), ov.is_tensor_like(1),
                double(Like()), double(plain).tolist(),
                ov.is_tensor_method_or_property(lib.Tensor.add),
                ov.is_tensor_method_or_property(lib.Tensor.shape.__get__),
                ov.is_tensor_method_or_property(lib.add))
    both(scenario)


def test_overridable_and_testing_tables():
    overridable = ember.overrides.get_overridable_functions()
    assert ember.add in overridable[ember]
    assert ember.nn.functional.linear in overridable[ember.nn.functional]
    assert ember.Tensor.add in overridable[ember.Tensor]
    assert ember.manual_seed in ember.overrides.get_ignored_functions()
    testing = ember.overrides.get_testing_overrides()
    import inspect
    for func in (ember.add, ember.nn.functional.relu, ember.Tensor.add, ember.linalg.norm):
        assert testing[func]() == -1
    assert list(inspect.signature(testing[ember.nn.functional.relu]).parameters) == \
        list(inspect.signature(torch.overrides.get_testing_overrides()[
            torch.nn.functional.relu]).parameters)


def test_every_testing_override_dispatches_through_a_tensor_like():
    """torch's test_overrides check: each overridable function, called with a Tensor-like
    in its first parameter, reaches its __torch_function__ (sampled)."""
    testing = ember.overrides.get_testing_overrides()
    seen = []

    class Like:
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            seen.append(func)
            return -1

    import inspect
    checked = 0
    for func, override in list(testing.items())[::7]:
        if ember.overrides.is_tensor_method_or_property(func):
            continue
        params = [p for p in inspect.signature(override).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                         p.POSITIONAL_OR_KEYWORD)]
        args = [Like() for _ in params] or None
        if args is None:
            continue
        assert func(*args) == -1, func
        assert seen[-1] is func
        checked += 1
    assert checked > 50


def test_parameter_and_plain_tensors_are_unaffected():
    p = ember.nn.Parameter(ember.ones(2))
    assert type(p + 1) is ember.Tensor and type(p.sum()) is ember.Tensor
    assert not ember.overrides.has_torch_function((p, ember.ones(1)))
    tp = torch.nn.Parameter(torch.ones(2))
    assert type(tp + 1) is torch.Tensor


def test_fx_and_compile_still_work_with_a_subclass_defined():
    _logging_tensor(ember)                      # turns the protocol's checks on

    class M(ember.nn.Module):
        def forward(self, x):
            return ember.nn.functional.relu(x) + 1

    gm = ember.fx.symbolic_trace(M())
    x = ember.tensor([-1.0, 2.0])
    assert np.allclose(gm(x).numpy(), [1.0, 3.0])
    assert "relu" in gm.code


class PickledTensor(ember.Tensor):
    """Module level, so pickle finds it."""


class TorchPickledTensor(torch.Tensor):
    pass


def test_subclass_instances_pickle_and_save_as_their_class(tmp_path):
    import pickle
    for lib, cls in ((ember, PickledTensor), (torch, TorchPickledTensor)):
        t = lib.tensor([1.0, 2.0]).as_subclass(cls)
        t.tag = "kept"
        back = pickle.loads(pickle.dumps(t))
        assert type(back) is cls and back.tag == "kept" and back.tolist() == [1.0, 2.0]
        path = tmp_path / f"{lib.__name__}.pt"
        lib.save({"t": t}, path)
        loaded = lib.load(path, weights_only=False)["t"]
        assert type(loaded) is cls and loaded.tag == "kept"
