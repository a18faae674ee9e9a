"""ember._inductor: torch._inductor's module location for `import torch._inductor.config`
(performance scripts set its knobs) and its AOT entry points
`aoti_compile_and_package` / `aoti_load_package` (ember.aot underneath:
ember/compiler/inductor_names.py). ember.compile's code generator is not Inductor;
see ember._inductor.config for which settings it reads."""
from . import config  # noqa: F401
from ..compiler.inductor_names import aoti_compile_and_package, aoti_load_package  # noqa: F401
