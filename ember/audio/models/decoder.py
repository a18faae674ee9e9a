"""Greedy CTC decoding: best class per frame, merge repeats, drop blanks."""
from __future__ import annotations

import numpy as np

import ember


def ctc_greedy_decode(emissions, blank: int = 0, lengths=None) -> list[list[int]]:
    """Token ids per sequence from (time, classes) or (batch, time, classes) emissions
    (logits or log-probabilities; only their argmax matters). `lengths` limits each
    sequence's valid frames."""
    if emissions.ndim not in (2, 3):
        raise ValueError(f"ctc_greedy_decode: emissions should be (time, classes) or "
                         f"(batch, time, classes), got {emissions.ndim}-D")
    batched = emissions.ndim == 3
    best = emissions.detach().argmax(dim=-1).numpy()
    best = best if batched else best[None]
    if lengths is not None:
        lengths = np.asarray(lengths.tolist() if isinstance(lengths, ember.Tensor)
                             else lengths).reshape(-1)
    out = []
    for b, path in enumerate(best):
        if lengths is not None:
            path = path[:int(lengths[b])]
        keep = np.ones(len(path), bool)
        keep[1:] = path[1:] != path[:-1]          # merge repeats ...
        out.append([int(t) for t in path[keep] if t != blank])   # ... then drop blanks
    return out if batched else out[0]


class CTCGreedyDecoder:
    """Callable form; `labels` (a string or list) maps ids to symbols when given."""

    def __init__(self, labels=None, blank: int = 0):
        self.labels, self.blank = labels, blank

    def __call__(self, emissions, lengths=None):
        ids = ctc_greedy_decode(emissions, self.blank, lengths)
        if self.labels is None:
            return ids
        if emissions.ndim == 2:
            return "".join(self.labels[i] for i in ids)
        return ["".join(self.labels[i] for i in seq) for seq in ids]
