"""The torch names and behaviours Hugging Face transformers asked of ember, each against
torch: custom pytree nodes (and ember.compile returning them), flex_attention and its
BlockMask, the DTensor placements' shard arithmetic, TransformGetItemToIndex, the
FSDP/stream types libraries test against, and the porting helper's call-time imports."""
from __future__ import annotations

import collections
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
import ember.utils._pytree as pytree  # noqa: E402


class Pair(collections.OrderedDict):
    """A dict subclass that registers itself as a pytree node (as ModelOutput does)."""


def _flatten_pair(pair):
    return list(pair.values()), list(pair.keys())


def _unflatten_pair(values, keys):
    return Pair(zip(keys, values))


pytree.register_pytree_node(Pair, _flatten_pair, _unflatten_pair,
                            serialized_type_name="test.Pair",
                            flatten_with_keys_fn=pytree._dict_flatten_with_keys)


def test_registered_pytree_node_flattens_and_rebuilds_its_type():
    value = Pair(a=ember.ones(2), b=[ember.zeros(1), 3])
    leaves, spec = pytree.tree_flatten(value)
    assert len(leaves) == 3 and leaves[2] == 3
    rebuilt = pytree.tree_unflatten(leaves, spec)
    assert type(rebuilt) is Pair and list(rebuilt) == ["a", "b"]
    doubled = pytree.tree_map_only(ember.Tensor, lambda t: t * 2, value)
    assert type(doubled) is Pair and doubled["b"][1] == 3
    assert doubled["a"].tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="already registered"):
        pytree.register_pytree_node(Pair, _flatten_pair, _unflatten_pair)


class _Cache:
    """An object holding tensors in attributes (a key/value cache)."""

    def __init__(self):
        self.layers = []


def test_compiled_function_returns_registered_nodes_and_objects_holding_tensors():
    def fn(x):
        cache = _Cache()
        cache.layers.append(x * 3)
        return Pair(out=x + 1, cache=cache)

    x = np.arange(4, dtype=np.float32)
    got = ember.compile(fn)(ember.tensor(x))
    assert type(got) is Pair
    np.testing.assert_array_equal(got["out"].numpy(), x + 1)
    assert isinstance(got["cache"], _Cache)
    np.testing.assert_array_equal(got["cache"].layers[0].numpy(), x * 3)


def _flex_inputs():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 4, 8, 16)).astype(np.float32)
    k = rng.standard_normal((2, 2, 8, 16)).astype(np.float32)
    v = rng.standard_normal((2, 2, 8, 16)).astype(np.float32)
    return q, k, v


