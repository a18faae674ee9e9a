"""PowerSGD gradient compression (Vogels et al., 2019) as a DDP comm hook.

Each gradient of 2+ dims, viewed as an n x m matrix M, is replaced by a rank-r
approximation computed by one step of power iteration shared by all ranks:
    P = M Q            all-reduce P (sum), orthonormalize its columns
    Q = M^T P          all-reduce Q, divide by the world size
    M ~= P Q^T         the average of the ranks' M, projected on span(P)
so the wire carries (n + m) r numbers instead of n m. Tensors that would not shrink by
`min_compression_rate` (vectors, small matrices) are averaged uncompressed. With error
feedback each rank adds what compression lost last time (M - P Q^T) to its next
gradient, so the error does not accumulate; with warm start Q is kept between
iterations, so one power step per iteration converges over time. The first
`start_powerSGD_iter` iterations use the plain averaging all-reduce.

The collectives for P and Q are issued from Future callbacks that run when DDP waits
for the bucket: that happens in bucket order on every rank, so MPI matches them.
Only the bucket's compressed tensors feed the error memory (PyTorch also stores the
uncompressed tensors' local-minus-average, which sums to zero over the ranks).
"""
from __future__ import annotations

import numpy as np

from ... import c10d
from ....frontend.tensor import Tensor
from .default_hooks import allreduce_hook


class PowerSGDState:
    """PowerSGD's hyperparameters and its memory across iterations (per bucket)."""

    def __init__(self, process_group, matrix_approximation_rank: int = 1,
                 start_powerSGD_iter: int = 1_000, min_compression_rate: float = 2,
                 use_error_feedback: bool = True, warm_start: bool = True,
                 orthogonalization_epsilon: float = 0, random_seed: int = 0,
                 compression_stats_logging_frequency: int = 10_000,
                 batch_tensors_with_same_shape: bool = False):
        if (use_error_feedback or warm_start) and start_powerSGD_iter <= 1:
            raise ValueError("Expect `start_powerSGD_iter` > 1 if `use_error_feedback` or "
                             "`warm_start` is enabled, because PowerSGD can only be applied "
                             "after the first two iterations in DDP.")
        self.process_group = process_group
        self.matrix_approximation_rank = matrix_approximation_rank
        self.start_powerSGD_iter = start_powerSGD_iter
        self.min_compression_rate = min_compression_rate
        self.use_error_feedback = use_error_feedback
        self.warm_start = warm_start
        self.orthogonalization_epsilon = orthogonalization_epsilon
        self.rng = np.random.RandomState(random_seed)   # same draws on every rank
        self.compression_stats_logging_frequency = compression_stats_logging_frequency
        self.batch_tensors_with_same_shape = batch_tensors_with_same_shape
        self.error_dict: dict[int, np.ndarray] = {}
        self.q_memory_dict: dict[int, list] = {}
        self.iter = 0
        self.total_numel_before_compression = 0
        self.total_numel_after_compression = 0

    def maybe_increase_iter(self, bucket) -> None:
        if bucket.is_last():
            self.iter += 1

    def compression_stats(self) -> tuple[float, int, int]:
        """(compression rate, numel before, numel after), over all compressed iterations."""
        before, after = self.total_numel_before_compression, self.total_numel_after_compression
        return (before / after if after else 0.0), before, after


def _should_compress(rows: int, cols: int, rank: int, min_rate: float) -> bool:
    return (rows + cols) * rank * min_rate < rows * cols


def _orthonormalize(matrix: np.ndarray, epsilon: float) -> None:
    """Modified Gram-Schmidt on the columns, in place.

    Done in float64: P = M Q is often ill-conditioned, and float32 Gram-Schmidt then
    loses orthogonality (P P^T far from a projection), which no error feedback repairs.
    """
    work = matrix.astype(np.float64)
    for i in range(work.shape[1]):
        col = work[:, i]
        norm = float(np.linalg.norm(col))
        if norm + epsilon > 0:
            col /= norm + epsilon
        if i + 1 < work.shape[1]:
            rest = work[:, i + 1:]
            rest -= np.outer(col, col @ rest)
    matrix[...] = work


