"""Golden textual-IR tests of the quantization passes (ember/passes/quantize.py):
input IR, the pass, the expected IR, as for every other pass."""
from __future__ import annotations

import textwrap

from ember.ir import dtypes
from ember.ir.parser import parse
from ember.ir.printer import print_graph
from ember.passes import quantize as qpass

KINDS = {"fc1": "linear_relu", "fc2": "linear", "conv": "conv2d", "pool": "identity",
         "act": "sigmoid"}


def run_prepare(ir: str, skip=()):
    graph = parse(textwrap.dedent(ir))
    names = iter(f"obs{i}" for i in range(100))
    qpass.insert_observers(graph, KINDS, lambda n: n.target not in skip,
                           lambda value, owner: next(names))
    return graph


def check(graph, expected: str):
    assert print_graph(graph).strip() == textwrap.dedent(expected).strip()


PREPARED_MLP = """
    graph(%x):
      %0 = call_module "fc1"(%x)
      %1 = call_module "fc2"(%0)
      %2 = add(%1, %x)
      %3 = relu(%2)
      %4 = sum(%3)
      return %4
"""


def test_prepare_observes_inputs_outputs_and_fuses_add_relu():
    graph = run_prepare(PREPARED_MLP)
    check(graph, """
        graph(%x):
          %0 = call_module "obs0"(%x)
          %1 = call_module "fc1"(%0)
          %2 = call_module "obs1"(%1)
          %3 = call_module "fc2"(%2)
          %4 = call_module "obs2"(%3)
          %5 = add(%4, %0)
          %6 = relu(%5)
          %7 = call_module "obs3"(%6)
          %8 = sum(%7)
          return %8
    """)


def test_prepare_matches_torch_fx_operator_and_method_forms():
    graph = run_prepare("""
        graph(%x):
          %0 = call_module "fc2"(%x)
          %1 = call_function "operator.add"(%0, %0)
          %2 = call_method "relu"(%1)
          return %2
    """)
    check(graph, """
        graph(%x):
          %0 = call_module "obs0"(%x)
          %1 = call_module "fc2"(%0)
          %2 = call_module "obs1"(%1)
          %3 = call_function "operator.add"(%2, %2)
          %4 = call_module "obs2"(%3)
          %5 = call_method "relu"(%4)
          return %5
    """)       # as torch.ao: the `.relu()` method is not fused into the add; it shares
    #            the add's observer


def test_prepare_shared_ops_get_no_observer_and_skipped_nodes_stay_float():
    graph = run_prepare("""
        graph(%x):
          %0 = call_module "conv"(%x)
          %1 = call_module "pool"(%0)
          %2 = flatten(%1, 1)
          %3 = call_module "fc2"(%2)
          return %3
    """, skip={"fc2"})                       # fc2's qconfig is None: it stays in float
    check(graph, """
        graph(%x):
          %0 = call_module "obs0"(%x)
          %1 = call_module "conv"(%0)
          %2 = call_module "obs1"(%1)
          %3 = call_module "pool"(%2)
          %4 = flatten(%3, 1)
          %5 = call_module "fc2"(%4)
          return %5
    """)


def test_prepare_reobserves_shared_outputs_and_convert_drops_it():
    """torch.ao's shared observers: a shared op's output goes through its input's
    observer again (the same module); convert removes that second call."""
    graph = parse(textwrap.dedent("""
        graph(%x):
          %0 = call_module "conv"(%x)
          %1 = call_module "pool"(%0)
          %2 = flatten(%1, 1)
          return %2
    """))
    names = iter(f"obs{i}" for i in range(100))
    qpass.insert_observers(graph, KINDS, lambda n: True, lambda value, owner: next(names),
                           reobserves=lambda n: n.op.value == "call_module")
    check(graph, """
        graph(%x):
          %0 = call_module "obs0"(%x)
          %1 = call_module "conv"(%0)
          %2 = call_module "obs1"(%1)
          %3 = call_module "pool"(%2)
          %4 = call_module "obs1"(%3)
          %5 = flatten(%4, 1)
          return %5
    """)
    qpass.drop_reobservations(graph)
    check(graph, """
        graph(%x):
          %0 = call_module "obs0"(%x)
          %1 = call_module "conv"(%0)
          %2 = call_module "obs1"(%1)
          %3 = call_module "pool"(%2)
          %4 = flatten(%3, 1)
          return %4
    """)


