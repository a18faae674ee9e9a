"""The runtime: buffers, allocators, kernel launch, executable plans, artifacts.

Imports only ember.ir (DESIGN.md): a saved artifact runs without the compiler."""
