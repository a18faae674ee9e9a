"""The `ember` command: a click group; each tool is one subcommand.

    ember opt --passes=dce,cse model.ir        # like mlir-opt: text in, text out
    ember --version                            # also `python -m ember ...`

Errors exit non-zero with one line saying what was wrong (parse errors carry
line:column, verifier errors the pass and the node); --traceback shows the rest.
Other commands (compile, run, bench) add themselves with `@main.command()`.
"""
from __future__ import annotations

import sys
import traceback

import click

from .ir.errors import EmberError


def _version() -> str:
    from . import __version__
    return __version__


@click.group()
@click.version_option(_version(), "--version", prog_name="ember",
                      message="%(prog)s %(version)s")
def main() -> None:
    """ember: a compiler-centric deep-learning system."""


def _fail(err: BaseException, show_traceback: bool) -> None:
    if show_traceback:
        traceback.print_exception(err)
    lines = str(err).splitlines() or [type(err).__name__]
    click.echo(f"error: {lines[0]}", err=True)
    for line in lines[1:]:               # the node and its source line, the parse context
        if line.strip():
            click.echo(f"  {line.strip()}", err=True)
    sys.exit(1)


def _load_constants(path: str | None, graph) -> dict:
    """Constants for get_attr nodes from a .safetensors file (name -> Tensor), each
    checked against the type the IR declares for it."""
    if path is None:
        return {}
    from . import tensor
    from .frontend.models.weights import read_safetensors
    arrays = read_safetensors(path)
    _check_weight_types(arrays, graph, path)
    return {name: tensor(array) for name, array in arrays.items()}


def _check_weight_types(arrays: dict, graph, path: str) -> None:
    """Every weight a typed get_attr names must have the declared shape and dtype."""
    from .ir.dtypes import from_numpy_dtype
    from .ir.errors import ArtifactError
    from .ir.meta import TensorMeta
    for node in graph.nodes:
        declared = node.meta.get("val")
        array = arrays.get(str(node.target)) if node.op == "get_attr" else None
        if array is None or not isinstance(declared, TensorMeta):
            continue
        try:
            dtype = from_numpy_dtype(array.dtype).short
        except EmberError:
            dtype = str(array.dtype)
        got = f"{dtype}[{','.join(str(s) for s in array.shape)}]"
        want = f"{declared.dtype.short}[{','.join(str(s) for s in declared.shape)}]"
        if got != want:
            raise ArtifactError(f"{path}: weight {str(node.target)!r} is {got}, but the IR "
                                f"declares {want}")


def _save_constants(graph, constants: dict, path: str) -> None:
    from safetensors.numpy import save_file
    names = {str(n.target) for n in graph.nodes if n.op == "get_attr"}
    save_file({k: constants[k].detach().numpy() for k in sorted(names & set(constants))}, path)


@main.command()
@click.argument("input_file", type=click.File("r"), default="-")
@click.option("--passes", "pipeline", required=True,
              help="comma-separated passes or pipeline names, e.g. dce,cse or cleanup")
@click.option("-o", "--output", type=click.File("w"), default="-", help="where the IR goes")
@click.option("--verify-each", is_flag=True, help="run the verifier after every pass")
@click.option("--print-ir-before", multiple=True, metavar="PASS",
              help="dump the IR before PASS ('all': before every pass), to stderr")
@click.option("--print-ir-after", multiple=True, metavar="PASS",
              help="dump the IR after PASS ('all': after every pass), to stderr")
@click.option("--timing", is_flag=True, help="print per-pass time and change counts")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="a .safetensors file with the values of the graph's get_attr names")
@click.option("--save-weights", type=click.Path(dir_okay=False), default=None,
              help="write the constants the result's get_attr nodes name (folded ones "
                   "included) to a .safetensors file")
@click.option("--traceback", "show_traceback", is_flag=True, help="show the full traceback")
def opt(input_file, pipeline, output, verify_each, print_ir_before, print_ir_after, timing,
        weights, save_weights, show_traceback) -> None:
    """Read textual IR (a file or - for stdin), run a pass pipeline, print the IR."""
    from .ir.parser import parse
    from .ir.printer import print_graph
    from .passes import PassContext, PassManager
    try:
        manager = PassManager.from_string(pipeline, verify_each=verify_each,
                                          print_ir_before=print_ir_before,
                                          print_ir_after=print_ir_after,
                                          dump_to=sys.stderr)
        graph = parse(input_file.read())
        ctx = PassContext(_load_constants(weights, graph))
        report = manager.run(graph, ctx)
        if save_weights:
            _save_constants(graph, ctx.constants, save_weights)
    except (EmberError, OSError, ValueError, TypeError) as err:
        _fail(err, show_traceback)
    output.write(print_graph(graph))
    if timing:
        click.echo(report.table(), err=True)


from . import cli_aot  # noqa: E402,F401 - compile, run, bench, inspect

if __name__ == "__main__":
    # `python -m ember.cli`: this file runs as __main__, while cli_aot registers compile,
    # run, bench and inspect on the group of the module imported as ember.cli
    from ember.cli import main as _main
    _main()
