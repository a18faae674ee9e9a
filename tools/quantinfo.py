"""Run PyTorch's quantization test models (torch.testing._internal.common_quantization)
through ember.ao against torch.ao and print a pass/fail table.

Each model's source is taken with inspect.getsource and `torch` rewritten to `ember`;
both twins get the same weights and go through the flows torch's own tests run on that
model (eager PTQ / QAT, quantize_dynamic, fuse_modules, prepare_fx / convert_fx /
convert_to_reference_fx, prepare_qat_fx, fuse_fx); outputs, converted module types and
repr, and state_dict keys are compared (tests/quant/common_quantization_twins.py says how).

    python tools/quantinfo.py                 # every case, a table and the pass count
    python tools/quantinfo.py ConvModel -v    # cases whose id contains a word, with reasons
    python tools/quantinfo.py --json out.json # the per-case record, as data
    python tools/quantinfo.py --write-expected tests/quant/common_quantization_expected_failures.txt

Needs torch (the test oracle); ember itself never imports torch.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "quant"))
warnings.filterwarnings("ignore")


def run(words=(), verbose=False) -> list:
    import common_quantization_twins as twins  # noqa: PLC0415 - imports torch and ember
    records = []
    for cid, case in twins.cases_by_id().items():
        if words and not any(w in cid for w in words):
            continue
        try:
            fails = twins.run_case(case)
            status = "skip" if case.skip else ("pass" if not fails else "fail")
            reason = case.skip or (fails[0] if fails else "")
        except Exception as e:  # noqa: BLE001 - torch's side raised: the case is broken
            status, reason = "error", f"torch side: {type(e).__name__}: {e}"
            fails = [traceback.format_exc()] if verbose else []
        records.append({"case": cid, "model": case.model, "flow": case.flow,
                        "status": status, "reason": reason, "failures": fails})
    return records


def print_table(records, verbose=False) -> None:
    width = max([len(r["case"]) for r in records] + [10])
    for r in records:
        line = f"{r['case']:<{width}}  {r['status']:<5}"
        if r["status"] != "pass":
            line += "  " + r["reason"][:160]
        print(line)
        if verbose and r["status"] == "fail":
            for f in r["failures"][1:]:
                print(" " * (width + 9) + f[:200])
    counts = Counter(r["status"] for r in records)
    models = {r["model"] for r in records}
    ok_models = {m for m in models if all(r["status"] in ("pass", "skip")
                                          for r in records if r["model"] == m)}
    print(f"\n{counts['pass']} of {len(records)} cases pass "
          f"({counts['fail']} fail, {counts['skip']} skip, {counts['error']} error); "
          f"{len(ok_models)} of {len(models)} models pass every flow")
    flows = Counter(r["flow"] for r in records)
    passed = Counter(r["flow"] for r in records if r["status"] == "pass")
    print("by flow: " + ", ".join(f"{f} {passed[f]}/{n}" for f, n in sorted(flows.items())))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("words", nargs="*", help="run the cases whose id contains one of these")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--json", help="write the per-case record here")
    ap.add_argument("--write-expected", metavar="FILE",
                    help="write the failing cases and their first reason (the test's "
                         "expected failures)")
    args = ap.parse_args(argv)
    records = run(args.words, args.verbose)
    print_table(records, args.verbose)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    if args.write_expected:
        lines = ["# cases of tests/quant/test_common_quantization_models.py that fail "
                 "today, each with its first reason (tools/quantinfo.py --write-expected)"]
        lines += [f"{r['case']} {' '.join(r['reason'].split())[:300]}" for r in records
                  if r["status"] in ("fail", "error")]
        Path(args.write_expected).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
