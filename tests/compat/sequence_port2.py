"""Sequence model code in plain PyTorch, in the style of the public repos: a Whisper-style
audio encoder / text decoder (Conv1d stem, GELU, sinusoidal positions, dtype-casting
LayerNorm / Linear / Conv1d subclasses, `F.scaled_dot_product_attention` with a causal
mask buffer and `is_causal`, a KV cache kept by forward hooks), a T5-style
encoder-decoder (RMS layer norm, bucketed relative position bias, cross attention,
past_key_values, a generate loop under `torch.no_grad` with top-k / multinomial
sampling from a seeded generator), and an LSTM seq2seq with `pack_padded_sequence`
(unsorted lengths), a bidirectional encoder and a masked Luong attention decoder."""
import math
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import (pack_padded_sequence, pad_packed_sequence, pack_sequence,
                                unpack_sequence, unpad_sequence)
from typing import Dict, Iterable, Optional


def W(*shape, seed=0):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def set_weights(model, scale=0.2):
    with torch.no_grad():
        for i, (n, p) in enumerate(sorted(model.state_dict().items())):
            if p.dtype.is_floating_point and n != "encoder.positional_embedding":
                p.copy_(W(*p.shape, seed=100 + i) * scale)


def grads(model):
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


# ---------------------------------------------------------------- Whisper-style
def sinusoids(length, channels, max_timescale=10000):
    assert channels % 2 == 0
    log_timescale_increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, np.newaxis] * inv_timescales[np.newaxis, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class LayerNorm(nn.LayerNorm):
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type(x.dtype)


class Linear(nn.Linear):
    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.to(x.dtype),
                        None if self.bias is None else self.bias.to(x.dtype))


class Conv1d(nn.Conv1d):
    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        return super()._conv_forward(x, weight.to(x.dtype),
                                     None if bias is None else bias.to(x.dtype))


class MultiHeadAttention(nn.Module):
    use_sdpa = True

    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = Linear(n_state, n_state)
        self.key = Linear(n_state, n_state, bias=False)
        self.value = Linear(n_state, n_state)
        self.out = Linear(n_state, n_state)

    def forward(self, x: Tensor, xa: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                kv_cache: Optional[dict] = None):
        q = self.query(x)
        if kv_cache is None or xa is None or self.key not in kv_cache:
            # hooks, if installed (the KV cache), prepend the cached keys and values
            k = self.key(x if xa is None else xa)
            v = self.value(x if xa is None else xa)
        else:
            k = kv_cache[self.key]
            v = kv_cache[self.value]
        wv, qk = self.qkv_attention(q, k, v, mask)
        return self.out(wv), qk

    def qkv_attention(self, q, k, v, mask=None):
        n_batch, n_ctx, n_state = q.shape
        scale = (n_state // self.n_head) ** -0.25
        q = q.view(*q.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        k = k.view(*k.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        v = v.view(*v.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        if self.use_sdpa:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=mask is not None and n_ctx > 1)
            out = a.permute(0, 2, 1, 3).flatten(start_dim=2)
            qk = None
        else:
            qk = (q * scale) @ (k * scale).transpose(-1, -2)
            if mask is not None:
                qk = qk + mask[:n_ctx, :n_ctx]
            qk = qk.float()
            w = F.softmax(qk, dim=-1).to(q.dtype)
            out = (w @ v).permute(0, 2, 1, 3).flatten(start_dim=2)
            qk = qk.detach()
        return out, qk


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int, cross_attention: bool = False):
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = LayerNorm(n_state)
        self.cross_attn = MultiHeadAttention(n_state, n_head) if cross_attention else None
        self.cross_attn_ln = LayerNorm(n_state) if cross_attention else None
        n_mlp = n_state * 4
        self.mlp = nn.Sequential(Linear(n_state, n_mlp), nn.GELU(), Linear(n_mlp, n_state))
        self.mlp_ln = LayerNorm(n_state)

    def forward(self, x, xa=None, mask=None, kv_cache=None):
        x = x + self.attn(self.attn_ln(x), mask=mask, kv_cache=kv_cache)[0]
        if self.cross_attn:
            x = x + self.cross_attn(self.cross_attn_ln(x), xa, kv_cache=kv_cache)[0]
        x = x + self.mlp(self.mlp_ln(x))
        return x


class AudioEncoder(nn.Module):
    def __init__(self, n_mels, n_ctx, n_state, n_head, n_layer):
        super().__init__()
        self.conv1 = Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_ctx, n_state))
        self.blocks: Iterable[ResidualAttentionBlock] = nn.ModuleList(
            [ResidualAttentionBlock(n_state, n_head) for _ in range(n_layer)])
        self.ln_post = LayerNorm(n_state)

    def forward(self, x: Tensor):
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = x.permute(0, 2, 1)
        assert x.shape[1:] == self.positional_embedding.shape, "incorrect audio shape"
        x = (x + self.positional_embedding).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


