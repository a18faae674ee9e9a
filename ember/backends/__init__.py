"""`ember.backends`: backend switches with PyTorch's names
(`ember.backends.cuda.matmul.allow_tf32`).

Only flags live here; nothing is imported from codegen or runtime, so every layer may
read them.
"""
from . import cuda  # noqa: F401  (ember.backends.cuda without a separate import)
