"""pytorch/examples-style programs (tutorial_examples.py) run with torch and, through
torch_as_ember, with ember: same weights (copied), same data and noise, same losses."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tutorial_examples as ref
from porting import copy_state_dict, torch_as_ember

with torch_as_ember("tutorial_examples") as _ported:
    port = _ported["tutorial_examples"]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: torch's thread pool only adds contention on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pair(build, *args, **kwargs):
    reference = getattr(ref, build)(*args, **kwargs)
    ours = getattr(port, build)(*args, **kwargs)
    copy_state_dict(reference, ours)
    return reference, ours


def _close(ours, reference, rtol=2e-4, atol=2e-5):
    np.testing.assert_allclose(np.asarray(ours, dtype=np.float64),
                               np.asarray(reference, dtype=np.float64), rtol=rtol, atol=atol)


def test_mnist_cnn_adadelta_steplr(rng):
    images = rng.standard_normal((8, 1, 10, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 8)
    reference, ours = _pair("MnistNet")
    ref_losses, ref_test, ref_correct = ref.mnist_train(reference, images, labels)
    losses, test_loss, correct = port.mnist_train(ours, images, labels)
    _close(losses, ref_losses)
    _close(test_loss, ref_test)
    assert correct == ref_correct


def test_dcgan_two_iterations(rng):
    reference_g, ours_g = _pair("Generator")
    reference_d, ours_d = _pair("Discriminator")
    ours_g.apply(port.dcgan_weights_init)               # runs on ember; then same weights
    copy_state_dict(reference_g, ours_g)
    real = [np.tanh(rng.standard_normal((3, 1, 16, 16))).astype(np.float32) for _ in range(2)]
    noise = [rng.standard_normal((3, 4, 1, 1)).astype(np.float32) for _ in range(2)]
    _close(port.dcgan_train(ours_g, ours_d, real, noise),
           ref.dcgan_train(reference_g, reference_d, real, noise), rtol=1e-3, atol=1e-4)
    _close(ours_d.main[3].running_mean.numpy(), reference_d.main[3].running_mean.numpy())


def test_vae_reparameterization_bce_kl(rng):
    reference, ours = _pair("VAE")
    data = [rng.uniform(0, 1, (4, 16)).astype(np.float32) for _ in range(3)]
    eps = [rng.standard_normal((4, 2)).astype(np.float32) for _ in range(3)]
    ref_losses, ref_sample = ref.vae_train(reference, data, eps)
    losses, sample = port.vae_train(ours, data, eps)
    _close(losses, ref_losses)
    _close(sample, ref_sample)


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU"])
def test_word_language_model_tied_truncated_bptt(rnn_type, rng):
    reference, ours = _pair("RNNModel", rnn_type, 12, 6, 6, 2)
    assert ours.decoder.weight is ours.encoder.weight            # tied
    tokens = rng.integers(0, 12, 40).tolist()
    ref_losses, ref_ppl, ref_out = ref.word_lm_train(reference, tokens)
    losses, ppl, out = port.word_lm_train(ours, tokens)
    _close(losses, ref_losses, rtol=1e-3, atol=1e-4)
    _close(ppl, ref_ppl, rtol=1e-3)
    _close(out, ref_out, rtol=1e-3, atol=1e-4)


def test_seq2seq_attention_teacher_forcing(rng):
    reference_enc, ours_enc = _pair("EncoderRNN", 7, 6)
    reference_dec, ours_dec = _pair("AttnDecoderRNN", 6, 7, 4)
    inputs = rng.integers(1, 7, (2, 5))
    targets = rng.integers(1, 7, (2, 4))
    ref_losses, ref_decoded, ref_attn = ref.seq2seq_train(reference_enc, reference_dec,
                                                          inputs, targets)
    losses, decoded, attn = port.seq2seq_train(ours_enc, ours_dec, inputs, targets)
    _close(losses, ref_losses, rtol=1e-3, atol=1e-4)
    assert decoded == ref_decoded
    _close(attn, ref_attn, rtol=1e-3, atol=1e-4)


def test_spatial_transformer(rng):
    reference, ours = _pair("STNet")
    images = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    labels = np.array([0, 2])
    ref_losses, ref_warped = ref.stn_train(reference, images, labels)
    losses, warped = port.stn_train(ours, images, labels)
    _close(losses, ref_losses)
    _close(warped, ref_warped, rtol=1e-3, atol=1e-4)


def test_super_resolution_pixel_shuffle(rng):
    reference, ours = _pair("SuperResolutionNet")
    low = rng.uniform(0, 1, (2, 1, 6, 6)).astype(np.float32)
    high = rng.uniform(0, 1, (2, 1, 12, 12)).astype(np.float32)
    _close(port.super_resolution_train(ours, low, high),
           ref.super_resolution_train(reference, low, high), rtol=1e-4)


def test_siamese_triplet_and_similarities(rng):
    reference, ours = _pair("SiameseNet")
    a, p, n = (rng.standard_normal((5, 6)).astype(np.float32) for _ in range(3))
    for got, want in zip(port.siamese_train(ours, a, p, n), ref.siamese_train(reference, a, p, n)):
        _close(got, want, rtol=1e-3, atol=1e-5)


def test_time_sequence_lstmcell_lbfgs(rng):
    reference, ours = _pair("Sequence")
    t = np.arange(7)[None, :] + rng.integers(-4, 4, (2, 1))
    data = np.sin(t / 2.0).astype(np.float64)
    ref_losses, ref_pred = ref.time_sequence_train(reference, data)
    losses, pred = port.time_sequence_train(ours, data)
    _close(losses, ref_losses, rtol=1e-6, atol=1e-9)
    _close(pred, ref_pred, rtol=1e-6, atol=1e-9)


def test_reinforce_categorical_policy_gradient(rng):
    reference, ours = _pair("Policy")
    states = rng.standard_normal((6, 4)).astype(np.float32)
    actions = rng.integers(0, 2, 6).tolist()
    rewards = [1.0] * 6
    ref_loss, ref_entropy = ref.reinforce_episode(reference, states, actions, rewards)
    loss, entropy = port.reinforce_episode(ours, states, actions, rewards)
    _close(loss, ref_loss, rtol=1e-4, atol=1e-5)
    _close(entropy, ref_entropy, rtol=1e-4, atol=1e-5)


def test_dqn_optimize_model_and_soft_update(rng):
    reference, ours = _pair("DQN")
    reference_target, ours_target = _pair("DQN")
    transitions = [(rng.standard_normal(4).astype(np.float32), int(rng.integers(0, 2)),
                    None if i % 3 == 2 else rng.standard_normal(4).astype(np.float32),
                    1.0) for i in range(6)]
    ref_log, ref_target, ref_eps = ref.dqn_optimize(reference, reference_target, transitions)
    log, target, eps = port.dqn_optimize(ours, ours_target, transitions)
    _close(log, ref_log, rtol=1e-4, atol=1e-5)
    _close(target, ref_target, rtol=1e-5, atol=1e-6)
    assert eps == ref_eps


def test_fgsm_adversarial_examples(rng):
    reference, ours = _pair("MnistNet")
    images = rng.standard_normal((3, 1, 10, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 3).tolist()
    ref_results = ref.fgsm_test(reference, images, labels)
    results = port.fgsm_test(ours, images, labels)
    for (eps, acc, examples), (ref_eps, ref_acc, ref_examples) in zip(results, ref_results):
        assert eps == ref_eps and acc == ref_acc
        for (init, final, total), (ref_init, ref_final, ref_total) in zip(examples,
                                                                          ref_examples):
            assert (init, final) == (ref_init, ref_final)
            assert total == pytest.approx(ref_total, rel=1e-4, abs=1e-3)
