"""The compiler layer (DESIGN.md): drivers that take a model to something runnable.

Today it holds ahead-of-time work only: `export.py` (ember.export: a model to an
ExportedProgram) and `aot.py` (an ExportedProgram to a packaged artifact). The
in-process compile drivers still live in ember/frontend/compile*.py (their move here
is issue 15's item 7, not done yet).
"""
