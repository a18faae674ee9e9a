"""Hugging Face transformers' own model definitions under ember, against torch.

Every architecture of hf_cases.CASES is built twice from transformers' source (torch;
`torch` aliased to ember), with the same weights, from a tiny random config. Compared:
the eval forward's every output tensor (logits, hidden states, pooled outputs, the
key/value cache), the compiled forward (ember.compile), a training step's loss and
every parameter's gradient, greedy `generate()` for the causal and seq2seq LMs, and
the attention implementations ("eager", "sdpa" (the default), "flex_attention").
docs/compat.md ("Hugging Face transformers") has the table.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import ember  # noqa: E402
import hf_cases as H  # noqa: E402
from porting import copy_state_dict, torch_as_ember  # noqa: E402


def _forward(ref, port, arrays):
    with torch.no_grad():
        want = ref(**H.as_torch(arrays))
    with ember.no_grad():
        got = port(**H.as_ember(arrays))
    return got, want


@pytest.mark.parametrize("name", list(H.CASES))
def test_eval_forward_matches_torch(name):
    ref, port = H.build(name)
    got, want = _forward(ref, port, H.inputs(name))
    assert type(got).__name__ == type(want).__name__
    H.assert_outputs_match(got, want)


# a decoder with its returned cache, an encoder-decoder, a vision and an audio model
@pytest.mark.parametrize("name", ["gpt2", "bart", "vit", "whisper"])
def test_compiled_forward_matches_torch(name):
    ref, port = H.build(name)
    arrays = H.inputs(name)
    with torch.no_grad():
        want = ref(**H.as_torch(arrays))
    with ember.no_grad():
        got = ember.compile(port)(**H.as_ember(arrays))
    assert type(got).__name__ == type(want).__name__
    H.assert_outputs_match(got, want)


def _labels(name, arrays):
    """(inputs, labels) of a loss-computing forward."""
    kind = H.CASES[name].inputs
    if kind == "image":
        return arrays, np.array([0, 1])
    if kind == "seq2seq":
        return dict(input_ids=arrays["input_ids"]), arrays["decoder_input_ids"]
    return arrays, arrays["input_ids"]


def _without_dropout(model) -> None:
    """Dropout probabilities set to 0 (nn.Dropout modules and the float rates attention
    layers pass to F.dropout): the two libraries draw different random masks."""
    for module in model.modules():
        for key, value in vars(module).items():
            if "dropout" in key.lower() and isinstance(value, float):
                setattr(module, key, 0.0)
        if type(module).__name__ == "Dropout":
            module.p = 0.0


@pytest.mark.parametrize("name", [n for n, c in H.CASES.items() if c.loss_model])
def test_training_step_loss_and_gradients_match_torch(name):
    ref, port = H.build(name, H.CASES[name].loss_model)
    ref.train(), port.train()
    for model in (ref, port):
        _without_dropout(model)
    arrays, labels = _labels(name, H.inputs(name))
    want = ref(**H.as_torch(arrays), labels=torch.tensor(labels)).loss
    got = port(**H.as_ember(arrays), labels=ember.tensor(labels)).loss
    want.backward()
    got.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    grads = {key: p.grad for key, p in port.named_parameters()}
    for key, p in ref.named_parameters():
        if p.grad is None:
            assert grads[key] is None, key
            continue
        np.testing.assert_allclose(grads[key].numpy(), p.grad.numpy(), rtol=1e-3,
                                   atol=1e-5, err_msg=key)


@pytest.mark.parametrize("name", ["gpt2", "llama", "mistral", "qwen2", "gemma2", "mixtral",
                                  "bloom", "mamba", "t5", "bart"])
def test_greedy_generate_matches_torch(name):
    ref, port = H.build(name)
    arrays = H.inputs(name)
    ids = arrays["input_ids"]
    options = dict(max_new_tokens=6, do_sample=False)
    if "attention_mask" in arrays:
        options["attention_mask"] = arrays["attention_mask"]
    want = ref.generate(torch.tensor(ids), **{k: torch.tensor(v) if isinstance(
        v, np.ndarray) else v for k, v in options.items()})
    got = port.generate(ember.tensor(ids), **{k: ember.tensor(v) if isinstance(
        v, np.ndarray) else v for k, v in options.items()})
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("name,implementation", [("bert", "eager"), ("llama", "eager"),
                                                 ("llama", "flex_attention"),
                                                 ("bert", "flex_attention")])
def test_attention_implementations_match_torch(name, implementation):
    """"eager" on both sides; ember's flex_attention against torch's sdpa (torch's
    flex_attention wants torch.compile on the CPU)."""
    case = H.CASES[name]
    torch_implementation = "eager" if implementation == "eager" else "sdpa"
    torch.manual_seed(0)
    ref = getattr(H.reference, case.model)(getattr(H.reference, case.config)(
        **case.kwargs, attn_implementation=torch_implementation)).eval()
    with torch_as_ember("transformers", hidden=H.HIDDEN):
        port = getattr(H.ported, case.model)(getattr(H.ported, case.config)(
            **case.kwargs, attn_implementation=implementation)).eval()
    assert port.config._attn_implementation == implementation
    copy_state_dict(ref, port)
    got, want = _forward(ref, port, H.inputs(name))
    H.assert_outputs_match(got, want)


def test_beam_search_generate_matches_torch():
    ref, port = H.build("llama")
    ids = H.inputs("llama")["input_ids"]
    options = dict(max_new_tokens=5, num_beams=3, do_sample=False)
    want = ref.generate(torch.tensor(ids), **options)
    got = port.generate(ember.tensor(ids), **options)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_attention_weights_and_hidden_states_outputs_match_torch():
    case = H.CASES["bert"]
    torch.manual_seed(0)
    ref = H.reference.BertModel(H.reference.BertConfig(
        **case.kwargs, attn_implementation="eager")).eval()
    with torch_as_ember("transformers", hidden=H.HIDDEN):
        port = H.ported.BertModel(H.ported.BertConfig(
            **case.kwargs, attn_implementation="eager")).eval()
    copy_state_dict(ref, port)
    arrays = H.inputs("bert")
    flags = dict(output_hidden_states=True, output_attentions=True)
    with torch.no_grad():
        want = ref(**H.as_torch(arrays), **flags)
    with ember.no_grad():
        got = port(**H.as_ember(arrays), **flags)
    assert len(got.attentions) == len(want.attentions) == 2
    H.assert_outputs_match(got, want)


def test_gradient_checkpointing_training_step_matches_torch():
    """gradient_checkpointing_enable(): checkpointed layers and the hook that makes the
    input embeddings' output require grad."""
    ref, port = H.build("llama")
    ids = H.inputs("llama")["input_ids"]
    for model in (ref, port):
        model.train()
        model.gradient_checkpointing_enable()
    want = ref(input_ids=torch.tensor(ids), labels=torch.tensor(ids)).loss
    got = port(input_ids=ember.tensor(ids), labels=ember.tensor(ids)).loss
    want.backward()
    got.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    grads = dict(port.named_parameters())
    for key, p in ref.named_parameters():
        np.testing.assert_allclose(grads[key].grad.numpy(), p.grad.numpy(), rtol=1e-3,
                                   atol=1e-5, err_msg=key)


