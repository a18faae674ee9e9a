"""Regression tests for what the second user-program probe found (each also covered
against torch by a case of test_user_probe2_programs.py)."""
from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

import ember
import ember.ao.quantization as eq
from ember.ao.quantization.quantize_fx import prepare_fx


def _small_cnn():
    nn = ember.nn
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 2)).eval()


def test_scripted_and_traced_modules_save_and_load():
    model = _small_cnn()
    x = ember.randn(2, 3, 6, 6)
    for made in (ember.jit.script(model), ember.jit.trace(model, x),
                 ember.jit.freeze(ember.jit.script(model))):
        buf = io.BytesIO()
        made.save(buf)
        buf.seek(0)
        np.testing.assert_allclose(ember.jit.load(buf)(x).detach().numpy(),
                                   model(x).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(AttributeError, match="has no attribute 'save'"):
        ember.nn.Linear(2, 2).save     # a module nobody scripted has none, as in torch


def test_traced_module_keeps_state_the_run_never_read():
    model = _small_cnn()
    traced = ember.jit.trace(model, ember.randn(2, 3, 6, 6))
    assert list(traced.state_dict()) == list(model.state_dict())   # num_batches_tracked too


def test_calling_an_exported_program_is_a_plain_runtime_error():
    ep = ember.export.export(ember.nn.Linear(2, 2), (ember.randn(1, 2),))
    with pytest.raises(RuntimeError, match="use `exported_program.module\\(\\)`") as info:
        ep(ember.randn(1, 2))
    assert type(info.value) is RuntimeError


def test_fused_modules_with_different_qconfigs_raise_lookup_error():
    model = ember.nn.Sequential(ember.nn.Linear(4, 4), ember.nn.ReLU()).eval()
    mapping = eq.QConfigMapping().set_global(eq.get_default_qconfig("x86")) \
        .set_object_type(ember.nn.Linear, eq.default_qconfig)
    with pytest.raises(LookupError, match="During fusion, we need to specify the same "
                                          "qconfigs for all module types in .*LinearReLU"):
        prepare_fx(model, mapping, (ember.randn(2, 4),))


def test_numeric_suite_module_path_and_qfunctional_logging():
    import ember.ao.ns._numeric_suite as ns
    from ember.ao.nn.quantized import QFunctional
    qf = QFunctional()
    qf.activation_post_process = ns.OutputLogger()
    a = ember.quantize_per_tensor(ember.ones(3), 0.1, 0, ember.quint8)
    out = qf.add(a, a)
    assert qf.activation_post_process.stats["tensor_val"] == [out]


def _torch_file(obj):
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_load_reads_a_torch_saved_checkpoint():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    base = torch.arange(6.0).view(2, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    checkpoint = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
                  "base": base, "view": base.t(), "param": torch.nn.Parameter(torch.ones(2)),
                  "half": torch.ones(3, dtype=torch.float16),
                  "bf16": torch.tensor([1.5, -2.0], dtype=torch.bfloat16)}
    got = ember.load(_torch_file(checkpoint))
    ported = ember.nn.Sequential(ember.nn.Linear(3, 2), ember.nn.BatchNorm1d(2))
    ported.load_state_dict(got["model"])
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(ported.state_dict()[key].numpy(), value.numpy())
    assert got["epoch"] == 3 and got["optimizer"]["param_groups"][0]["momentum"] == 0.9
    np.testing.assert_array_equal(got["optimizer"]["state"][0]["momentum_buffer"].numpy(),
                                  opt.state_dict()["state"][0]["momentum_buffer"].numpy())
    assert got["view"].stride() == (1, 3)
    got["base"][0, 1] = 10.0         # views saved together share their storage again
    assert float(got["view"][1, 0]) == 10.0
    assert isinstance(got["param"], ember.nn.Parameter) and got["param"].requires_grad
    assert got["half"].dtype == ember.float16 and got["bf16"].dtype == ember.bfloat16
    assert got["bf16"].float().tolist() == [1.5, -2.0]


def test_load_of_a_torch_file_keeps_the_weights_only_rules():
    import argparse
    torch = pytest.importorskip("torch")
    args = argparse.Namespace(lr=0.1)
    with pytest.raises(pickle.UnpicklingError, match="add_safe_globals"):
        ember.load(_torch_file({"args": args}))
    assert ember.load(_torch_file({"args": args}), weights_only=False)["args"] == args
    with pytest.raises(pickle.UnpicklingError, match="only torch can rebuild"):
        ember.load(_torch_file(torch.nn.Linear(2, 2)), weights_only=False)


def test_jit_trace_takes_torchs_keywords_and_gives_extra_files_as_bytes():
    model = ember.nn.Linear(3, 2)
    x = ember.randn(2, 3)
    traced = ember.jit.trace(model, example_kwarg_inputs={"input": x}, strict=False,
                             check_trace=True, check_tolerance=1e-4)
    np.testing.assert_allclose(traced(x).detach().numpy(), model(x).detach().numpy())
    buf = io.BytesIO()
    ember.jit.save(traced, buf, _extra_files={"cfg": "a=1"})
    buf.seek(0)
    files = {"cfg": ""}
    ember.jit.load(buf, _extra_files=files)
    assert files == {"cfg": b"a=1"}


@pytest.mark.parametrize("opset", [11, 13, 17, 18])
def test_onnx_export_at_older_opsets(opset):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")

    class Block(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = ember.nn.LayerNorm(6)
            self.fc = ember.nn.Linear(6, 6)

        def forward(self, x):
            h = self.fc(self.norm(x))
            return h.softmax(dim=1) + h.sum(dim=-1, keepdim=True) + h.mean(dim=0)

    model = Block().eval()
    x = ember.randn(2, 4, 6)
    buf = io.BytesIO()
    ember.onnx.export(model, (x,), buf, input_names=["x"], opset_version=opset)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-5)
