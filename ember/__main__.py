"""`python -m ember ...`: the `ember` command (ember/cli.py)."""
from .cli import main

main(prog_name="ember")
