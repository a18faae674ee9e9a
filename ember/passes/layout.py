"""Layout propagation: choose, per region, whether 4-d tensors live channels-last
(NHWC) or contiguous (NCHW), and insert the fewest conversions.

A *region* is a set of 4-d values connected through ops that carry a layout from an
input to their output. Whether an op carries layout is read from the registry, not
from a list: an op carries it when its meta rule gives a channels-last output for
channels-last 4-d inputs — PyTorch's memory-format propagation (pointwise ops,
pooling, batchnorm, cat, clone, ...). Convolutions are the exception: their rule also follows the
weight, but only the input (argument 0) joins the region, since the weight is a
parameter whose layout the kernel chooses.

Each region gets a format (option `layout`, default 'auto': channels-last when the
region holds a convolution, because the CPU conv kernels run NHWC as an implicit
GEMM over C; otherwise the region is left as it is). Then
- entry values (placeholders, constants, and outputs of ops whose format does not
  follow their inputs) not already in the region's format get one conversion
  `contiguous(x, memory_format=F)`, which only the region's own ops read;
- region values read by a reshape/view-like op (SHAPE/VIEW tags, which address
  elements in row-major order) get one conversion back to contiguous, shared by
  all such readers; other readers (reductions, matmul, ...) read strides from meta;
- graph outputs keep the format they had before the pass, unless the caller fixes
  it;
- a conv whose input has one channel (NCHW and NHWC strides alike, so PyTorch's meta
  rule gives a contiguous output) in a channels-last region with another conv gets
  its output converted; the conversion is fused into the conv's epilogue (the
  kernel stores channels-last), so an MNIST-style CNN runs channels-last after its
  first conv.
- with option `entry_channels` = C (> 0; the CPU drivers pass their conv's padded-copy
  bound), an entry that only convs of the region read, as their input, with at most C
  channels and padding, is not converted: those convs copy such an input into a padded
  channels-last buffer themselves (from either layout), so converting first would copy
  it twice (resnet18's 8x3x224x224 image: 0.4 ms of a one-thread call); their outputs
  are converted instead, in the conv's epilogue, as above.
After inserting conversions the pass recomputes `meta['val']` (strides and
memory_format) downstream with the registry's meta rules. Values are unchanged:
layout is a physical property, and every op is defined on logical indices.

Options (ctx.options):
  layout:        'auto' (default) | 'nhwc' (every region channels-last) | 'nchw'
  input_layout:  'keep' (default: placeholders as traced) | 'nchw' | 'nhwc' |
                 'any' (a placeholder takes its region's format: no conversion)
  output_layout: 'keep' (default: each output as before the pass) | 'nchw' | 'nhwc' |
                 'any' (outputs in whatever format their region chose)
  entry_channels: 0 (default) | C (see above)
Regions of parameters alone (no placeholder upstream) are left alone.
A value that an in-place op mutates is never converted at a region's entry or exit
(a copy would miss the mutation); output conversions sit just before the output. Run it before `fuse`:
fused groups are opaque here.
"""
from __future__ import annotations

import operator

from ..ir.fused import is_fused
from ..ir.graph import Graph, Node, OpKind, map_arg
from ..ir.meta import MemoryFormat, TensorMeta, channels_last, contiguous_format
from ..ir.registry import OPS, Tag, is_op
from .cleanup import mutated_values
from .manager import PassContext, PassError, register_pass

# ops whose kernel prefers a layout for one argument: op name -> argument index
LAYOUT_PREFERRING = {"conv2d": 0, "convolution": 0, "conv_transpose2d": 0}
FORMATS = {"nchw": contiguous_format, "nhwc": channels_last}
CONVERSIONS = ("contiguous", "clone")   # readers that convert by themselves


@register_pass("layout", provides=("layout",))
def propagate_layout(graph: Graph, ctx: PassContext) -> int:
    """Choose channels-last or contiguous per conv region; insert the fewest conversions."""
    options = _options(ctx)
    if any(n.op == OpKind.call_function and is_fused(n.target) for n in graph.nodes):
        raise PassError("pass 'layout' must run before 'fuse': fused groups hide the ops "
                        "whose layout it propagates")
    outputs_before = {n: n.meta["val"] for n in _output_values(graph) if _is_4d(n)}
    changed = _fix_inputs(graph, options["input_layout"])
    mutated = mutated_values(graph)
    converted = []
    computed = _computed_from_inputs(graph)
    kept: set[Node] = set()      # convs left reading a few-channel entry as it is
    for region in find_regions(graph):
        fmt = _region_format(region, options["layout"])
        if fmt is None or not region.members & computed:
            continue
        changed += _convert_entries(region, fmt, options["input_layout"] == "any", mutated,
                                    options["entry_channels"], kept)
        region.format = fmt
        converted.append(region)
    recompute_metas(graph)
    changed += _convert_ambiguous_convs([r for r in converted if r.format is channels_last],
                                        mutated, kept)
    changed += _convert_exits(converted, mutated)
    changed += _convert_outputs(graph, outputs_before, options["output_layout"])
    recompute_metas(graph)
    changed -= _drop_redundant_conversions(graph, mutated)
    return changed


