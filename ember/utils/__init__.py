"""ember.utils: torch.utils' namespaces (checkpoint, benchmark, backend_registration)."""
from . import checkpoint  # noqa: F401
from . import data  # noqa: F401
from . import model_zoo  # noqa: F401
from . import hooks  # noqa: F401
from . import dlpack  # noqa: F401
from . import backend_registration  # noqa: F401
from .backend_registration import rename_privateuse1_backend  # noqa: F401
