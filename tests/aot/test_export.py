"""ember.export: the ExportedProgram's graph, specs and state, save/load, refusals."""
from __future__ import annotations

import io

import numpy as np
import pytest

import ember
from ember import nn


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.register_buffer("scale", ember.ones(3) * 2)

    def forward(self, x, y):
        return self.fc(x) * self.scale + y, x.sum()


def test_export_specs_names_and_values(rng):
    model = TwoInputs()
    x = ember.tensor(rng.standard_normal((4, 6), dtype=np.float32))
    y = ember.tensor(rng.standard_normal((4, 3), dtype=np.float32))
    ep = ember.export(model, (x, y))
    specs = {s.name: s for s in ep.input_specs}
    assert [s.name for s in ep.user_inputs] == ["x", "y"]
    assert specs["fc.weight"].kind == "parameter" and specs["fc.weight"].shape == (3, 6)
    assert specs["scale"].kind == "buffer"
    assert [s.shape for s in ep.output_specs] == [(4, 3), ()]
    assert 'get_attr "fc.weight"' in str(ep)
    got = ep.module()(x, y)
    with ember.no_grad():
        want = model(x, y)
    assert isinstance(got, tuple) and len(got) == 2
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())


def test_save_load_roundtrip(rng, tmp_path):
    model = ember.models.small_cnn()
    model.eval()
    x = ember.tensor(rng.standard_normal((2, 1, 12, 12), dtype=np.float32))
    ep = ember.export(model, (x,))
    path = tmp_path / "cnn.ep"
    ember.export.save(ep, path)
    back = ember.export.load(path)
    assert [s.as_json() for s in back.input_specs] == [s.as_json() for s in ep.input_specs]
    np.testing.assert_array_equal(back.module()(x).numpy(), ep.module()(x).numpy())


def test_load_refuses_other_files(tmp_path):
    path = tmp_path / "junk.ep"
    path.write_bytes(b"not a zip")
    with pytest.raises(ember.ArtifactError, match="not a saved ExportedProgram"):
        ember.export.load(path)


def test_refusals(rng):
    model = nn.Linear(3, 2)
    x = ember.randn(2, 3)
    with pytest.raises(ember.EmberError, match=r"names \['x'\], which are not inputs"):
        ember.export(model, (x,), dynamic_shapes={"x": {0: "batch"}})
    with pytest.raises(ember.EmberError, match="expected ember.export.Dim, got 'batch'"):
        ember.export(model, (x,), dynamic_shapes={"input": {0: "batch"}})
    ep = ember.export(model, (x,))
    with pytest.raises(ember.EmberError, match=r"input 'input' must be float32\[2, 3\]"):
        ep.module()(ember.randn(5, 3))


def test_data_dependent_control_flow_names_the_line():
    class Branchy(nn.Module):
        def forward(self, x):
            if x.sum() > 0:          # the line the error must name
                return x
            return -x
    with pytest.raises(ember.EmberError, match="test_export.py"):
        ember.export(Branchy(), (ember.randn(3),))


def test_save_to_file_object(rng):
    ep = ember.export(nn.Linear(3, 2), (ember.randn(1, 3),))
    buf = io.BytesIO()
    ember.export.save(ep, buf)
    buf.seek(0)
    assert ember.export.load(buf).graph_signature == ep.graph_signature
