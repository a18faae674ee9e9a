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
from ..algorithms.join import Join, Joinable, JoinHook


class ZeroRedundancyOptimizer(Optimizer, Joinable):
    def __init__(self, params, optimizer_class, process_group=None,
                 parameters_as_bucket_view: bool = False, overlap_with_ddp: bool = False,
                 **defaults):
        if overlap_with_ddp:
            raise NotImplementedError("ZeroRedundancyOptimizer(overlap_with_ddp=True) is not "
                                      "supported by ember yet")
        Optimizer.__init__(self, params, _full_defaults(optimizer_class, defaults))
        Joinable.__init__(self)
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
        Join.notify_join_context(self)       # counts nothing unless ZeRO is first in a Join
        loss = None
        if self.optim is not None:
            for local, gi in zip(self.optim.param_groups, self._local_to_global):
                local.update(_hyperparameters(self.param_groups[gi]))   # LR schedulers
            loss = self.optim.step(closure)
        elif closure is not None:
            loss = self._closure_loss(closure)
        self._broadcast_parameters()
        return loss

    # --- uneven inputs (algorithms/join.py) -------------------------------------------
    def join_hook(self, **kwargs) -> JoinHook:
        """While other ranks still train, a joined rank runs `step()` once per their
        iteration (PyTorch's hook): its shard steps with whatever `.grad` holds (DDP's
        join hook reduces zeros into its own buckets and leaves `.grad` alone), and
        the shard's broadcast matches the training ranks' steps."""
        return _ZeROJoinHook(self)

    @property
    def join_device(self):
        return self.param_groups[0]["params"][0].device

    @property
    def join_process_group(self):
        return self.process_group

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

    # --- state_dict ------------------------------------------------------------------
    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gather every rank's optimizer-state shard on group rank `to` (all ranks call it)."""
        from ..object_collectives import gather_object
        local_ids = self._local_global_indices()
        shard = (local_ids, self.optim.state_dict() if self.optim is not None else None)
        me = c10d.get_rank(self.process_group)
        received = [None] * self.world_size if me == to else None
        gather_object(shard, received, dst=c10d.get_global_rank(self.process_group, to),
                      group=self.process_group)
        self._consolidated = received

    def state_dict(self) -> dict:
        """The whole optimizer's state, as a plain optimizer over every parameter has it.

        Only on the rank that `consolidate_state_dict(to=...)` gathered to.
        """
        shards = getattr(self, "_consolidated", None)
        if shards is None:
            raise RuntimeError("Optimizer state has not been consolidated on this rank. "
                               "Please call `consolidate_state_dict(to=...)` on all ranks "
                               "beforehand if you meant to save the global state.")
        state = {}
        for ids, shard in shards:
            if shard is not None:
                for local_index, value in shard["state"].items():
                    state[ids[local_index]] = value
        index = self._global_index()
        groups = [dict(_hyperparameters(g), params=[index[id(p)] for p in g["params"]])
                  for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a whole-optimizer state (from state_dict()); each rank keeps its shard."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups "
                             f"({len(saved_groups)} vs {len(self.param_groups)})")
        for group, saved in zip(self.param_groups, saved_groups):
            group.update(_hyperparameters(saved))
        if self.optim is None:
            return
        ids = self._local_global_indices()
        local_groups = [dict(_hyperparameters(self.param_groups[gi]), params=[])
                        for gi in self._local_to_global]
        start = 0
        for local, group in zip(local_groups, self.optim.param_groups):
            local["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
        local_state = {i: state_dict["state"][g] for i, g in enumerate(ids)
                       if g in state_dict["state"]}
        self.optim.load_state_dict({"state": local_state, "param_groups": local_groups})

    def _global_index(self) -> dict[int, int]:
        flat = [p for g in self.param_groups for p in g["params"]]
        return {id(p): i for i, p in enumerate(flat)}

    def _local_global_indices(self) -> list[int]:
        """Global parameter index of each local-optimizer parameter, in its order."""
        if self.optim is None:
            return []
        index = self._global_index()
        return [index[id(p)] for g in self.optim.param_groups for p in g["params"]]


def _full_defaults(optimizer_class, defaults: dict) -> dict:
    """Every hyperparameter of `optimizer_class` (amsgrad, betas...), so that param_groups
    and state_dict() look like the plain optimizer's, whichever shard a rank holds."""
    from ...frontend.factories import zeros
    probe = optimizer_class([zeros(1, requires_grad=True)], **defaults)
    return dict(probe.defaults)


def _hyperparameters(group: dict) -> dict:
    return {k: v for k, v in group.items() if k != "params"}


class _ZeROJoinHook(JoinHook):
    def __init__(self, zero: ZeroRedundancyOptimizer):
        self.zero = zero

    def main_hook(self) -> None:
        self.zero.step()