class TextDecoder(nn.Module):
    def __init__(self, n_vocab, n_ctx, n_state, n_head, n_layer):
        super().__init__()
        self.token_embedding = nn.Embedding(n_vocab, n_state)
        self.positional_embedding = nn.Parameter(torch.empty(n_ctx, n_state))
        self.blocks: Iterable[ResidualAttentionBlock] = nn.ModuleList(
            [ResidualAttentionBlock(n_state, n_head, cross_attention=True)
             for _ in range(n_layer)])
        self.ln = LayerNorm(n_state)
        mask = torch.empty(n_ctx, n_ctx).fill_(-np.inf).triu_(1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor, xa: Tensor, kv_cache: Optional[dict] = None):
        offset = next(iter(kv_cache.values())).shape[1] if kv_cache else 0
        x = self.token_embedding(x) + self.positional_embedding[offset: offset + x.shape[-1]]
        x = x.to(xa.dtype)
        for block in self.blocks:
            x = block(x, xa, mask=self.mask, kv_cache=kv_cache)
        x = self.ln(x)
        return (x @ torch.transpose(self.token_embedding.weight.to(x.dtype), 0, 1)).float()


class Whisper(nn.Module):
    def __init__(self, n_mels=8, n_audio_ctx=6, n_state=16, n_head=2, n_layer=2, n_vocab=20,
                 n_text_ctx=8):
        super().__init__()
        self.encoder = AudioEncoder(n_mels, n_audio_ctx, n_state, n_head, n_layer)
        self.decoder = TextDecoder(n_vocab, n_text_ctx, n_state, n_head, n_layer)

    def forward(self, mel, tokens):
        return self.decoder(tokens, self.encoder(mel))

    def install_kv_cache_hooks(self, cache: Optional[dict] = None):
        cache = {**cache} if cache is not None else {}
        hooks = []

        def save_to_cache(module, _, output):
            if module not in cache or output.shape[1] > self.decoder.positional_embedding.shape[0]:
                cache[module] = output       # first token, or cross-attention keys
            else:
                cache[module] = torch.cat([cache[module], output], dim=1).detach()
            return cache[module]

        def install_hooks(layer: nn.Module):
            if isinstance(layer, MultiHeadAttention):
                hooks.append(layer.key.register_forward_hook(save_to_cache))
                hooks.append(layer.value.register_forward_hook(save_to_cache))

        self.decoder.apply(install_hooks)
        return cache, hooks


def make_whisper():
    model = Whisper()
    set_weights(model, 0.3)
    mel = W(2, 8, 12, seed=1)
    tokens = torch.tensor([[1, 5, 7, 3], [1, 2, 9, 9]])
    return model, (mel, tokens)


@torch.no_grad()
def whisper_greedy(model, mel, n=4):
    audio = model.encoder(mel)
    tokens = torch.full((mel.shape[0], 1), 1, dtype=torch.long)
    cache, hooks = model.install_kv_cache_hooks()
    try:
        for i in range(n):
            step = tokens if i == 0 else tokens[:, -1:]
            logits = model.decoder(step, audio, kv_cache=cache)[:, -1]
            logits[:, 0] = -np.inf                   # suppress a token, as suppress_tokens does
            tokens = torch.cat([tokens, logits.argmax(dim=-1, keepdim=True)], dim=-1)
    finally:
        for hook in hooks:
            hook.remove()
    return tokens


def case_whisper_forward_grads_and_cached_decoding():
    model, (mel, tokens) = make_whisper()
    logits = model(mel, tokens)
    F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)).backward()
    g = grads(model)
    MultiHeadAttention.use_sdpa = False
    try:
        eager_logits = model(mel, tokens)
    finally:
        MultiHeadAttention.use_sdpa = True
    model.eval()
    greedy = whisper_greedy(model, mel)
    # uncached decoding gives the same tokens
    audio = model.encoder(mel)
    uncached = greedy[:, :1]
    with torch.no_grad():
        for _ in range(4):
            step_logits = model.decoder(uncached, audio)[:, -1]
            step_logits[:, 0] = -np.inf
            uncached = torch.cat([uncached, step_logits.argmax(-1, keepdim=True)], -1)
    return [logits, eager_logits, greedy, uncached, g["encoder.conv1.weight"],
            g["decoder.positional_embedding"], g["decoder.blocks.1.cross_attn.key.weight"],
            sorted(model.state_dict()) == sorted(n for n, _ in model.named_parameters()) + [],
            "decoder.mask" in model.state_dict(), sinusoids(5, 6)]


