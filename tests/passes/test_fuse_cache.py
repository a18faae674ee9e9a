"""The fusion plan cache (passes/fuse_cache.py): a graph planned before gets the same
groups from disk without the grouping search; any change of structure, shape, dtype,
layout or device misses; a damaged entry is ignored with a warning; EMBER_CACHE_DIR=''
turns it off."""
import pytest

import ember
from ember.ir.fused import FusedGroup
from ember.ir.meta import TensorMeta, channels_last
from ember.ir.symbolic import build_graph
from ember.passes import fuse as F
from ember.passes import fuse_cache
from ember.passes.manager import PassContext, run_passes


@pytest.fixture(autouse=True)
def _small_graphs_cached(monkeypatch):
    """The cache skips small graphs (they plan in milliseconds); these tests' graphs are
    small so that they run fast."""
    monkeypatch.setattr(fuse_cache, "MIN_NODES", 20)


def _layers(x):
    """~40 nodes: pointwise runs and row reductions."""
    for i in range(3):
        x = (x * 1.01 + 0.5).relu()
        x = x - x.mean(-1, keepdim=True)
        x = (x * x).sigmoid() + x
        x = x.softmax(-1) * 2.0 + x.tanh()
    return x


def _fused(meta):
    graph, constants = build_graph(_layers, [meta])
    assert len(list(graph.nodes)) >= fuse_cache.MIN_NODES
    run_passes(graph, "fuse", PassContext(constants=constants))
    return graph


def _groups(graph):
    return [[n.target.name for n in node.target.graph.nodes if n.op.value == "call_function"]
            for node in graph.nodes if isinstance(node.target, FusedGroup)]


def _meta(shape=(4, 8, 6, 16), dtype=ember.float32, **kw):
    return TensorMeta(shape, dtype, **kw)


def _counting(monkeypatch):
    calls = []
    real = F.plan_groups
    monkeypatch.setattr(F, "plan_groups", lambda *a: calls.append(1) or real(*a))
    return calls


def test_a_planned_graph_is_read_back_with_the_same_groups(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    calls = _counting(monkeypatch)
    first = _groups(_fused(_meta()))
    assert first and calls == [1]
    assert len(list((tmp_path / "fuse").glob("*.json"))) == 1
    again = _groups(_fused(_meta()))            # a fresh trace of the same function
    assert again == first and calls == [1]      # from disk: no grouping search


@pytest.mark.parametrize("change", [
    dict(shape=(4, 8, 6, 17)),
    dict(dtype=ember.float64),
    dict(memory_format=channels_last),
    dict(device="cuda"),
])
def test_another_shape_dtype_layout_or_device_misses(monkeypatch, tmp_path, change):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    calls = _counting(monkeypatch)
    _fused(_meta())
    _fused(_meta(**change))
    assert calls == [1, 1]
    assert len(list((tmp_path / "fuse").glob("*.json"))) == 2


def test_a_damaged_entry_is_ignored_with_a_warning_and_rewritten(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    calls = _counting(monkeypatch)
    want = _groups(_fused(_meta()))
    (path,) = (tmp_path / "fuse").glob("*.json")
    for damage in ("{not json", '{"format": "ember-fuse-plan-1", "nodes": 3, "groups": []}',
                   path.read_text().replace("[[", "[[9999,", 1)):
        path.write_text(damage)
        with pytest.warns(RuntimeWarning, match="damaged entry of the fusion plan cache"):
            assert _groups(_fused(_meta())) == want
    assert len(calls) == 4
    assert _groups(_fused(_meta())) == want and len(calls) == 4      # rewritten: a hit


def test_an_empty_cache_dir_setting_turns_it_off(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBER_CACHE_DIR", "")
    monkeypatch.setattr(fuse_cache, "write_atomic", lambda *a: pytest.fail("wrote a plan"))
    calls = _counting(monkeypatch)
    _fused(_meta())
    _fused(_meta())
    assert calls == [1, 1]
