"""Public-style model code (diffusion_port2, sequence_port2, vision_port2,
training_utils_port2, research_models_port2, graphics_port2) run with torch and with `torch` imported as ember: every case_*
(forward values, gradients, a few training steps, generation loops) returns the same
values; then the ember models under ember.compile and ember.fx.symbolic_trace give
eager's outputs. torchvision's box ops come from ember.vision on the ember side."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from domain_oracles import import_torchvision  # noqa: E402
from porting import assert_same as _assert_same, plain as _plain, torch_as_ember  # noqa: E402

import ember  # noqa: E402
import ember.vision.ops  # noqa: E402

PROGRAMS = ["diffusion_port2", "sequence_port2", "vision_port2", "training_utils_port2",
            "research_models_port2", "graphics_port2"]

import_torchvision()                 # the reference's torchvision.ops.boxes (box ops, nms)
_reference = {name: importlib.import_module(name) for name in PROGRAMS}
_SHIMS = {"torchvision": ember.vision, "torchvision.ops": ember.vision.ops,
          "torchvision.ops.boxes": ember.vision.ops}
with torch_as_ember(*PROGRAMS, shims=_SHIMS) as _ported:
    ported = dict(_ported)


CASES = [(program, case) for program in PROGRAMS
         for case in sorted(vars(_reference[program])) if case.startswith("case_")]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("program,case", CASES, ids=[f"{p}.{c}" for p, c in CASES])
def test_model_case_matches_torch(program, case):
    want = _plain(getattr(_reference[program], case)())
    got = _plain(getattr(ported[program], case)())
    _assert_same(got, want)


# ---- ember.compile and ember.fx.symbolic_trace against eager, on the ember models
def _outputs(result):
    if isinstance(result, dict):
        return [result[key] for key in sorted(result)]
    if isinstance(result, (tuple, list)):
        return [r for r in result if hasattr(r, "numpy")]
    return [result]


def _t5_eval(lib):
    model, (input_ids, attention_mask, labels) = lib.make_t5()
    return model.eval(), (input_ids, attention_mask, labels)


def _whisper_encoder(lib):
    model, (mel, _) = lib.make_whisper()
    return model.encoder.eval(), (mel,)


def _whisper(lib):
    model, inputs = lib.make_whisper()
    return model.eval(), inputs


def _detr(lib):
    model = lib.DETRHead()
    lib.set_weights(model, 0.3)
    return model, (lib.W(2, 8, 3, 3, seed=4),)


def _qkv_attention(lib):
    model, _ = lib.make_unet()
    return model.middle_block[1].attention, (lib.W(2, 48, 6, seed=3),)


def _pointnet(lib):
    model = lib.PointNetCls()
    lib.set_weights(model, 0.3)
    return model, (lib.W(3, 3, 10, seed=5),)


def _cyclegan_generator(lib):
    model = lib.ResnetGenerator()
    lib.set_weights(model, 0.1)
    return model, (lib.W(2, 3, 16, 16, seed=1).tanh(),)


#: name -> (program, builder taking the program's module)
MODELS = {
    "diffusion_unet": ("diffusion_port2", lambda lib: lib.make_unet()),
    "whisper_encoder": ("sequence_port2", _whisper_encoder),
    "whisper": ("sequence_port2", _whisper),
    "t5": ("sequence_port2", _t5_eval),
    "swin": ("vision_port2", lambda lib: lib.make_swin()),
    "convnext": ("vision_port2", lambda lib: lib.make_convnext()),
    "gnn": ("vision_port2", lambda lib: lib.make_gnn()),
    "moe": ("vision_port2", lambda lib: lib.make_moe()),
    "detr_head": ("vision_port2", _detr),
    "unet_qkv_attention": ("diffusion_port2", _qkv_attention),
    "spatial_transformer": ("research_models_port2", lambda lib: lib.make_spatial_transformer()),
    "mamba": ("research_models_port2", lambda lib: lib.make_mamba()),
    "pointnet": ("graphics_port2", _pointnet),
    "cyclegan_generator": ("graphics_port2", _cyclegan_generator),
}


def _build(name, reference=False):
    program, builder = MODELS[name]
    model, inputs = builder((_reference if reference else ported)[program])
    return model.eval(), inputs


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_compiled_model_matches_eager(name):
    model, inputs = _build(name)
    with ember.no_grad():
        want = _outputs(model(*inputs))
        got = _outputs(ember.compile(model)(*inputs))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_symbolic_trace_agrees_with_torch_fx(name):
    """Where torch.fx traces the reference, ember.fx traces the port and the traced module
    gives eager's values; where torch.fx stops (a `len` of a shape, an assert or loop on a
    traced value, a shape passed where sizes go), ember.fx stops too."""
    reference, _ = _build(name, reference=True)
    try:
        torch.fx.symbolic_trace(reference)
        torch_traces = True
    except Exception:                            # noqa: BLE001 - any tracing failure
        torch_traces = False
    model, inputs = _build(name)
    if not torch_traces:
        with pytest.raises(Exception):
            ember.fx.symbolic_trace(model)
        return
    traced = ember.fx.symbolic_trace(model)
    with ember.no_grad():
        want = _outputs(model(*inputs))
        got = _outputs(traced(*inputs))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_compiled_training_gradients_match_eager():
    """torch.compile(model) then a training step: the compiled forward's backward gives
    eager's parameter gradients (a cross-attention transformer block with GroupNorm,
    GEGLU and a boolean context mask)."""
    grads = []
    for compiled in (False, True):
        model, (x, context) = _build("spatial_transformer")
        model.train()
        forward = ember.compile(model) if compiled else model
        forward(x, context).square().mean().backward()
        grads.append({n: p.grad.numpy() for n, p in model.named_parameters()})
    eager, compiled = grads
    assert set(eager) == set(compiled)
    for name in eager:
        np.testing.assert_allclose(compiled[name], eager[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)