def case_sdpa_masks():
    q, k, v = W(2, 2, 5, 4, seed=1), W(2, 2, 7, 4, seed=2), W(2, 2, 7, 4, seed=3)
    lengths = torch.tensor([7, 4])
    key_padding = torch.arange(7)[None, :] < lengths[:, None]          # True = attend
    bool_mask = key_padding[:, None, None, :]
    float_mask = torch.zeros(2, 1, 1, 7).masked_fill(~bool_mask, float("-inf"))
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=bool_mask)
    b = F.scaled_dot_product_attention(q, k, v, attn_mask=float_mask, scale=0.3)
    qs = W(2, 2, 5, 4, seed=4).requires_grad_()
    c = F.scaled_dot_product_attention(qs, qs, qs, is_causal=True, dropout_p=0.0)
    c.sum().backward()
    causal = torch.ones(5, 5, dtype=torch.bool).tril(diagonal=0)
    d = F.scaled_dot_product_attention(qs, qs, qs, attn_mask=causal)
    # grouped-query attention: 4 query heads share 2 key/value heads
    kv = W(2, 2, 6, 4, seed=5).requires_grad_()
    qg = W(2, 4, 6, 4, seed=6)
    e = F.scaled_dot_product_attention(qg, kv, kv * 2, is_causal=True, enable_gqa=True)
    e.sum().backward()
    return [a, b, c, d, qs.grad, e, kv.grad]


# ---------------------------------------------------------------- T5-style
class T5LayerNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        variance = hidden_states.to(torch.float32).pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        if self.weight.dtype in [torch.float16, torch.bfloat16]:
            hidden_states = hidden_states.to(self.weight.dtype)
        return self.weight * hidden_states


class T5Config:
    d_model = 16
    d_kv = 4
    d_ff = 32
    num_heads = 4
    num_layers = 2
    vocab_size = 24
    relative_attention_num_buckets = 8
    relative_attention_max_distance = 16
    dropout_rate = 0.1
    layer_norm_epsilon = 1e-6
    pad_token_id = 0
    decoder_start_token_id = 0
    eos_token_id = 1


