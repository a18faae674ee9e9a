"""tools/compile_schedule.py reads an EMBER_COMPILE_TIMES JSON and tells how long the call
had N compile workers busy: a chain of one-at-a-time compiles shows as concurrency 1."""
import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "compile_schedule.py"


def _compile(kernel, pid, handed, began, ended):
    return {"kernel": kernel, "worker": [pid, 0.0, 0.1], "submitted": handed, "began": began,
            "ended": ended, "collected": ended, "cpu": ended - began}


def test_a_serial_chain_shows_as_one_busy_worker(tmp_path):
    schedule = [_compile("a", 1, 0.0, 0.0, 1.0), _compile("b", 2, 1.0, 1.0, 2.0),  # a chain
                _compile("c", 1, 2.0, 2.0, 3.0), _compile("d", 2, 2.0, 2.0, 3.0)]  # a pair
    row = {"call": "step call 1", "seconds": 3.5, "began": 0.0,
           "records": {"compile schedule": schedule}}
    path = tmp_path / "times.json"
    path.write_text(json.dumps({"call": "other", "seconds": 0.1, "began": 0.0, "records": {}})
                    + "\n" + json.dumps(row) + "\n")
    out = subprocess.run([sys.executable, str(TOOL), str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert "step call 1: 3.500 s, 4 compiles in workers" in out
    assert "seconds with N workers busy: {0: 0.0, 1: 2.0, 2: 1.0}" in out
