"""Graph breaks with a user's compile backend, against torch.compile (the oracle).

Each case is written once over a namespace `T` (ember or torch), compiled by both with a
backend that counts its calls (as PyTorch's "Custom Backends" tutorial does) and called on
the same data: the results, the state of mutated inputs and the number of backend calls
must equal torch's."""
from __future__ import annotations

import operator

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _tensor(T, array):
    return T.tensor(array)


def _numpy(value):
    if isinstance(value, (list, tuple)):
        return [_numpy(v) for v in value]
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy() if hasattr(value, "cpu") else value.numpy()
    return value


# --- the cases: each returns (function, list of argument lists as numpy arrays) --------------

def tutorial_bar(T):
    def bar(a, b):
        x = a / (T.abs(a) + 1)
        if b.sum() < 0:
            b = b * -1
        return x * b
    a, b = _data(10), _data(10, seed=2)
    return bar, [[a, np.abs(b)], [a, -np.abs(b)], [a, np.abs(b) + 1]]


def two_breaks(T):
    def fn(x):
        y = x.sin()
        if y.sum() > 0:
            y = y + 1
        z = y.cos() * 3
        if z.mean() < 0.5:
            z = z - 2
        return z + y
    x = _data(6)
    return fn, [[x], [-x], [x + 5], [x]]


def item_as_python_scalar(T):
    def fn(x, y):
        s = x.abs().sum().item()
        scale = 1.0 / (1.0 + s)
        return (y * scale).relu() + T.tanh(y)
    x, y = _data(5), _data(5, seed=3)
    return fn, [[x, y], [x, y]]


def loop_with_data_dependent_exit(T):
    def fn(x):
        for _ in range(8):
            x = x * 0.5 + 1
            if x.max() < 2.2:
                break
        return x * 2
    x = _data(4) * 10
    return fn, [[x], [x]]


def inplace_across_break(T):
    def fn(x, buf):
        buf.add_(x)
        if buf.sum() > 0:
            buf.mul_(2)
        y = buf + x
        buf.sub_(1)
        return y
    x, buf = _data(3, 4), _data(3, 4, seed=5)
    return fn, [[x, buf], [-x, buf]]


def tolist_and_len(T):
    def fn(x):
        rows = x.sum(dim=1).tolist()
        biggest = rows.index(max(rows))
        return x[biggest] * len(x) + x.mean(0)
    # the same data twice: torch guards on the list's floats and, when they change,
    # recompiles with them as dynamic inputs; ember bakes Python scalars into the graph
    return fn, [[_data(4, 3)], [_data(4, 3)]]


def break_in_called_function(T):
    # torch splits at the call too: the caller's graph before it, the callee's before
    # and after the read, then the caller's rest; the helper's first call (no break) is
    # part of the caller's graph
    def helper(x, check):
        y = x * 3
        if check and x.sum() > 0:
            return y * 2
        return y - 1

    def fn(x):
        a = helper(x.sin(), False)
        b = helper(a, True)
        return b.cos()
    x = _data(5)
    return fn, [[x], [-x - 3], [x]]


def values_decide_shapes(T):
    # a boolean mask and nonzero: torch breaks before each (their output shapes need
    # values) and runs them between its graphs
    def fn(x):
        y = x * 2
        z = y[y > 0]
        w = T.nonzero(y > 1)
        return z.sum() + y.mean() + w.shape[0]
    return fn, [[np.arange(-3, 5, dtype=np.float32)], [np.arange(-3, 5, dtype=np.float32)]]


def print_between(T):
    # printing a tensor reads its values: torch breaks the graph there
    def fn(x):
        y = x.sin() * 2
        print("y is", y)
        return y.cos() + 1
    return fn, [[_data(3)], [_data(3, seed=1)]]


CASES = [tutorial_bar, break_in_called_function, values_decide_shapes, print_between,
         two_breaks, item_as_python_scalar, loop_with_data_dependent_exit,
         inplace_across_break, tolist_and_len]


def _counting_backend(count: list):
    def my_compiler(gm, example_inputs):
        count[0] += 1
        return gm.forward
    return my_compiler


