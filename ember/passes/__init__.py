"""Graph -> Graph rewrites and analyses, and the pass manager (see docs/passes.md)."""
