"""DDP's reducer: gradient buckets all-reduced while backward is still running.

Parameters are packed, in reverse registration order (roughly the order backward
produces their gradients), into flat per-dtype buckets of at most `bucket_cap_mb`
(the first one 1 MiB, so communication starts early). A post-hook on each parameter's
AccumulateGrad node copies the fresh gradient into its bucket slot; when a bucket's
last gradient arrives, the bucket goes to the comm hook (default: average by
all-reduce), which issues an asynchronous collective (run by the group's communication
thread, or as a nonblocking request for small buckets) and returns a Future. Buckets are
launched strictly in index order, so every rank issues its collectives in the same
order even when its gradients arrive in another. When the last bucket is launched the
reducer waits for all of them and writes the averaged gradients back to `.grad`.

With `gradient_as_bucket_view`, each `.grad` is a view of its bucket slot, so the
reduced gradients are never copied out (ember's AccumulateGrad still makes a fresh
tensor during backward, which the hook copies into the slot).

Buckets live on the parameters' device: numpy arrays on the CPU (copies by numpy, the
cheapest there), CUDA tensors for a model on the GPU (copies by ember's ops on the
current stream, which the NCCL engine orders its collectives after).

With `find_unused_parameters`, the autograd graph of the forward's outputs is walked
after forward; parameters it does not reach are marked ready at once (slot = their
current gradient or zeros), and a used-map all-reduce (MAX) tells which parameters no
rank used: those keep their `.grad` untouched, as in PyTorch.
"""
from __future__ import annotations

import numpy as np

from ..frontend.autograd.engine import AccumulateGrad, edge_of
from ..frontend.tensor import Tensor
from .errors import DistError
from .mpi_engine import MPIEngine
from .reduce_op import ReduceOp

DEFAULT_FIRST_BUCKET_BYTES = 1024 * 1024


class GradBucket:
    """torch.distributed.GradBucket: what a comm hook gets for one bucket."""

    def __init__(self, bucket: "_Bucket", is_last: bool):
        self._bucket = bucket
        self._is_last = is_last

    def index(self) -> int:
        return self._bucket.index

    def buffer(self) -> Tensor:
        """The flat bucket tensor (all of its gradients, concatenated)."""
        return self._bucket.tensor

    def gradients(self) -> list:
        return list(self._bucket.slots)

    def parameters(self) -> list:
        return list(self._bucket.params)

    def is_last(self) -> bool:
        return self._is_last

    def set_buffer(self, tensor: Tensor) -> None:
        self._bucket.fill_from(tensor)


class _Bucket:
    def __init__(self, index: int, params: list):
        self.index = index
        self.params = params
        numel = sum(p.numel() for p in params)
        self.on_cuda = params[0].is_cuda
        if self.on_cuda:
            from ..frontend.factories import zeros
            self.buffer = None
            self.tensor = zeros(numel, dtype=params[0].dtype, device=params[0].device)
        else:
            self.buffer = np.zeros(numel, params[0]._array.dtype)
            self.tensor = Tensor._adopt(self.buffer)
        self.slots, start = [], 0
        for p in params:
            n = p.numel()
            self.slots.append(self.tensor[start:start + n].view(tuple(p.shape)))
            start += n
        self.pending = len(params)
        self.future = None

    @property
    def numel(self) -> int:
        return self.tensor.numel()

    def fill_from(self, tensor: Tensor) -> None:
        """Copy `tensor`'s values (any shape, `numel` of them) into the flat bucket."""
        if self.on_cuda:
            self.tensor.copy_(tensor.reshape(-1))
        else:
            np.copyto(self.buffer, tensor._array.reshape(-1), casting="unsafe")

    def holds(self, tensor: Tensor) -> bool:
        """Is `tensor` the bucket's own memory (a hook that reduced in place)?"""
        if self.on_cuda:
            return tensor.is_cuda and tensor.data_ptr() == self.tensor.data_ptr()
        return np.may_share_memory(tensor._array, self.buffer)

    def scale(self, factor: float) -> None:
        if self.on_cuda:
            self.tensor.mul_(factor)
        else:
            np.multiply(self.buffer, factor, out=self.buffer, casting="unsafe")

    def zero(self) -> None:
        if self.on_cuda:
            self.tensor.zero_()
        else:
            self.buffer[...] = 0