def _converted(reference: bool):
    graph = run_prepare(PREPARED_MLP)
    qparams = {f"obs{i}": (0.5 + i, 10 * i, dtypes.quint8) for i in range(4)}
    made = qpass.observers_to_quantize(graph, qparams)
    if reference:
        qpass.insert_reference_dequantize(graph, made)
        return graph
    fc = [n for n in graph.nodes if n.op.value == "call_module"]
    weighted = {fc[0]: {"weight": "w1", "bias": "b1"}, fc[1]: {"weight": "w2", "bias": None}}
    qpass.lower_quantized(graph, made, KINDS, weighted)
    return graph


def test_convert_lowers_patterns_to_quantized_ops():
    check(_converted(False), """
        graph(%x):
          %0 = quantize_per_tensor(%x, 0.5, 0, qu8)
          %1 = get_attr "w1"
          %2 = get_attr "b1"
          %3 = quantized_linear(%0, %1, %2, 1.5, 10, True)
          %4 = get_attr "w2"
          %5 = quantized_linear(%3, %4, None, 2.5, 20, False)
          %6 = quantized_add(%5, %0, 3.5, 30, True)
          %7 = dequantize(%6)
          %8 = sum(%7)
          return %8
    """)


def test_convert_to_reference_keeps_float_ops_between_dequantize_and_quantize():
    check(_converted(True), """
        graph(%x):
          %0 = quantize_per_tensor(%x, 0.5, 0, qu8)
          %1 = dequantize(%0)
          %2 = call_module "fc1"(%1)
          %3 = quantize_per_tensor(%2, 1.5, 10, qu8)
          %4 = dequantize(%3)
          %5 = call_module "fc2"(%4)
          %6 = quantize_per_tensor(%5, 2.5, 20, qu8)
          %7 = dequantize(%6)
          %8 = add(%7, %1)
          %9 = relu(%8)
          %10 = quantize_per_tensor(%9, 3.5, 30, qu8)
          %11 = dequantize(%10)
          %12 = sum(%11)
          return %12
    """)


def test_quantized_values_are_ir_types():
    ir = """
        graph(%x: f32[2,4]):
          %0 = quantize_per_tensor(%x, 0.1, 3, qu8) : qu8[2,4]
          %1 = dequantize(%0) : f32[2,4]
          return %1
    """
    from ember.ir.verifier import verify
    graph = parse(textwrap.dedent(ir))
    verify(graph)
    check(graph, ir)


def test_prepare_cat_shares_one_observer_among_inputs_and_output():
    """torch.ao's cat: the first input's observer serves every input (through the shared
    ops in between: pool keeps conv's qparams) and the output, wherever else those
    observers are called (%x's, read by conv and fc2 too)."""
    graph = run_prepare("""
        graph(%x):
          %0 = call_module "conv"(%x)
          %1 = call_module "pool"(%0)
          %2 = call_module "fc2"(%x)
          %3 = cat([%1, %2, %x], 1)
          %4 = call_module "fc1"(%3)
          return %4
    """)
    check(graph, """
        graph(%x):
          %0 = call_module "obs1"(%x)
          %1 = call_module "conv"(%0)
          %2 = call_module "obs1"(%1)
          %3 = call_module "pool"(%2)
          %4 = call_module "fc2"(%0)
          %5 = call_module "obs1"(%4)
          %6 = cat([%3, %5, %0], 1)
          %7 = call_module "obs1"(%6)
          %8 = call_module "fc1"(%7)
          %9 = call_module "obs4"(%8)
          return %9
    """)
