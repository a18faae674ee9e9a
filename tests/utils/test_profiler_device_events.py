"""The profiler's side of GPU kernel timing, on any machine: kernel launches are reported
through ir.profiling's kernel timer with two timing events each, exactly as the runtime's
launcher reports them (runtime/cuda/module.py); here the events carry known times, so
the resolution into kernel rows, CUDA columns and trace events is checked exactly. The
real launches are timed by tests/cuda/test_gpu_tools.py on a GPU."""
import json

import pytest

import ember
from ember.ir import profiling
from ember.profiler import ProfilerActivity, profile, record_function
from ember.profiler import profiler as profiler_module


class TimedEvent:
    """Stands for a recorded CUDA event whose GPU timestamp is `ms`."""

    def __init__(self, ms: float):
        self.ms = ms
        self.synchronized = False

    def synchronize(self):
        self.synchronized = True

    def elapsed_time(self, end: "TimedEvent") -> float:
        return end.ms - self.ms


def _launch(name, start_ms, end_ms, stream=7):
    timer = profiling.kernel_timer()
    assert timer is not None, "a CUDA profile installs the kernel timer"
    start, end = TimedEvent(start_ms), TimedEvent(end_ms)
    timer.kernel(name, 0, stream, (4, 1, 1), start, end)
    return end


@pytest.fixture
def gpu_profile(monkeypatch):
    monkeypatch.setattr(profiler_module, "_cuda_available", lambda: True)


def test_kernels_become_cuda_rows_under_their_launching_span(gpu_profile, tmp_path):
    x = ember.ones(3)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        with record_function("step"):
            with record_function("fused"):
                ends = [_launch("triton_add", 0.0, 0.5), _launch("triton_mul", 1.0, 1.25)]
            ends.append(_launch("gemm_kernel", 2.0, 4.0))
            ember.relu(x)
    assert profiling.kernel_timer() is None               # uninstalled at stop
    assert all(e.synchronized for e in ends)
    events = prof.events()
    kernels = [e for e in events if e.device_type == "CUDA"]
    assert [(k.name, k.device_time_total) for k in kernels] == [
        ("triton_add", 500.0), ("triton_mul", 250.0), ("gemm_kernel", 2000.0)]
    assert all(k.cpu_time_total == 0 and k.category == "cuda_kernel" for k in kernels)
    step = next(e for e in events if e.name == "step")
    fused = next(e for e in events if e.name == "fused")
    assert fused.device_time_total == 750.0 and fused.self_device_time_total == 750.0
    assert step.self_device_time_total == 2000.0 and step.device_time_total == 2750.0
    assert step.cuda_time_total == 2750.0                  # PyTorch's older name
    # kernels sit on the GPU's own clock, offset from the first kernel's launch
    assert kernels[1].start_ns - kernels[0].start_ns == 1_000_000

    table = prof.key_averages().table(sort_by="self_cuda_time_total")
    header = table.splitlines()[1]
    for title in ("Self CUDA", "Self CUDA %", "CUDA total", "CUDA time avg"):
        assert title in header
    assert table.rstrip().endswith("Self CUDA time total: 2.750ms")
    # the GEMM kernel and the span that launched it directly share the top self time
    top = table.splitlines()[3:5]
    assert sorted(row.split()[0] for row in top) == ["gemm_kernel", "step"]
    assert all("2.000ms        72.73%" in row for row in top)

    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())["traceEvents"]
    gpu = [e for e in trace if e.get("cat") == "cuda_kernel"]
    assert [e["dur"] for e in gpu] == [500.0, 250.0, 2000.0]
    assert all(e["pid"] == 0 and e["tid"] == 7 and e["args"]["grid"] == [4, 1, 1]
               for e in gpu)
    assert {"ph": "M", "name": "process_name", "pid": 0, "tid": 0,
            "args": {"name": "cuda:0"}} in trace


def test_cpu_only_profiles_keep_the_cpu_table(gpu_profile):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        assert profiling.kernel_timer() is None
        ember.relu(ember.ones(2))
    table = prof.key_averages().table()
    assert "CUDA" not in table
    with pytest.raises(ValueError, match="no CUDA kernels were timed"):
        prof.key_averages().table(sort_by="cuda_time_total")


def test_without_a_gpu_cuda_activity_times_nothing_on_the_device(monkeypatch):
    monkeypatch.setattr(profiler_module, "_cuda_available", lambda: False)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        assert profiling.kernel_timer() is None
        ember.relu(ember.ones(2))
    assert "CUDA" not in prof.key_averages().table()


def test_the_runtime_launcher_brackets_launches_with_timing_events(gpu_profile, monkeypatch):
    """runtime/cuda/module.py's CubinKernel.launch with the driver stubbed: while a CUDA
    profile records, each launch records a start and an end event around cuLaunchKernel
    on the launch stream and reports them; outside a profile it records none."""
    from ember.runtime.cuda import module
    log = []

    class FakeEvent(TimedEvent):
        clock = iter(range(100))

        def __init__(self, enable_timing=False, device=0):
            assert enable_timing
            super().__init__(0.0)

        def record(self, stream):
            self.ms = float(next(FakeEvent.clock))
            log.append(("record", stream.handle))

    class FakeStream:
        handle, _stream = 0x51, object()

    monkeypatch.setattr(module, "Event", FakeEvent)
    monkeypatch.setattr(module.driver, "context", lambda device: None)
    monkeypatch.setattr(module.driver, "call", lambda name, *a: log.append((name,)))
    monkeypatch.setattr(module, "device_allocator", lambda device: None)
    kernel = object.__new__(module.CubinKernel)
    kernel.meta = module.LaunchMetadata("triton_relu", ["*fp32", "i32"], 4, scratch_params=0)
    kernel.device, kernel._function = 0, None
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        with record_function("outer"):
            kernel.launch((2, 1, 1), [0, 8], FakeStream())
    assert log == [("record", 0x51), ("cuLaunchKernel",), ("record", 0x51)]
    kernels = [e for e in prof.events() if e.device_type == "CUDA"]
    assert [(k.name, k.thread, k.grid, k.device_time_total) for k in kernels] == [
        ("triton_relu", 0x51, (2, 1, 1), 1000.0)]
    assert kernels[0].cpu_parent.name == "outer"
    log.clear()
    kernel.launch((2, 1, 1), [0, 8], FakeStream())            # not profiling: no events
    assert log == [("cuLaunchKernel",)]
