"""ember.utils.benchmark: torch.utils.benchmark's Timer, Measurement, Compare and Fuzzer.

    from ember.utils import benchmark
    m = benchmark.Timer("f(x)", globals={"f": f, "x": x}, label="f").blocked_autorange()
    benchmark.Compare([m, ...]).print()
"""
from .common import Measurement, TaskSpec, select_unit, trim_sigfig, unit_to_english
from .compare import Colorize, Compare
from .fuzzer import FuzzedParameter, FuzzedTensor, Fuzzer, ParameterAlias
from .timer import Language, Timer, timer

__all__ = ["Timer", "Measurement", "TaskSpec", "Compare", "Colorize", "Fuzzer",
           "FuzzedParameter", "FuzzedTensor", "ParameterAlias", "Language", "select_unit",
           "trim_sigfig", "unit_to_english", "timer"]