def powerSGD_hook(state: PowerSGDState, bucket):
    """Average the bucket with rank-r PowerSGD compression; returns Future[Tensor]."""
    pg = state.process_group
    if state.iter < state.start_powerSGD_iter:
        state.maybe_increase_iter(bucket)
        return allreduce_hook(pg, bucket)
    if bucket.buffer().is_cuda:
        return _powerSGD_on_tensors(state, bucket)
    world = c10d.get_world_size(pg)
    buffer = bucket.buffer()
    flat = buffer._array.reshape(-1)
    index = bucket.index()
    if state.use_error_feedback:
        if index in state.error_dict:
            flat += state.error_dict[index]
        local = flat.copy()
    matrices, plain = _split(state, bucket)
    state.total_numel_before_compression += sum(m.size for m in matrices)
    state.total_numel_after_compression += sum(
        (m.shape[0] + m.shape[1]) * _rank_of(state, m) for m in matrices)
    plain_buf = np.concatenate([t.reshape(-1) for t in plain]) if plain else \
        np.zeros(0, flat.dtype)
    plain_buf /= world
    plain_work = c10d.all_reduce(Tensor._adopt(plain_buf), group=pg, async_op=True)
    qs = _initial_qs(state, index, matrices)
    ps = [m @ q for m, q in zip(matrices, qs)]
    p_flat = _pack(ps, flat.dtype)
    p_work = c10d.all_reduce(Tensor._adopt(p_flat), group=pg, async_op=True)

    def compute_qs(fut):
        ps_sum = _unpack(p_flat, [p.shape for p in ps])
        for p in ps_sum:
            _orthonormalize(p, state.orthogonalization_epsilon)
        new_qs = [m.T @ p for m, p in zip(matrices, ps_sum)]
        q_flat = _pack(new_qs, flat.dtype)
        c10d.all_reduce(Tensor._adopt(q_flat), group=pg)
        return ps_sum, _unpack(q_flat / world, [q.shape for q in new_qs])

    def decompress(fut):
        ps_sum, qs_avg = fut.value()
        for m, p, q in zip(matrices, ps_sum, qs_avg):
            np.matmul(p, q.T, out=m)
        plain_work.wait()
        start = 0
        for t in plain:
            t.reshape(-1)[...] = plain_buf[start:start + t.size]
            start += t.size
        if state.use_error_feedback:
            state.error_dict[index] = local - flat
            for t in plain:      # uncompressed tensors lost nothing
                state.error_dict[index][_offset_in(flat, t):_offset_in(flat, t) + t.size] = 0
        state.q_memory_dict[index] = [q.copy() for q in qs_avg] if state.warm_start else None
        state.maybe_increase_iter(bucket)
        return buffer

    return p_work.get_future().then(compute_qs).then(decompress)


def _rank_of(state, matrix) -> int:
    return min(matrix.shape[0], matrix.shape[1], state.matrix_approximation_rank)


def _split(state, bucket) -> tuple[list, list]:
    """The bucket's gradients as (n x m matrix views to compress, arrays sent as they are)."""
    matrices, plain = [], []
    for grad in bucket.gradients():
        arr = grad._array
        if arr.ndim > 1:
            m = arr.reshape(arr.shape[0], -1)
            if _should_compress(m.shape[0], m.shape[1], _rank_of(state, m),
                                state.min_compression_rate):
                matrices.append(m)
                continue
        plain.append(arr)
    return matrices, plain


def _initial_qs(state, index, matrices, dtype=None, on_device=None) -> list:
    """The Q matrices a bucket starts from: last step's (warm start) where their shapes
    still fit, else fresh orthonormal random ones (NumPy; `on_device` moves them)."""
    kept = state.q_memory_dict.get(index) if state.warm_start else None
    if kept is not None and [tuple(q.shape) for q in kept] == \
            [(m.shape[1], _rank_of(state, m)) for m in matrices]:
        return kept
    seed = state.rng.randint(1_000_000_000)
    gen = np.random.default_rng(seed)
    qs = []
    for m in matrices:
        q = gen.standard_normal((m.shape[1], _rank_of(state, m))).astype(dtype or m.dtype)
        _orthonormalize(q, state.orthogonalization_epsilon)
        qs.append(q)
    return on_device(qs) if on_device is not None else qs


def _pack(arrays, dtype) -> np.ndarray:
    if not arrays:
        return np.zeros(0, dtype)
    return np.concatenate([a.reshape(-1) for a in arrays]).astype(dtype, copy=False)


