"""The runtime: buffers, allocators, kernel launch, executable plans, artifacts.

Imports only ember.ir (docs/design.md): a saved artifact runs without the compiler.
`threads.py` is the thread pool native kernels are split across cores with."""
