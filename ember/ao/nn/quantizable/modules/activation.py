"""Quantizable MultiheadAttention (torch.ao.nn.quantizable.MultiheadAttention).

nn.MultiheadAttention projects q/k/v with one packed `in_proj_weight`, which eager-mode
quantization cannot observe. This subclass keeps the float module's attributes and adds
separate projections under torch.ao's names: `linear_Q`, `linear_K`, `linear_V` and an
nn.Linear `out_proj`; `q_scaling_product` scales q by head_dim ** -0.5 (mul_scalar: not
observed). The attention (q @ k^T, mask, softmax, @ v) runs in float between the
DeQuantStubs `dequant_q/k/v` and the QuantStubs `quant_attn_output` /
`quant_attn_output_weights`, so after convert only the projections run in int8.
"""
from __future__ import annotations

import warnings

from .....frontend import nn
from .....frontend.nn import functional as F
from ...quantized.functional_modules import FloatFunctional


def _ops():
    import ember
    return ember


class MultiheadAttention(nn.MultiheadAttention):
    _FLOAT_MODULE = nn.MultiheadAttention

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0,
                 bias: bool = True, add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim=None, vdim=None, batch_first: bool = False, device=None, dtype=None):
        super().__init__(embed_dim, num_heads, dropout, bias, add_bias_kv, add_zero_attn,
                         kdim, vdim, batch_first)
        from ....quantization.stubs import DeQuantStub, QuantStub
        self.linear_Q = nn.Linear(self.embed_dim, self.embed_dim, bias=bias)
        self.linear_K = nn.Linear(self.kdim, self.embed_dim, bias=bias)
        self.linear_V = nn.Linear(self.vdim, self.embed_dim, bias=bias)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=bias)
        self.q_scaling_product = FloatFunctional()
        self.quant_attn_output = QuantStub()
        self.quant_attn_output_weights = QuantStub()
        self.dequant_q = DeQuantStub()
        self.dequant_k = DeQuantStub()
        self.dequant_v = DeQuantStub()

    def _get_name(self) -> str:
        return "QuantizableMultiheadAttention"

    @classmethod
    def from_float(cls, other):
        """The observed MHA of a float nn.MultiheadAttention: its packed projection split
        into linear_Q/K/V, observers inserted by `prepare` (dropout is kept as a number but
        the module is put in eval mode)."""
        if type(other) is not cls._FLOAT_MODULE:
            raise TypeError(f"quantizable MultiheadAttention.from_float expects "
                            f"nn.MultiheadAttention, got {type(other).__name__}")
        if not hasattr(other, "qconfig"):
            raise ValueError("quantizable MultiheadAttention.from_float: the float module "
                             "must have a qconfig")
        observed = cls(other.embed_dim, other.num_heads, other.dropout,
                       other.in_proj_bias is not None, other.bias_k is not None,
                       other.add_zero_attn, other.kdim, other.vdim, other.batch_first)
        observed.bias_k, observed.bias_v = other.bias_k, other.bias_v
        observed.qconfig = other.qconfig
        observed.out_proj.weight = other.out_proj.weight
        observed.out_proj.bias = other.out_proj.bias
        for i, linear in enumerate((observed.linear_Q, observed.linear_K, observed.linear_V)):
            weight = other.in_proj_weight[i * other.embed_dim:(i + 1) * other.embed_dim] \
                if other._qkv_same_embed_dim else \
                (other.q_proj_weight, other.k_proj_weight, other.v_proj_weight)[i]
            linear.weight = nn.Parameter(weight.detach())
            bias = other.in_proj_bias
            linear.bias = None if bias is None else \
                nn.Parameter(bias[i * other.embed_dim:(i + 1) * other.embed_dim].detach())
        observed.eval()
        from ....quantization.quantize import prepare
        return prepare(observed, inplace=True)

    def dequantize(self):
        """The float module of a quantized MHA, as torch.ao builds it: its class's
        `_FLOAT_MODULE` (the quantizable MHA for the quantized one) with the int8
        projections dequantized into the packed (or separate) projection weights, and
        into linear_Q/K/V/out_proj too so that its forward computes with them. (torch.ao's
        own version fails on a leaf that requires grad and insists on zero q/k/v biases;
        this one copies the weights without autograd and keeps the biases.)"""
        linears = (self.linear_Q, self.linear_K, self.linear_V)
        has_bias = _weight_bias(self.linear_Q)[1] is not None
        fp = self._FLOAT_MODULE(self.embed_dim, self.num_heads, self.dropout, has_bias,
                                self.bias_k is not None, self.add_zero_attn, self.kdim,
                                self.vdim, self.batch_first)
        for name in ("bias_k", "bias_v"):
            if getattr(self, name) is not None:
                setattr(fp, name, nn.Parameter(_float(getattr(self, name))))
        weights = [_float(_weight_bias(linear)[0]) for linear in linears]
        biases = [_weight_bias(linear)[1] for linear in linears]
        ember = _ops()
        if fp._qkv_same_embed_dim:
            fp.in_proj_weight = nn.Parameter(ember.cat(weights, 0))
        else:
            fp.q_proj_weight, fp.k_proj_weight, fp.v_proj_weight = \
                (nn.Parameter(w) for w in weights)
        if has_bias:
            fp.in_proj_bias = nn.Parameter(ember.cat([_float(b) for b in biases], 0))
        pairs = [(self.out_proj, fp.out_proj)]
        if hasattr(fp, "linear_Q"):
            pairs += list(zip(linears, (fp.linear_Q, fp.linear_K, fp.linear_V)))
        for source, target in pairs:
            weight, bias = _weight_bias(source)
            target.weight = nn.Parameter(_float(weight))
            target.bias = None if bias is None else nn.Parameter(_float(bias))
        return fp

    @classmethod
    def from_observed(cls, other):
        raise NotImplementedError("It looks like you are trying to prepare an MHA module. "
                                  "Please, see the examples on quantizable MHAs.")

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        if attn_mask is not None and is_causal:
            raise ValueError("MultiheadAttention: give attn_mask or is_causal, not both")
        if is_causal:
            raise ValueError("quantizable MultiheadAttention does not support "
                             "is_causal=True; pass the causal mask as attn_mask")
        if self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        tgt_len, bsz, embed_dim = query.shape
        if embed_dim != self.embed_dim:
            raise ValueError(f"MultiheadAttention(embed_dim={self.embed_dim}): query has "
                             f"{embed_dim} features")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"MultiheadAttention: key {list(key.shape)} and value "
                             f"{list(value.shape)} differ in sequence length or batch")
        head_dim = self.embed_dim // self.num_heads
        q = self.q_scaling_product.mul_scalar(self.linear_Q(query), float(head_dim) ** -0.5)
        k, v = self.linear_K(key), self.linear_V(value)
        attn_mask = _checked_attn_mask(attn_mask, bsz * self.num_heads, tgt_len,
                                       key.shape[0])
        key_padding_mask = _bool_mask(key_padding_mask, "key_padding_mask")
        k, v, attn_mask, key_padding_mask = self._with_bias_kv(k, v, bsz, attn_mask,
                                                                key_padding_mask)
        q = q.contiguous().view(tgt_len, bsz * self.num_heads, head_dim).transpose(0, 1)
        k = k.contiguous().view(-1, bsz * self.num_heads, head_dim).transpose(0, 1)
        v = v.contiguous().view(-1, bsz * self.num_heads, head_dim).transpose(0, 1)
        if self.add_zero_attn:
            k, v = _with_zero_position(k), _with_zero_position(v)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else \
                F.pad(key_padding_mask, (0, 1))
        src_len = k.shape[1]
        if key_padding_mask is not None and tuple(key_padding_mask.shape) != (bsz, src_len):
            raise ValueError(f"MultiheadAttention: key_padding_mask must have shape "
                             f"[{bsz}, {src_len}], got {list(key_padding_mask.shape)}")
        # the float zone: attention scores, masks, softmax, weighted sum
        q, k, v = self.dequant_q(q), self.dequant_k(k), self.dequant_v(v)
        ember = _ops()
        weights = ember.bmm(q, k.transpose(1, 2))
        if attn_mask is not None:
            weights = weights.masked_fill(attn_mask, float("-inf")) \
                if attn_mask.dtype == ember.bool else weights + attn_mask
        if key_padding_mask is not None:
            weights = weights.view(bsz, self.num_heads, tgt_len, src_len).masked_fill(
                key_padding_mask.unsqueeze(1).unsqueeze(2), float("-inf")
            ).view(bsz * self.num_heads, tgt_len, src_len)
        weights = F.dropout(F.softmax(weights, dim=-1), p=self.dropout,
                            training=self.training)
        out = ember.bmm(weights, v)
        out = out.view(bsz, tgt_len, self.embed_dim) if self.batch_first else \
            out.transpose(0, 1).contiguous().view(tgt_len, bsz, self.embed_dim)
        # back into the quantized zone
        out = self.out_proj(self.quant_attn_output(out))
        weights = self.quant_attn_output_weights(weights)
        if not need_weights:
            return out, None
        weights = weights.view(bsz, self.num_heads, tgt_len, src_len)
        return out, (weights.mean(dim=1) if average_attn_weights else weights)

    def _with_bias_kv(self, k, v, bsz: int, attn_mask, key_padding_mask):
        """bias_k / bias_v appended to the keys and values as one more position."""
        if self.bias_k is None and self.bias_v is None:
            return k, v, attn_mask, key_padding_mask
        if self.bias_k is None or self.bias_v is None:
            raise ValueError("MultiheadAttention: bias_k and bias_v must both be set or both "
                             "be None")
        ember = _ops()
        k = ember.cat([k, self.bias_k.repeat(1, bsz, 1)])
        v = ember.cat([v, self.bias_v.repeat(1, bsz, 1)])
        if attn_mask is not None:
            attn_mask = F.pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = F.pad(key_padding_mask, (0, 1))
        return k, v, attn_mask, key_padding_mask


