"""`ember opt`: text in, passes, text out; errors are one clear line and exit 1."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from ember.cli import main
from ember.ir.parser import parse
from ember.passes import PASSES, register_pass

IR = """\
graph(%x: f32[4,8], %y: f32[4,8]):
  %0 = add(%x, %y) : f32[4,8]
  %1 = add(%y, %x) : f32[4,8]
  %2 = mul(%0, %1) : f32[4,8] loc("model.py:7 in forward")
  %3 = exp(%x) : f32[4,8]
  return %2
"""


def invoke(*args, stdin=None):
    return CliRunner().invoke(main, list(args), input=stdin)


def test_opt_reads_stdin_runs_passes_and_prints_ir():
    result = invoke("opt", "--passes=cse,dce", "-", stdin=IR)
    assert result.exit_code == 0, result.output
    graph = parse(result.stdout)
    names = [n.target.name for n in graph.nodes if n.op == "call_function"]
    assert names == ["add", "mul"]


def test_opt_reads_a_file_and_writes_output_timing_and_dumps(tmp_path):
    src, out = tmp_path / "in.ir", tmp_path / "out.ir"
    src.write_text(IR)
    result = invoke("opt", "--passes=cleanup", str(src), "-o", str(out), "--timing",
                    "--verify-each", "--print-ir-before=cse", "--print-ir-after=dce")
    assert result.exit_code == 0, result.output
    assert "exp(" not in out.read_text()
    assert "# IR before 'cse'" in result.stderr and "# IR after 'dce'" in result.stderr
    assert "total" in result.stderr and "changes" in result.stderr


def test_opt_unknown_pass_is_one_line():
    result = invoke("opt", "--passes=dce,fuse-everything", "-", stdin=IR)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unknown pass 'fuse-everything'; known passes:")
    assert "Traceback" not in result.output


def test_opt_parse_error_has_line_and_column():
    broken = IR.replace("%3 = exp(%x)", "%3 = exp(%x")
    result = invoke("opt", "--passes=dce", "-", stdin=broken)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: 5:")
    assert "Traceback" not in result.output


def test_opt_unmet_requirement():
    result = invoke("opt", "--passes=fold-bn", "-", stdin=IR)
    assert result.exit_code == 1
    assert "pass 'fold-bn' requires constants-folded" in result.stderr.splitlines()[0]


@pytest.fixture
def breaking_pass():
    def swap_mul_operands_type(graph, ctx):
        """A wrong pass: gives mul a type its rule does not produce."""
        node = next(n for n in graph.nodes if getattr(n.target, "name", "") == "mul")
        node.meta["val"] = node.meta["val"].with_(shape=(2, 16))
        return 1
    register_pass("break-types")(swap_mul_operands_type)
    yield "break-types"
    del PASSES["break-types"]


def test_opt_verifier_failure_names_pass_node_and_line(breaking_pass):
    result = invoke("opt", f"--passes=cse,{breaking_pass}", "--verify-each", "-", stdin=IR)
    assert result.exit_code == 1
    first, *rest = result.stderr.splitlines()
    assert first.startswith("error: after 'break-types': ")
    assert "%" in first and "mul" in first
    assert any("model.py:7 in forward" in line for line in rest)
    assert "Traceback" not in result.output


def test_opt_weights_feed_constant_folding(tmp_path):
    from safetensors.numpy import save_file
    weights = tmp_path / "w.safetensors"
    save_file({"w": np.arange(4, dtype=np.float32)}, str(weights))
    ir = ("graph(%x: f32[4]):\n  %0 = get_attr \"w\" : f32[4]\n  %1 = exp(%0) : f32[4]\n"
          "  %2 = add(%x, %1) : f32[4]\n  return %2\n")
    saved = tmp_path / "folded.safetensors"
    result = invoke("opt", "--passes=fold,dce", "--weights", str(weights), "--save-weights",
                    str(saved), "-", stdin=ir)
    assert result.exit_code == 0, result.output
    assert "exp(" not in result.stdout and "_folded" in result.stdout
    from safetensors.numpy import load_file
    (name, value), = load_file(str(saved)).items()
    assert name in result.stdout
    np.testing.assert_allclose(value, np.exp(np.arange(4, dtype=np.float32)), rtol=1e-6)


# --- bad weights, version ----------------------------------------------------------------------
WEIGHTED_IR = ("graph(%x: f32[4]):\n  %0 = get_attr \"w\" : f32[4]\n"
               "  %1 = add(%x, %0) : f32[4]\n  return %1\n")


def test_opt_corrupt_weights_is_one_line_naming_the_file(tmp_path):
    weights = tmp_path / "broken.safetensors"
    weights.write_bytes(b"this is not a safetensors file")
    result = invoke("opt", "--passes=dce", "--weights", str(weights), "-", stdin=WEIGHTED_IR)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {weights}: not a valid safetensors file")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("array,got", [(np.zeros(3, np.float32), "f32[3]"),
                                       (np.zeros(4, np.float64), "f64[4]"),
                                       (np.zeros((4, 1), np.float32), "f32[4,1]")])
def test_opt_weights_must_match_the_ir_types(tmp_path, array, got):
    from safetensors.numpy import save_file
    weights = tmp_path / "w.safetensors"
    save_file({"w": array}, str(weights))
    result = invoke("opt", "--passes=dce", "--weights", str(weights), "-", stdin=WEIGHTED_IR)
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: {weights}: weight 'w' is {got}, but the IR "
                                     "declares f32[4]")


def test_load_weights_on_a_corrupt_file_names_it(tmp_path):
    import ember
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x00" * 3)
    with pytest.raises(ember.ArtifactError, match=f"{path}: not a valid safetensors file"):
        ember.load_weights(ember.nn.Linear(2, 2), path)


def test_version_and_python_dash_m():
    import subprocess
    import sys
    import ember
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"ember {ember.__version__}"
    out = subprocess.run([sys.executable, "-m", "ember", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"ember {ember.__version__}"
