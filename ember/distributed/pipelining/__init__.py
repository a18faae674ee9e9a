"""ember.distributed.pipelining: pipeline parallelism (torch.distributed.pipelining's API).

One stage per rank: `PipelineStage(submodule, stage_index, num_stages, device)` wraps
the rank's piece of the model, and a schedule (`ScheduleGPipe`, `Schedule1F1B`) runs
micro-batches through the stages, sending activations forward and their gradients back
with point-to-point operations. `pipeline(module, mb_args, split_spec, split_policy)`
splits a model into those stages from its traced graph (split.py).
"""
from .schedules import Schedule1F1B, ScheduleGPipe  # noqa: F401
from .split import Pipe, SplitPoint, pipe_split, pipeline, split_by_cost  # noqa: F401
from .stage import PipelineStage  # noqa: F401

__all__ = ["PipelineStage", "ScheduleGPipe", "Schedule1F1B", "Pipe", "SplitPoint",
           "pipe_split", "pipeline", "split_by_cost"]
