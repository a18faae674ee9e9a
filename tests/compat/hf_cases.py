"""Hugging Face transformers' own model definitions, built twice: against torch and with
`torch` aliased to ember (porting.torch_as_ember), from tiny random configs (no
downloads), with the same weights. Used by test_hf_transformers.py.

Each case names a config class, its keyword arguments, a model class and the inputs of
one forward pass. torch extension packages (torchao, torchvision, torchaudio) are
hidden from the ember-bound transformers: they are built against torch, and an
environment with ember in place of torch has none of them.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

import ember
from domain_oracles import import_torchvision
from porting import copy_state_dict, torch_as_ember

import_torchvision()     # the real transformers imports torchvision where installed
import transformers as reference  # noqa: E402

HIDDEN = ("torchao", "torchvision", "torchaudio")

with torch_as_ember("transformers", hidden=HIDDEN) as _ported:
    ported = _ported["transformers"]

VOCAB = 99
TEXT = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=37)
DECODER = dict(TEXT, num_key_value_heads=1, max_position_embeddings=64)
SEQ2SEQ = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
               encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=37,
               decoder_ffn_dim=37, max_position_embeddings=64)
VISION_TEXT = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                   num_attention_heads=2, intermediate_size=37)
VISION = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
              num_attention_heads=2, intermediate_size=37)


@dataclasses.dataclass
class Case:
    config: str
    kwargs: dict
    model: str
    inputs: str                     # a key of INPUTS
    causal_lm: bool = False         # generate() is compared too
    loss_model: str | None = None   # the class whose forward(labels=...) returns a loss


def _ids(rng, shape=(2, 7)):
    return rng.integers(3, VOCAB, shape)


INPUTS = {
    "text": lambda rng: dict(input_ids=_ids(rng),
                             attention_mask=np.array([[1] * 7, [1] * 5 + [0] * 2])),
    "ids": lambda rng: dict(input_ids=_ids(rng)),
    "seq2seq": lambda rng: dict(input_ids=_ids(rng), decoder_input_ids=_ids(rng, (2, 5))),
    "image": lambda rng: dict(pixel_values=rng.standard_normal((2, 3, 32, 32)).astype(
        np.float32)),
    "clip": lambda rng: dict(input_ids=_ids(rng), pixel_values=rng.standard_normal(
        (2, 3, 32, 32)).astype(np.float32)),
    "whisper": lambda rng: dict(input_features=rng.standard_normal((2, 16, 60)).astype(
        np.float32), decoder_input_ids=_ids(rng, (2, 5))),
    "audio": lambda rng: dict(input_values=rng.standard_normal((2, 1600)).astype(
        np.float32)),
}

CASES = {
    "bert": Case("BertConfig", TEXT, "BertModel", "text", loss_model="BertForMaskedLM"),
    "roberta": Case("RobertaConfig", dict(TEXT, pad_token_id=1), "RobertaModel", "text"),
    "distilbert": Case("DistilBertConfig", dict(vocab_size=VOCAB, dim=32, n_layers=2,
                                                n_heads=2, hidden_dim=37),
                       "DistilBertModel", "text"),
    "gpt2": Case("GPT2Config", dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2,
                                    n_positions=64, bos_token_id=1, eos_token_id=2),
                 "GPT2LMHeadModel", "ids", causal_lm=True, loss_model="GPT2LMHeadModel"),
    "llama": Case("LlamaConfig", DECODER, "LlamaForCausalLM", "text", causal_lm=True,
                  loss_model="LlamaForCausalLM"),
    "mistral": Case("MistralConfig", dict(DECODER, sliding_window=4), "MistralForCausalLM",
                    "ids", causal_lm=True),
    "qwen2": Case("Qwen2Config", DECODER, "Qwen2ForCausalLM", "ids", causal_lm=True),
    "t5": Case("T5Config", dict(vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=37,
                                num_layers=2, num_heads=2, decoder_start_token_id=0),
               "T5ForConditionalGeneration", "seq2seq", loss_model="T5ForConditionalGeneration"),
    "bart": Case("BartConfig", SEQ2SEQ, "BartForConditionalGeneration", "seq2seq"),
    "vit": Case("ViTConfig", VISION, "ViTModel", "image",
                loss_model="ViTForImageClassification"),
    "clip": Case("CLIPConfig", dict(text_config=VISION_TEXT, vision_config=VISION,
                                    projection_dim=16), "CLIPModel", "clip"),
    "whisper": Case("WhisperConfig", dict(SEQ2SEQ, num_mel_bins=16, max_source_positions=30,
                                          max_target_positions=40, pad_token_id=1,
                                          bos_token_id=1, eos_token_id=2,
                                          decoder_start_token_id=1, suppress_tokens=None,
                                          begin_suppress_tokens=None), "WhisperModel", "whisper"),
    "wav2vec2": Case("Wav2Vec2Config", dict(TEXT, conv_dim=(32, 32, 32),
                                            conv_stride=(4, 4, 4), conv_kernel=(8, 8, 8),
                                            num_conv_pos_embeddings=16,
                                            num_conv_pos_embedding_groups=2),
                     "Wav2Vec2Model", "audio"),
    "convnext": Case("ConvNextConfig", dict(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                                            image_size=32), "ConvNextModel", "image"),
    "swin": Case("SwinConfig", dict(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1],
                                    num_heads=[2, 2], window_size=4), "SwinModel", "image"),
    # beyond the list the work started from
    "albert": Case("AlbertConfig", dict(TEXT, embedding_size=16), "AlbertModel", "text"),
    "electra": Case("ElectraConfig", dict(TEXT, embedding_size=16), "ElectraModel", "text"),
    "deberta_v2": Case("DebertaV2Config", TEXT, "DebertaV2Model", "text"),
    "opt": Case("OPTConfig", dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, ffn_dim=37, word_embed_proj_dim=32,
                                  max_position_embeddings=64), "OPTForCausalLM", "ids",
                causal_lm=True),
    "gpt_neox": Case("GPTNeoXConfig", dict(TEXT, max_position_embeddings=64),
                     "GPTNeoXForCausalLM", "ids", causal_lm=True),
    "phi": Case("PhiConfig", DECODER, "PhiForCausalLM", "ids", causal_lm=True),
    "phi3": Case("Phi3Config", dict(DECODER, pad_token_id=0), "Phi3ForCausalLM", "ids",
                 causal_lm=True),
    "gemma": Case("GemmaConfig", dict(DECODER, head_dim=16), "GemmaForCausalLM", "ids",
                  causal_lm=True),
    "gemma2": Case("Gemma2Config", dict(DECODER, head_dim=16, sliding_window=4),
                   "Gemma2ForCausalLM", "ids", causal_lm=True),
    "qwen3": Case("Qwen3Config", dict(DECODER, head_dim=16), "Qwen3ForCausalLM", "ids",
                  causal_lm=True),
    # a mixture of experts (torch's grouped_mm wants 16-byte row strides: 48 floats)
    "mixtral": Case("MixtralConfig", dict(DECODER, intermediate_size=48, num_local_experts=4,
                                          num_experts_per_tok=2), "MixtralForCausalLM",
                    "ids", causal_lm=True),
    "falcon": Case("FalconConfig", dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2), "FalconForCausalLM", "ids",
                   causal_lm=True),
    "mbart": Case("MBartConfig", SEQ2SEQ, "MBartForConditionalGeneration", "seq2seq"),
    "pegasus": Case("PegasusConfig", SEQ2SEQ, "PegasusForConditionalGeneration", "seq2seq"),
    "deit": Case("DeiTConfig", VISION, "DeiTModel", "image"),
    "beit": Case("BeitConfig", VISION, "BeitModel", "image"),
    "resnet": Case("ResNetConfig", dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]),
                   "ResNetModel", "image"),
    "segformer": Case("SegformerConfig", dict(num_encoder_blocks=2, depths=[1, 1],
                                              sr_ratios=[2, 1], hidden_sizes=[8, 16],
                                              num_attention_heads=[1, 2],
                                              decoder_hidden_size=16, strides=[4, 2],
                                              patch_sizes=[7, 3]),
                      "SegformerForSemanticSegmentation", "image"),
    "mobilevit": Case("MobileViTConfig", dict(image_size=32, hidden_sizes=[16, 24, 32],
                                              neck_hidden_sizes=[8, 8, 16, 16, 24, 24, 32]),
                      "MobileViTModel", "image"),
    "dinov2": Case("Dinov2Config", VISION, "Dinov2Model", "image"),
    "siglip": Case("SiglipConfig", dict(text_config=VISION_TEXT, vision_config=VISION),
                   "SiglipModel", "clip"),
    "bloom": Case("BloomConfig", dict(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=2),
                  "BloomForCausalLM", "text", causal_lm=True),         # ALiBi
    "gptj": Case("GPTJConfig", dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2,
                                    rotary_dim=8, n_positions=64), "GPTJForCausalLM", "ids",
                 causal_lm=True),
    "qwen2_moe": Case("Qwen2MoeConfig", dict(DECODER, intermediate_size=48,
                                             moe_intermediate_size=16,
                                             shared_expert_intermediate_size=16,
                                             num_experts=4, num_experts_per_tok=2),
                      "Qwen2MoeForCausalLM", "ids", causal_lm=True),
    # a state-space model (selective scan, its own cache)
    "mamba": Case("MambaConfig", dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                      state_size=4, intermediate_size=64, conv_kernel=4,
                                      time_step_rank=4), "MambaForCausalLM", "ids",
                  causal_lm=True),
    "mobilebert": Case("MobileBertConfig", dict(TEXT, embedding_size=16,
                                                intra_bottleneck_size=16,
                                                true_hidden_size=16), "MobileBertModel", "text"),
    "funnel": Case("FunnelConfig", dict(vocab_size=VOCAB, d_model=32, n_head=2, d_head=16,
                                        d_inner=37, block_sizes=[1, 1]), "FunnelModel", "text"),
    "convnextv2": Case("ConvNextV2Config", dict(hidden_sizes=[8, 16, 32, 64],
                                                depths=[1, 1, 1, 1], image_size=32),
                       "ConvNextV2Model", "image"),
    "levit": Case("LevitConfig", dict(image_size=32, hidden_sizes=[16, 24, 32],
                                      num_attention_heads=[1, 2, 2], depths=[1, 1, 1],
                                      key_dim=[8, 8, 8]), "LevitModel", "image"),
    "hubert": Case("HubertConfig", dict(TEXT, conv_dim=(32, 32, 32), conv_stride=(4, 4, 4),
                                        conv_kernel=(8, 8, 8), num_conv_pos_embeddings=16,
                                        num_conv_pos_embedding_groups=2), "HubertModel",
                   "audio"),
}


def build(name: str, model_class: str | None = None):
    """(torch model, ember model) of case `name` in eval mode, the same weights."""
    case = CASES[name]
    model_class = model_class or case.model
    torch.manual_seed(0)
    ref = getattr(reference, model_class)(getattr(reference, case.config)(**case.kwargs))
    with torch_as_ember("transformers", hidden=HIDDEN):
        port = getattr(ported, model_class)(getattr(ported, case.config)(**case.kwargs))
    copy_state_dict(ref, port)
    return ref.eval(), port.eval()


def inputs(name: str, seed: int = 0) -> dict:
    return INPUTS[CASES[name].inputs](np.random.default_rng(seed))


def as_torch(arrays: dict) -> dict:
    return {key: torch.tensor(value) for key, value in arrays.items()}


def as_ember(arrays: dict) -> dict:
    return {key: ember.tensor(value) for key, value in arrays.items()}


def flat(output, prefix="out") -> dict:
    """Every tensor in a model output (ModelOutput fields, tuples, caches' key and value
    tensors), as NumPy arrays by path."""
    if hasattr(output, "detach") and hasattr(output, "numpy"):
        return {prefix: output.detach().float().numpy()}
    if hasattr(output, "layers") and hasattr(output, "get_seq_length"):      # a Cache
        return {f"{prefix}.layers[{i}].{part}": getattr(layer, part).detach().numpy()
                for i, layer in enumerate(output.layers) for part in ("keys", "values")
                if getattr(layer, part, None) is not None}
    if hasattr(output, "to_tuple") and hasattr(output, "keys"):              # ModelOutput
        return {k: v for key in output.keys() for k, v in flat(output[key],
                                                                f"{prefix}.{key}").items()}
    if isinstance(output, (tuple, list)):
        return {k: v for i, item in enumerate(output)
                for k, v in flat(item, f"{prefix}[{i}]").items()}
    return {}


def assert_outputs_match(got, want, rtol=1e-4, atol=2e-5):
    got, want = flat(got), flat(want)
    assert sorted(got) == sorted(want), f"outputs differ: {sorted(got)} != {sorted(want)}"
    assert want, "the model returned no tensors"
    for key in want:
        assert got[key].shape == want[key].shape, f"{key}: {got[key].shape} != " \
                                                  f"{want[key].shape}"
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=atol, err_msg=key)
