"""One cuDNN convolution graph, built the same way in-process and in a CUDA artifact.

Standard library only (the cuDNN frontend module is passed in), so the lite runtime
(runtime/lite_cuda.py, which loads this file by path when it runs without ember) and
ember's in-process cuDNN glue (runtime/cuda/cudnn.py) build identical graphs: the same
tensors, nodes, heuristics modes and engine filters, in the same order, so cuDNN's
heuristics list the same engine configs for both.

An artifact names the engine config ember.compile runs by its cuDNN tag
(`get_plan_name_at_index`: the engine id and its knob values): the heuristics' choice is
the first config, in the heuristics' order, whose plan builds (`first_buildable`,
cuDNN frontend's HEURISTICS_CHOICE), or under `benchmark` the config the timing chose.
At load the lite runtime rebuilds the graph, finds that tag among the configs and
builds exactly that plan (`plan_named`); a cuDNN that does not list it is refused.
`spec` is ember's ConvSpec or anything with its fields (kind, dtype, x, w, y, padding,
stride, dilation, tf32, deterministic, bias, epilogue).
"""
from __future__ import annotations

DTYPES = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BFLOAT16"}
EPILOGUES = ("", "relu", "add", "add_relu")
SPEC_FIELDS = ("kind", "dtype", "x", "w", "y", "padding", "stride", "dilation", "tf32",
               "deterministic", "benchmark", "bias", "epilogue")


def barred_notes(cudnn, spec) -> list:
    """PyTorch's engine filters: no engine that converts inputs to a narrower type, none
    with tensor cores for float32 unless TF32 is allowed (float16 / bfloat16 engines are
    tensor-core engines and keep them), none that is nondeterministic when determinism
    is asked for."""
    note = cudnn.numerical_note
    barred = [note.DOWN_CONVERT_INPUTS]
    if spec.dtype == "float32" and not spec.tf32:
        barred.append(note.TENSOR_CORE)
    if spec.deterministic:
        barred.append(note.NONDETERMINISTIC)
    return barred


def conv_graph(cudnn, spec, handle, barred: list):
    """(graph, tensors) for `spec` up to cuDNN's support check: engine configs listed, none
    built. `tensors` in the order a plan's pointers come: x, w, y (each the one it writes
    per the direction), then the bias vector, then the residual."""
    dt = cudnn.data_type
    io = getattr(dt, DTYPES[spec.dtype])
    graph = cudnn.pygraph(io_data_type=io, intermediate_data_type=dt.FLOAT,
                          compute_data_type=dt.FLOAT, handle=handle)

    def tensor(name, geometry):
        return graph.tensor(name=name, dim=list(geometry[0]), stride=list(geometry[1]),
                            data_type=io)
    geometry = dict(padding=list(spec.padding), stride=list(spec.stride),
                    dilation=list(spec.dilation), compute_data_type=dt.FLOAT)
    if spec.epilogue not in EPILOGUES or (spec.epilogue and spec.kind != "fprop"):
        raise ValueError(f"cuDNN convolution {spec.kind}: no epilogue {spec.epilogue!r}")
    if spec.kind == "fprop":
        x, w = tensor("x", spec.x), tensor("w", spec.w)
        out, made = graph.conv_fprop(image=x, weight=w, name="fprop", **geometry), spec.y
        extra = []
        # each result a later node reads stays a virtual float32 tensor; the last is y
        if spec.bias:
            cout = spec.w[0][0]
            out.set_data_type(dt.FLOAT)
            b = graph.tensor(name="b", dim=[1, cout, 1, 1], stride=[cout, 1, 1, 1],
                             data_type=io)
            out = graph.bias(input=out, bias=b, name="bias", compute_data_type=dt.FLOAT)
            extra.append(b)
        if "add" in spec.epilogue:
            out.set_data_type(dt.FLOAT)
            z = tensor("z", spec.y)
            out = graph.add(a=out, b=z, name="residual", compute_data_type=dt.FLOAT)
            extra.append(z)
        if "relu" in spec.epilogue:
            out.set_data_type(dt.FLOAT)
            out = graph.relu(input=out, name="relu", compute_data_type=dt.FLOAT)
        tensors = (x, w, out, *extra)
    elif spec.kind == "dgrad":
        w, y = tensor("w", spec.w), tensor("dy", spec.y)
        out, made = graph.conv_dgrad(loss=y, filter=w, name="dgrad", **geometry), spec.x
        tensors = (out, w, y)
    elif spec.kind == "wgrad":
        x, y = tensor("x", spec.x), tensor("dy", spec.y)
        out, made = graph.conv_wgrad(image=x, loss=y, name="wgrad", **geometry), spec.w
        tensors = (x, out, y)
    else:
        raise ValueError(f"unknown convolution direction {spec.kind!r}")
    out.set_output(True).set_dim(list(made[0])).set_stride(list(made[1])).set_data_type(io)
    graph.validate()
    graph.build_operation_graph()
    graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    graph.deselect_numeric_notes(barred)
    graph.check_support()
    return graph, tensors


def first_buildable(graph) -> int:
    """The heuristics' choice: the first engine config whose plan builds (deselected
    configs refuse to build), built; -1 when none does."""
    for index in range(int(graph.get_execution_plan_count())):
        try:
            graph.build_plan_at_index(index)
        except Exception:  # noqa: BLE001 - the frontend's errors have no common base
            continue
        return index
    return -1


def plan_named(graph, tag: str) -> int:
    """The index of the engine config tagged `tag`, its plan built; -1 when this cuDNN
    lists no such config for the graph."""
    for index in range(int(graph.get_execution_plan_count())):
        if str(graph.get_plan_name_at_index(index)) == tag:
            graph.build_plan_at_index(index)
            return index
    return -1


def spec_json(spec) -> dict:
    """The spec's fields as JSON values (geometry as nested lists)."""
    def plain(v):
        return [plain(e) for e in v] if isinstance(v, (tuple, list)) else v
    return {name: plain(getattr(spec, name)) for name in SPEC_FIELDS}
