"""Helpers shared by the compiled-function and compiled-training-step tests (CPU and CUDA)."""
from __future__ import annotations

import gc
from typing import Callable

from ember.runtime.allocator import default_allocator
from ember.runtime.plan import page_faults


def eager_step(model, loss_fn, opt, x, y):
    """One eager training step, the reference a compiled step must equal."""
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss


def assert_steady_calls_allocate_nothing(call: Callable[[], object], max_faults_per_call: int,
                                         calls: int = 5) -> None:
    """After warm-up, `calls` calls reserve no new allocator memory and page-fault fewer than
    `max_faults_per_call` times each (a fresh large buffer would fault once per 4 KiB page)."""
    gc.collect()
    reserved = default_allocator().reserved_bytes
    before = page_faults()
    for _ in range(calls):
        call()
    gc.collect()
    assert default_allocator().reserved_bytes == reserved
    assert page_faults() - before < calls * max_faults_per_call
