"""PipelineStage: one rank's piece of a pipelined model, and its sends and receives.

A stage runs micro-batch forwards and backwards. Activations go to the next stage
(tag 0) and their gradients come back (tag 1). Each message is preceded by a small
header (the tensor's dtype and shape, as int64) so the receiver allocates exactly the
tensor that was sent; MPI keeps messages between two ranks with one tag in order, so
headers and payloads pair up. Sends are nonblocking and waited at the end of a step:
in 1F1B a stage may send an activation while its neighbour sends it a gradient, and
two blocking rendezvous sends would deadlock.
"""
from __future__ import annotations

import numpy as np

from ...frontend.autograd import no_grad
from ...frontend.tensor import Tensor
from ...ir import dtypes
from .. import c10d

ACTIVATION_TAG, GRADIENT_TAG = 0, 1
_MAX_DIMS = 8
_DTYPES = [dtypes.float32, dtypes.float64, dtypes.float16, dtypes.bfloat16, dtypes.int64,
           dtypes.int32, dtypes.bool_]


class PipelineStage:
    def __init__(self, submodule, stage_index: int, num_stages: int, device=None,
                 input_args=None, output_args=None, group=None):
        if not 0 <= stage_index < num_stages:
            raise ValueError(f"PipelineStage: stage_index {stage_index} is outside "
                             f"[0, {num_stages})")
        self.submod = submodule
        self.stage_index = stage_index
        self.num_stages = num_stages
        self.group = group
        size = c10d.get_world_size(group)
        if size != num_stages:
            raise ValueError(f"PipelineStage: num_stages ({num_stages}) must equal the group's "
                             f"size ({size}): ember runs one stage per rank")
        if c10d.get_rank(group) != stage_index:
            raise ValueError(f"PipelineStage: stage_index {stage_index} must equal this "
                             f"rank's position in the group ({c10d.get_rank(group)})")
        self.is_first = stage_index == 0
        self.is_last = stage_index == num_stages - 1
        self._pending_sends: list = []
        self._inputs: dict[int, Tensor] = {}     # micro-batch -> received input (leaf)
        self._outputs: dict[int, Tensor] = {}

    # --- one micro-batch ---------------------------------------------------------------
    def forward_one(self, mb: int, args: tuple) -> Tensor:
        """Run the submodule on micro-batch `mb` (its input arrives from the previous stage)."""
        if not self.is_first:
            x = self._recv(self.stage_index - 1, ACTIVATION_TAG)
            x.requires_grad_(True)
            self._inputs[mb] = x
            args = (x,)
        out = self.submod(*args)
        if not isinstance(out, Tensor):
            raise TypeError("PipelineStage: a stage must return one Tensor, got "
                            f"{type(out).__name__}")
        self._outputs[mb] = out
        if not self.is_last:
            self._send(out.detach(), self.stage_index + 1, ACTIVATION_TAG)
        return out

    def backward_one(self, mb: int, loss: Tensor | None) -> None:
        """Backpropagate micro-batch `mb`: from its loss (last stage) or the next's grads."""
        out = self._outputs.pop(mb)
        if self.is_last:
            loss.backward()
        else:
            grad = self._recv(self.stage_index + 1, GRADIENT_TAG)
            out.backward(grad)
        if not self.is_first:
            x = self._inputs.pop(mb)
            grad_in = x.grad if x.grad is not None else _zeros_like(x)
            self._send(grad_in, self.stage_index - 1, GRADIENT_TAG)

    def wait_sends(self) -> None:
        for work in self._pending_sends:
            work.wait()
        self._pending_sends = []

    # --- messages ----------------------------------------------------------------------
    def _peer(self, stage: int) -> int:
        return stage if self.group is None else c10d.get_global_rank(self.group, stage)

    def _send(self, t: Tensor, stage: int, tag: int) -> None:
        header = np.full(_MAX_DIMS + 2, -1, np.int64)
        if t.ndim > _MAX_DIMS or t.dtype not in _DTYPES:
            raise ValueError(f"PipelineStage: cannot send a {t.dtype} tensor of "
                             f"{t.ndim} dims between stages")
        header[0], header[1] = _DTYPES.index(t.dtype), t.ndim
        header[2:2 + t.ndim] = t.shape
        payload = t.contiguous()
        peer = self._peer(stage)
        self._pending_sends.append(c10d.isend(Tensor._adopt(header), peer, self.group, tag))
        self._pending_sends.append(c10d.isend(payload, peer, self.group, tag))

    def _recv(self, stage: int, tag: int) -> Tensor:
        header = Tensor._adopt(np.zeros(_MAX_DIMS + 2, np.int64))
        peer = self._peer(stage)
        c10d.recv(header, peer, self.group, tag)
        code, ndim = int(header._array[0]), int(header._array[1])
        shape = tuple(int(s) for s in header._array[2:2 + ndim])
        from ...frontend.factories import empty
        t = empty(shape, dtype=_DTYPES[code])
        c10d.recv(t, peer, self.group, tag)
        return t


def _zeros_like(t: Tensor) -> Tensor:
    from ...frontend.factories import zeros
    with no_grad():
        return zeros(tuple(t.shape), dtype=t.dtype)