def _weight_bias(linear):
    """(weight, bias) of a float or quantized Linear."""
    if callable(linear.weight):
        return linear.weight(), linear.bias()
    return linear.weight, linear.bias


def _float(t):
    t = t.detach()
    return t.dequantize() if t.is_quantized else t.clone()


def _bool_mask(mask, name: str):
    ember = _ops()
    if mask is not None and mask.dtype == ember.uint8:
        warnings.warn(f"Byte tensor for `{name}` in `nn.MultiheadAttention` is deprecated. "
                      f"Use bool tensor instead.", stacklevel=4)
        mask = mask.to(ember.bool)
    return mask


def _checked_attn_mask(attn_mask, batch_heads: int, tgt_len: int, src_len: int):
    """attn_mask as a 3-D [1 or N*heads, L, S] float or bool mask."""
    attn_mask = _bool_mask(attn_mask, "attn_mask")
    if attn_mask is None:
        return None
    if not attn_mask.is_floating_point() and attn_mask.dtype != _ops().bool:
        raise TypeError(f"MultiheadAttention: only float and bool types are supported for "
                        f"attn_mask, not {attn_mask.dtype}")
    if attn_mask.dim() == 2:
        if list(attn_mask.shape) != [tgt_len, src_len]:
            raise ValueError(f"MultiheadAttention: the 2D attn_mask must have shape "
                             f"[{tgt_len}, {src_len}], got {list(attn_mask.shape)}")
        return attn_mask.unsqueeze(0)
    if attn_mask.dim() == 3:
        if list(attn_mask.shape) != [batch_heads, tgt_len, src_len]:
            raise ValueError(f"MultiheadAttention: the 3D attn_mask must have shape "
                             f"[{batch_heads}, {tgt_len}, {src_len}], got "
                             f"{list(attn_mask.shape)}")
        return attn_mask
    raise ValueError(f"MultiheadAttention: attn_mask's dimension {attn_mask.dim()} is not "
                     f"supported")


def _with_zero_position(t):
    """t [batch*heads, S, head_dim] with one more all-zero position (add_zero_attn),
    quantized with t's own qparams when t is quantized."""
    ember = _ops()
    zeros = ember.zeros((t.shape[0], 1) + tuple(t.shape[2:]))
    if t.is_quantized:
        zeros = ember.quantize_per_tensor(zeros, t.q_scale(), t.q_zero_point(), t.dtype)
    return ember.cat([t, zeros], dim=1)
