"""ember.nn.utils.rnn: PackedSequence and the pack/pad helpers, as torch.nn.utils.rnn.

A PackedSequence holds the time steps of a batch of sequences of different lengths, one
step after another, each step with only the sequences still running (`batch_sizes[t]` of
them, longest first): `data` is (sum(lengths), *features). `sorted_indices` orders the
batch by decreasing length and `unsorted_indices` undoes it.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ....ir.registry import OPS
from ...factories import tensor
from ...tensor import Tensor


class PackedSequence(NamedTuple):
    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None


def _lengths_list(lengths) -> list[int]:
    if isinstance(lengths, Tensor):
        if lengths.ndim != 1:
            raise RuntimeError(f"'lengths' argument should be a 1D CPU int64 tensor, but got "
                               f"{lengths.ndim}D tensor")
        return [int(v) for v in lengths.numpy()]
    return [int(v) for v in lengths]


def pack_padded_sequence(input, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) of sequences whose
    lengths are `lengths`."""
    lens = _lengths_list(lengths)
    if enforce_sorted:
        if any(a < b for a, b in zip(lens, lens[1:])):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when "
                               "`enforce_sorted` is True. You can pass `enforce_sorted=False` "
                               "to pack_padded_sequence and/or pack_sequence to sidestep this "
                               "requirement if you do not need ONNX exportability.")
        order = list(range(len(lens)))
        sorted_indices = None
    else:
        order = sorted(range(len(lens)), key=lambda i: -lens[i])    # stable, as torch's sort
        sorted_indices = tensor(order)
    if any(n <= 0 for n in lens):
        raise RuntimeError("Length of all samples has to be greater than 0, but found an "
                           "element in 'lengths' that is <= 0")
    x = input.transpose(0, 1) if batch_first else input
    if max(lens) > x.shape[0]:
        raise RuntimeError(f"Expected sequence length to be larger than or equal to "
                           f"{max(lens)}, got {x.shape[0]}")
    unsorted = tensor(list(np.argsort(order, kind="stable"))) if sorted_indices is not None \
        else None
    return _pack_in_order(x, lens, order, sorted_indices, unsorted)


def _pack_in_order(x, lens: list[int], order: list[int], sorted_indices, unsorted_indices):
    """Pack time-first `x` whose sequence b has length lens[b], taking the batch in
    `order` (longest first); the indices are stored as given."""
    sorted_lens = [lens[i] for i in order]
    batch_sizes = [sum(1 for n in sorted_lens if n > t) for t in range(sorted_lens[0])]
    rows = [x[t][tensor(order[:bs])] for t, bs in enumerate(batch_sizes)]
    data = OPS["cat"](rows, 0)
    return PackedSequence(data, tensor(batch_sizes), sorted_indices, unsorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0, total_length: int | None = None):
    """(padded (T, B, *) or (B, T, *), lengths) of a PackedSequence, in the batch's
    original order."""
    data, batch_sizes = sequence.data, [int(v) for v in sequence.batch_sizes.numpy()]
    steps = len(batch_sizes)
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"Expected total_length to be at least the length of the longest "
                             f"sequence in input, but got total_length={total_length} and max "
                             f"sequence length being {steps}")
        steps = total_length
    batch = batch_sizes[0]
    feature = tuple(data.shape[1:])
    rows, start = [], 0
    for t in range(steps):
        bs = batch_sizes[t] if t < len(batch_sizes) else 0
        part = data[start:start + bs]
        start += bs
        if bs < batch:
            pad = OPS["full"]((batch - bs,) + feature, padding_value, dtype=data.dtype)
            part = OPS["cat"]([part, pad], 0) if bs else pad
        rows.append(part)
    padded = OPS["stack"](rows, 0)
    lengths = [sum(1 for bs in batch_sizes if bs > b) for b in range(batch)]
    if sequence.unsorted_indices is not None:
        index = sequence.unsorted_indices
        padded = padded[:, index]
        lengths = [lengths[int(i)] for i in index.numpy()]
    if batch_first:
        padded = padded.transpose(0, 1)
    return padded, tensor(lengths)


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    lengths = [int(s.shape[0]) for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths,
                                enforce_sorted=enforce_sorted)


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right"):
    """Stack sequences of different lengths (L_i, *) into (T, B, *), padded."""
    longest = max(int(s.shape[0]) for s in sequences)
    padded = []
    for s in sequences:
        missing = longest - int(s.shape[0])
        if missing:
            pad = OPS["full"]((missing,) + tuple(s.shape[1:]), padding_value, dtype=s.dtype)
            s = OPS["cat"]([s, pad] if padding_side == "right" else [pad, s], 0)
        padded.append(s)
    return OPS["stack"](padded, 1 if not batch_first else 0)


def unpad_sequence(padded_sequences, lengths, batch_first: bool = False) -> list:
    """pad_sequence's inverse: the list of (L_i, *) sequences of a padded batch."""
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    return [padded_sequences[i, :n] for i, n in enumerate(_lengths_list(lengths))]


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """pack_sequence's inverse: the list of (L_i, *) sequences, in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
