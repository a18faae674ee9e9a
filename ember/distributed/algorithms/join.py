"""torch.distributed.algorithms.join: training on a different number of inputs per rank.

`with Join([ddp_model]):` lets each rank run out of inputs when it does. The protocol is
PyTorch's: inside the context, the first joinable's every synchronizing iteration
all-reduces a 1 (`Join.notify_join_context`); a rank that leaves the `with` body
all-reduces 0s instead, and while the sum says some rank is still training it runs
each joinable's `JoinHook.main_hook()` (the collectives a training iteration would
issue, with nothing to contribute). When the sum reaches 0, every hook's
`post_hook(is_last_joiner)` runs (DDP copies the model of the rank that trained
longest to all). With `throw_on_early_termination=True` the first rank to run out
makes every rank raise instead.
"""
from __future__ import annotations

from ...frontend.factories import tensor as ember_tensor
from .. import c10d


class JoinHook:
    """What a joined rank runs for one joinable: main_hook per iteration the others still
    train, post_hook once all have joined."""

    def main_hook(self) -> None:
        pass

    def post_hook(self, is_last_joiner: bool) -> None:
        pass


class _JoinConfig:
    def __init__(self, enable: bool, throw_on_early_termination: bool,
                 is_first_joinable: bool):
        self.enable = enable
        self.throw_on_early_termination = throw_on_early_termination
        self.is_first_joinable = is_first_joinable

    @staticmethod
    def disabled() -> "_JoinConfig":
        return _JoinConfig(False, False, False)


class Joinable:
    """A class whose per-iteration collectives a joined rank can shadow: it gives
    `join_hook(**kwargs)`, `join_device` and `join_process_group`, and calls
    `Join.notify_join_context(self)` once per iteration before its collectives."""

    def __init__(self):
        self._join_config = _JoinConfig.disabled()

    def join_hook(self, **kwargs) -> JoinHook:
        raise NotImplementedError(f"{type(self).__name__} must define join_hook()")

    @property
    def join_device(self):
        raise NotImplementedError(f"{type(self).__name__} must define join_device")

    @property
    def join_process_group(self):
        raise NotImplementedError(f"{type(self).__name__} must define join_process_group")


class Join:
    """Context manager over `joinables` (all on one process group); `kwargs` go to each
    joinable's join_hook (DDP: divide_by_initial_world_size)."""

    def __init__(self, joinables: list, enable: bool = True,
                 throw_on_early_termination: bool = False, **kwargs):
        if len(joinables) == 0:
            raise ValueError("The join context manager requires at least one joinable")
        for j in joinables:
            if not isinstance(j, Joinable):
                raise TypeError(f"Join: {type(j).__name__} is not a Joinable (it must "
                                "subclass ember.distributed.algorithms.Joinable)")
        self._joinables = list(joinables)
        self._join_hooks = [j.join_hook(**kwargs) for j in self._joinables]
        self._enable = enable
        self._throw = throw_on_early_termination
        groups = {id(j.join_process_group) for j in self._joinables}
        if len(groups) > 1:
            raise ValueError("Using join context manager with multiple process groups")
        self._process_group = self._joinables[0].join_process_group
        self._rank = c10d.get_rank(self._process_group)

    def _set_configs(self, enable: bool) -> None:
        for i, j in enumerate(self._joinables):
            j._join_config = _JoinConfig(enable, self._throw, i == 0) if enable else \
                _JoinConfig.disabled()

    def __enter__(self):
        self._set_configs(self._enable)
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self._enable or exc_type is not None:
            self._set_configs(False)
            return False              # an error inside the body propagates unchanged
        try:
            is_last_joiner = True
            while self._nonjoined_count() > 0:
                if self._throw:
                    self._notify_procs_to_terminate()
                for hook in self._join_hooks:
                    hook.main_hook()
                is_last_joiner = False
            for hook in self._join_hooks:
                hook.post_hook(is_last_joiner)
        finally:
            self._set_configs(False)
        return False

    def _nonjoined_count(self) -> int:
        count = ember_tensor([0])
        c10d.all_reduce(count, group=self._process_group)
        return int(count.item())

    def _notify_procs_to_terminate(self) -> None:
        c10d.all_reduce(ember_tensor([1]), group=self._process_group)
        raise RuntimeError(f"Rank {self._rank} exhausted all inputs.")

    @staticmethod
    def notify_join_context(joinable: Joinable):
        """Called by a joinable once per iteration: the first joinable of an active Join
        all-reduces a 1 (counted by joined ranks' 0s); returns that all-reduce's Work
        (its result is the number of ranks still training), else None."""
        config = joinable._join_config
        if not config.is_first_joinable or not config.enable:
            return None
        group = joinable.join_process_group
        ones = ember_tensor([1])
        work = c10d.all_reduce(ones, group=group, async_op=True)
        if config.throw_on_early_termination:
            flag = ember_tensor([0])
            c10d.all_reduce(flag, group=group)
            if int(flag.item()):
                raise RuntimeError("Detected at least one rank that exhausted inputs. "
                                   "Throwing across all ranks.")
        return work