def is_layout_conversion(node: Node) -> bool:
    return node.op == OpKind.call_function and node.target is OPS["contiguous"] and \
        "memory_format" in node.kwargs


def _drop_redundant_conversions(graph: Graph, mutated: set[Node]) -> int:
    """Once metas are final: a conversion of a value already in the format goes, and two
    conversions of one value to one format become one (values no in-place op touches)."""
    dropped = 0
    seen: dict[tuple, Node] = {}
    for node in graph.nodes:
        if not is_layout_conversion(node) or node in mutated or node.args[0] in mutated:
            continue
        value, fmt = node.args[0], node.kwargs["memory_format"]
        keep = value if _in_format(value, fmt) else seen.get((value, fmt))
        if keep is None:
            seen[(value, fmt)] = node
            continue
        node.replace_all_uses_with(keep)
        graph.erase_node(node)
        dropped += 1
    if dropped:
        recompute_metas(graph)
    return dropped


def _options(ctx: PassContext) -> dict:
    chosen = {"layout": ctx.options.get("layout", "auto"),
              "input_layout": ctx.options.get("input_layout", "keep"),
              "output_layout": ctx.options.get("output_layout", "keep")}
    entry_channels = ctx.options.get("entry_channels", 0)
    if not isinstance(entry_channels, int) or entry_channels < 0:
        raise PassError(f"pass 'layout': option entry_channels={entry_channels!r}; expected "
                        "a non-negative int")
    allowed = {"layout": ("auto", "nchw", "nhwc"),
               "input_layout": ("keep", "nchw", "nhwc", "any"),
               "output_layout": ("keep", "nchw", "nhwc", "any")}
    for key, value in chosen.items():
        if value not in allowed[key]:
            raise PassError(f"pass 'layout': option {key}={value!r}; expected one of "
                            f"{list(allowed[key])}")
    return {**chosen, "entry_channels": entry_channels}


# --- regions -------------------------------------------------------------------------------
class Region:
    def __init__(self):
        self.members: set[Node] = set()
        self.carriers: set[Node] = set()     # members whose format follows their inputs
        self.has_conv = False
        self.format: MemoryFormat | None = None      # the one chosen for it


def _is_4d(node) -> bool:
    val = node.meta.get("val") if isinstance(node, Node) else None
    if isinstance(val, (tuple, list)) and val:
        val = val[0]
    return isinstance(val, TensorMeta) and val.ndim == 4


def _first_meta(val):
    return val[0] if isinstance(val, (tuple, list)) and val else val


def carries_layout(node: Node) -> bool:
    """The op's meta rule makes the output channels-last when its 4-d inputs are."""
    op = node.target

    def probe(n):
        meta = n.meta.get("val")
        if not isinstance(meta, TensorMeta) or meta.ndim != 4:
            return meta
        return meta.with_(memory_format=channels_last)
    try:
        bound = op.schema.bind(node.args, node.kwargs)
        out = _first_meta(op.meta(*map_arg(bound, probe)))
    except Exception:   # noqa: BLE001 - a rule that rejects the probe carries nothing
        return False
    return isinstance(out, TensorMeta) and out.ndim == 4 and \
        out.memory_format is channels_last and out.is_contiguous(channels_last) and \
        not out.is_contiguous(contiguous_format)


def _layout_inputs(node: Node) -> tuple[list[Node], bool]:
    """The 4-d inputs whose layout `node`'s output follows, and whether it is a conv."""
    if node.op != OpKind.call_function or not _is_4d(node):
        return [], False
    if node.target is operator.getitem:
        # an output of a multi-output node follows the layout its source follows; when the
        # source's outputs do not follow its inputs (chunk along channels: strided pieces),
        # each getitem is a region entry of its own, where a conversion can go (a
        # conversion of the multi-output node itself would be of a list of tensors)
        source = node.args[0]
        follows = _is_4d(source) and (source.op != OpKind.call_function or
                                      bool(_layout_inputs(source)[0]))
        return ([source] if follows else []), False
    if not is_op(node.target) or Tag.INPLACE in node.target.tags:
        return [], False
    name = node.target.name
    if name in LAYOUT_PREFERRING:
        arg = node.args[LAYOUT_PREFERRING[name]]
        return ([arg] if _is_4d(arg) else []), True
    inputs = [a for a in node.all_input_nodes if _is_4d(a)]
    return (inputs if inputs and carries_layout(node) else []), False


