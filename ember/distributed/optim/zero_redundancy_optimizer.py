"""ZeroRedundancyOptimizer: optimizer state sharded over the ranks (ZeRO stage 1).

Each rank owns a partition of the parameters and runs the wrapped optimizer (any
ember.optim class) on its partition only, so each optimizer state (Adam's moments...)
lives on one rank. After the local step every parameter is broadcast from its owner,
so all replicas hold the same updated parameters. Gradients must already be equal on
every rank (DDP's backward makes them so).

Partitioning follows PyTorch: within each parameter group, parameters sorted by size
(largest first) go to the rank holding the fewest elements so far.
"""
from __future__ import annotations

from ...frontend.autograd import no_grad
from ...frontend.optim.optimizer import Optimizer
from .. import c10d


class ZeroRedundancyOptimizer(Optimizer):
    def __init__(self, params, optimizer_class, process_group=None,
                 parameters_as_bucket_view: bool = False, overlap_with_ddp: bool = False,
                 **defaults):
        if overlap_with_ddp:
            raise NotImplementedError("ZeroRedundancyOptimizer(overlap_with_ddp=True) is not "
                                      "supported by ember yet")
        super().__init__(params, dict(defaults))
        self.process_group = process_group if process_group is not None else c10d.group.WORLD
        if self.process_group is None:
            c10d._require_init("ZeroRedundancyOptimizer")
        self.world_size = c10d.get_world_size(self.process_group)
        self.rank = c10d.get_rank(self.process_group)
        self.global_rank = c10d.get_rank()
        self._optimizer_class = optimizer_class
        self._defaults = dict(defaults)
        self._owner = {}            # id(param) -> group rank that steps it
        self._local_to_global: list[int] = []
        self.optim = self._build_local_optimizer()

    # --- partition -------------------------------------------------------------------
    def _partition(self, params: list) -> list[list]:
        shards, sizes = [[] for _ in range(self.world_size)], [0] * self.world_size
        for p in sorted(params, key=lambda t: t.numel(), reverse=True):
            r = sizes.index(min(sizes))
            shards[r].append(p)
            sizes[r] += p.numel()
        return shards

    def _build_local_optimizer(self):
        local_groups = []
        self._local_to_global = []
        for gi, group in enumerate(self.param_groups):
            shards = self._partition(group["params"])
            for r, shard in enumerate(shards):
                for p in shard:
                    self._owner[id(p)] = r
            mine = [p for p in group["params"] if self._owner[id(p)] == self.rank]
            if mine:
                local_groups.append({**_hyperparameters(group), "params": mine})
                self._local_to_global.append(gi)
        if not local_groups:
            return None          # more ranks than parameters: this rank only receives
        return self._optimizer_class(local_groups, **self._defaults)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        if getattr(self, "_optimizer_class", None) is not None:
            self.optim = self._build_local_optimizer()

    # --- step ------------------------------------------------------------------------
    def step(self, closure=None):
        loss = None
        if self.optim is not None:
            for local, gi in zip(self.optim.param_groups, self._local_to_global):
                local.update(_hyperparameters(self.param_groups[gi]))   # LR schedulers
            loss = self.optim.step(closure)
        elif closure is not None:
            loss = self._closure_loss(closure)
        self._broadcast_parameters()
        return loss

    def _broadcast_parameters(self) -> None:
        works = []
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    src = c10d.get_global_rank(self.process_group, self._owner[id(p)])
                    works.append(c10d.broadcast(p.detach(), src, group=self.process_group,
                                                async_op=True))
        for w in works:
            w.wait()

    def state_dict(self) -> dict:
        raise NotImplementedError(
            "ZeroRedundancyOptimizer.state_dict(): each rank holds only its shard of the "
            "optimizer state, and consolidating it (consolidate_state_dict) is not supported "
            "by ember yet; save `zero.optim.state_dict()` on every rank instead")


def _hyperparameters(group: dict) -> dict:
    return {k: v for k, v in group.items() if k != "params"}