def _copy_into_slot(slot: Tensor, grad: Tensor | None) -> None:
    if slot.is_cuda:
        slot.zero_() if grad is None else slot.copy_(grad)
    elif grad is None:
        slot._array[...] = 0
    else:
        np.copyto(slot._array, grad._array, casting="unsafe")


def assign_buckets(params: list, cap_bytes: int, first_cap_bytes: int) -> list[list]:
    """Group parameters (from the last, one dtype per bucket) under the byte caps.

    Each dtype's first bucket is capped at `first_cap_bytes`, later ones at `cap_bytes`;
    a parameter larger than the cap gets a bucket of its own.
    """
    buckets, open_by_dtype, count_by_dtype = [], {}, {}
    for p in reversed(params):
        key = p._array.dtype
        size = p.numel() * p._array.itemsize
        current = open_by_dtype.get(key)
        if current is not None:
            cap = first_cap_bytes if count_by_dtype[key] == 1 else cap_bytes
            if current[1] + size > cap:
                current = None
        if current is None:
            current = [[], 0]
            open_by_dtype[key] = current
            count_by_dtype[key] = count_by_dtype.get(key, 0) + 1
            buckets.append(current)
        current[0].append(p)
        current[1] += size
    # inside a bucket the parameters keep model order, as PyTorch lays out its buckets
    # (a comm hook sees gradients() and the flat buffer() in that order)
    return [b[0][::-1] for b in buckets]