def test_auto_classes_build_ember_models_from_configs():
    with torch_as_ember("transformers", hidden=H.HIDDEN):
        causal = H.ported.AutoModelForCausalLM.from_config(
            H.ported.LlamaConfig(**H.CASES["llama"].kwargs))
        encoder = H.ported.AutoModel.from_config(H.ported.BertConfig(**H.CASES["bert"].kwargs))
    assert type(causal).__name__ == "LlamaForCausalLM" and isinstance(causal, ember.nn.Module)
    assert type(encoder).__name__ == "BertModel"
    torch.manual_seed(0)
    reference = H.reference.AutoModelForCausalLM.from_config(
        H.reference.LlamaConfig(**H.CASES["llama"].kwargs))
    assert causal.num_parameters() == reference.num_parameters()


def test_save_pretrained_and_from_pretrained_round_trip(tmp_path):
    """An ember model saved with save_pretrained (safetensors) loads back equal, and a
    checkpoint torch's model saved loads into the ember class."""
    ref, port = H.build("llama")
    ids = H.inputs("llama")["input_ids"]
    port.save_pretrained(tmp_path / "ember")
    ref.save_pretrained(tmp_path / "torch")
    with torch_as_ember("transformers", hidden=H.HIDDEN):
        again = H.ported.LlamaForCausalLM.from_pretrained(tmp_path / "ember").eval()
        from_torch = H.ported.LlamaForCausalLM.from_pretrained(tmp_path / "torch").eval()
    with ember.no_grad():
        want = port(input_ids=ember.tensor(ids)).logits.numpy()
        np.testing.assert_array_equal(again(input_ids=ember.tensor(ids)).logits.numpy(), want)
        np.testing.assert_allclose(from_torch(input_ids=ember.tensor(ids)).logits.numpy(),
                                   want, rtol=1e-5, atol=1e-6)
