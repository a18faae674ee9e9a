"""ember.autograd.profiler: torch.autograd.profiler's spelling of the profiler, as older
tutorials use it:

    with torch.autograd.profiler.profile(record_shapes=True) as prof:
        with torch.autograd.profiler.record_function("model_inference"):
            model(inputs)
    print(prof.key_averages().table(sort_by="self_cpu_time_total"))

Both names hand over to ember.profiler (the same events, tables and traces).
"""
from __future__ import annotations


def profile(enabled: bool = True, *, use_cuda: bool = False, use_device=None,
            record_shapes: bool = False, with_flops: bool = False,
            profile_memory: bool = False, with_stack: bool = False,
            with_modules: bool = False, use_kineto: bool = False, use_cpu: bool = True,
            experimental_config=None, acc_events: bool = False,
            custom_trace_id_callback=None):
    from ...profiler import ProfilerActivity, profile as _profile
    if not enabled:
        raise NotImplementedError("autograd.profiler.profile(enabled=False) is not "
                                  "supported; leave the profiler out instead")
    activities = [ProfilerActivity.CPU] if use_cpu else []
    if use_cuda or use_device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    return _profile(activities=activities, record_shapes=record_shapes,
                    profile_memory=profile_memory, with_stack=with_stack,
                    with_flops=with_flops, with_modules=with_modules,
                    acc_events=acc_events)


def record_function(name: str, args: str | None = None):
    from ...profiler import record_function as _record_function
    return _record_function(name, args)


__all__ = ["profile", "record_function"]
