"""Behaviour from PyTorch's test/test_dataloader.py, part 1, run with torch as the oracle:
samplers (Sequential, Random with generator / replacement / num_samples, SubsetRandom,
WeightedRandom, Batch, Distributed), datasets (Tensor, Concat, Subset, Stack, Chain,
random_split) and default_collate / default_convert. ember's random draws come from its
own generator, so a random order is compared by what a program can rely on (a
permutation, reproducible per seed, fresh per epoch), never by the numbers drawn."""
from __future__ import annotations

import collections
from typing import NamedTuple

import numpy as np
import pytest

from suitedata_oracle import both, raises_both


def _data(lib):
    return lib.utils.data


class Squares:
    """A plain map-style dataset (no Dataset base), as samplers accept any sized object."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i * i


def _seeded(lib, seed):
    return lib.Generator().manual_seed(seed)


# --- samplers -------------------------------------------------------------------------------
def test_sequential_sampler():
    both(lambda lib: (list(_data(lib).SequentialSampler(range(7))),
                      len(_data(lib).SequentialSampler(Squares(4)))))


@pytest.mark.parametrize("num_samples", [None, 4, 10, 23])
def test_random_sampler_without_replacement(num_samples):
    """Every index once per pass over the data (a longer num_samples repeats whole
    permutations), reproducible per generator seed, new on each iteration."""
    def case(lib):
        sampler = _data(lib).RandomSampler(range(10), num_samples=num_samples,
                                           generator=_seeded(lib, 3))
        first, second = list(sampler), list(sampler)
        again = list(_data(lib).RandomSampler(range(10), num_samples=num_samples,
                                              generator=_seeded(lib, 3)))
        passes = [sorted(first[i:i + 10]) for i in range(0, len(first) - len(first) % 10, 10)]
        return (len(sampler), len(first), passes, set(first) <= set(range(10)),
                first == again, first != second or len(first) < 2)
    both(case)


def test_random_sampler_with_replacement():
    def case(lib):
        sampler = _data(lib).RandomSampler(range(5), replacement=True, num_samples=200,
                                           generator=_seeded(lib, 0))
        drawn = list(sampler)
        return len(sampler), len(drawn), sorted(set(drawn)), sampler.replacement
    both(case)


def test_random_sampler_uses_the_global_seed_without_a_generator():
    def case(lib):
        lib.manual_seed(11)
        a = list(_data(lib).RandomSampler(range(20)))
        lib.manual_seed(11)
        b = list(_data(lib).RandomSampler(range(20)))
        return a == b, sorted(a)
    both(case)


@pytest.mark.parametrize("kwargs,kind,words", [
    ({"num_samples": 0}, ValueError, ["num_samples should be a positive integer value",
                                      "num_samples=0"]),
    ({"num_samples": -3}, ValueError, ["num_samples=-3"]),
    ({"num_samples": 2.5}, ValueError, ["num_samples=2.5"]),
    ({"replacement": 1}, TypeError, ["replacement should be a boolean value",
                                     "replacement=1"]),
])
def test_random_sampler_errors(kwargs, kind, words):
    raises_both(lambda lib: _data(lib).RandomSampler(range(4), **kwargs), *words, kind=kind)


def test_subset_random_sampler():
    def case(lib):
        indices = [9, 3, 5, 1, 7]
        sampler = _data(lib).SubsetRandomSampler(indices, generator=_seeded(lib, 1))
        first = list(sampler)
        again = list(_data(lib).SubsetRandomSampler(indices, generator=_seeded(lib, 1)))
        return len(sampler), sorted(first), first == again
    both(case)


def test_weighted_random_sampler():
    def case(lib):
        weights = [0.0, 1.0, 0.0, 3.0, 2.0]
        with_replacement = list(_data(lib).WeightedRandomSampler(
            weights, 300, generator=_seeded(lib, 0)))
        without = list(_data(lib).WeightedRandomSampler(
            lib.tensor(weights, dtype=lib.float64), 3, replacement=False,
            generator=_seeded(lib, 0)))
        counts = collections.Counter(with_replacement)
        return (len(with_replacement), sorted(counts), counts[3] > counts[1],
                sorted(without), len(_data(lib).WeightedRandomSampler(weights, 7)))
    both(case)


@pytest.mark.parametrize("args,kwargs,words", [
    (([1.0, 2.0], 0), {}, ["num_samples should be a positive integer value"]),
    (([1.0, 2.0], 2.0), {}, ["num_samples should be a positive integer value"]),
    (([1.0, 2.0], 2), {"replacement": "yes"}, ["replacement should be a boolean value"]),
    (([[1.0, 2.0]], 2), {}, ["weights should be a 1d sequence"]),
])
def test_weighted_random_sampler_errors(args, kwargs, words):
    raises_both(lambda lib: _data(lib).WeightedRandomSampler(*args, **kwargs), *words,
                kind=ValueError)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3, 4, 10, 12])
def test_batch_sampler(batch_size, drop_last):
    def case(lib):
        data = _data(lib)
        sampler = data.BatchSampler(data.SequentialSampler(range(10)), batch_size, drop_last)
        over_list = data.BatchSampler([5, 6, 7, 8, 9], batch_size, drop_last)
        return list(sampler), len(sampler), list(over_list), len(over_list)
    both(case)


@pytest.mark.parametrize("batch_size,drop_last,words", [
    (0, False, ["batch_size should be a positive integer value", "batch_size=0"]),
    (-1, False, ["batch_size=-1"]),
    (2.0, False, ["batch_size=2.0"]),
    (True, False, ["batch_size=True"]),
    (2, 1, ["drop_last should be a boolean value", "drop_last=1"]),
])
def test_batch_sampler_errors(batch_size, drop_last, words):
    raises_both(lambda lib: _data(lib).BatchSampler(range(4), batch_size, drop_last), *words,
                kind=ValueError)


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True),
                                                   (12, 4, False), (2, 4, False),
                                                   (5, 2, True)])
def test_distributed_sampler_partitions_without_shuffle(n, replicas, drop_last):
    def case(lib):
        samplers = [lib.utils.data.distributed.DistributedSampler(
            range(n), num_replicas=replicas, rank=r, shuffle=False, drop_last=drop_last)
            for r in range(replicas)]
        return [list(s) for s in samplers], [len(s) for s in samplers], \
            samplers[0].total_size, samplers[0].num_samples
    both(case)


@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_sampler_shuffles_the_same_way_on_every_rank(drop_last):
    """With shuffle, the ranks' shares together are one seeded permutation (padded or
    cut), the same on every rank; set_epoch gives another; the seed decides it."""
    def shares(lib, seed=0, epoch=0):
        out = []
        for rank in range(3):
            sampler = lib.utils.data.DistributedSampler(range(11), num_replicas=3, rank=rank,
                                                        seed=seed, drop_last=drop_last)
            sampler.set_epoch(epoch)
            out.append(list(sampler))
        return out

    def case(lib):
        base = shares(lib)
        merged = [i for share in zip(*base) for i in share]
        distinct = len(set(merged)) == len(merged) and set(merged) <= set(range(11))
        return (distinct if drop_last else sorted(set(merged)), len(merged),
                [len(s) for s in base], shares(lib) == base, shares(lib, epoch=1) != base,
                shares(lib, seed=5) != base)
    both(case)


def test_distributed_sampler_bad_rank():
    raises_both(lambda lib: lib.utils.data.DistributedSampler(range(4), num_replicas=2, rank=2),
                "Invalid rank 2", "[0, 1]", kind=ValueError)
    raises_both(lambda lib: lib.utils.data.DistributedSampler(range(4), num_replicas=2,
                                                              rank=-1),
                "Invalid rank -1", kind=ValueError)


# --- datasets -------------------------------------------------------------------------------
def test_tensor_dataset():
    def case(lib):
        x, y = lib.arange(12.0).reshape(4, 3), lib.tensor([1, 0, 1, 1])
        ds = _data(lib).TensorDataset(x, y)
        return len(ds), ds[2], ds[-1], ds[1:3], len(ds.tensors)
    both(case)


def test_tensor_dataset_size_mismatch():
    raises_both(lambda lib: _data(lib).TensorDataset(lib.zeros(3), lib.zeros(4)),
                "Size mismatch between tensors", kind=AssertionError)


def test_concat_dataset_indexing():
    def case(lib):
        data = _data(lib)
        ds = data.ConcatDataset([range(3), Squares(4), data.TensorDataset(lib.arange(2))])
        plus = data.TensorDataset(lib.arange(2)) + data.TensorDataset(lib.arange(5, 8))
        return (len(ds), ds.cumulative_sizes, [ds[i] for i in range(len(ds))], ds[-1], ds[-9],
                type(plus).__name__, len(plus), plus[3])
    both(case)


def test_concat_dataset_errors():
    raises_both(lambda lib: _data(lib).ConcatDataset([]), "should not be an empty iterable",
                kind=AssertionError)
    raises_both(lambda lib: _data(lib).ConcatDataset([range(3)])[-4],
                "absolute value of index should not exceed dataset length", kind=ValueError)
    raises_both(lambda lib: _data(lib).ConcatDataset([range(3), range(2)])[5],
                kind=IndexError)

    class Stream(object):
        pass

    def with_iterable(lib):
        class It(_data(lib).IterableDataset):
            def __iter__(self):
                return iter(range(3))
        _data(lib).ConcatDataset([range(2), It()])
    raises_both(with_iterable, "does not support IterableDataset", kind=AssertionError)


def test_subset():
    def case(lib):
        data = _data(lib)
        base = data.TensorDataset(lib.arange(10) * 10)
        sub = data.Subset(base, [8, 1, 1, 4])
        nested = data.Subset(sub, [3, 0])
        return len(sub), [sub[i] for i in range(4)], nested[0], nested[1], len(nested), \
            list(data.DataLoader(sub, batch_size=3))
    both(case)


@pytest.mark.parametrize("lengths", [[3, 7], [0.5, 0.5], [0.3, 0.3, 0.4], [0.25, 0.75],
                                     [0.1, 0.1, 0.1, 0.7], [1.0], [10, 0]])
def test_random_split_sizes_and_partition(lengths):
    def case(lib):
        parts = _data(lib).random_split(range(10), lengths, generator=_seeded(lib, 0))
        again = _data(lib).random_split(range(10), lengths, generator=_seeded(lib, 0))
        items = [list(p) for p in parts]
        return ([len(p) for p in parts], sorted(i for part in items for i in part),
                items == [list(p) for p in again], [type(p).__name__ for p in parts])
    both(case, check_warnings=False)


def test_random_split_fraction_giving_an_empty_split_warns():
    def case(lib):
        return [len(p) for p in _data(lib).random_split(range(3), [0.9, 0.1],
                                                         generator=_seeded(lib, 0))]
    both(case, warns="Length of split at index 1 is 0")


@pytest.mark.parametrize("lengths,kind,words", [
    ([3, 4], ValueError, ["Sum of input lengths does not equal the length of the input dataset"]),
    ([0.5, 0.6], ValueError, ["Sum of input lengths does not equal"]),
    ([1.2, -0.2], ValueError, ["Fraction at index 0 is not between 0 and 1"]),
])
def test_random_split_errors(lengths, kind, words):
    raises_both(lambda lib: _data(lib).random_split(range(10), lengths), *words, kind=kind)


def test_stack_dataset():
    def case(lib):
        data = _data(lib)
        a, b = data.TensorDataset(lib.arange(3)), range(10, 13)
        as_tuple, as_dict = data.StackDataset(a, b), data.StackDataset(x=a, y=b)
        return (len(as_tuple), as_tuple[1], as_dict[2], len(as_dict),
                list(data.DataLoader(as_dict, batch_size=2)))
    both(case)


@pytest.mark.parametrize("make,words", [
    (lambda data: data.StackDataset(range(2), range(3)), ["Size mismatch between datasets"]),
    (lambda data: data.StackDataset(x=range(2), y=range(3)), ["Size mismatch between datasets"]),
    (lambda data: data.StackDataset(range(2), y=range(2)), ["both types are given"]),
    (lambda data: data.StackDataset(), ["At least one dataset should be passed"]),
])
def test_stack_dataset_errors(make, words):
    raises_both(lambda lib: make(_data(lib)), *words, kind=ValueError)


def _counting_dataset(lib, n, with_len=True):
    base = _data(lib).IterableDataset

    class Counting(base):
        def __iter__(self):
            return iter(range(n))

    if with_len:
        Counting.__len__ = lambda self: n
    return Counting()


def test_chain_dataset():
    def case(lib):
        data = _data(lib)
        chain = data.ChainDataset([_counting_dataset(lib, 3), _counting_dataset(lib, 2)])
        plus = _counting_dataset(lib, 2) + _counting_dataset(lib, 1)
        return list(chain), len(chain), type(plus).__name__, list(plus), \
            list(data.DataLoader(chain, batch_size=2))
    both(case)


def test_chain_dataset_errors():
    raises_both(lambda lib: list(_data(lib).ChainDataset([range(3)])),
                "ChainDataset only supports IterableDataset", kind=AssertionError)
    raises_both(lambda lib: len(_data(lib).ChainDataset([_counting_dataset(lib, 2, False)])),
                kind=TypeError)


def test_dataset_base_class_errors():
    raises_both(lambda lib: _data(lib).Dataset()[0], kind=NotImplementedError)
    raises_both(lambda lib: len(_data(lib).Dataset()), kind=TypeError)


# --- default_collate / default_convert -----------------------------------------------------
class Pair(NamedTuple):
    image: object
    label: object


COLLATE = {
    "tensors": lambda lib: [lib.ones(2, 3), lib.zeros(2, 3)],
    "ints": lambda lib: [1, 2, 3],
    "floats": lambda lib: [1.5, 2.0],
    "bools": lambda lib: [True, False],
    "strings": lambda lib: ["a", "bb"],
    "bytes": lambda lib: [b"a", b"b"],
    "numpy_arrays": lambda lib: [np.arange(3, dtype=np.int32), np.ones(3, dtype=np.int32)],
    "numpy_float32_scalars": lambda lib: [np.float32(1.5), np.float32(2.5)],
    "numpy_int64_scalars": lambda lib: [np.int64(1), np.int64(7)],
    "numpy_0d": lambda lib: [np.array(1.0), np.array(2.0)],
    "numpy_bool": lambda lib: [np.bool_(True), np.bool_(False)],
    "tuples": lambda lib: [(lib.ones(2), 1, "x"), (lib.zeros(2), 2, "y")],
    "lists": lambda lib: [[1, 2.0], [3, 4.0]],
    "dicts": lambda lib: [{"x": lib.ones(1), "y": {"z": 1, "w": [1.0]}},
                          {"x": lib.zeros(1), "y": {"z": 2, "w": [2.0]}}],
    "ordered_dicts": lambda lib: [collections.OrderedDict(b=1, a=2),
                                  collections.OrderedDict(b=3, a=4)],
    "defaultdicts": lambda lib: [collections.defaultdict(int, a=1),
                                 collections.defaultdict(int, a=2)],
    "namedtuples": lambda lib: [Pair(lib.ones(2), 0), Pair(lib.zeros(2), 1)],
    "namedtuple_of_numpy": lambda lib: [Pair(np.ones(2), np.int64(3)),
                                        Pair(np.zeros(2), np.int64(4))],
    "nested_mixed": lambda lib: [{"a": (np.float64(1.0), [lib.tensor(1)])},
                                 {"a": (np.float64(2.0), [lib.tensor(2)])}],
    "int8_tensors": lambda lib: [lib.tensor([1], dtype=lib.int8),
                                 lib.tensor([2], dtype=lib.int8)],
    "zero_dim_tensors": lambda lib: [lib.tensor(1.0), lib.tensor(2.0)],
}


@pytest.mark.parametrize("name", sorted(COLLATE))
def test_default_collate(name):
    def case(lib):
        batch = _data(lib).default_collate(COLLATE[name](lib))
        return batch, type(batch).__name__
    both(case)


@pytest.mark.parametrize("batch,kind,words", [
    (lambda lib: [[1, 2], [3]], RuntimeError, ["each element in list of batch should be of "
                                               "equal size"]),
    (lambda lib: [object(), object()], TypeError, ["default_collate: batch must contain "
                                                   "tensors, numpy arrays, numbers, dicts or "
                                                   "lists"]),
    (lambda lib: [None, None], TypeError, ["default_collate: batch must contain"]),
    (lambda lib: [np.array(["a"]), np.array(["b"])], TypeError, ["default_collate: batch must "
                                                                 "contain"]),
    (lambda lib: [lib.ones(2), lib.ones(3)], RuntimeError, ["stack expects each tensor to be "
                                                            "equal size"]),
])
def test_default_collate_errors(batch, kind, words):
    raises_both(lambda lib: _data(lib).default_collate(batch(lib)), *words, kind=kind)


CONVERT = {
    "numpy": lambda lib: np.arange(4, dtype=np.float32),
    "numpy_scalar": lambda lib: np.float64(2.5),
    "numpy_strings": lambda lib: np.array(["a", "b"]),
    "tensor": lambda lib: lib.ones(2),
    "int": lambda lib: 3,
    "string": lambda lib: "text",
    "tuple": lambda lib: (np.ones(2), 1),
    "list": lambda lib: [np.ones(1), "s"],
    "dict": lambda lib: {"a": np.zeros(2), "b": [np.int64(1)]},
    "namedtuple": lambda lib: Pair(np.ones(1), 2),
}


@pytest.mark.parametrize("name", sorted(CONVERT))
def test_default_convert(name):
    def case(lib):
        converted = _data(lib).default_convert(CONVERT[name](lib))
        return converted, type(converted).__name__
    both(case)


def test_collate_with_a_custom_map_extends_default_collate():
    """The documented way to extend default_collate: collate() with a map of per-type
    functions (here: a custom class batched as a list of its field)."""
    class Box:
        def __init__(self, v):
            self.v = v

    def case(lib):
        from importlib import import_module
        collate_module = import_module(lib.__name__ + ".utils.data._utils.collate")

        def collate_box(batch, *, collate_fn_map):
            return [b.v for b in batch]

        fn_map = {**collate_module.default_collate_fn_map, Box: collate_box}
        batch = [{"box": Box(1), "x": lib.ones(2)}, {"box": Box(2), "x": lib.zeros(2)}]
        out = collate_module.collate(batch, collate_fn_map=fn_map)
        tensors_only = collate_module.collate([lib.ones(1), lib.ones(1)], collate_fn_map={
            lib.Tensor: collate_module.collate_tensor_fn})
        return out, tensors_only, sorted(k.__name__ if isinstance(k, type) else "tuple"
                                         for k in collate_module.default_collate_fn_map)
    both(case)


SAMPLERS = {
    "random_replacement": lambda lib, g: _data(lib).RandomSampler(range(30), replacement=True,
                                                                  num_samples=5, generator=g),
    "random": lambda lib, g: _data(lib).RandomSampler(range(30), generator=g),
    "weighted": lambda lib, g: _data(lib).WeightedRandomSampler(
        [0.1, 0.9, 0.4, 0.7, 3.0, 0.6], num_samples=5, generator=g),
    "weighted_no_replacement": lambda lib, g: _data(lib).WeightedRandomSampler(
        [0.1, 0.9, 0.4, 0.7, 3.0, 0.6], num_samples=5, replacement=False, generator=g),
    "subset": lambda lib, g: _data(lib).SubsetRandomSampler(range(10), generator=g),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_reproducibility(name):
    """Seeded generators repeat; without one the global seed decides, drawn when
    iteration starts (two iterators made first, each seeded before its first next())."""
    def case(lib):
        make = SAMPLERS[name]
        seeded = [list(make(lib, _seeded(lib, 42))) for _ in range(2)]
        sampler = make(lib, None)
        lib.manual_seed(0)
        first = list(sampler) + list(sampler)
        lib.manual_seed(0)
        second = list(sampler) + list(sampler)
        iterators, drawn = (iter(sampler), iter(sampler)), ([], [])
        for step in range(len(sampler)):
            for i in range(2):
                if step == 0:
                    lib.manual_seed(0)
                drawn[i].append(next(iterators[i]))
        return seeded[0] == seeded[1], first == second, drawn[0] == drawn[1], len(first)
    both(case)


def test_stack_dataset_getitems_uses_the_nested_batched_reads():
    def case(lib):
        data = _data(lib)

        class Batched(data.Dataset):
            def __init__(self, short=False):
                self.values, self.short, self.calls = lib.arange(4) * 10, short, []

            def __getitem__(self, i):
                return self.values[i]

            def __getitems__(self, indices):
                self.calls.append(list(indices))
                picked = self.values[indices]
                return picked[:-1] if self.short else picked

            def __len__(self):
                return 4

        batched = Batched()
        as_tuple = data.StackDataset(batched, [1, 2, 3, 4]).__getitems__([0, 2, 3])
        as_dict = data.StackDataset(t=batched, l=[1, 2, 3, 4]).__getitems__([1, 0])
        loaded = list(data.DataLoader(data.StackDataset(a=batched, b=range(4)), batch_size=3))
        return as_tuple, as_dict, batched.calls, loaded
    both(case)


def test_stack_dataset_getitems_errors():
    def short(lib):
        data = _data(lib)

        class Short(data.Dataset):
            def __getitem__(self, i):
                return i

            def __getitems__(self, indices):
                return list(indices)[:-1]

            def __len__(self):
                return 4

        data.StackDataset(Short(), [1, 2, 3, 4]).__getitems__([0, 1, 2, 3])
    raises_both(short, "Nested dataset's output size mismatch. Expected 4, got 3",
                kind=ValueError)
    raises_both(lambda lib: _data(lib).StackDataset(lib.arange(4), [1, 2, 3, 4])
                .__getitems__([0, 4]), kind=IndexError)


def test_subset_slicing_and_batched_reads():
    def case(lib):
        data = _data(lib)
        dataset = data.TensorDataset(lib.tensor([1, 2, 3, 4, 5]))
        subset = data.Subset(dataset, [4, 0, 1, 2, 3])
        nested = data.Subset(subset, [0, 1, 2, 3, 4])
        return subset[:], subset[1:3], subset[0:-1:2], nested[0:2], nested[[4, 0]], \
            subset.__getitems__([0, 1])
    both(case)


def test_concat_dataset_of_lists_with_an_empty_one():
    def case(lib):
        result = _data(lib).ConcatDataset([[0, 1, 2, 3, 4], [], [5, 6, 7, 8, 9]])
        return len(result), result[0], result[5], result[9], result.cumulative_sizes
    both(case)
    raises_both(lambda lib: _data(lib).ConcatDataset([[0, 1], [5, 6]])[11], kind=IndexError)


def test_random_split_of_a_list_and_the_global_generator():
    """Without a generator random_split draws from the global one (it advances);
    with one, the global stream is untouched."""
    def case(lib):
        state = lib.get_rng_state()
        a = lib.rand(3)
        lib.set_rng_state(state)
        _data(lib).random_split([5, 2, 3, 4, 1, 6], [2, 4])
        advanced = not lib.equal(a, lib.rand(3))
        state = lib.get_rng_state()
        a = lib.rand(3)
        lib.set_rng_state(state)
        splits = _data(lib).random_split([5, 2, 3, 4, 1, 6], [0.33, 0.67],
                                         generator=_seeded(lib, 1))
        untouched = lib.equal(a, lib.rand(3))
        return advanced, untouched, sorted(list(splits[0]) + list(splits[1])), \
            [type(i).__name__ for i in splits[0].indices]
    both(case)


def test_random_split_round_robin_remainder():
    def case(lib):
        return [len(s) for s in _data(lib).random_split(range(106), [0.1, 0.2, 0.3, 0.4],
                                                          generator=_seeded(lib, 1))]
    both(case)


class CustomDict(dict):
    pass


class CustomList(list):
    pass


@pytest.mark.parametrize("make", [
    lambda lib: [CustomDict(a=1, b=2), CustomDict(a=3, b=4)],
    lambda lib: [CustomList([1, 2, 3]), CustomList([4, 5, 6])],
    lambda lib: [range(2), range(2)],
    lambda lib: np.array(["a", "b", "c"]),
    lambda lib: list(np.arange(8).reshape(4, 2)),
], ids=["custom_dict", "custom_list", "ranges", "numpy_strings_as_batch", "numpy_rows"])
def test_default_collate_container_types(make):
    def case(lib):
        out = _data(lib).default_collate(make(lib))
        return out, type(out).__name__
    both(case)


@pytest.mark.parametrize("make", [
    lambda: np.array([[["a", "b", "c"]]]),
    lambda: np.array([object(), object()]),
    lambda: np.array([[[object(), object()]]]),
], ids=["nested_strings", "objects", "nested_objects"])
def test_default_collate_bad_numpy_types(make):
    raises_both(lambda lib: _data(lib).default_collate(make()), kind=TypeError)


@pytest.mark.parametrize("make", [lambda: CustomDict(a=1, b=np.ones(1)),
                                  lambda: CustomList([1, np.zeros(2)]), lambda: range(2)],
                         ids=["custom_dict", "custom_list", "range"])
def test_default_convert_keeps_container_types(make):
    def case(lib):
        out = _data(lib).default_convert(make())
        return out, type(out).__name__
    both(case)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "int64", "int32", "int16",
                                   "int8", "uint8", "bool_"])
def test_numpy_scalar_samples_batch_to_their_dtype(dtype):
    def case(lib):
        scalar = getattr(np, dtype)
        batch = next(iter(_data(lib).DataLoader([scalar(1), scalar(0), scalar(1)],
                                                batch_size=2)))
        return batch, str(batch.dtype)
    both(case)
