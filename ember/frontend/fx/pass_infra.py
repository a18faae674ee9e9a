"""torch.fx.passes.infra's pass classes, for users' own GraphModule passes.

`PassBase` subclasses implement `call(gm) -> PassResult(graph_module, modified)` and
may check `requires(gm)` before and `ensures(gm)` after; `PassManager(passes, steps=1)`
runs callables of a GraphModule in order (a plain function returning a PassResult, a
GraphModule or None counts too), `steps` times or until none modifies the module, and
returns the last module with whether anything changed. ember's own graph passes are
ember.passes (the IR's pass manager); these run on fx GraphModules as torch's do.
"""
from __future__ import annotations

import inspect
from typing import Callable, NamedTuple


class PassResult(NamedTuple):
    graph_module: object
    modified: bool


class PassBase:
    def __call__(self, graph_module) -> PassResult | None:
        self.requires(graph_module)
        result = self.call(graph_module)
        self.ensures(graph_module)
        return result

    def call(self, graph_module) -> PassResult | None:
        raise NotImplementedError(f"{type(self).__name__}.call(graph_module)")

    def requires(self, graph_module) -> None:
        return None

    def ensures(self, graph_module) -> None:
        return None


class PassManager:
    def __init__(self, passes: list[Callable] | None = None,
                 constraints: list[Callable] | None = None, steps: int | None = None,
                 run_checks_after_each_pass: bool = False,
                 suppress_check_failures: bool = False):
        self.passes = list(passes or [])
        self.constraints = list(constraints or [])
        self.steps = steps or 1
        self.run_checks_after_each_pass = run_checks_after_each_pass
        self.suppress_check_failures = suppress_check_failures
        self._validated = False

    def add_pass(self, _pass: Callable) -> None:
        self.passes.append(_pass)
        self._validated = False

    def add_constraint(self, constraint: Callable) -> None:
        self.constraints.append(constraint)
        self._validated = False

    def validate_constraints(self) -> None:
        """Each constraint(a, b) must hold for every a scheduled before b."""
        if self._validated:
            return
        for i, first in enumerate(self.passes):
            for later in self.passes[i + 1:]:
                for constraint in self.constraints:
                    if not constraint(first, later):
                        raise RuntimeError(f"pass schedule violates a constraint: "
                                           f"{first} must not run before {later}")
        self._validated = True

    def solve_constraints(self) -> None:
        """Reorder the passes so every constraint holds (a stable topological order);
        RuntimeError when the constraints form a cycle."""
        remaining = list(self.passes)
        ordered = []
        while remaining:
            for candidate in remaining:
                others = [p for p in remaining if p is not candidate]
                if all(c(candidate, other) for other in others for c in self.constraints):
                    ordered.append(candidate)
                    remaining.remove(candidate)
                    break
            else:
                raise RuntimeError("the pass constraints form a cycle: no pass can run first "
                                   f"among {remaining}")
        self.passes = ordered
        self._validated = True

    def add_checks(self, check: Callable) -> None:
        """Use `check(module)` (one parameter) as the invariant check run before the
        passes (and after each, with run_checks_after_each_pass)."""
        if len(inspect.signature(check).parameters) != 1:
            raise TypeError("PassManager check function should only take in one parameter, "
                            "a module")
        self.check = check

    def check(self, module) -> None:
        module.graph.lint()

    def _run_pass(self, each: Callable, module):
        result = each(module)
        if isinstance(result, PassResult) or hasattr(result, "graph_module"):
            module, changed = result.graph_module, result.modified
        elif result is not None:
            module, changed = result, True
        else:
            changed = False
        if hasattr(module, "recompile"):
            module.recompile()
        if self.run_checks_after_each_pass:
            self.check(module)
        return module, changed

    def __call__(self, module) -> PassResult:
        if not self._validated:     # torch's: the schedule is solved, not just checked
            self.solve_constraints()
        self.check(module)
        overall = False
        for _ in range(self.steps):
            modified = False
            for i, each in enumerate(self.passes):
                try:
                    module, changed = self._run_pass(each, module)
                except Exception as error:
                    # torch.fx's report: which pass failed, after which others
                    done = [_pass_name(p) for p in self.passes[:i]]
                    raise Exception(f"An error occurred when running the "  # noqa: TRY002
                                    f"'{_pass_name(each)}' pass after the following "
                                    f"passes: {done}") from error
                modified = modified or changed
            overall = overall or modified
            if not modified:
                break
        return PassResult(module, overall)


def _pass_name(p: Callable) -> str:
    return p.__name__ if inspect.isfunction(p) else type(p).__name__


def this_before_that_pass_constraint(this: Callable, that: Callable) -> Callable:
    """A constraint: `this` must run before `that`."""
    def depends_on(a: Callable, b: Callable) -> bool:
        return not (a is that and b is this)
    return depends_on


def pass_result_wrapper(fn: Callable) -> Callable:
    """Wrap a pass that edits its module in place (returning None or the module) so
    it returns a PassResult."""
    def wrapped(module) -> PassResult:
        result = fn(module)
        if isinstance(result, PassResult):
            return result
        return PassResult(module if result is None else result, True)
    wrapped.__name__ = getattr(fn, "__name__", type(fn).__name__)
    return wrapped