class T5Attention(nn.Module):
    def __init__(self, config, has_relative_attention_bias=False, is_decoder=False):
        super().__init__()
        self.is_decoder = is_decoder
        self.has_relative_attention_bias = has_relative_attention_bias
        self.relative_attention_num_buckets = config.relative_attention_num_buckets
        self.relative_attention_max_distance = config.relative_attention_max_distance
        self.d_model = config.d_model
        self.key_value_proj_dim = config.d_kv
        self.n_heads = config.num_heads
        self.dropout = config.dropout_rate
        self.inner_dim = self.n_heads * self.key_value_proj_dim
        self.q = nn.Linear(self.d_model, self.inner_dim, bias=False)
        self.k = nn.Linear(self.d_model, self.inner_dim, bias=False)
        self.v = nn.Linear(self.d_model, self.inner_dim, bias=False)
        self.o = nn.Linear(self.inner_dim, self.d_model, bias=False)
        if self.has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(self.relative_attention_num_buckets, self.n_heads)

    @staticmethod
    def _relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
        relative_buckets = 0
        if bidirectional:
            num_buckets //= 2
            relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
            relative_position = torch.abs(relative_position)
        else:
            relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
        max_exact = num_buckets // 2
        is_small = relative_position < max_exact
        relative_position_if_large = max_exact + (
            torch.log(relative_position.float() / max_exact)
            / math.log(max_distance / max_exact)
            * (num_buckets - max_exact)
        ).to(torch.long)
        relative_position_if_large = torch.min(
            relative_position_if_large, torch.full_like(relative_position_if_large, num_buckets - 1))
        relative_buckets += torch.where(is_small, relative_position, relative_position_if_large)
        return relative_buckets

    def compute_bias(self, query_length, key_length, device=None):
        if device is None:
            device = self.relative_attention_bias.weight.device
        context_position = torch.arange(query_length, dtype=torch.long, device=device)[:, None]
        memory_position = torch.arange(key_length, dtype=torch.long, device=device)[None, :]
        relative_position = memory_position - context_position
        relative_position_bucket = self._relative_position_bucket(
            relative_position, bidirectional=(not self.is_decoder),
            num_buckets=self.relative_attention_num_buckets,
            max_distance=self.relative_attention_max_distance)
        values = self.relative_attention_bias(relative_position_bucket)
        values = values.permute([2, 0, 1]).unsqueeze(0)
        return values

    def forward(self, hidden_states, mask=None, key_value_states=None, position_bias=None,
                past_key_value=None, use_cache=False):
        batch_size, seq_length = hidden_states.shape[:2]
        real_seq_length = seq_length
        if past_key_value is not None:
            real_seq_length += past_key_value[0].shape[2] if key_value_states is None else 0
        key_length = real_seq_length if key_value_states is None else key_value_states.shape[1]

        def shape(states):
            return states.view(batch_size, -1, self.n_heads, self.key_value_proj_dim).transpose(1, 2)

        def unshape(states):
            return states.transpose(1, 2).contiguous().view(batch_size, -1, self.inner_dim)

        def project(hidden_states, proj_layer, key_value_states, past_key_value):
            if key_value_states is None:
                hidden_states = shape(proj_layer(hidden_states))
            elif past_key_value is None:
                hidden_states = shape(proj_layer(key_value_states))
            if past_key_value is not None:
                if key_value_states is None:
                    hidden_states = torch.cat([past_key_value, hidden_states], dim=2)
                else:
                    hidden_states = past_key_value
            return hidden_states

        query_states = shape(self.q(hidden_states))
        key_states = project(hidden_states, self.k, key_value_states,
                             past_key_value[0] if past_key_value is not None else None)
        value_states = project(hidden_states, self.v, key_value_states,
                               past_key_value[1] if past_key_value is not None else None)
        scores = torch.matmul(query_states, key_states.transpose(3, 2))
        if position_bias is None:
            if not self.has_relative_attention_bias:
                position_bias = torch.zeros((1, self.n_heads, real_seq_length, key_length),
                                            device=scores.device, dtype=scores.dtype)
                if self.training:
                    position_bias.requires_grad = True
            else:
                position_bias = self.compute_bias(real_seq_length, key_length, device=scores.device)
            if past_key_value is not None:
                position_bias = position_bias[:, :, -hidden_states.size(1):, :]
            if mask is not None:
                position_bias = position_bias + mask
        scores += position_bias
        attn_weights = F.softmax(scores.float(), dim=-1).type_as(scores)
        attn_weights = F.dropout(attn_weights, p=self.dropout, training=self.training)
        attn_output = unshape(torch.matmul(attn_weights, value_states))
        attn_output = self.o(attn_output)
        present_key_value_state = (key_states, value_states) if (self.is_decoder and use_cache) else None
        return (attn_output, present_key_value_state, position_bias)


class T5LayerFF(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, hidden_states):
        h = self.layer_norm(hidden_states)
        h = self.act(self.wi_0(h)) * self.wi_1(h)         # gated-gelu (T5 v1.1)
        return hidden_states + self.dropout(self.wo(self.dropout(h)))


class T5Block(nn.Module):
    def __init__(self, config, has_relative_attention_bias=False, is_decoder=False):
        super().__init__()
        self.is_decoder = is_decoder
        self.self_attn = T5Attention(config, has_relative_attention_bias, is_decoder)
        self.self_ln = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        if is_decoder:
            self.cross_attn = T5Attention(config, False, is_decoder)
            self.cross_ln = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.ff = T5LayerFF(config)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, hidden_states, attention_mask=None, position_bias=None,
                encoder_hidden_states=None, encoder_attention_mask=None,
                encoder_decoder_position_bias=None, past_key_value=None, use_cache=False):
        self_past = past_key_value[:2] if past_key_value is not None else None
        cross_past = past_key_value[2:] if past_key_value is not None else None
        out, present, position_bias = self.self_attn(
            self.self_ln(hidden_states), mask=attention_mask, position_bias=position_bias,
            past_key_value=self_past, use_cache=use_cache)
        hidden_states = hidden_states + self.dropout(out)
        if hidden_states.dtype == torch.float16:
            clamp_value = torch.finfo(hidden_states.dtype).max - 1000
            hidden_states = torch.clamp(hidden_states, min=-clamp_value, max=clamp_value)
        if self.is_decoder and encoder_hidden_states is not None:
            out, cross_present, encoder_decoder_position_bias = self.cross_attn(
                self.cross_ln(hidden_states), mask=encoder_attention_mask,
                key_value_states=encoder_hidden_states,
                position_bias=encoder_decoder_position_bias, past_key_value=cross_past,
                use_cache=use_cache)
            hidden_states = hidden_states + self.dropout(out)
            if present is not None:
                present = present + cross_present
        hidden_states = self.ff(hidden_states)
        return hidden_states, present, position_bias, encoder_decoder_position_bias


