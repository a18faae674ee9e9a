"""A plain-PyTorch GPT-2-style decoder (tests/compat/minigpt.py) ported to ember by
changing imports only: eager and compiled forward, float64 gradients through the tied
embedding, AdamW training steps (eager and ember.compile_train_step) and top-k
generation, each against the same code run by torch."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
import minigpt as reference_gpt  # noqa: E402
from porting import copy_state_dict, torch_as_ember  # noqa: E402

with torch_as_ember("minigpt") as _ported:
    ported_gpt = _ported["minigpt"]

VOCAB, BLOCK = 50, 16


def _pair(flash: bool, dtype=None):
    torch.manual_seed(0)
    reference = reference_gpt.GPT(reference_gpt.GPTConfig(flash=flash))
    port = ported_gpt.GPT(ported_gpt.GPTConfig(flash=flash))
    if dtype == "float64":
        reference.double()
        port.double()
    copy_state_dict(reference, port)
    return reference, port


def _tokens(rng, length=12):
    return rng.integers(0, VOCAB, (2, length)), rng.integers(0, VOCAB, (2, length))


def _logits_and_loss(model, lib, idx, targets):
    logits, loss = model(lib.tensor(idx), lib.tensor(targets))
    return logits.detach().numpy(), float(loss.detach())


@pytest.mark.parametrize("flash", [True, False], ids=["sdpa", "masked"])
def test_forward_eager_and_compiled_match_torch(flash, rng):
    reference, port = _pair(flash)
    reference.eval()
    port.eval()
    assert port.transformer.wte.weight is port.lm_head.weight          # tied, as in torch
    assert port.get_num_params() == reference.get_num_params()
    idx, targets = _tokens(rng)
    expected_logits, expected_loss = _logits_and_loss(reference, torch, idx, targets)
    logits, loss = _logits_and_loss(port, ember, idx, targets)
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    compiled = ember.compile(port)
    logits, loss = _logits_and_loss(compiled, ember, idx, targets)
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    # without targets: only the last position's logits
    with torch.no_grad():
        expected_last, _ = reference(torch.tensor(idx))
    with ember.no_grad():
        last, none = compiled(ember.tensor(idx))
    assert none is None and tuple(last.shape) == (2, 1, VOCAB)
    np.testing.assert_allclose(last.numpy(), expected_last.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flash", [True, False], ids=["sdpa", "masked"])
def test_float64_gradients_match_torch(flash, rng):
    reference, port = _pair(flash, dtype="float64")
    idx, targets = _tokens(rng)
    reference(torch.tensor(idx), torch.tensor(targets))[1].backward()
    port(ember.tensor(idx), ember.tensor(targets))[1].backward()
    port_parameters = dict(port.named_parameters())
    assert set(port_parameters) == {name for name, _ in reference.named_parameters()}
    for name, parameter in reference.named_parameters():     # wte/lm_head: one, summed
        np.testing.assert_allclose(port_parameters[name].grad.numpy(),
                                   parameter.grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


def _adamw(model):
    return model.configure_optimizers(weight_decay=0.1, learning_rate=1e-2, betas=(0.9, 0.95))


def _train(model, lib, batches, step=None, clip=False):
    optimizer = _adamw(model)
    losses = []
    for idx, targets in batches:
        if step is None:         # nanoGPT's eager step, gradient clipping included
            _, loss = model(lib.tensor(idx), lib.tensor(targets))
            loss.backward()
            if clip:
                lib.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            loss = step(model, optimizer, lib.tensor(idx), lib.tensor(targets))
        losses.append(float(loss.detach()))
    return losses


def _compiled_step():
    @ember.compile_train_step
    def step(model, optimizer, idx, targets):
        _, loss = model(idx, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss
    return step


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compile_train_step"])
def test_adamw_training_steps_match_torch(compiled, rng):
    # float64: the key bias's gradient is zero up to rounding (softmax ignores a shift
    # shared by all keys) and Adam scales any float32 rounding noise up to lr-sized steps
    reference, port = _pair(flash=True, dtype="float64")
    reference.train()
    port.train()
    batches = [_tokens(rng)] * 4                            # one batch, fitted
    # gradient clipping reads .grad, which a compiled step cannot (it refuses)
    expected = _train(reference, torch, batches, clip=not compiled)
    actual = _train(port, ember, batches, _compiled_step() if compiled else None,
                    clip=not compiled)
    np.testing.assert_allclose(actual, expected, rtol=1e-10)
    assert expected[-1] < expected[0]                      # it learned something
    port_parameters = dict(port.named_parameters())
    for name, parameter in reference.named_parameters():
        np.testing.assert_allclose(port_parameters[name].detach().numpy(),
                                   parameter.detach().numpy(), rtol=1e-8, atol=1e-10,
                                   err_msg=name)


def test_compiled_forward_over_growing_lengths_and_crop_block_size(rng):
    """Generation calls the model with a longer prefix each time: one compiled model
    serves every length; after crop_block_size both models agree on the shorter context."""
    reference, port = _pair(flash=False)
    reference.eval()
    port.eval()
    compiled = ember.compile(port)
    idx = rng.integers(0, VOCAB, (2, BLOCK))
    for length in (3, 7, BLOCK):
        with torch.no_grad():
            expected, _ = reference(torch.tensor(idx[:, :length]))
        with ember.no_grad():
            actual, _ = compiled(ember.tensor(idx[:, :length]))
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    reference.crop_block_size(8)
    port.crop_block_size(8)
    assert tuple(port.transformer.h[0].attn.bias.shape) == (1, 1, 8, 8)
    with torch.no_grad():
        expected, _ = reference(torch.tensor(idx[:, :8]))
    with ember.no_grad():
        actual, _ = port(ember.tensor(idx[:, :8]))
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(AssertionError, match="too long"):
        port(ember.tensor(idx[:, :9]))


def test_generate_greedy_matches_torch_and_top_k_stays_in_the_top_k(rng):
    reference, port = _pair(flash=True)
    reference.eval()
    port.eval()
    prompt = rng.integers(0, VOCAB, (2, 4))
    # top_k=1 leaves one token with probability 1: the samples are torch's exactly
    expected = reference.generate(torch.tensor(prompt), 14, top_k=1)   # past block_size
    actual = port.generate(ember.tensor(prompt), 14, top_k=1)
    np.testing.assert_array_equal(actual.numpy(), expected.numpy())
    ember.manual_seed(3)
    sampled = port.generate(ember.tensor(prompt), 6, temperature=0.8, top_k=3).numpy()
    ember.manual_seed(3)
    again = port.generate(ember.tensor(prompt), 6, temperature=0.8, top_k=3).numpy()
    np.testing.assert_array_equal(sampled, again)           # seeded: reproducible
    with ember.no_grad():
        for position in range(4, sampled.shape[1]):
            logits, _ = port(ember.tensor(sampled[:, :position]))
            top3 = np.argsort(-logits.numpy()[:, -1, :], axis=-1)[:, :3]
            for row in range(2):
                assert sampled[row, position] in top3[row]
