"""A transformer encoder classifier: embedding + learned positions + encoder + mean pool."""
from __future__ import annotations

from ..random import manual_seed
from .. import nn
from ..nn import init


class TransformerClassifier(nn.Module):
    def __init__(self, vocab_size: int = 1000, d_model: int = 64, nhead: int = 4,
                 num_layers: int = 2, dim_feedforward: int = 128, max_len: int = 128,
                 num_classes: int = 2, dropout: float = 0.1):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.pos_embedding = nn.Parameter(init.normal_(nn.Embedding(max_len, d_model).weight,
                                                       std=0.02).detach())
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens, key_padding_mask=None):
        from ...ir.registry import OPS
        seq = tokens.shape[1]
        x = self.embedding(tokens) + OPS["narrow"](self.pos_embedding, 0, 0, seq)
        x = self.encoder(x, src_key_padding_mask=key_padding_mask)
        return self.head(self.norm(x).mean([1]))


def transformer_classifier(seed: int | None = 0, **kwargs) -> TransformerClassifier:
    if seed is not None:
        manual_seed(seed)
    return TransformerClassifier(**kwargs)