class T5Stack(nn.Module):
    def __init__(self, config, embed_tokens, is_decoder=False):
        super().__init__()
        self.embed_tokens = embed_tokens
        self.is_decoder = is_decoder
        self.block = nn.ModuleList([T5Block(config, bool(i == 0), is_decoder)
                                    for i in range(config.num_layers)])
        self.final_layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, input_ids, attention_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, past_key_values=None, use_cache=False):
        batch_size, seq_length = input_ids.size()
        past_length = past_key_values[0][0].shape[2] if past_key_values is not None else 0
        hidden_states = self.dropout(self.embed_tokens(input_ids))
        dtype = hidden_states.dtype
        if attention_mask is None:
            attention_mask = torch.ones(batch_size, past_length + seq_length, dtype=torch.long)
        extended = attention_mask[:, None, None, :].to(dtype)
        if self.is_decoder:
            seq_ids = torch.arange(past_length + seq_length)
            causal = seq_ids[None, None, :].repeat(batch_size, past_length + seq_length, 1) <= seq_ids[None, :, None]
            causal = causal[:, -seq_length:, :].to(dtype)
            extended = causal[:, None, :, :] * extended
        extended = (1.0 - extended) * torch.finfo(dtype).min
        if encoder_attention_mask is not None:
            encoder_extended = (1.0 - encoder_attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        else:
            encoder_extended = None
        position_bias = encoder_decoder_position_bias = None
        presents = () if use_cache else None
        for i, layer in enumerate(self.block):
            past = past_key_values[i] if past_key_values is not None else None
            hidden_states, present, position_bias, encoder_decoder_position_bias = layer(
                hidden_states, extended, position_bias, encoder_hidden_states, encoder_extended,
                encoder_decoder_position_bias, past_key_value=past, use_cache=use_cache)
            if use_cache:
                presents = presents + (present,)
        hidden_states = self.dropout(self.final_layer_norm(hidden_states))
        return hidden_states, presents


class T5ForConditionalGeneration(nn.Module):
    def __init__(self, config=T5Config()):
        super().__init__()
        self.config = config
        self.model_dim = config.d_model
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, self.shared)
        self.decoder = T5Stack(config, self.shared, is_decoder=True)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)

    def _shift_right(self, input_ids):
        shifted = input_ids.new_zeros(input_ids.shape)
        shifted[..., 1:] = input_ids[..., :-1].clone()
        shifted[..., 0] = self.config.decoder_start_token_id
        shifted.masked_fill_(shifted == -100, self.config.pad_token_id)
        return shifted

    def forward(self, input_ids, attention_mask=None, labels=None, decoder_input_ids=None,
                encoder_outputs=None, past_key_values=None, use_cache=False):
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids, attention_mask=attention_mask)[0]
        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = self._shift_right(labels)
        sequence_output, presents = self.decoder(
            decoder_input_ids, encoder_hidden_states=encoder_outputs,
            encoder_attention_mask=attention_mask, past_key_values=past_key_values,
            use_cache=use_cache)
        sequence_output = sequence_output * (self.model_dim ** -0.5)
        lm_logits = self.lm_head(sequence_output)
        loss = None
        if labels is not None:
            loss_fct = nn.CrossEntropyLoss(ignore_index=-100)
            loss = loss_fct(lm_logits.view(-1, lm_logits.size(-1)), labels.view(-1))
        return loss, lm_logits, presents, encoder_outputs

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, max_new_tokens=5, do_sample=False,
                 top_k=0, temperature=1.0, generator=None):
        encoder_outputs = self.encoder(input_ids, attention_mask=attention_mask)[0]
        decoder_input_ids = torch.full((input_ids.shape[0], 1), self.config.decoder_start_token_id,
                                       dtype=torch.long)
        past = None
        finished = torch.zeros(input_ids.shape[0], dtype=torch.bool)
        for _ in range(max_new_tokens):
            step_ids = decoder_input_ids if past is None else decoder_input_ids[:, -1:]
            _, logits, past, _ = self(input_ids, attention_mask, decoder_input_ids=step_ids,
                                      encoder_outputs=encoder_outputs, past_key_values=past,
                                      use_cache=True)
            next_logits = logits[:, -1, :] / temperature
            if do_sample:
                if top_k > 0:
                    v, _ = torch.topk(next_logits, min(top_k, next_logits.size(-1)))
                    next_logits[next_logits < v[:, [-1]]] = -float("Inf")
                probs = F.softmax(next_logits, dim=-1)
                next_tokens = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
            else:
                next_tokens = torch.argmax(next_logits, dim=-1)
            next_tokens = torch.where(finished, torch.full_like(next_tokens, self.config.pad_token_id), next_tokens)
            finished |= next_tokens == self.config.eos_token_id
            decoder_input_ids = torch.cat([decoder_input_ids, next_tokens[:, None]], dim=-1)
            if finished.all():
                break
        return decoder_input_ids


