"""One focused check against torch per gap the ported tutorials found
(tests/compat/tutorials/test_pytorch_tutorials.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _pair(*shape, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return ember.tensor(a), torch.tensor(a)


# --- torch.cond with a traced predicate (export, compile) -----------------------------------

def _cond_program(lib):
    class Branchy(lib.nn.Module):
        def forward(self, x):
            return lib.cond(x.sum() > 0, lambda v: (v.sin(), v * 2),
                            lambda v: (v.cos(), v - 1), (x,))
    return Branchy()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_exports_both_branches(sign):
    ex, tx = _pair(3, 4)
    ep_e = ember.export.export(_cond_program(ember), (ex,))
    ep_t = torch.export.export(_cond_program(torch), (tx,))
    ex2, tx2 = ex.abs() * sign, tx.abs() * sign
    for got, want in zip(ep_e.module()(ex2), ep_t.module()(tx2)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


def test_cond_compiles_without_a_graph_break():
    def f(x):
        return ember.cond(x.mean() > 0, lambda v: v.exp(), lambda v: -v, (x,))
    compiled = ember.compile(f, fullgraph=True)
    for sign in (1.0, -1.0):
        ex, tx = _pair(5)
        ex, tx = ex.abs() * sign, tx.abs() * sign
        want = torch.cond(tx.mean() > 0, lambda v: v.exp(), lambda v: -v, (tx,))
        np.testing.assert_allclose(compiled(ex).numpy(), want.numpy(), rtol=1e-6)


def test_cond_branches_of_different_shapes_are_refused():
    class Mismatch(ember.nn.Module):
        def forward(self, x):
            return ember.cond(x.sum() > 0, lambda v: v, lambda v: v.sum(), (x,))
    with pytest.raises(Exception, match="same shape"):
        ember.export.export(Mismatch(), (ember.ones(3),))
    with pytest.raises(Exception):      # torch refuses it too
        torch.export.export(_torch_mismatch(), (torch.ones(3),))


def _torch_mismatch():
    class Mismatch(torch.nn.Module):
        def forward(self, x):
            return torch.cond(x.sum() > 0, lambda v: v, lambda v: v.sum(), (x,))
    return Mismatch()


# --- ExportGraphSignature: torch's kinds, targets, order; every buffer lifted -------------

def _conv_bn(lib):
    return lib.nn.Sequential(lib.nn.Conv2d(1, 2, 1), lib.nn.BatchNorm2d(2)).eval()


def test_export_signature_lists_every_parameter_and_buffer_in_torch_order():
    ex, tx = _pair(1, 1, 3, 3)
    sig_e = ember.export.export(_conv_bn(ember), (ex,)).graph_signature
    sig_t = torch.export.export(_conv_bn(torch), (tx,)).graph_signature
    assert [(s.kind.name, s.target, s.arg.name) for s in sig_e.input_specs] == \
        [(s.kind.name, s.target, s.arg.name) for s in sig_t.input_specs]
    assert sig_e.buffers == sig_t.buffers     # num_batches_tracked, unused in eval, too
    assert sig_e.parameters == sig_t.parameters
    assert sig_e.inputs_to_buffers == sig_t.inputs_to_buffers
    assert str(sig_e).split("# outputs")[0] == str(sig_t).split("# outputs")[0]


def test_exported_state_dict_holds_unused_buffers_and_runs():
    ex, _ = _pair(1, 1, 3, 3)
    model = _conv_bn(ember)
    ep = ember.export.export(model, (ex,))
    assert set(ep.state_dict) == set(model.state_dict())
    np.testing.assert_allclose(ep.module()(ex).numpy(), model(ex).detach().numpy(), rtol=1e-6)


# --- fx.wrap: generated code wraps the function again ----------------------------------------

def lowp_sigmoid(x):
    return x.float().sigmoid().half()


ember.fx.wrap("lowp_sigmoid")
torch.fx.wrap("lowp_sigmoid")


def _wrapped_program(x):
    return lowp_sigmoid(x) + math.sqrt(x.shape[-1])


def test_wrapped_functions_are_rewrapped_in_generated_code_as_torch_does():
    code_e = ember.fx.symbolic_trace(_wrapped_program).code
    code_t = torch.fx.symbolic_trace(_wrapped_program).code
    assert code_e.replace("ember", "torch") == code_t
    assert 'wrap("math_sqrt")' in code_t


def test_retracing_a_graph_module_keeps_wrapped_functions_leaves():
    gm = ember.fx.symbolic_trace(_wrapped_program)
    again = ember.fx.symbolic_trace(gm)
    targets = [n.target for n in again.graph.nodes if n.op == "call_function"]
    assert lowp_sigmoid in targets and math.sqrt in targets
    x = ember.ones(2, 4)
    np.testing.assert_allclose(again(x).float().numpy(), gm(x).float().numpy())


# --- eager prepare / prepare_qat observe no Dropout ------------------------------------------

@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("qat", [False, True])
def test_eager_prepare_attaches_no_observer_to_dropout(qat):
    def prepared(lib):
        model = lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.Dropout(), lib.nn.Linear(2, 2))
        q = lib.ao.quantization
        if qat:
            model.train()
            model.qconfig = q.get_default_qat_qconfig("x86")
            return q.prepare_qat(model)
        model.eval()
        model.qconfig = q.default_qconfig
        return q.prepare(model)
    assert [n for n, _ in prepared(ember).named_modules()] == \
        [n for n, _ in prepared(torch).named_modules()]


# --- torch.nn.functional calls recorded in torch.fx's form -------------------------------------

def _functional_model(lib):
    F = lib.nn.functional

    class Functional(lib.nn.Module):
        def forward(self, x):
            x = F.dropout(F.relu(x), 0.1, training=False)
            x = F.max_pool2d(F.softmax(x, dim=-1), 2)
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            return F.layer_norm(x, (4,)) + F.leaky_relu(x, 0.2)
    return Functional()


def test_functional_calls_record_torch_fx_positional_and_keyword_arguments():
    gm_e = ember.fx.symbolic_trace(_functional_model(ember))
    gm_t = torch.fx.symbolic_trace(_functional_model(torch))
    nodes_e = [(n.name, n.args.__repr__(), dict(n.kwargs)) for n in gm_e.graph.nodes]
    nodes_t = [(n.name, n.args.__repr__(), dict(n.kwargs)) for n in gm_t.graph.nodes]
    assert nodes_e == nodes_t
    assert gm_e.code.replace("ember", "torch") == gm_t.code
    ex, tx = _pair(1, 2, 4, 4)
    np.testing.assert_allclose(gm_e(ex).numpy(), gm_t(tx).numpy(), rtol=1e-5, atol=1e-6)


# --- a GraphModule called on Proxies outside a trace records its graph's calls -------------

def test_graph_module_called_on_proxies_records_its_own_nodes():
    def check(lib):
        fx = lib.fx

        class Cat(lib.nn.Module):
            def forward(self, x, y):
                return lib.cat([x, y])
        gm = fx.symbolic_trace(Cat())
        out = next(n for n in gm.graph.nodes if n.op == "output")
        wrap = out.all_input_nodes[0]
        act = fx.symbolic_trace(lib.nn.LeakyReLU(0.3))
        with gm.graph.inserting_after(wrap):
            out.args = (act(fx.Proxy(wrap)).node,)
        gm.recompile()
        return gm
    gm_e, gm_t = check(ember), check(torch)
    assert gm_e.code.replace("ember", "torch") == gm_t.code
    (ex, tx), (ey, ty) = _pair(2, 3), _pair(2, 3, seed=1)
    np.testing.assert_allclose(gm_e(ex, ey).numpy(), gm_t(tx, ty).numpy(), rtol=1e-6)


# --- aliases are functions of their own name (torch.arcsin is not torch.asin) ---------------

@pytest.mark.parametrize("alias", ["arcsin", "clip", "concat", "multiply", "negative"])
def test_alias_is_recorded_and_printed_under_its_own_name(alias):
    def program(lib):      # looked up on the library while tracing, as `torch.clip(...)` is
        if alias == "clip":
            return lambda x: getattr(lib, alias)(x, -0.5, 0.5)
        if alias == "concat":
            return lambda x: getattr(lib, alias)([x, x])
        if alias == "multiply":
            return lambda x: getattr(lib, alias)(x, 2.0)
        return lambda x: getattr(lib, alias)(x)
    gm_e = ember.fx.symbolic_trace(program(ember))
    gm_t = torch.fx.symbolic_trace(program(torch))
    assert gm_e.code.replace("ember", "torch") == gm_t.code
    assert getattr(ember, alias) is not None and \
        [n.target for n in gm_e.graph.nodes if n.op == "call_function"] == [getattr(ember, alias)]
    ex, tx = _pair(4)
    ex, tx = ex * 0.5, tx * 0.5
    np.testing.assert_allclose(gm_e(ex).numpy(), gm_t(tx).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ember.compile(gm_e)(ex).numpy(), gm_t(tx).numpy(), rtol=1e-5)


# --- ep.module(): an nn.Module with the program's state; plain arguments guarded ----------

def _scaled(lib):
    class Scaled(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.nn.Linear(3, 2)

        def forward(self, x, scale=1.0):
            return self.lin(x) * scale
    return Scaled()


def test_exported_module_is_a_module_with_the_programs_state():
    ex, tx = _pair(2, 3)
    mod_e = ember.export.export(_scaled(ember), (ex, 2.0)).module()
    mod_t = torch.export.export(_scaled(torch), (tx, 2.0)).module()
    assert isinstance(mod_e, ember.nn.Module) and isinstance(mod_t, torch.nn.Module)
    assert list(mod_e.state_dict()) == list(mod_t.state_dict())
    assert [n for n, _ in mod_e.named_parameters()] == [n for n, _ in mod_t.named_parameters()]
    weights = {k: v.detach().numpy() for k, v in mod_t.state_dict().items()}
    mod_e.load_state_dict({k: ember.tensor(v) for k, v in weights.items()})
    np.testing.assert_allclose(mod_e(ex, 2.0).numpy(), mod_t(tx, 2.0).detach().numpy(),
                               rtol=1e-6)


def test_exported_module_refuses_another_value_of_a_specialized_argument():
    ex, tx = _pair(2, 3)
    mod_e = ember.export.export(_scaled(ember), (ex, 2.0)).module()
    mod_t = torch.export.export(_scaled(torch), (tx, 2.0)).module()
    with pytest.raises(Exception):          # torch: "Guard failed: scale == 2.0"
        mod_t(tx, 3.0)
    with pytest.raises(Exception, match="specialized to 2.0"):
        mod_e(ex, 3.0)


# --- torch.compiler.set_stance --------------------------------------------------------------

def test_set_stance_scopes_and_refusals_follow_torch():
    def run(lib):
        lib.compiler.reset()

        @lib.compile
        def f(x):
            return x + 1 if lib.compiler.is_compiling() else x - 1

        @lib.compiler.set_stance("force_eager")
        def eager_call(x):
            return f(x)
        x3, x4 = lib.zeros(3), lib.zeros(4)
        got = [f(x3), eager_call(x3), f(x3)]      # the decorator's stance ends with it
        with lib.compiler.set_stance("eager_on_recompile"):
            got += [f(x4), f(x3)]
        with lib.compiler.set_stance("fail_on_recompile"):
            with pytest.raises(RuntimeError, match="fail_on_recompile"):
                f(lib.zeros(5))
        return [float(t[0]) for t in got]
    assert run(ember) == run(torch)


# --- an lr scheduler stepped inside a compiled function ----------------------------------------

@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("tensor_lr", [False, True])
def test_scheduler_step_inside_compiled_function_follows_eager(tensor_lr):
    def run(lib):
        lib._dynamo.reset()
        model = lib.nn.Linear(4, 4, bias=False)
        with lib.no_grad():
            model.weight.copy_(lib.tensor(np.eye(4, dtype=np.float32)))
        lr = lib.tensor(0.01) if tensor_lr else 0.01
        opt = lib.optim.Adam(model.parameters(), lr=lr)
        sched = lib.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.0,
                                                total_iters=4)

        @lib.compile
        def step():
            opt.step()
            sched.step()
        lrs = []
        for _ in range(5):
            model(lib.ones(4)).sum().backward()
            step()
            opt.zero_grad()
            lrs.append(float(opt.param_groups[0]["lr"]))
            if tensor_lr:       # a tensor lr stays the same tensor, updated in place
                assert opt.param_groups[0]["lr"] is lr
        return lrs, model.weight.detach().numpy()
    (lrs_e, w_e), (lrs_t, w_t) = run(ember), run(torch)
    np.testing.assert_allclose(lrs_e, lrs_t, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(w_e, w_t, rtol=1e-5, atol=1e-6)