def find_regions(graph: Graph) -> list[Region]:
    """Union-find over 4-d values joined by layout-carrying ops."""
    parent: dict[Node, Node] = {}

    def root(n: Node) -> Node:
        while parent.setdefault(n, n) is not n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    carriers, convs = set(), set()
    for node in graph.nodes:
        inputs, is_conv = _layout_inputs(node)
        for inp in inputs:
            parent[root(inp)] = root(node)
            carriers.add(node)
        if is_conv and inputs:
            convs.add(node)
    regions: dict[Node, Region] = {}
    for node in parent:
        region = regions.setdefault(root(node), Region())
        region.members.add(node)
        region.carriers |= {node} & carriers
        region.has_conv |= node in convs
    return list(regions.values())


def _computed_from_inputs(graph: Graph) -> set[Node]:
    """Values that depend on a placeholder; the rest are parameters (or will fold)."""
    computed: set[Node] = set()
    for node in graph.nodes:
        if node.op == OpKind.placeholder or set(node.all_input_nodes) & computed:
            computed.add(node)
    return computed


def _region_format(region: Region, choice: str) -> MemoryFormat | None:
    if choice == "auto":
        return channels_last if region.has_conv else None
    return FORMATS[choice]


# --- conversions -----------------------------------------------------------------------------
def _in_format(node: Node, fmt: MemoryFormat) -> bool:
    return _first_meta(node.meta["val"]).is_contiguous(fmt)


def insert_conversion(value: Node, fmt: MemoryFormat, before: Node | None = None) -> Node:
    """`contiguous(value, memory_format=fmt)` right after value (or just before `before`),
    typed and located like it."""
    anchor = value
    while getattr(anchor.next, "op", None) == OpKind.placeholder:      # keep placeholders first
        anchor = anchor.next
    where = value.graph.inserting_before(before) if before is not None else \
        value.graph.inserting_after(anchor)
    with where:
        node = value.graph.call_function(OPS["contiguous"], (value,), {"memory_format": fmt})
    node.meta["val"] = OPS["contiguous"].meta(value.meta["val"], fmt)
    if "loc" in value.meta:
        node.meta["loc"] = value.meta["loc"]
    return node


def _convert_entries(region: Region, fmt: MemoryFormat, retype_placeholders: bool,
                     mutated: set[Node], entry_channels: int = 0,
                     kept: set[Node] | None = None) -> int:
    changed = 0
    for entry in sorted(region.members - region.carriers - mutated, key=_position):
        readers = [u for u in entry.users if u in region.carriers]
        if not readers or _in_format(entry, fmt):
            continue
        if fmt is channels_last and kept is not None and \
                _copied_by_convs(entry, readers, entry_channels, region):
            kept.update(readers)
            continue
        if entry.op == OpKind.placeholder and retype_placeholders:
            entry.meta["val"] = entry.meta["val"].with_(memory_format=fmt)
        else:
            converted = insert_conversion(entry, fmt)
            for reader in readers:
                reader.replace_input_with(entry, converted)
        changed += 1
    return changed


def _copied_by_convs(entry: Node, readers: list[Node], channels: int,
                     region: Region) -> bool:
    """Every region reader of `entry` is a padded conv reading it as its input, the entry
    has at most `channels` channels, and the region has a conv besides them (to read
    their channels-last outputs)."""
    if channels <= 0 or _first_meta(entry.meta["val"]).shape[1] > channels:
        return False
    for reader in readers:
        if not (is_op(reader.target) and reader.target.name == "conv2d") or \
                reader.args[0] is not entry or entry in reader.args[1:] or \
                not any(_padding_of(reader)):
            return False
    others = [n for n in region.carriers if n.op == OpKind.call_function and
              is_op(n.target) and n.target.name in ("conv2d", "convolution")]
    return len(others) > len(readers)


def _padding_of(conv: Node) -> tuple:
    bound = conv.target.schema.as_kwargs(conv.target.schema.bind(conv.args, conv.kwargs))
    padding = bound.get("padding", 0)
    if isinstance(padding, str):
        return (padding != "valid",)
    return tuple(padding) if isinstance(padding, (list, tuple)) else (padding,)