def make_t5():
    model = T5ForConditionalGeneration()
    set_weights(model, 0.4)
    model.lm_head.weight = model.shared.weight      # tied embeddings
    input_ids = torch.tensor([[5, 9, 3, 7, 1], [4, 6, 1, 0, 0]])
    attention_mask = (input_ids != 0).long()
    labels = torch.tensor([[8, 2, 11, 1], [12, 1, -100, -100]])
    return model, (input_ids, attention_mask, labels)


def case_t5_loss_grads_and_generation():
    model, (input_ids, attention_mask, labels) = make_t5()
    model.eval()                               # no dropout: comparable values
    loss, logits, _, enc = model(input_ids, attention_mask, labels=labels)
    loss.backward()
    g = grads(model)
    greedy = model.generate(input_ids, attention_mask, max_new_tokens=5)
    # the KV-cached logits equal the full recompute
    _, full_logits, _, _ = model(input_ids, attention_mask, decoder_input_ids=greedy[:, :-1])
    top1 = model.generate(input_ids, attention_mask, do_sample=True, top_k=1,
                          generator=torch.Generator().manual_seed(0))
    g1 = torch.Generator().manual_seed(42)
    sampled = model.generate(input_ids, attention_mask, do_sample=True, top_k=5, temperature=0.7, generator=g1)
    g2 = torch.Generator().manual_seed(42)
    again = model.generate(input_ids, attention_mask, do_sample=True, top_k=5, temperature=0.7, generator=g2)
    buckets = T5Attention._relative_position_bucket(torch.arange(-20, 21)[None, :], True, 8, 16)
    causal_buckets = T5Attention._relative_position_bucket(torch.arange(-20, 21)[None, :], False, 8, 16)
    return [loss, logits, enc, g["shared.weight"], g["encoder.block.0.self_attn.relative_attention_bias.weight"],
            g["decoder.block.1.cross_attn.k.weight"], greedy, full_logits.argmax(-1), top1,
            sampled.shape, torch.equal(sampled, again), bool((sampled < 24).all()),
            buckets, causal_buckets, model._shift_right(labels)]


def case_t5_training_steps():
    model, (input_ids, attention_mask, labels) = make_t5()
    model.train()
    for m in model.modules():                   # dropout off, still in training mode
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    for m in model.modules():
        if isinstance(m, T5Attention):
            m.dropout = 0.0
    optimizer = torch.optim.Adafactor(model.parameters(), lr=1e-2) if hasattr(torch.optim, "Adafactor") \
        else torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        loss = model(input_ids, attention_mask, labels=labels)[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return [losses, model.shared.weight[:4]]


# ---------------------------------------------------------------- LSTM seq2seq
class EncoderRNN(nn.Module):
    def __init__(self, vocab, emb, hidden, pad_idx=0):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb, padding_idx=pad_idx)
        self.rnn = nn.LSTM(emb, hidden, num_layers=2, bidirectional=True, batch_first=True, dropout=0.0)
        self.fc_h = nn.Linear(hidden * 2, hidden)
        self.fc_c = nn.Linear(hidden * 2, hidden)

    def forward(self, src, src_len):
        embedded = self.embedding(src)
        packed = pack_padded_sequence(embedded, src_len.cpu(), batch_first=True, enforce_sorted=False)
        packed_outputs, (hidden, cell) = self.rnn(packed)
        outputs, lengths = pad_packed_sequence(packed_outputs, batch_first=True, total_length=src.size(1))
        hidden = torch.tanh(self.fc_h(torch.cat((hidden[-2, :, :], hidden[-1, :, :]), dim=1)))
        cell = torch.tanh(self.fc_c(torch.cat((cell[-2], cell[-1]), dim=1)))
        return outputs, hidden, cell, lengths


class LuongAttention(nn.Module):
    def __init__(self, enc_dim, dec_dim):
        super().__init__()
        self.W = nn.Linear(enc_dim, dec_dim, bias=False)

    def forward(self, dec_hidden, encoder_outputs, mask):
        scores = torch.bmm(self.W(encoder_outputs), dec_hidden.unsqueeze(2)).squeeze(2)
        scores = scores.masked_fill(mask == 0, -1e10)
        return F.softmax(scores, dim=1)


