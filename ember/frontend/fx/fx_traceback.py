"""torch.fx.traceback: carrying node meta from the node being rewritten to the nodes a
Transformer (or any tracer) makes for it.

Inside `preserve_node_meta()`, the Interpreter makes the meta of each node it runs the
"current meta" (`set_current_meta`), and every node a Tracer creates meanwhile copies
its `stack_trace` and the fields in `COPY_META_FIELDS` (`nn_module_stack`, `custom`,
...). `annotate({...})` adds entries to the current meta's `custom` dict for the nodes
created inside the block. Outside `preserve_node_meta()` nothing is copied.
"""
from __future__ import annotations

import contextlib
import copy
import traceback

COPY_META_FIELDS = ("nn_module_stack", "torch_fn", "source_fn_stack", "original_aten",
                    "recompute", "ac_graph_id", "has_backward_hook", "from_node",
                    "quantization_tag", "custom", "partitioner_tag")

should_preserve_node_meta = False
current_meta: dict = {}


@contextlib.contextmanager
def preserve_node_meta(enable: bool = True):
    global should_preserve_node_meta, current_meta
    saved = should_preserve_node_meta, current_meta.copy()
    should_preserve_node_meta = enable
    try:
        yield
    finally:
        should_preserve_node_meta, current_meta = saved


def has_preserved_node_meta() -> bool:
    return should_preserve_node_meta


def get_current_meta() -> dict:
    return current_meta


@contextlib.contextmanager
def set_current_meta(node, pass_name: str = ""):
    """Make `node.meta` the current meta for the block (only while preserving)."""
    global current_meta
    if not (should_preserve_node_meta and node.meta):
        yield
        return
    saved = current_meta
    current_meta = node.meta.copy()
    try:
        yield
    finally:
        current_meta = saved


def set_stack_trace(stack: list) -> None:
    if not should_preserve_node_meta:
        return
    if stack:
        current_meta["stack_trace"] = "".join(stack)
    else:
        current_meta.pop("stack_trace", None)


def format_stack() -> list:
    if should_preserve_node_meta:
        return [current_meta.get("stack_trace", "")]
    return traceback.format_list(traceback.extract_stack()[:-1])


@contextlib.contextmanager
def annotate(annotation_dict: dict):
    """Nodes created in the block get `meta["custom"]` with these entries."""
    global current_meta
    had = "custom" in current_meta
    old = copy.copy(current_meta.get("custom", {}))
    current_meta["custom"] = {**old, **annotation_dict}
    try:
        yield
    finally:
        if had:
            current_meta["custom"] = old
        else:
            current_meta.pop("custom", None)


def copy_current_meta(node) -> None:
    """Give a newly created node the current meta's stack trace and copied fields."""
    if not should_preserve_node_meta:
        return
    if current_meta.get("stack_trace"):
        node.meta["stack_trace"] = current_meta["stack_trace"]
    for field in COPY_META_FIELDS:
        if field in current_meta:
            node.meta[field] = copy.copy(current_meta[field])