class Reducer:
    def __init__(self, params: list, engine: MPIEngine, pg, *, bucket_cap_bytes: int,
                 gradient_as_bucket_view: bool, find_unused_parameters: bool):
        self.params = params
        self.engine, self.pg = engine, pg
        self.as_view = gradient_as_bucket_view
        self.find_unused = find_unused_parameters
        groups = assign_buckets(params, bucket_cap_bytes,
                                min(DEFAULT_FIRST_BUCKET_BYTES, bucket_cap_bytes))
        self.buckets = [_Bucket(i, g) for i, g in enumerate(groups)]
        self.where = {id(p): (b, i) for b in self.buckets for i, p in enumerate(b.params)}
        self.index_of = {id(p): i for i, p in enumerate(params)}
        self.comm_hook, self.comm_state = None, None
        self._active = False
        self._ready: set[int] = set()
        self._next_bucket = 0
        self._used_map = None
        self._used_work = None
        self.grad_scale: float | None = None     # join: rescale averages to active ranks
        for p in params:
            edge_of(p)[0].register_hook(self._grad_ready_hook(p))

    def _grad_ready_hook(self, p):
        def hook(grad_inputs, grad_outputs):
            if self._active:
                self._mark_ready(p, from_backward=True)
        return hook

    # --- per iteration ---------------------------------------------------------------
    def prepare_for_backward(self, outputs) -> None:
        """Called after a synchronizing forward: expect one gradient per used parameter."""
        if self._active and self._ready:
            raise DistError(
                "Expected to have finished reduction in the prior iteration before starting a "
                "new one. This error indicates that your module has parameters that were not "
                "used in producing loss. You can enable unused parameter detection by passing "
                "the keyword argument `find_unused_parameters=True` to "
                "`ember.nn.parallel.DistributedDataParallel`, and by making sure all `forward` "
                "function outputs participate in calculating loss. Parameters that did not "
                f"receive a gradient on rank {self.engine.global_rank}: "
                f"{self._missing_indices()}")
        self._active = True
        self._ready = set()
        self._next_bucket = 0
        for b in self.buckets:
            b.pending, b.future = len(b.params), None
        if self.find_unused:
            self._mark_unused(outputs)

    def deactivate(self) -> None:
        """A forward under no_sync (or without grad): backward only accumulates locally."""
        if self._active and self._ready:
            self.prepare_for_backward(None)    # raises the unfinished-reduction error
        self._active = False

    def _mark_unused(self, outputs) -> None:
        reached = _reached_parameters(outputs)
        used = np.array([id(p) in reached for p in self.params], dtype=np.uint8)
        self._used_map = self._on_params_device(used)
        self._used_work = self.engine.allreduce(self._used_map, ReduceOp.MAX)
        for p in self.params:
            if id(p) not in reached:
                self._mark_ready(p, from_backward=False)

    def _missing_indices(self) -> list[int]:
        return [i for i, p in enumerate(self.params) if id(p) not in self._ready]

    def _mark_ready(self, p, *, from_backward: bool) -> None:
        if id(p) in self._ready:
            raise DistError(
                f"Expected to mark a variable ready only once. Parameter at index "
                f"{self.index_of[id(p)]} has been marked as ready twice: it took part in "
                "more than one backward pass (or reentrant backward) in one iteration")
        self._ready.add(id(p))
        bucket, i = self.where[id(p)]
        slot = bucket.slots[i]
        _copy_into_slot(slot, p.grad)
        if p.grad is not None and self.as_view and from_backward:
            p.grad = slot
        bucket.pending -= 1
        if bucket.pending == 0:
            self._launch_ready_buckets()
        self._drive_progress()

    def _launch_ready_buckets(self) -> None:
        while self._next_bucket < len(self.buckets) and \
                self.buckets[self._next_bucket].pending == 0:
            b = self.buckets[self._next_bucket]
            is_last = b.index == len(self.buckets) - 1
            b.future = self._run_comm_hook(GradBucket(b, is_last))
            self._next_bucket += 1
        if self._next_bucket == len(self.buckets):
            self._finalize()

    def _run_comm_hook(self, bucket: GradBucket):
        if self.comm_hook is None:
            from .algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
            return allreduce_hook(self.pg, bucket)
        return self.comm_hook(self.comm_state, bucket)

    def _drive_progress(self) -> None:
        """Let MPI move launched buckets along (no progress thread does it for us)."""
        if self._next_bucket:
            self.engine.progress()

    def _finalize(self) -> None:
        for b in self.buckets:
            result = b.future.wait()
            if not isinstance(result, Tensor):
                raise DistError("a DDP communication hook must return a Future of a Tensor, "
                                f"got a Future of {type(result).__name__}")
            if result.numel() != b.numel:
                raise DistError(f"the DDP communication hook returned {result.numel()} "
                                f"values for bucket {b.index} of {b.numel}")
            if not b.holds(result):
                b.fill_from(result)
        if self.grad_scale is not None:
            for b in self.buckets:
                b.scale(self.grad_scale)
        globally_used = self._globally_used()
        for p in self.params:
            if globally_used is not None and not globally_used[self.index_of[id(p)]]:
                continue
            bucket, i = self.where[id(p)]
            slot = bucket.slots[i]
            if self.as_view:
                p.grad = slot
            else:
                p.grad = slot.clone() if slot.is_cuda else Tensor._from_array(slot._array)
        self._active = False
        self._ready = set()

    def shadow_iteration(self) -> None:
        """A joined rank's stand-in for a backward: the same collectives, zero gradients.

        Issued in the order a training rank issues them (used map, then buckets by
        index), so MPI matches them; nothing is written to `.grad`.
        """
        if self.find_unused:
            used = self._on_params_device(np.zeros(len(self.params), np.uint8))
            self.engine.allreduce(used, ReduceOp.MAX).wait()
        futures = []
        for b in self.buckets:
            b.zero()
            futures.append(self._run_comm_hook(GradBucket(b, b.index == len(self.buckets) - 1)))
        for f in futures:
            f.wait()

    def _globally_used(self):
        if self._used_work is None:
            return None
        self._used_work.wait()
        used, self._used_work = self._used_map, None
        return used._values()

    def _on_params_device(self, arr: np.ndarray) -> Tensor:
        """A flag array as a tensor where the group reduces it (the parameters' device)."""
        tensor = Tensor._adopt(arr)
        return tensor.to(self.params[0].device) if self.params[0].is_cuda else tensor


def _reached_parameters(outputs) -> set[int]:
    """ids of the leaf tensors whose AccumulateGrad the outputs' autograd graph reaches."""
    stack = [edge_of(t)[0] for t in _tensors_in(outputs)]
    seen, reached = set(), set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, AccumulateGrad):
            reached.add(id(node.variable))
        stack.extend(n for n, _ in node.next_functions)
    return reached


def _tensors_in(obj) -> list:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors_in(item)]
    return []
