"""PyTorch functions that ember writes as compositions of registry ops (see
`ir/composite.py`): shape and view helpers, indexing, statistics, random sampling.
Importing this package registers them; `ember/__init__` exports them."""
from . import shape, indexing, stats, sampling, native_ops, resize, storage_methods  # noqa: F401,E501