class DecoderRNN(nn.Module):
    def __init__(self, vocab, emb, enc_dim, hidden):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.cell = nn.LSTMCell(emb + enc_dim, hidden)
        self.attention = LuongAttention(enc_dim, hidden)
        self.fc_out = nn.Linear(hidden + enc_dim + emb, vocab)

    def forward(self, input, hidden, cell, encoder_outputs, mask):
        embedded = self.embedding(input)
        a = self.attention(hidden, encoder_outputs, mask)
        weighted = torch.bmm(a.unsqueeze(1), encoder_outputs).squeeze(1)
        hidden, cell = self.cell(torch.cat((embedded, weighted), dim=1), (hidden, cell))
        prediction = self.fc_out(torch.cat((hidden, weighted, embedded), dim=1))
        return prediction, hidden, cell, a


class PackedSeq2Seq(nn.Module):
    def __init__(self, src_vocab=12, trg_vocab=10, emb=6, hidden=8, pad_idx=0):
        super().__init__()
        self.encoder = EncoderRNN(src_vocab, emb, hidden, pad_idx)
        self.decoder = DecoderRNN(trg_vocab, emb, hidden * 2, hidden)
        self.pad_idx = pad_idx

    def create_mask(self, src):
        return (src != self.pad_idx)

    def forward(self, src, src_len, trg, teacher_forcing=None):
        batch_size, trg_len = trg.shape
        outputs = torch.zeros(batch_size, trg_len, self.decoder.fc_out.out_features)
        attentions = torch.zeros(batch_size, trg_len, src.shape[1])
        encoder_outputs, hidden, cell, _ = self.encoder(src, src_len)
        mask = self.create_mask(src)
        input = trg[:, 0]
        for t in range(1, trg_len):
            output, hidden, cell, a = self.decoder(input, hidden, cell, encoder_outputs, mask)
            outputs[:, t] = output
            attentions[:, t] = a
            force = teacher_forcing[t] if teacher_forcing is not None else False
            top1 = output.argmax(1)
            input = trg[:, t] if force else top1
        return outputs, attentions


