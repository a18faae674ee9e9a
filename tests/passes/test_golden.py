"""Golden textual-IR tests: tests/passes/golden/<pass>.ir, one file per pass.

A file holds cases separated by a line `# -----`. A case is

    # RUN: cse,dce                 the pipeline (PassManager.from_string; verify_each on)
    # WEIGHTS                      optional: every get_attr gets a seeded random constant
    # CHECK: %[[A:\\d+]] = add(%x, %y)     a line of the output, in order; [[N:re]] captures,
    # CHECK-NEXT: ... [[A]] ...            [[N]] reuses a capture, {{re}} is a bare regex
    # CHECK-NOT: mul(                      no such line before the next CHECK (or the end)
    # ERROR: requires constants-folded    the pipeline must fail with this in its message
    graph(...):                   the input IR
      ...

Besides the text, every case that runs is checked numerically: the graph before
and after the pipeline gives the same values on random inputs.
"""
from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass, field

import numpy as np
import pytest

import ember
from ember.ir.errors import EmberError
from ember.ir.graph import OpKind
from ember.ir.parser import parse
from ember.ir.printer import print_graph
from ember.ir.symbolic import call_graph
from ember.passes import PassContext, PassManager

GOLDEN = pathlib.Path(__file__).parent / "golden"
DIRECTIVE = re.compile(r"#\s*(RUN|CHECK-NEXT|CHECK-NOT|CHECK|ERROR|WEIGHTS)(?::\s?|$)(.*)$")


@dataclass
class Case:
    name: str
    pipeline: str = ""
    checks: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    weights: bool = False
    ir: str = ""


def parse_cases(path: pathlib.Path) -> list[Case]:
    cases = []
    for index, chunk in enumerate(path.read_text().split("# -----")):
        case = Case(f"{path.stem}[{index}]")
        body = []
        for line in chunk.splitlines():
            match = DIRECTIVE.match(line.strip())
            if match is None:
                body.append(line)
                continue
            kind, text = match.group(1), match.group(2).strip()
            if kind == "RUN":
                case.pipeline = text
            elif kind == "ERROR":
                case.error = text
            elif kind == "WEIGHTS":
                case.weights = True
            else:
                case.checks.append((kind, text))
        case.ir = "\n".join(body)
        if case.pipeline:
            cases.append(case)
    return cases


def _pattern(check: str, captures: dict[str, str]) -> re.Pattern:
    """FileCheck's syntax: [[NAME:regex]] defines, [[NAME]] uses, {{regex}} matches."""
    out, pos = [], 0
    for m in re.finditer(r"\[\[(\w+):(.+?)\]\]|\[\[(\w+)\]\]|\{\{(.+?)\}\}", check):
        out.append(re.escape(check[pos:m.start()]))
        if m.group(1):
            out.append(f"(?P<{m.group(1)}>{m.group(2)})")
        elif m.group(3):
            out.append(re.escape(captures[m.group(3)]))
        else:
            out.append(f"(?:{m.group(4)})")
        pos = m.end()
    out.append(re.escape(check[pos:]))
    return re.compile("".join(out))


def file_check(output: str, checks: list[tuple[str, str]]) -> None:
    lines = output.splitlines()
    captures: dict[str, str] = {}
    position = 0          # the next line a CHECK may match
    forbidden: list[str] = []
    for kind, text in checks:
        if kind == "CHECK-NOT":
            forbidden.append(text)
            continue
        pattern = _pattern(text, captures)
        candidates = range(position, min(position + 1, len(lines))) if kind == "CHECK-NEXT" \
            else range(position, len(lines))
        found = next((i for i in candidates if pattern.search(lines[i])), None)
        assert found is not None, f"{kind}: {text!r} not found after line {position} in\n{output}"
        _assert_absent(lines[position:found], forbidden, output)
        forbidden = []
        captures.update(pattern.search(lines[found]).groupdict())
        position = found + 1
    _assert_absent(lines[position:], forbidden, output)


def _assert_absent(lines: list[str], forbidden: list[str], output: str) -> None:
    for text in forbidden:
        assert not any(text in line for line in lines), f"CHECK-NOT: {text!r} found in\n{output}"


def random_value(meta, rng: np.random.Generator):
    """Seeded data of a type; positive floats, so variances and divisors are safe."""
    if meta.dtype.is_floating_point:
        data = rng.uniform(0.5, 1.5, meta.shape)
    else:
        data = rng.integers(0, 3, meta.shape)
    return ember.tensor(np.asarray(data)).to(meta.dtype)


def case_weights(graph, rng) -> dict:
    return {str(n.target): random_value(n.meta["val"], rng)
            for n in graph.nodes if n.op == OpKind.get_attr}


def run_graph(graph, inputs, constants):
    """Values of the graph's outputs; inputs are copied, as in-place ops may write them."""
    result = call_graph(graph, [i.clone() for i in inputs], constants)
    return [r.detach().numpy() for r in (result if isinstance(result, tuple) else (result,))]


def all_cases():
    return [pytest.param(c, id=c.name) for path in sorted(GOLDEN.glob("*.ir"))
            for c in parse_cases(path)]


@pytest.mark.parametrize("case", all_cases())
def test_golden(case: Case, rng):
    graph = parse(case.ir)
    constants = case_weights(graph, rng) if case.weights else {}
    inputs = [random_value(p.meta["val"], rng) for p in graph.placeholders]
    runnable = all(str(n.target) in constants for n in graph.nodes if n.op == OpKind.get_attr)
    try:
        manager = PassManager.from_string(case.pipeline, verify_each=True)
        before = run_graph(parse(case.ir), inputs, constants) if runnable else None
        ctx = PassContext(dict(constants))
        manager.run(graph, ctx)
    except EmberError as err:
        assert case.error, f"unexpected error: {err}"
        assert case.error in str(err), f"expected {case.error!r} in {err}"
        return
    assert case.error is None, f"expected the error {case.error!r}"
    file_check(print_graph(graph), case.checks)
    if not runnable:
        return                           # values unknown: the text is all there is to check
    after = run_graph(graph, inputs, ctx.constants)
    for a, b in zip(after, before):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_every_pass_has_a_golden_file():
    from ember.passes import PASSES
    mine = {"dce", "cse", "fold", "simplify", "decompose", "fold-bn"}
    missing = [p for p in mine & set(PASSES)
               if not (GOLDEN / f"{p.replace('-', '_')}.ir").exists()]
    assert not missing, f"passes without a golden file: {missing}"


def test_file_check_rejects_a_wrong_output():
    with pytest.raises(AssertionError):
        file_check("%0 = add(%x, %y)\nreturn %0", [("CHECK", "mul(")])
    with pytest.raises(AssertionError):
        file_check("%0 = add(%x, %y)\n%1 = mul(%0, %0)\nreturn %1",
                   [("CHECK", "%[[A:\\d+]] = add"), ("CHECK-NOT", "mul("), ("CHECK", "return")])
    file_check("%0 = add(%x, %y)\nreturn %0",
               [("CHECK", "%[[A:\\d+]] = add"), ("CHECK-NEXT", "return %[[A]]")])
