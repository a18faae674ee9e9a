"""`ember.aot`: ahead-of-time packaging (AOTInductor's aoti_compile_and_package /
aoti_load_package). The implementation is ember/compiler/aot.py (packaging) and
ember/runtime/lite.py (loading and running without the compiler); docs/aot.md."""
from .compiler.aot import compile_and_package, load_package, PackagedModel  # noqa: F401
from .ir.errors import ArtifactError  # noqa: F401

__all__ = ["compile_and_package", "load_package", "PackagedModel", "ArtifactError"]
