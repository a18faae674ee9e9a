"""First-call cost of a CUDA compile: the opt-in stage timer (EMBER_COMPILE_TIMES=1,
ir/compile_times.py) and the work it led to cut: one disk lookup per distinct compiled
code in a batch, one module load per distinct cubin (kernels differing only in their
name share it). No GPU: the loader and the compiler are stand-ins where a GPU would be
needed."""
import numpy as np
import pytest

import ember
from ember.codegen.triton import device_compile as dc
from ember.codegen.triton.source import GeneratedKernel, LaunchSpec
from ember.frontend import eager_cuda
from ember.ir import compile_times


def _kernel(name: str, body: str = "x = 1") -> GeneratedKernel:
    spec = LaunchSpec(name, [("in0_ptr", "*fp32")], {"XBLOCK": 64}, (1, 1, 1), "fixed", 4)
    return GeneratedKernel(f"def {name}(in0_ptr, XBLOCK: tl.constexpr):\n    {body}\n", spec)


def test_stages_nest_exclusively_and_sum_to_the_call(monkeypatch, capsys):
    monkeypatch.setenv(compile_times.ENV, "1")
    with compile_times.call("demo"):
        with compile_times.stage("outer"):
            with compile_times.stage("inner"):
                pass
            with compile_times.stage("inner"):
                pass
        compile_times.note("cubins compiled in workers", 3)
        compile_times.item("kernel compiles (CPU s)", "conv", 2.5)
        compile_times.item("kernel compiles (CPU s)", "add", 0.5)
    out = capsys.readouterr().err
    rows = {line[:54].strip(): line[54:].split() for line in out.splitlines()[2:]
            if not line.strip().startswith(("note", "kernel", "2.", "0."))}
    assert rows["inner"][1] == "2" and rows["outer"][1] == "1"
    assert "note: cubins compiled in workers = 3" in out
    assert out.index("conv") < out.index("add")          # largest first
    total = float(out.splitlines()[0].split(": ")[-1].split()[0])
    assert abs(sum(float(v[0]) for v in rows.values()) - total) < 5e-3


def test_off_by_default_and_outermost_call_only(monkeypatch, capsys):
    monkeypatch.delenv(compile_times.ENV, raising=False)
    with compile_times.call("off"):
        with compile_times.stage("x"):
            pass
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(compile_times.ENV, "1")
    with compile_times.call("outer call"):
        with compile_times.call("inner call"):       # a compiled function inside another
            pass
    err = capsys.readouterr().err
    assert "outer call" in err and "inner call" not in err


def test_compiled_calls_print_their_first_two_tables(monkeypatch, capsys):
    monkeypatch.setenv(compile_times.ENV, "1")
    model = ember.nn.Sequential(ember.nn.Linear(4, 3), ember.nn.ReLU())
    fast = ember.compile(model)
    x = ember.tensor(np.random.default_rng(0).standard_normal((2, 4), dtype=np.float32))
    for _ in range(3):
        got = fast(x)
    np.testing.assert_allclose(got.detach().numpy(), model(x).detach().numpy(), rtol=1e-6)
    step = ember.compile_train_step(model, ember.nn.MSELoss(),
                                    ember.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(3):
        step(x, ember.zeros(2, 3))
    err = capsys.readouterr().err
    assert err.count("ember compile times: ember.compile") == 2
    assert err.count("ember compile times: compile_train_step") == 2
    assert "call 3" not in err
    first = err.split("ember compile times:")[1]
    assert "trace" in first and "passes" in first and "plan build" in first


def test_a_json_path_also_records_every_item(monkeypatch, tmp_path, capsys):
    import json
    path = tmp_path / "times.json"
    monkeypatch.setenv(compile_times.ENV, str(path))
    for label in ("first", "second"):
        with compile_times.call(label):
            with compile_times.stage("passes"):
                pass
            for i in range(compile_times.TOP_ITEMS + 3):     # more than the table lists
                compile_times.item("kernel compiles (CPU s)", f"k{i}", float(i))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["call"] for r in rows] == ["first", "second"]
    assert rows[0]["counts"]["passes"] == 1
    assert len(rows[0]["items"]["kernel compiles (CPU s)"]) == compile_times.TOP_ITEMS + 3
    assert "ember compile times: first" in capsys.readouterr().err


def test_one_disk_lookup_per_distinct_code(monkeypatch):
    jobs = [dc.CompileJob(_kernel(name), (True,), 90) for name in ("relu_1", "relu_2")]
    jobs.append(dc.CompileJob(_kernel("other", "x = 2"), (True,), 90))
    assert jobs[0].key() == jobs[1].key() != jobs[2].key()
    looked: list = []
    binary = dc.DeviceBinary(b"\x7fELF", {"name": "relu_1", "num_warps": 4})
    monkeypatch.setattr(dc, "cached", lambda job: looked.append(job.key()) or binary)
    assert dc.compile_many(jobs, workers=1) == [binary] * 3
    assert sorted(looked) == sorted({jobs[0].key(), jobs[2].key()})


def test_kernels_of_one_cubin_share_one_module_load(monkeypatch):
    import ember.runtime.cuda.module as M
    loads: list = []

    class Loaded:
        def __init__(self, cubin, meta, device=0):
            loads.append(meta.name)
            self.meta = meta
    monkeypatch.setattr(M, "CubinKernel", Loaded)
    monkeypatch.setattr(eager_cuda, "_KERNELS", {})
    monkeypatch.setattr(eager_cuda, "_LOADED", {})
    a, b, c = _kernel("relu_1"), _kernel("relu_2"), _kernel("other", "x = 2")
    binary = dc.DeviceBinary(b"\x7fELF", {"name": "relu_1", "num_warps": 4})
    got = [eager_cuda._install((k.key(), (True,), 0), dc.CompileJob(k, (True,), 90), binary, 0)
           for k in (a, b, c)]
    assert got[0] is got[1] is not got[2]
    assert len(eager_cuda._KERNELS) == 3 and len(loads) == 2
    # another device loads its own module
    eager_cuda._install((a.key(), (True,), 1), dc.CompileJob(a, (True,), 90), binary, 1)
    assert len(loads) == 3


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