def case_lstm_seq2seq_packed():
    model = PackedSeq2Seq()
    set_weights(model, 0.4)
    src = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2], [2, 3, 0, 0, 0]])
    src_len = torch.tensor([3, 5, 2])
    trg = torch.tensor([[1, 4, 5, 2], [1, 6, 7, 2], [1, 8, 2, 0]])
    outputs, attentions = model(src, src_len, trg)
    enc_out, h, c, lengths = model.encoder(src, src_len)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss(ignore_index=0)
    losses = []
    model.train()
    for step in range(3):
        optimizer.zero_grad()
        output, _ = model(src, src_len, trg, teacher_forcing=[True, True, step % 2 == 0, True])
        loss = criterion(output[:, 1:].reshape(-1, output.shape[-1]), trg[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    packed = pack_padded_sequence(W(3, 5, 2), src_len, batch_first=True, enforce_sorted=False)
    seqs = [W(3, 2, seed=1), W(5, 2, seed=2), W(1, 2, seed=3)]
    unpacked = unpack_sequence(pack_sequence(seqs, enforce_sorted=False))
    unpadded = unpad_sequence(enc_out.transpose(0, 1), src_len)
    return [outputs, attentions, enc_out, h, c, lengths, losses, packed.batch_sizes,
            packed.sorted_indices, packed.unsorted_indices, packed.data, unpacked, unpadded]


# ---------------------------------------------------------------- wav2vec2-style CTC model
class Wav2Vec2FeatureEncoder(nn.Module):
    def __init__(self, conv_dim=(8, 8), conv_kernel=(5, 3), conv_stride=(3, 2)):
        super().__init__()
        layers, in_dim = [], 1
        for i, (d, k, s) in enumerate(zip(conv_dim, conv_kernel, conv_stride)):
            conv = nn.Conv1d(in_dim, d, k, stride=s, bias=False)
            norm = nn.GroupNorm(d, d, affine=True) if i == 0 else nn.Identity()
            layers.append(nn.ModuleDict({"conv": conv, "layer_norm": norm}))
            in_dim = d
        self.conv_layers = nn.ModuleList(layers)
        self.kernels, self.strides = conv_kernel, conv_stride
        self.gradient_checkpointing = False

    def forward(self, input_values):
        hidden_states = input_values[:, None]
        for layer in self.conv_layers:
            if self.gradient_checkpointing and self.training:
                hidden_states = torch.utils.checkpoint.checkpoint(
                    lambda h, layer=layer: F.gelu(layer["layer_norm"](layer["conv"](h))),
                    hidden_states, use_reentrant=False)
            else:
                hidden_states = F.gelu(layer["layer_norm"](layer["conv"](hidden_states)))
        return hidden_states

    def output_lengths(self, input_lengths):
        for k, s in zip(self.kernels, self.strides):
            input_lengths = torch.div(input_lengths - k, s, rounding_mode="floor") + 1
        return input_lengths


class Wav2Vec2PositionalConvEmbedding(nn.Module):
    def __init__(self, hidden_size=8, kernel=4, groups=2):
        super().__init__()
        self.conv = nn.Conv1d(hidden_size, hidden_size, kernel_size=kernel, padding=kernel // 2, groups=groups)
        self.conv = nn.utils.parametrizations.weight_norm(self.conv, name="weight", dim=2)
        self.num_pad_remove = 1 if kernel % 2 == 0 else 0

    def forward(self, hidden_states):
        hidden_states = self.conv(hidden_states.transpose(1, 2))
        if self.num_pad_remove > 0:
            hidden_states = hidden_states[:, :, :-self.num_pad_remove]
        return F.gelu(hidden_states).transpose(1, 2)


class Wav2Vec2EncoderLayer(nn.Module):
    def __init__(self, hidden=8, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out_proj = nn.Linear(hidden, hidden)
        self.layer_norm = nn.LayerNorm(hidden)
        self.feed_forward = nn.Sequential(nn.Linear(hidden, 16), nn.GELU(), nn.Linear(16, hidden))
        self.final_layer_norm = nn.LayerNorm(hidden)

    def forward(self, hidden_states, attention_mask=None):
        b, t, c = hidden_states.shape
        q, k, v = self.qkv(hidden_states).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        hidden_states = hidden_states + self.out_proj(attn.transpose(1, 2).reshape(b, t, c))
        hidden_states = self.layer_norm(hidden_states)
        hidden_states = hidden_states + self.feed_forward(hidden_states)
        return self.final_layer_norm(hidden_states)


class Wav2Vec2ForCTC(nn.Module):
    def __init__(self, vocab_size=6, hidden=8):
        super().__init__()
        self.feature_extractor = Wav2Vec2FeatureEncoder()
        self.feature_projection = nn.Sequential(nn.LayerNorm(8), nn.Linear(8, hidden))
        self.masked_spec_embed = nn.Parameter(torch.Tensor(hidden).uniform_())
        self.pos_conv_embed = Wav2Vec2PositionalConvEmbedding(hidden)
        self.layers = nn.ModuleList([Wav2Vec2EncoderLayer(hidden) for _ in range(2)])
        self.lm_head = nn.Linear(hidden, vocab_size)

    def forward(self, input_values, input_lengths, mask_time_indices=None):
        extract = self.feature_extractor(input_values).transpose(1, 2)
        hidden_states = self.feature_projection(extract)
        if mask_time_indices is not None:                  # SpecAugment-style time masking
            hidden_states[mask_time_indices] = self.masked_spec_embed.to(hidden_states.dtype)
        lengths = self.feature_extractor.output_lengths(input_lengths)
        padding = torch.arange(hidden_states.shape[1])[None, :] >= lengths[:, None]
        hidden_states = hidden_states.masked_fill(padding[..., None], 0.0)
        hidden_states = hidden_states + self.pos_conv_embed(hidden_states)
        attn_mask = torch.zeros(padding.shape, dtype=hidden_states.dtype).masked_fill(
            padding, torch.finfo(hidden_states.dtype).min)[:, None, None, :]
        for layer in self.layers:
            hidden_states = layer(hidden_states, attn_mask)
        return self.lm_head(hidden_states), lengths


def case_wav2vec2_ctc():
    model = Wav2Vec2ForCTC()
    set_weights(model, 0.4)
    audio = W(2, 40, seed=9)
    input_lengths = torch.tensor([40, 31])
    labels = torch.tensor([[1, 2, 3], [4, 5, 0]])
    label_lengths = torch.tensor([3, 2])
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 1:3] = True
    model.train()
    model.feature_extractor.gradient_checkpointing = True
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(2):
        logits, lengths = model(audio, input_lengths, mask_time_indices=mask)
        log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
        with torch.backends.cudnn.flags(enabled=False):
            loss = F.ctc_loss(log_probs, labels, lengths, label_lengths, blank=0,
                              reduction="mean", zero_infinity=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    g = grads(model)
    model.eval()
    with torch.no_grad():
        logits, lengths = model(audio, input_lengths)
    pred_ids = torch.argmax(logits, dim=-1)
    return [losses, logits, lengths, pred_ids, torch.unique_consecutive(pred_ids[0]),
            g["pos_conv_embed.conv.parametrizations.weight.original0"],
            g["feature_extractor.conv_layers.0.conv.weight"], g["masked_spec_embed"],
            sorted(model.state_dict())[:4]]
