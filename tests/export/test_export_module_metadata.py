"""ember.export's per-op module metadata (torch.export's `nn_module_stack` /
`source_fn_stack`), which pt2e quantizers read to tell an nn.ReLU module from a
functional relu."""
from __future__ import annotations

import io

import ember


def _local_model():
    class Block(ember.nn.Module):           # defined in a function: not importable
        def __init__(self):
            super().__init__()
            self.fc, self.act = ember.nn.Linear(3, 3), ember.nn.ReLU()

        def forward(self, x):
            return ember.relu(self.act(self.fc(x)) + x)
    return Block().eval()


def test_ops_record_the_module_calls_they_ran_in():
    ep = ember.export(_local_model(), (ember.randn(2, 3),))
    nodes = {n.name: n for n in ep.graph.nodes}
    relu_module, relu_function = nodes["relu"], nodes["relu_1"]
    assert list(relu_module.meta["nn_module_stack"].values())[-1] == \
        ("act", "ember.frontend.nn.modules.activation.ReLU")
    assert relu_module.meta["source_fn_stack"] == \
        [("relu", "ember.frontend.nn.modules.activation.ReLU")]
    assert list(nodes["linear"].meta["nn_module_stack"]) == ["", "fc"]
    # recorded in the model's own forward: only the model itself on the stack
    assert list(relu_function.meta["nn_module_stack"]) == [""]
    assert "source_fn_stack" not in relu_function.meta and \
        "source_fn_stack" not in nodes["add"].meta


def test_a_program_of_a_function_local_class_still_saves():
    ep = ember.export(_local_model(), (ember.randn(2, 3),))
    for obj in (ep, ep.module()):
        buffer = io.BytesIO()
        ember.save(obj, buffer)
        assert buffer.tell() > 0