def _causal(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def _first_row_sees_nothing(b, h, q_idx, kv_idx):
    return (q_idx >= kv_idx) & (q_idx > 0)


def _relative_bias(score, b, h, q_idx, kv_idx):
    return score + 0.1 * (q_idx - kv_idx) - 0.05 * h


@pytest.mark.parametrize("mask_mod", [_causal, _first_row_sees_nothing])
def test_flex_attention_and_block_mask_match_torch(mask_mod):
    from torch.nn.attention import flex_attention as torch_flex
    from ember.nn.attention import flex_attention as ember_flex
    q, k, v = _flex_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")              # torch: "compile flex_attention"
        want_mask = torch_flex.create_block_mask(mask_mod, None, None, 8, 8, device="cpu",
                                                 BLOCK_SIZE=4)
        want, want_aux = torch_flex.flex_attention(
            *map(torch.tensor, (q, k, v)), score_mod=_relative_bias, block_mask=want_mask,
            enable_gqa=True, return_aux=torch_flex.AuxRequest(lse=True))
    mask = ember_flex.create_block_mask(mask_mod, None, None, 8, 8, device="cpu",
                                        BLOCK_SIZE=4)
    np.testing.assert_array_equal(mask.to_dense().numpy(), want_mask.to_dense().numpy())
    got, aux = ember_flex.flex_attention(
        *map(ember.tensor, (q, k, v)), score_mod=_relative_bias, block_mask=mask,
        enable_gqa=True, return_aux=ember_flex.AuxRequest(lse=True))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(aux.lse.numpy(), want_aux.lse.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size,chunks", [(10, 4), (3, 4), (8, 2), (0, 3)])
def test_shard_sizes_and_offsets_match_torch(size, chunks):
    from torch.distributed.tensor.placement_types import Shard as TorchShard
    from ember.distributed.tensor import Shard
    for rank in range(chunks):
        assert Shard.local_shard_size_and_offset(size, chunks, rank) == \
            tuple(TorchShard.local_shard_size_and_offset(size, chunks, rank))


def test_placements_compare_and_describe_as_torch():
    from torch.distributed.tensor import Partial as TP, Replicate as TR, Shard as TS
    from ember.distributed.tensor import Partial, Replicate, Shard
    assert Shard(1) == Shard(1) and Shard(1) != Shard(0) and Replicate() == Replicate()
    for mine, theirs in ((Shard(1), TS(1)), (Replicate(), TR()), (Partial(), TP())):
        assert repr(mine) == repr(theirs)
        assert (mine.is_shard(), mine.is_replicate(), mine.is_partial()) == \
            (theirs.is_shard(), theirs.is_replicate(), theirs.is_partial())


def test_transform_getitem_to_index_indexes_with_a_batched_scalar_under_vmap():
    from ember._dynamo._trace_wrapped_higher_order_op import TransformGetItemToIndex
    table = np.arange(12, dtype=np.float32).reshape(3, 4)
    rows = np.array([2, 0, 1])

    def pick(i):
        return ember.tensor(table)[i] * 2

    with TransformGetItemToIndex():
        got = ember.vmap(pick)(ember.tensor(rows))
    np.testing.assert_array_equal(got.numpy(), table[rows] * 2)


def test_fsdp_and_stream_context_types_libraries_check_against():
    from ember.distributed.fsdp import FullyShardedDataParallel, MixedPrecisionPolicy
    assert not isinstance(ember.nn.Linear(2, 2), FullyShardedDataParallel)
    with pytest.raises(NotImplementedError, match="DistributedDataParallel"):
        FullyShardedDataParallel(ember.nn.Linear(2, 2))
    assert MixedPrecisionPolicy(param_dtype=ember.bfloat16).param_dtype is ember.bfloat16
    with ember.cuda.stream(None) as current:         # None: the current stream stays
        assert current is None
    assert isinstance(ember.cuda.stream(None), ember.cuda.StreamContext)


def test_a_node_erased_from_its_graph_still_prints():
    """A traced value kept past the pass that erased its node is named in errors."""
    import operator
    from ember.ir.graph import Graph
    graph = Graph()
    x = graph.placeholder("x")
    doubled = graph.call_function(operator.mul, (x, 2))
    graph.output(x)
    graph.erase_node(doubled)
    assert doubled.format().startswith(f"%{doubled.name} = ")


def test_to_with_a_none_device_keeps_the_device_as_torch():
    """x.to(None) and x.to(None, dtype): rotary-embedding code passes device=None on."""
    got, want = ember.ones(2), torch.ones(2)
    assert got.to(None).dtype == ember.float32 and got.to(None).device.type == "cpu"
    assert str(got.to(None, ember.float64).dtype).split(".")[-1] == \
        str(want.to(None, torch.float64).dtype).split(".")[-1]


def test_requires_grad_true_on_a_computed_tensor_is_a_no_op_as_torch():
    """transformers' gradient checkpointing hook calls requires_grad_(True) on the input
    embeddings' output; only turning it off is refused."""
    weight = ember.ones(2, requires_grad=True)
    computed = weight * 2
    assert computed.requires_grad_(True) is computed and computed.grad_fn is not None
    with pytest.raises(Exception, match="leaf variables"):
        computed.requires_grad_(False)
    want = torch.ones(2, requires_grad=True) * 2
    assert want.requires_grad_(True).grad_fn is not None


@pytest.mark.parametrize("reverse", [False, True])
def test_associative_scan_matches_torch(reverse):
    """Mamba's selective scan imports torch._higher_order_ops.associative_scan: a pytree
    of tensors with a first-order recurrence as the combine (a, b) -> a * a' , a' b + b'."""
    from torch._higher_order_ops.associative_scan import associative_scan as torch_scan
    from ember._higher_order_ops.associative_scan import associative_scan
    rng = np.random.default_rng(2)
    decay = rng.uniform(0.5, 1.0, (2, 7, 3)).astype(np.float32)
    drive = rng.standard_normal((2, 7, 3)).astype(np.float32)

    def combine(left, right):
        return left[0] * right[0], right[0] * left[1] + right[1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = torch_scan(combine, (torch.tensor(decay), torch.tensor(drive)), dim=1,
                          reverse=reverse, combine_mode="generic")
    got = associative_scan(combine, (ember.tensor(decay), ember.tensor(drive)), dim=1,
                           reverse=reverse)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="same size"):
        associative_scan(combine, (ember.ones(3), ember.ones(4)), dim=0)


def test_mark_static_address_marks_the_tensor_as_torch():
    got, want = ember.ones(2), torch.ones(2)
    ember._dynamo.mark_static_address(got)
    torch._dynamo.mark_static_address(want)
    assert got._dynamo_static_input_type == want._dynamo_static_input_type
    ember._dynamo.mark_static_address(got, guard=True)
    torch._dynamo.mark_static_address(want, guard=True)
    assert got._dynamo_static_input_type == want._dynamo_static_input_type == "guarded"
    with pytest.raises(TypeError):
        ember._dynamo.mark_static_address([1.0])


def test_like_factories_of_a_meta_tensor_on_another_device_as_torch():
    """from_pretrained materializes meta buffers with empty_like(buffer, device="cpu")."""
    meta = ember.empty(2, 3, device="meta")
    for got, want in ((ember.zeros_like(meta, device="cpu"), torch.zeros(2, 3)),
                      (ember.ones_like(meta, device="cpu"), torch.ones(2, 3)),
                      (ember.full_like(meta, 7.0, device="cpu"), torch.full((2, 3), 7.0))):
        assert got.device.type == "cpu"
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert ember.empty_like(meta, device="cpu").shape == (2, 3)
    assert ember.nn.modules.module._EXTRA_STATE_KEY_SUFFIX == \
        torch.nn.modules.module._EXTRA_STATE_KEY_SUFFIX