def _convert_ambiguous_convs(regions: list[Region], mutated: set[Node],
                             kept: set[Node] = frozenset()) -> int:
    """A conv whose input has one channel (its NCHW and NHWC strides are the same, and
    the conv's meta rule, PyTorch's, then gives a contiguous output) gets its output
    converted for the channels-last region it feeds, when the region has another conv
    to read it (a lone conv's region keeps its output as the meta rule gives it: no
    conversion back at the output); the conversion fuses into the conv's epilogue, so
    the kernel writes NHWC directly."""
    changed = 0
    for region in regions:
        convs = [n for n in region.carriers - mutated if n.op == OpKind.call_function and
                 is_op(n.target) and n.target.name in ("conv2d", "convolution")]
        if len(convs) < 2:
            continue
        for conv in sorted(convs, key=_position):
            source = conv.args[0]
            if _in_format(conv, channels_last) or not _is_4d(conv) or \
                    not (isinstance(source, Node) and (_in_format(source, channels_last) or
                                                       conv in kept)):
                continue
            readers = [u for u in conv.users if u in region.members]
            if not readers:
                continue
            converted = insert_conversion(conv, channels_last)
            for reader in readers:
                reader.replace_input_with(conv, converted)
            changed += 1
    if changed:
        recompute_metas(converted.graph)
    return changed


def _needs_row_major(reader: Node) -> bool:
    """Readers that address elements in row-major order (reshape/view/permute/...)."""
    if reader.op == OpKind.output:
        return False
    if reader.op != OpKind.call_function or not is_op(reader.target):
        return reader.target is not operator.getitem
    if reader.target.name in CONVERSIONS:
        return False
    return bool(reader.target.tags & {Tag.SHAPE, Tag.VIEW})


def _convert_exits(regions: list[Region], mutated: set[Node]) -> int:
    changed = 0
    for region in regions:
        for value in sorted(region.carriers - mutated, key=_position):
            readers = [u for u in value.users if u not in region.carriers and
                       _needs_row_major(u)]
            if not readers or _in_format(value, contiguous_format):
                continue
            converted = insert_conversion(value, contiguous_format)
            for reader in readers:
                reader.replace_input_with(value, converted)
            changed += 1
    return changed


def _convert_outputs(graph: Graph, before: dict[Node, TensorMeta], choice: str) -> int:
    if choice == "any":
        return 0
    changed = 0
    out = graph.output_node
    for value in _output_values(graph):
        if value not in before or not isinstance(value.meta.get("val"), TensorMeta):
            continue
        fmt = FORMATS.get(choice) or _format_of(before[value])
        if _in_format(value, fmt):
            continue
        # just before the output: an in-place op after `value` must reach the copy
        out.replace_input_with(value, insert_conversion(value, fmt, before=out))
        changed += 1
    return changed


def _format_of(meta: TensorMeta) -> MemoryFormat:
    return channels_last if meta.is_contiguous(channels_last) and \
        not meta.is_contiguous(contiguous_format) else contiguous_format


def _fix_inputs(graph: Graph, choice: str) -> int:
    """input_layout nchw/nhwc: the caller passes 4-d inputs in that layout."""
    if choice not in FORMATS:
        return 0
    changed = 0
    for p in graph.placeholders:
        if _is_4d(p) and not _in_format(p, FORMATS[choice]):
            p.meta["val"] = p.meta["val"].with_(memory_format=FORMATS[choice])
            changed += 1
    return changed


def _output_values(graph: Graph) -> list[Node]:
    out = graph.output_node
    return [] if out is None else out.all_input_nodes


def _position(node: Node) -> int:
    return node.graph._nodes.index(node)


# --- meta propagation --------------------------------------------------------------------------
def recompute_metas(graph: Graph) -> int:
    """Re-run the meta rules of every registry op (and getitem) in graph order, so strides
    and memory formats follow the inputs' new layouts. Returns how many metas changed."""
    changed = 0
    for node in graph.nodes:
        new = _meta_now(node)
        if new is None:
            continue
        old = node.meta.get("val")
        if not _same_layout(old, new):
            node.meta["val"] = new
            changed += 1
    return changed


def _meta_now(node: Node):
    if node.op != OpKind.call_function:
        return None
    if node.target is operator.getitem:
        source, index = node.args
        val = source.meta.get("val") if isinstance(source, Node) else None
        return val[index] if isinstance(val, (tuple, list)) else None
    if not is_op(node.target) or any(n.meta.get("val") is None for n in node.all_input_nodes):
        return None
    bound = node.target.schema.bind(node.args, node.kwargs)
    return node.target.meta(*map_arg(bound, lambda n: n.meta["val"]))


def _same_layout(a, b) -> bool:
    if isinstance(a, TensorMeta) and isinstance(b, TensorMeta):
        return a == b and a.strides == b.strides
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same_layout(x, y) for x, y in zip(a, b))
    return a == b
