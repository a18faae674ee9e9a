"""ember._inductor: torch._inductor's module location for `import torch._inductor.config`
(performance scripts set its knobs). ember.compile's code generator is not Inductor;
see ember._inductor.config for which settings it reads."""
from . import config  # noqa: F401
