"""Pipeline schedules: the order in which a stage runs micro-batch forwards and backwards.

- GPipe: every micro-batch forward, then every backward (memory: all activations).
- 1F1B: stage s runs (num_stages - s - 1) warm-up forwards, then alternates one
  forward and one backward, then drains the backwards: at most num_stages micro-batches
  of activations alive on any stage.
Backward runs only when a `loss_fn` is given (every rank must pass one, or none for
inference). Both compute the same gradients: the first stage splits the batch into
`n_microbatches` chunks along dim 0, the last stage applies `loss_fn(output, target)`
per micro-batch, and with `scale_grads` (the default, as in PyTorch) each loss is
divided by n_microbatches, so a mean loss gives the gradients of the whole batch.
"""
from __future__ import annotations

from ...frontend.tensor import Tensor
from .stage import PipelineStage


class _Schedule:
    def __init__(self, stage: PipelineStage, n_microbatches: int, loss_fn=None,
                 scale_grads: bool = True):
        if n_microbatches < 1:
            raise ValueError(f"n_microbatches must be >= 1, got {n_microbatches}")
        self._stage = stage
        self._n = n_microbatches
        self._loss_fn = loss_fn
        self._scale = scale_grads
        self._losses: list = []
        self._pending_loss: dict = {}
        # backward runs iff a loss_fn is given: every rank must pass the same choice
        self._trains = loss_fn is not None

    def step(self, *args, target=None, losses: list | None = None, **kwargs):
        """Run one batch; returns the merged output on the last stage, else None."""
        if kwargs:
            raise TypeError("pipeline step: keyword inputs are not supported yet")
        st = self._stage
        chunks = self._split(args) if st.is_first else [() for _ in range(self._n)]
        targets = self._split_target(target) if st.is_last else [None] * self._n
        self._losses, outputs = [None] * self._n, [None] * self._n
        self._run(chunks, targets, outputs)
        st.wait_sends()
        if losses is not None:
            losses.extend(self._losses)
        if not st.is_last:
            return None
        from ... import cat
        return cat([o.detach() for o in outputs])

    # --- pieces the schedules use -------------------------------------------------------
    def _forward(self, mb, chunks, targets, outputs) -> None:
        out = self._stage.forward_one(mb, chunks[mb])
        outputs[mb] = out
        if self._stage.is_last and self._loss_fn is not None:
            loss = self._loss_fn(out, targets[mb])
            self._losses[mb] = loss.detach()
            self._pending_loss[mb] = loss / self._n if self._scale else loss

    def _backward(self, mb) -> None:
        loss = self._pending_loss.pop(mb) if self._stage.is_last else None
        self._stage.backward_one(mb, loss)

    def _split(self, args: tuple) -> list:
        if len(args) != 1 or not isinstance(args[0], Tensor):
            raise TypeError("pipeline step: the first stage takes one input Tensor")
        return [(c,) for c in _chunks(args[0], self._n)]

    def _split_target(self, target) -> list:
        if target is None:
            return [None] * self._n
        return _chunks(target, self._n)


def _chunks(t: Tensor, n: int) -> list:
    if t.shape[0] % n:
        raise ValueError(f"pipeline step: batch size {t.shape[0]} must divide into "
                         f"n_microbatches ({n}) equal micro-batches")
    return list(t.chunk(n, 0))


class ScheduleGPipe(_Schedule):
    """All forwards, then all backwards."""

    def _run(self, chunks, targets, outputs) -> None:
        for mb in range(self._n):
            self._forward(mb, chunks, targets, outputs)
        if not self._trains:
            return
        for mb in range(self._n):
            self._backward(mb)


class Schedule1F1B(_Schedule):
    """Warm-up forwards, then one forward / one backward, then the remaining backwards."""

    def _run(self, chunks, targets, outputs) -> None:
        st = self._stage
        if not self._trains:
            for mb in range(self._n):
                self._forward(mb, chunks, targets, outputs)
            return
        warmup = min(st.num_stages - st.stage_index - 1, self._n)
        next_fwd = next_bwd = 0
        for _ in range(warmup):
            self._forward(next_fwd, chunks, targets, outputs)
            next_fwd += 1
        while next_fwd < self._n:
            self._forward(next_fwd, chunks, targets, outputs)
            next_fwd += 1
            self._backward(next_bwd)
            next_bwd += 1
        while next_bwd < self._n:
            self._backward(next_bwd)
            next_bwd += 1
