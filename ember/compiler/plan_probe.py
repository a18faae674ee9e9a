"""Packaging reads what it cannot know from the graph (a view's geometry, an int8 step's
qparams and result layout) off one run of the plan on zeros, with the steps it asks about
wrapped by a probe."""
from __future__ import annotations

import numpy as np


def np_dtype_name(dtype_name: str) -> str:
    """The NumPy dtype an artifact input of `dtype_name` is given as (bfloat16: float32)."""
    return {"bfloat16": "float32"}.get(dtype_name, dtype_name)


def run_with_probes(plan, user_inputs, shapes, wants, probe) -> None:
    """Run `plan` once on zeros of the user inputs' `shapes` (default: their exported
    shapes), every step for which wants(step) is true running probe(step, its fn) instead;
    the steps are restored afterwards, even when the run fails."""
    originals = {}
    for step in plan.steps:
        if wants(step):
            originals[id(step)] = step.fn
            step.fn = probe(step, step.fn)
    shapes = shapes or [s.shape for s in user_inputs]
    inputs = [np.zeros(shape, np.dtype(np_dtype_name(s.dtype)))
              for s, shape in zip(user_inputs, shapes)]
    try:
        plan.run(inputs)
    finally:
        for step in plan.steps:
            if id(step) in originals:
                step.fn = originals[id(step)]