def _unpack(flat, shapes) -> list:
    out, start = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(flat[start:start + n].reshape(shape).copy())
        start += n
    return out


def _offset_in(flat: np.ndarray, view: np.ndarray) -> int:
    return (view.__array_interface__["data"][0] - flat.__array_interface__["data"][0]) \
        // flat.itemsize


# --- CUDA buckets ---------------------------------------------------------------------------
# The same algorithm on the bucket's own device with ember's tensor ops: the products
# with M, the decompression, the error memory and the kept Q stay on the GPU; only P
# (n x r, small) goes to the host for its float64 Gram-Schmidt. Q's random start is
# drawn on the host from the same seeds as the CPU path, so every rank agrees.
def _powerSGD_on_tensors(state: PowerSGDState, bucket):
    from ....frontend.factories import from_numpy
    from ....ir.registry import OPS
    cat = OPS["cat"]
    pg = state.process_group
    world = c10d.get_world_size(pg)
    buffer = bucket.buffer()
    index = bucket.index()
    if state.use_error_feedback:
        if index in state.error_dict:
            buffer.add_(state.error_dict[index])
        local = buffer.clone()
    matrices, plain = _split_tensors(state, bucket)
    state.total_numel_before_compression += sum(m.numel() for m in matrices)
    state.total_numel_after_compression += sum(
        (m.shape[0] + m.shape[1]) * _rank_of(state, m) for m in matrices)
    plain_buf = cat([t.reshape(-1) for t in plain]).div_(world) if plain else None
    plain_work = None if plain_buf is None else \
        c10d.all_reduce(plain_buf, group=pg, async_op=True)
    device = buffer.device

    def on_device(arrays):
        return [from_numpy(np.ascontiguousarray(a, dtype=_np_dtype(buffer))).to(device)
                for a in arrays]

    qs = _initial_qs(state, index, matrices, np.float32, on_device)
    p_shapes = [(m.shape[0], q.shape[1]) for m, q in zip(matrices, qs)]
    p_flat = cat([(m @ q).reshape(-1) for m, q in zip(matrices, qs)])
    p_work = c10d.all_reduce(p_flat, group=pg, async_op=True)

    def compute_qs(fut):
        fut.wait()
        ps_host = _unpack(p_flat.cpu().numpy(), p_shapes)
        for p in ps_host:
            _orthonormalize(p, state.orthogonalization_epsilon)
        ps = on_device(ps_host)
        new_qs = [m.t() @ p for m, p in zip(matrices, ps)]
        q_flat = cat([q.reshape(-1) for q in new_qs])
        c10d.all_reduce(q_flat, group=pg)
        q_flat.div_(world)
        return ps, _views(q_flat, [tuple(q.shape) for q in new_qs])

    def decompress(fut):
        ps, qs_avg = fut.value()
        for m, p, q in zip(matrices, ps, qs_avg):
            m.copy_(p @ q.t())
        if plain_work is not None:
            plain_work.wait()
            start = 0
            for t in plain:
                t.reshape(-1).copy_(plain_buf[start:start + t.numel()])
                start += t.numel()
        if state.use_error_feedback:
            error = local.sub(buffer)
            for t in plain:      # uncompressed tensors lost nothing
                offset = (t.data_ptr() - buffer.data_ptr()) // buffer.element_size()
                error[offset:offset + t.numel()].zero_()
            state.error_dict[index] = error
        state.q_memory_dict[index] = [q.clone() for q in qs_avg] if state.warm_start else None
        state.maybe_increase_iter(bucket)
        return buffer

    return p_work.get_future().then(compute_qs).then(decompress)


def _np_dtype(tensor) -> np.dtype:
    return np.dtype(str(tensor.dtype).replace("ember.", ""))


def _split_tensors(state, bucket) -> tuple[list, list]:
    """`_split` on tensors: (n x m views of the bucket to compress, gradients as they are)."""
    matrices, plain = [], []
    for grad in bucket.gradients():
        if grad.dim() > 1:
            m = grad.reshape(grad.shape[0], -1)
            if _should_compress(m.shape[0], m.shape[1], _rank_of(state, m),
                                state.min_compression_rate):
                matrices.append(m)
                continue
        plain.append(grad)
    return matrices, plain


def _views(flat, shapes) -> list:
    out, start = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(flat[start:start + n].reshape(shape))
        start += n
    return out