def _run(T, compile_fn, fn, arg_sets):
    count = [0]
    compiled = compile_fn(fn, backend=_counting_backend(count))
    results, mutated = [], []
    for arrays in arg_sets:
        args = [_tensor(T, a) for a in arrays]
        results.append(_numpy(compiled(*args)))
        mutated.append(_numpy(args))
    return results, mutated, count[0]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_breaks_match_torch_compile(case):
    torch._dynamo.reset()
    fn, arg_sets = case(ember)
    got, got_inputs, got_calls = _run(ember, ember.compile, fn, arg_sets)
    fn_t, _ = case(torch)
    want, want_inputs, want_calls = _run(torch, torch.compile, fn_t, arg_sets)
    for g, w in zip(got + got_inputs, want + want_inputs):
        np.testing.assert_allclose(np.asarray(g, dtype=np.float64),
                                   np.asarray(w, dtype=np.float64), rtol=1e-5, atol=1e-6)
    assert got_calls == want_calls


def _net(T):
    class Block(T.nn.Module):
        def forward(self, x):
            h = x.relu()
            if h.mean() > 0.2:
                h = h * 2
            return h + 1

    class Net(T.nn.Module):
        def __init__(self):
            super().__init__()
            self.first = T.nn.Linear(4, 6)
            self.block = Block()
            self.second = T.nn.Linear(6, 3)

        def forward(self, x):
            h = self.first(x).relu()
            if h.mean() > 0.3:
                h = h * 0.5
            return self.second(self.block(h).tanh()).softmax(-1)
    net = Net()
    rng = np.random.default_rng(11)
    with T.no_grad():
        for p in net.parameters():
            p.copy_(T.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
    return net


def test_break_inside_module_forward():
    torch._dynamo.reset()
    inputs = [_data(2, 4), _data(2, 4) * 0 - 3, _data(2, 4) + 2]
    counts, outs = {}, {}
    for T in (ember, torch):
        count = [0]
        net = _net(T)
        compiled = T.compile(net, backend=_counting_backend(count))
        outs[T] = [_numpy(compiled(T.tensor(x))) for x in inputs]
        eager = [_numpy(net(T.tensor(x))) for x in inputs]
        np.testing.assert_allclose(outs[T], eager, rtol=1e-5, atol=1e-6)
        counts[T] = count[0]
    np.testing.assert_allclose(outs[ember], outs[torch], rtol=1e-5, atol=1e-6)
    assert counts[ember] == counts[torch]


def _add_to_mul(T):
    """A backend that rewrites the graph: torch.add -> torch.mul (the fx tutorial's
    transformation), so what the call returns shows whose results they are."""
    def compiler(gm, example_inputs):
        for node in gm.graph.nodes:
            if node.op == "call_function" and node.target in (T.add, operator.add):
                node.target = T.mul
        gm.recompile()
        return gm.forward
    return compiler


def test_results_come_from_the_backends_callables():
    torch._dynamo.reset()

    def case(T):
        def fn(x, y):
            z = T.add(x, y)
            if z.sum() > 0:
                z = T.add(z, y) - 1
            return z
        return fn
    x, y = _data(5), _data(5, seed=1)
    got = _numpy(ember.compile(case(ember), backend=_add_to_mul(ember))(
        ember.tensor(x), ember.tensor(y)))
    want = _numpy(torch.compile(case(torch), backend=_add_to_mul(torch))(
        torch.tensor(x), torch.tensor(y)))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    eager = _numpy(case(ember)(ember.tensor(x), ember.tensor(y)))
    assert not np.allclose(got, eager)


def test_segments_are_fx_graphs_with_their_live_values():
    seen = []

    def backend(gm, example_inputs):
        seen.append((gm, [tuple(t.shape) for t in example_inputs]))
        return gm.forward

    def fn(a, b):
        x = a / (ember.abs(a) + 1)
        if b.sum() < 0:
            b = b * -1
        return x * b
    out = ember.compile(fn, backend=backend)(ember.tensor(_data(3)), ember.tensor(_data(3)))
    assert isinstance(out, ember.Tensor) and out.shape == (3,)
    first, shapes = seen[0]
    assert isinstance(first, ember.fx.GraphModule) and shapes == [(3,), (3,)]
    ops = [n.target for n in first.graph.nodes if n.op == "call_function"]
    # Python operators as dynamo records them, functions as the ops they call
    assert operator.lt in ops and operator.truediv in ops and ember.abs in ops
    # the comparison the `if` reads and x, which the rest of the function uses
    assert len(first.graph.output_node.args[0]) == 2


def test_fullgraph_refuses_with_the_users_line():
    def fn(b):
        if b.sum() < 0:  # the line the error names
            b = b * -1
        return b
    compiled = ember.compile(fn, backend=_counting_backend([0]), fullgraph=True)
    with pytest.raises(Exception, match="the line the error names"):
        compiled(ember.tensor(_data(3)))


def test_pending_tensors_say_where_they_live():
    seen = {}

    def fn(x):
        y = x * 2
        seen["device"], seen["shape"], seen["dtype"] = y.device, y.shape, y.dtype
        z = ember.zeros(3, device=y.device) + y
        if z.sum() > 0:
            return z.detach() + 1
        return z
    out = ember.compile(fn, backend=_counting_backend([0]))(ember.ones(3))
    assert seen == {"device": ember.device("cpu"), "shape": (3,), "dtype": ember.float32}
    np.testing.assert_allclose(out.numpy(), np.full(3, 3.0, np.float32))


def test_gradients_flow_through_the_segments():
    torch._dynamo.reset()
    x, w = _data(6), _data(6, seed=4)
    grads, calls = {}, {}
    for T in (ember, torch):
        def fn(x, w):
            h = (x * w).tanh()
            if h.sum() > 0:
                h = h * 2
            return (h ** 2).sum() + w.exp().mean()
        count = [0]
        weight = T.tensor(w).requires_grad_()
        loss = T.compile(fn, backend=_counting_backend(count))(T.tensor(x), weight)
        loss.backward()
        grads[T], calls[T] = (_numpy(loss), _numpy(weight.grad)), count[0]
    np.testing.assert_allclose(grads[ember][0], grads[torch][0], rtol=1e-5)
    np.testing.assert_allclose(grads[ember][1], grads[torch][1], rtol=1e-5, atol=1e-6)
    assert calls[ember] == calls[torch]


def test_training_step_with_optimizer_across_breaks():
    """backward() breaks the graph (autograd runs eagerly); the optimizer's update and
    the no_grad region it runs in are recorded: losses and weights equal torch's."""
    torch._dynamo.reset()
    got = {}
    for T in (ember, torch):
        rng = np.random.default_rng(0)
        model = T.nn.Sequential(T.nn.Linear(4, 8), T.nn.ReLU(), T.nn.Linear(8, 2))
        with T.no_grad():
            for p in model.parameters():
                p.copy_(T.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
        opt = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def step(x, y):
            loss = T.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            if loss > 1e6:
                loss = loss * 0
            return loss
        compiled = T.compile(step, backend=_counting_backend([0]))
        x, y = T.tensor(_data(5, 4, seed=1)), T.tensor(_data(5, 2, seed=2))
        losses = [_numpy(compiled(x, y)) for _ in range(3)]
        got[T] = losses + [_numpy(p) for p in model.parameters()]
    for g, w in zip(got[ember], got[torch]):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_random_ops_draw_as_eager_does():
    """Recording a random op (its result's shape comes from its meta rule) draws
    nothing: a seeded compiled call equals the seeded eager call, in torch and ember."""
    torch._dynamo.reset()
    for T in (ember, torch):
        def fn(x):
            y = T.nn.functional.dropout(x, 0.5, training=True) + T.randn(4)
            if y.sum() > 0:
                y = y * T.rand(4)
            return y + T.randn(4)
        compiled = T.compile(fn, backend=_counting_backend([0]))
        x = T.tensor(_data(4))
        for seed in (0, 1, 2):
            T.manual_seed(seed)
            got = _numpy(compiled(x))
            T.manual_seed(seed)
            np.testing.assert_array_equal(got, _numpy(fn(x)))


def _op_names(seen: list):
    def backend(gm, example_inputs):
        seen.append([str(getattr(n.target, "__name__", n.target)) for n in gm.graph.nodes
                     if n.op in ("call_function", "call_method")])
        return gm.forward
    return backend


def test_disable_graph_break_and_is_compiling():
    """torch.compiler.disable'd code runs between graphs, torch._dynamo.graph_break()
    ends one, is_compiling() is True while ops are recorded: the same graphs (op for
    op) and values as torch."""
    torch._dynamo.reset()
    got = {}
    for T in (ember, torch):
        @T.compiler.disable
        def helper(x):
            return x.cos() + 1

        def fn(x):
            y = x.sin()
            T._dynamo.graph_break()
            w = helper(y * 2)
            return w.exp() + (1 if T.compiler.is_compiling() else 0)
        seen = []
        out = T.compile(fn, backend=_op_names(seen))(T.tensor(_data(4)))
        got[T] = (_numpy(out), seen)
    np.testing.assert_allclose(got[ember][0], got[torch][0], rtol=1e-6)
    assert got[ember][1] == got[torch][1] == [["sin"], ["mul"], ["exp", "add"]]


def test_tutorial_graphs_op_for_op():
    torch._dynamo.reset()
    seen = {}
    for T in (ember, torch):
        fn, arg_sets = tutorial_bar(T)
        seen[T] = []
        compiled = T.compile(fn, backend=_op_names(seen[T]))
        for arrays in arg_sets:
            compiled(*[T.tensor(a) for a in arrays])
    assert seen[ember] == seen[torch]


def test_dynamo_testing_counters_optimize_and_reset():
    """torch._dynamo.testing's CompileCounter through torch._dynamo.optimize: graphs and
    call nodes counted as torch counts them; reset() makes the backend run again."""
    import torch._dynamo.testing  # noqa: F401 - torch's submodule, imported on use
    counts = {}
    for T in (ember, torch):
        T._dynamo.reset()
        counter = T._dynamo.testing.CompileCounter()
        fn, arg_sets = tutorial_bar(T)
        compiled = T._dynamo.optimize(counter)(fn)
        for _ in range(2):
            for arrays in arg_sets:
                compiled(*[T.tensor(a) for a in arrays])
        seen = (counter.frame_count, counter.op_count)
        T._dynamo.reset()
        counter.clear()
        compiled(*[T.tensor(a) for a in arg_sets[0]])
        # ember compiles each graph with its own compiler; torch's side runs them as
        # given (its inductor builds C++ for seconds; the values are the same)
        recorder = T._dynamo.testing.CompileCounterWithBackend(
            "inductor" if T is ember else "eager")
        out = T.compile(fn, backend=recorder)(*[T.tensor(a) for a in arg_sets[1]])
        counts[T] = (seen, counter.frame_count, recorder.frame_count, len(recorder.graphs),
                     _numpy(out))
    *got, got_out = counts[ember]
    *want, want_out = counts[torch]
    assert got == want
    np.testing.assert_allclose(got_out, want_out, rtol=1e-5)


def test_fullgraph_captures_value_reads_it_can_record():
    """Under fullgraph=True torch captures .item() and nonzero into its one graph
    (printing it refuses): one backend call, the same values."""
    got = {}
    for T in (ember, torch):
        T._dynamo.reset()

        def fn(x):
            scale = x.sum().item()
            return x * scale + T.nonzero(x > 0).shape[0]
        count = [0]
        out = T.compile(fn, backend=_counting_backend(count), fullgraph=True)(
            T.tensor(_data(5)))
        got[T] = (_numpy(out), count[0])

        def printing(x):
            print(x)
            return x + 1
        with pytest.raises(Exception):
            T.compile(printing, backend=_counting_backend([0]), fullgraph=True)(
                T.tensor(_data(3)))
    np.testing.assert_allclose(got[ember][0], got[torch][0], rtol=1e-5)
    assert got[ember][1] == got[torch][1] == 1


def test_batchnorm_training_across_a_break():
    """A training-mode BatchNorm updates its running statistics inside the graphs (no
    extra break where ember's layer reads its batch counter): outputs, statistics and
    backend calls equal torch's."""
    got = {}
    for T in (ember, torch):
        T._dynamo.reset()
        rng = np.random.default_rng(3)
        body = T.nn.Sequential(T.nn.Conv2d(3, 4, 3), T.nn.BatchNorm2d(4), T.nn.ReLU())
        with T.no_grad():
            for p in body.parameters():
                p.copy_(T.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)))

        class Net(T.nn.Module):
            def __init__(self):
                super().__init__()
                self.body = body

            def forward(self, x):
                y = self.body(x)
                if y.mean() > 0.5:
                    y = y * 0.5
                return y.sum(dim=(2, 3))
        count = [0]
        compiled = T.compile(Net(), backend=_counting_backend(count))
        outs = [_numpy(compiled(T.tensor(_data(2, 3, 6, 6, seed=s)))) for s in (0, 1)]
        bn = body[1]
        got[T] = outs + [_numpy(bn.running_mean), _numpy(bn.running_var),
                         int(bn.num_batches_tracked), count[0]]
    for g, w in zip(got[ember], got[torch]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_keyword_arguments_and_structured_results():
    got = {}
    for T in (ember, torch):
        T._dynamo.reset()

        def fn(x, *, scale):
            y = x * scale
            if y.max() > 1:
                y = y.clamp(max=1)
            return {"y": y, "parts": (y.sum(), [y.mean(), x])}
        count = [0]
        compiled = T.compile(fn, backend=_counting_backend(count))
        out = compiled(T.tensor(_data(4)), scale=T.tensor(_data(4, seed=9)))
        got[T] = ([_numpy(out["y"]), _numpy(out["parts"][0])] +
                  [_numpy(v) for v in out["parts"][1]] + [count[0]])
    for g, w in zip(got[ember], got[torch]):
        np.testing.assert_allclose(g, w, rtol=1e-6)
