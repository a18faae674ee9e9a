"""ember.ao.ns (numeric suite): compare_weights, the per-layer report and sensitivity.

The report's per-layer numbers are checked against an independent computation: torch.ao's
converted model on the same float weights and calibration data (its int8 modules hooked
for their outputs) against the float layers computed in NumPy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx

import ember
import ember.ao.ns as ns
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx

pytestmark = pytest.mark.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"


def mlp(lib):
    nn, F = lib.nn, lib.nn.functional

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(16, 32), nn.Linear(32, 24), nn.Linear(24, 8)

        def forward(self, x):
            h = F.relu(self.fc1(x))
            return self.fc3(F.relu(self.fc2(h)) + h[:, :24])

    return MLP().eval()


def twins(rng):
    t_model, e_model = mlp(torch), mlp(ember)
    state = {k: torch.from_numpy(rng.standard_normal(v.shape).astype(np.float32) * 0.3)
             for k, v in t_model.state_dict().items()}
    t_model.load_state_dict(state)
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in state.items()})
    return t_model, e_model


def _calibrated(lib_fx, lib, model, batches):
    prepared = lib_fx.prepare_fx(model, lib.ao.quantization.get_default_qconfig_mapping("x86"),
                                 (batches[0],))
    for b in batches:
        prepared(b)
    return lib_fx.convert_fx(prepared)


def _sqnr(ref, got):
    return 10 * math.log10(float(np.sum(ref ** 2)) / float(np.sum((ref - got) ** 2)))


def test_report_matches_torch_ao_layer_by_layer(rng, capsys):
    t_model, e_model = twins(rng)
    data = [rng.standard_normal((16, 16)).astype(np.float32) for _ in range(3)]
    t_q = _calibrated(tqfx, torch, t_model, [torch.from_numpy(d) for d in data])
    e_q = _calibrated(eqfx, ember, e_model, [ember.tensor(d) for d in data])
    rows = ns.report(e_model, e_q, [ember.tensor(d) for d in data])
    assert "SQNR" in capsys.readouterr().out                 # the table was printed
    by_layer = {r["layer"]: r for r in rows}
    assert list(by_layer) == ["fc1", "fc2", "add", "fc3", "output"]
    assert by_layer["fc1"]["op"] == "quantized_linear+relu" and by_layer["fc1"]["quantized"]

    # independent oracle: torch.ao's int8 layer outputs against float layers in NumPy
    seen = {}
    for name in ("fc1", "fc2", "fc3"):
        t_q.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: seen.setdefault(name, []).append(o.dequantize().numpy()))
    w = {k: v.detach().numpy().astype(np.float64) for k, v in t_model.state_dict().items()}
    floats = {"fc1": [], "fc2": [], "fc3": []}
    for d in data:
        t_q(torch.from_numpy(d))
        h1 = np.maximum(d @ w["fc1.weight"].T + w["fc1.bias"], 0)
        h2 = np.maximum(h1 @ w["fc2.weight"].T + w["fc2.bias"], 0)
        floats["fc1"].append(h1)
        floats["fc2"].append(h2)
        floats["fc3"].append((h2 + h1[:, :24]) @ w["fc3.weight"].T + w["fc3.bias"])
    for name in ("fc1", "fc2", "fc3"):
        ref, got = np.concatenate(floats[name]), np.concatenate(seen[name])
        assert by_layer[name]["sqnr_db"] == pytest.approx(_sqnr(ref, got), abs=0.05), name
        assert by_layer[name]["max_abs_error"] == pytest.approx(
            np.abs(ref - got).max(), abs=1e-3), name
        assert by_layer[name]["sqnr_db"] < 60                   # quantization did something
    assert by_layer["output"]["sqnr_db"] == by_layer["fc3"]["sqnr_db"]


def test_report_lists_float_leftovers(rng):
    _, e_model = twins(rng)
    data = [ember.tensor(rng.standard_normal((8, 16)).astype(np.float32)) for _ in range(2)]
    mapping = eq.get_default_qconfig_mapping("x86").set_module_name("fc2", None)
    prepared = eqfx.prepare_fx(e_model, mapping, (data[0],))
    for d in data:
        prepared(d)
    rows = {r["layer"]: r for r in ns.report(e_model, eqfx.convert_fx(prepared), data,
                                             show=False)}
    assert rows["fc2"]["quantized"] is False and rows["fc2"]["op"] == "LinearReLU"
    assert rows["fc1"]["quantized"] is True


def test_compare_weights_static_and_dynamic(rng):
    t_model, e_model = twins(rng)
    data = [ember.tensor(rng.standard_normal((8, 16)).astype(np.float32))]
    e_q = _calibrated(eqfx, ember, e_model, data)
    found = ns.compare_weights(e_model.state_dict(), e_q.state_dict())
    # torch.ao's keys: a Linear's packed entry (the key its swapped module has)
    packed = [f"fc{i}._packed_params._packed_params" for i in (1, 2, 3)]
    assert sorted(found) == packed
    t_w = torch.quantize_per_channel(
        t_model.fc2.weight.detach(), *_per_channel_qparams(t_model.fc2.weight), 0, torch.qint8)
    got = found[packed[1]]["quantized"]
    np.testing.assert_array_equal(got.int_repr().numpy(), t_w.int_repr().numpy())
    assert found[packed[1]]["float"] is e_model.state_dict()["fc2.weight"] or np.array_equal(
        found[packed[1]]["float"].numpy(), e_model.fc2.weight.detach().numpy())
    sqnr = float(ns.compute_sqnr(found[packed[1]]["float"], got))
    assert sqnr == pytest.approx(float(_torch_ns_utils().compute_sqnr(
        t_model.fc2.weight.detach(), t_w.dequantize())), abs=1e-3)
    dyn = eq.quantize_dynamic(e_model, {ember.nn.Linear}, dtype=ember.qint8)
    assert sorted(ns.compare_weights(e_model.state_dict(), dyn.state_dict())) == packed


def _torch_ns_utils():
    from torch.ao.ns.fx import utils
    return utils


def _per_channel_qparams(weight):
    obs = tq.default_per_channel_weight_observer()
    obs(weight.detach())
    return obs.calculate_qparams()


def test_metrics_match_torch_ao_ns(rng):
    from torch.ao.ns.fx import utils as tutils
    x = rng.standard_normal((5, 7)).astype(np.float32)
    y = x + 0.01 * rng.standard_normal((5, 7)).astype(np.float32)
    tx, ty, ex, ey = torch.from_numpy(x), torch.from_numpy(y), ember.tensor(x), ember.tensor(y)
    for name in ("compute_sqnr", "compute_normalized_l2_error"):
        assert float(getattr(ns, name)(ex, ey)) == pytest.approx(
            float(getattr(tutils, name)(tx, ty)), rel=1e-5), name
    assert float(ns.compute_cosine_similarity(ex, ey)) == pytest.approx(
        float(torch.nn.functional.cosine_similarity(tx.reshape(1, -1), ty.reshape(1, -1))),
        rel=1e-5)


@pytest.mark.parametrize("method", ["one_at_a_time", "leave_one_out"])
def test_sensitivity_leaves_the_damaging_layer_in_float(rng, method):
    """Input feature 0 spans 1000x the range of the others and fc1 ignores it (zero
    weights): quantizing fc1's input per tensor wipes out every other feature, so fc1
    is the layer to keep in float."""
    _, model = twins(rng)
    with ember.no_grad():
        model.fc1.weight[:, 0].fill_(0.0)
    data = []
    for _ in range(2):
        x = rng.standard_normal((16, 16)).astype(np.float32)
        x[:, 0] *= 1000.0
        data.append(ember.tensor(x))
    mapping = eq.get_default_qconfig_mapping("x86")
    scores = ns.layer_sensitivity(model, mapping, (data[0],), data, method=method)
    assert [r["layer"] for r in scores][0] == "fc1"
    assert sorted(r["layer"] for r in scores) == ["fc1", "fc2", "fc3"]
    kept = ns.sensitivity(model, mapping, (data[0],), data, 1, method=method)
    assert dict(kept.module_name_qconfigs) == {"fc1": None}
    assert mapping.module_name_qconfigs == {}                  # the input is not modified

    def output_sqnr(m):
        prepared = eqfx.prepare_fx(model, m, (data[0],))
        for d in data:
            prepared(d)
        q = eqfx.convert_fx(prepared)
        assert [n for n, _ in q.quantization_report] != [] or m is mapping
        return _sqnr(np.concatenate([model(d).detach().numpy() for d in data]),
                     np.concatenate([q(d).numpy() for d in data]))

    assert output_sqnr(kept) > output_sqnr(mapping) + 10


def test_sensitivity_rejects_bad_arguments(rng):
    _, model = twins(rng)
    x = ember.randn(4, 16)
    with pytest.raises(ValueError, match="method must be one of"):
        ns.layer_sensitivity(model, eq.get_default_qconfig_mapping(), (x,), [x], method="x")
    with pytest.raises(ValueError, match="data is empty"):
        ns.sensitivity(model, eq.get_default_qconfig_mapping(), (x,), [], 1)


def test_report_on_a_conv_bn_residual_model(rng):
    nn = ember.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            x = nn.functional.relu(self.bn1(self.conv1(x)))    # fused (torch.relu is not)
            x = ember.relu(self.conv2(x) + x)
            return self.fc(ember.flatten(self.pool(x), 1))

    model = Net().eval()
    data = [ember.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
            for _ in range(2)]
    q = _calibrated(eqfx, ember, model, data)
    rows = {r["layer"]: r for r in ns.report(model, q, data, show=False)}
    assert list(rows) == ["conv1", "conv2", "add", "pool", "fc", "output"]
    assert rows["conv1"]["op"] == "quantized_conv2d+relu"     # bn folded, relu fused
    assert rows["add"]["op"] == "quantized_add+relu" and rows["pool"]["quantized"]
    with ember.no_grad():
        ref = np.concatenate([model(d).numpy() for d in data])
        got = np.concatenate([q(d).numpy() for d in data])
    assert rows["output"]["sqnr_db"] == pytest.approx(_sqnr(ref, got), abs=1e-3)  # bn folded
    assert rows["output"]["max_abs_error"] == pytest.approx(np.abs(ref - got).max(), abs=1e-4)
    assert all(10 < r["sqnr_db"] < 60 for r in rows.values())


def test_numeric_suite_fx_entry_points(rng):
    """torch's _numeric_suite_fx flow on ember: loggers after each layer, then SQNR per
    layer; on one batch it equals the report's numbers."""
    import ember.ao.ns._numeric_suite_fx as ensfx
    from ember.ao.ns.fx.utils import compute_sqnr
    _, e_model = twins(rng)
    x = ember.tensor(rng.standard_normal((16, 16)).astype(np.float32))
    e_q = _calibrated(eqfx, ember, e_model, [x])
    weights = ensfx.extract_weights("fp32", e_model, "int8", e_q)
    assert sorted(weights) == ["fc1", "fc2", "fc3"]
    assert weights["fc2"]["weight"]["int8"][0]["values"][0].is_quantized
    a, b = ensfx.add_loggers("fp32", e_model, "int8", e_q, ensfx.OutputLogger)
    with ember.no_grad():
        np.testing.assert_array_equal(b(x).numpy(), e_q(x).numpy())   # loggers pass through
        np.testing.assert_allclose(a(x).numpy(), e_model(x).numpy(), rtol=1e-5, atol=1e-6)
    results = ensfx.extract_logger_info(a, b, ensfx.OutputLogger, "int8")
    ensfx.extend_logger_results_with_comparison(results, "fp32", "int8", compute_sqnr, "sqnr")
    torch_keys = {"type", "values", "ref_node_name", "ref_node_target_type", "prev_node_name",
                  "prev_node_target_type", "index_within_arg", "index_of_arg", "fqn",
                  "qconfig_str", "comparisons", "comparison_fn_name", "sqnr"}
    rows = {r["layer"]: r for r in ns.report(e_model, e_q, [x], show=False)}
    assert sorted(results) == sorted(k for k in rows if k != "output")
    for layer, by_type in results.items():
        entry = by_type["node_output"]["int8"][0]
        assert set(entry) == torch_keys
        assert float(entry["sqnr"][0]) == pytest.approx(rows[layer]["sqnr_db"], abs=1e-3)
    with pytest.raises(NotImplementedError, match="two float models"):
        ensfx.add_loggers("a", e_model, "b", e_model, ensfx.OutputLogger)


