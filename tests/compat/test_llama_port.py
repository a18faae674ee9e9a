"""tests/compat/llama_port.py (LLaMA-style model code) run with torch and with `torch`
imported as ember, same weights: logits, the KV-cached greedy generation, the top-k /
top-p filter, a training step's loss and gradients, and the compiled forward."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
import llama_port as reference  # noqa: E402
from porting import copy_state_dict, torch_as_ember  # noqa: E402

with torch_as_ember("llama_port") as _ported:
    ported = _ported["llama_port"]


def _pair(use_complex: bool):
    torch.manual_seed(0)
    ref = reference.Llama(use_complex=use_complex).eval()
    port = ported.Llama(use_complex=use_complex).eval()
    copy_state_dict(ref, port)
    return ref, port


def _tokens(shape=(2, 8), seed=0):
    return np.random.default_rng(seed).integers(0, 64, shape)


@pytest.mark.parametrize("use_complex", [True, False], ids=["polar_rope", "cos_sin_rope"])
def test_logits_and_kv_cached_greedy_generation_match_torch(use_complex):
    ref, port = _pair(use_complex)
    tokens = _tokens()
    with torch.no_grad():
        want, _ = ref(torch.tensor(tokens))
    got, _ = port(ember.tensor(tokens))
    np.testing.assert_allclose(got.detach().numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    want_ids = reference.generate(ref, torch.tensor(tokens), 5, greedy=True)
    got_ids = ported.generate(port, ember.tensor(tokens), 5, greedy=True)
    np.testing.assert_array_equal(got_ids.numpy(), want_ids.numpy())
    # persistent=False buffers stay out of the state dict; the tied weight is one tensor
    assert sorted(port.state_dict()) == sorted(ref.state_dict())
    assert port.output.weight is port.tok_embeddings.weight


def test_top_k_top_p_filter_and_sampling_shape_match_torch():
    logits = np.random.default_rng(3).standard_normal((3, 64)).astype(np.float32)
    for top_k, top_p in ((10, 1.0), (0, 0.8), (5, 0.5)):
        want = reference.top_k_top_p_filter(torch.tensor(logits), top_k, top_p).numpy()
        got = ported.top_k_top_p_filter(ember.tensor(logits), top_k, top_p).numpy()
        np.testing.assert_array_equal(got, want)
    _, port = _pair(True)
    ember.manual_seed(0)
    sampled = ported.generate(port, ember.tensor(_tokens()), 4, top_k=10, top_p=0.9)
    assert list(sampled.shape) == [2, 12]
    assert (sampled.numpy()[:, :8] == _tokens()).all()


def _train_step(lib, model, tokens):
    logits, _ = model(lib.tensor(tokens[:, :-1]))
    loss = lib.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)),
                                           lib.tensor(tokens[:, 1:]).reshape(-1))
    loss.backward()
    return float(loss), {n: p.grad.numpy() for n, p in model.named_parameters()}


def test_training_step_and_compiled_forward_match_torch():
    ref, port = _pair(False)
    ref.train()
    port.train()
    tokens = _tokens((2, 9), seed=5)
    want_loss, want_grads = _train_step(torch, ref, tokens)
    got_loss, got_grads = _train_step(ember, port, tokens)
    assert abs(got_loss - want_loss) < 1e-4
    for name, grad in want_grads.items():
        np.testing.assert_allclose(got_grads[name], grad, rtol=2e-3, atol=2e-5, err_msg=name)
    port.eval()
    compiled = ember.compile(port)
    with torch.no_grad():
        want, _ = ref.eval()(torch.tensor(tokens))
    with ember.no_grad():
        got, _ = compiled(ember.tensor(tokens))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
