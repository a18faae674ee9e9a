"""tests/nn: make nn_helpers importable (pytest's rootdir-relative imports)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