def test_report_and_sensitivity_on_the_digits_cnn(rng):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    nn = ember.nn
    ember.manual_seed(0)   # fixed weights: the sensitivity ranking compares close SQNRs
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    images = (sklearn_datasets.load_digits().images / 16.0).astype(np.float32)[:, None]
    data = [ember.tensor(images[i:i + 32]) for i in range(0, 96, 32)]
    q = _calibrated(eqfx, ember, model, data)
    rows = {r["layer"]: r for r in ns.report(model, q, data, show=False)}
    assert list(rows) == ["0", "2", "3", "5", "6", "7", "9", "output"]
    assert rows["0"]["op"] == "quantized_conv2d+relu" and rows["9"]["op"] == "quantized_linear"
    # nn.Flatten runs in float between a dequantize and a quantize, as torch.ao's
    assert [k for k, r in rows.items() if k != "output" and not r["quantized"]] == ["6"]
    scores = ns.layer_sensitivity(model, eq.get_default_qconfig_mapping("x86"), (data[0],), data)
    assert sorted(r["layer"] for r in scores) == ["0", "3", "7", "9"]
    assert [r["output_sqnr_db"] for r in scores] == sorted(r["output_sqnr_db"] for r in scores)
    mapping = ns.sensitivity(model, eq.get_default_qconfig_mapping("x86"), (data[0],), data, 2)
    prepared = eqfx.prepare_fx(model, mapping, (data[0],))
    for d in data:
        prepared(d)
    left_float = [what for _, what in eqfx.convert_fx(prepared).quantization_report]
    # nn.Flatten (6) runs in float as in torch.ao; listed when no int8 layer reads it
    expected = [f"call_module {r['layer']}" for r in scores[:2]]
    expected += ["call_module 6"] if "call_module 7" in expected else []
    assert sorted(left_float) == sorted(expected)


def test_base_logger_records_nothing_as_torch():
    from torch.ao.ns._numeric_suite import Logger as TorchLogger

    from ember.ao.ns._numeric_suite import Logger
    ours, theirs = Logger(), TorchLogger()
    assert ours(ember.ones(2)) is None and theirs(torch.ones(2)) is None
    assert ours.stats == theirs.stats == {}
