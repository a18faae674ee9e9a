"""tests/compat/bert_port.py (HuggingFace-style BERT) run with torch and with `torch`
imported as ember, same weights: masked-LM logits and loss, a training step with
gradient checkpointing (gradients, AdamW with no-decay groups, LambdaLR), bfloat16
inference."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
import bert_port as reference  # noqa: E402
from porting import copy_state_dict, torch_as_ember  # noqa: E402

with torch_as_ember("bert_port") as _ported:
    ported = _ported["bert_port"]


def _pair(**config):
    settings = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **config)
    torch.manual_seed(0)
    ref = reference.BertForMaskedLM(reference.Config(**settings))
    port = ported.BertForMaskedLM(ported.Config(**settings))
    copy_state_dict(ref, port)
    return ref, port


def _batch():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, (2, 10))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    labels = np.where(rng.random(ids.shape) < 0.3, ids, -100)
    return ids, mask, labels


def _step(lib, model, ids, mask, labels):
    no_decay = ["bias", "LayerNorm.weight"]
    groups = [{"params": [p for n, p in model.named_parameters()
                          if not any(nd in n for nd in no_decay)], "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters()
                          if any(nd in n for nd in no_decay)], "weight_decay": 0.0}]
    opt = lib.optim.AdamW(groups, lr=5e-3)
    sched = lib.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 2))
    model.train()
    losses = []
    for _ in range(2):
        loss, _ = model(lib.tensor(ids), attention_mask=lib.tensor(mask),
                        labels=lib.tensor(labels))
        loss.backward()
        lib.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses, sched.get_last_lr(), model.embeddings.word_embeddings.weight.detach().numpy()


def test_logits_match_torch_and_the_tied_weights_stay_tied():
    ref, port = _pair()
    ids, mask, labels = _batch()
    ref.eval()
    port.eval()
    with torch.no_grad():
        want_loss, want = ref(torch.tensor(ids), torch.tensor(mask), labels=torch.tensor(labels))
    got_loss, got = port(ember.tensor(ids), ember.tensor(mask), labels=ember.tensor(labels))
    np.testing.assert_allclose(got.detach().numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    assert abs(got_loss.item() - want_loss.item()) < 1e-5
    assert port.decoder.weight is port.embeddings.word_embeddings.weight
    assert port.decoder.bias is port.bias
    assert sorted(port.state_dict()) == sorted(ref.state_dict())


def test_checkpointed_training_steps_match_torch():
    ref, port = _pair(gradient_checkpointing=True)
    import torch.utils.checkpoint  # noqa: F401
    want = _step(torch, ref, *_batch())
    got = _step(ember, port, *_batch())
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4)
    assert got[1] == want[1]
    np.testing.assert_allclose(got[2], want[2], rtol=1e-3, atol=1e-5)


def test_bfloat16_inference_runs_in_bfloat16():
    _, port = _pair()
    port = port.to(ember.bfloat16).eval()
    ids, mask, _ = _batch()
    with ember.no_grad():
        _, logits = port(ember.tensor(ids), ember.tensor(mask))
    assert logits.dtype == ember.bfloat16 and np.isfinite(logits.float().numpy()).all()
