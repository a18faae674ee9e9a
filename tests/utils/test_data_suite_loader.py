"""Behaviour from PyTorch's test/test_dataloader.py, part 2, run with torch as the oracle:
the DataLoader itself (batching, shuffle with a generator, batch_size=None, collate_fn,
samplers and batch samplers, num_workers > 0 for map-style and iterable datasets,
get_worker_info sharding, worker_init_fn, worker seeds, persistent_workers, pin_memory
on the CPU, len(), the option errors and warnings torch gives). torch's workers are
processes; ember's run in the loading process; what a program sees is compared."""
from __future__ import annotations

import random

import numpy as np
import pytest

from suitedata_oracle import both, raises_both


def _data(lib):
    return lib.utils.data


@pytest.fixture(autouse=True)
def _quick_torch_worker_shutdown(monkeypatch):
    """torch's DataLoader waits MP_STATUS_CHECK_INTERVAL (5 s) per join when it shuts down
    workers after an error; a shorter interval changes no result, only the oracle's wait."""
    import torch.utils.data._utils as torch_data_utils
    monkeypatch.setattr(torch_data_utils, "MP_STATUS_CHECK_INTERVAL", 0.2)


def _tensor_dataset(lib, n=10):
    return _data(lib).TensorDataset(lib.arange(2 * n, dtype=lib.float32).reshape(n, 2),
                                    lib.arange(n))


class Squares:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range")
        return {"x": np.full(2, i, dtype=np.float32), "y": i * i, "name": f"s{i}"}


def _stream(lib, n, shard=False, length=None):
    """An IterableDataset of 0..n-1 (sharded over the workers with get_worker_info when
    `shard`; reporting `length` from __len__ when given)."""
    data = _data(lib)

    class Stream(data.IterableDataset):
        def __iter__(self):
            info = data.get_worker_info()
            if not shard or info is None:
                return iter(range(n))
            return iter(range(info.id, n, info.num_workers))

    if length is not None:
        Stream.__len__ = lambda self: length
    return Stream()


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (3, False), (3, True),
                                                  (10, False), (11, True), (4, True)])
def test_map_style_batches(batch_size, drop_last):
    def case(lib):
        loader = _data(lib).DataLoader(_tensor_dataset(lib), batch_size=batch_size,
                                       drop_last=drop_last)
        return list(loader), len(loader), len(iter(loader))
    both(case)


def test_samples_of_dicts_numpy_and_strings():
    both(lambda lib: list(_data(lib).DataLoader(Squares(5), batch_size=2)))


def test_shuffle_is_a_permutation_reproducible_per_generator():
    def case(lib):
        def epoch(loader):
            return [i for batch in loader for i in batch[1].tolist()]
        loader = _data(lib).DataLoader(_tensor_dataset(lib, 20), batch_size=3, shuffle=True,
                                       generator=lib.Generator().manual_seed(7))
        first, second = epoch(loader), epoch(loader)
        again = epoch(_data(lib).DataLoader(_tensor_dataset(lib, 20), batch_size=3,
                                            shuffle=True,
                                            generator=lib.Generator().manual_seed(7)))
        return (sorted(first), first != second, first == again,
                type(loader.sampler).__name__, len(loader))
    both(case)


def test_shuffle_follows_the_global_seed():
    def case(lib):
        def epoch():
            loader = _data(lib).DataLoader(range(15), batch_size=4, shuffle=True)
            return [i for batch in loader for i in batch.tolist()]
        lib.manual_seed(3)
        a = epoch()
        lib.manual_seed(3)
        return a == epoch(), sorted(a)
    both(case)


def test_batch_size_none_converts_each_sample():
    def case(lib):
        loader = _data(lib).DataLoader(Squares(3), batch_size=None)
        return list(loader), len(loader), loader.batch_size, loader.batch_sampler
    both(case)


def test_batch_size_none_with_a_tensor_dataset():
    both(lambda lib: list(_data(lib).DataLoader(_tensor_dataset(lib, 3), batch_size=None)))


def test_custom_collate_fn():
    def case(lib):
        loader = _data(lib).DataLoader(range(7), batch_size=3,
                                       collate_fn=lambda batch: (len(batch), sum(batch)))
        return list(loader)
    both(case)


def test_sampler_as_a_list_and_a_batch_sampler():
    def case(lib):
        data = _data(lib)
        by_list = list(data.DataLoader(range(10, 20), sampler=[3, 1, 4, 1, 5], batch_size=2))
        batches = list(data.DataLoader(range(10, 20), batch_sampler=[[0, 9], [2], [5, 6, 7]]))
        no_batching = list(data.DataLoader(range(10, 20), sampler=[2, 0], batch_size=None))
        sampler = data.BatchSampler(data.SequentialSampler(range(5)), 2, drop_last=True)
        with_sampler = data.DataLoader(range(10, 15), batch_sampler=sampler)
        return by_list, batches, no_batching, list(with_sampler), len(with_sampler)
    both(case)


def test_dataset_getitems_is_used_for_a_batch():
    def case(lib):
        calls = []

        class Batched(_data(lib).Dataset):
            def __len__(self):
                return 6

            def __getitem__(self, i):
                return i

            def __getitems__(self, indices):
                calls.append(list(indices))
                return [10 * i for i in indices]

        out = list(_data(lib).DataLoader(Batched(), batch_size=4))
        return out, calls
    both(case)


def test_loader_attributes():
    def case(lib):
        data = _data(lib)
        plain = data.DataLoader(range(5))
        workers = data.DataLoader(range(5), batch_size=2, shuffle=True, num_workers=2)
        return ([type(plain.sampler).__name__, type(plain.batch_sampler).__name__,
                 plain.batch_size, plain.drop_last, plain.num_workers, plain.prefetch_factor,
                 plain.persistent_workers, plain.pin_memory, plain.timeout],
                [type(workers.sampler).__name__, workers.prefetch_factor])
    both(case)


@pytest.mark.parametrize("attr,value", [("batch_size", 4), ("sampler", None),
                                        ("drop_last", True), ("dataset", range(3))])
def test_setting_options_after_construction_raises(attr, value):
    def case(lib):
        setattr(_data(lib).DataLoader(range(5)), attr, value)
    raises_both(case, f"{attr} attribute should not be set after DataLoader is initialized",
                kind=ValueError)


@pytest.mark.parametrize("kwargs,words", [
    ({"batch_sampler": [[0]], "batch_size": 2}, ["batch_sampler option is mutually exclusive"]),
    ({"batch_sampler": [[0]], "shuffle": True}, ["batch_sampler option is mutually exclusive"]),
    ({"batch_sampler": [[0]], "drop_last": True}, ["batch_sampler option is mutually exclusive"]),
    ({"batch_sampler": [[0]], "sampler": [0]}, ["batch_sampler option is mutually exclusive"]),
    ({"sampler": [0, 1], "shuffle": True}, ["sampler option is mutually exclusive with shuffle"]),
    ({"batch_size": None, "drop_last": True}, ["batch_size=None option disables auto-batching"]),
    ({"num_workers": -1}, ["num_workers option should be non-negative"]),
    ({"timeout": -1}, ["timeout option should be non-negative"]),
    ({"prefetch_factor": 2}, ["prefetch_factor option could only be specified in "
                              "multiprocessing"]),
    ({"num_workers": 2, "prefetch_factor": -1}, ["prefetch_factor option should be "
                                                 "non-negative"]),
    ({"persistent_workers": True}, ["persistent_workers option needs num_workers > 0"]),
    ({"multiprocessing_context": "fork"}, ["multiprocessing_context can only be used with "
                                           "multi-process loading", "num_workers=0"]),
    ({"num_workers": 2, "multiprocessing_context": "no-such-method"},
     ["multiprocessing_context option should specify a valid start method",
      "'no-such-method'"]),
])
def test_option_errors(kwargs, words):
    raises_both(lambda lib: _data(lib).DataLoader(range(4), **kwargs), *words, kind=ValueError)


@pytest.mark.parametrize("kwargs,words", [
    ({"shuffle": True}, ["expected unspecified shuffle option", "shuffle=True"]),
    ({"sampler": [0]}, ["expected unspecified sampler option"]),
    ({"batch_sampler": [[0]]}, ["expected unspecified batch_sampler option"]),
])
def test_iterable_dataset_option_errors(kwargs, words):
    raises_both(lambda lib: _data(lib).DataLoader(_stream(lib, 3), **kwargs), *words,
                kind=ValueError)


def test_pin_memory_without_an_accelerator_warns_and_does_not_pin():
    def case(lib):
        loader = _data(lib).DataLoader(_tensor_dataset(lib, 4), batch_size=2, pin_memory=True)
        batches = list(loader)
        return batches, [t.is_pinned() for batch in batches for t in batch]
    both(case, warns="'pin_memory' argument is set as true but no accelerator is found")


def test_len_of_a_loader_without_a_sized_dataset():
    class NoLen:
        def __getitem__(self, i):
            return i

    raises_both(lambda lib: len(_data(lib).DataLoader(NoLen())), kind=TypeError)
    raises_both(lambda lib: len(_data(lib).DataLoader(_stream(lib, 3))), kind=TypeError)


@pytest.mark.parametrize("batch_size,drop_last", [(None, False), (1, False), (4, False),
                                                  (4, True)])
def test_iterable_dataset_batches_and_len(batch_size, drop_last):
    def case(lib):
        loader = _data(lib).DataLoader(_stream(lib, 10, length=10), batch_size=batch_size,
                                       drop_last=drop_last)
        return list(loader), len(loader)
    both(case)


def test_iterable_dataset_longer_than_its_len_warns():
    def case(lib):
        loader = _data(lib).DataLoader(_stream(lib, 5, length=3), batch_size=None)
        reported = len(loader)
        return reported, list(loader)
    both(case, warns="was reported to be 3")


def test_errors_raised_by_the_dataset_reach_the_caller():
    def case(lib):
        list(_data(lib).DataLoader(Squares(3), sampler=[0, 5]))
    raises_both(case, "index 5 out of range", kind=IndexError)


# --- workers --------------------------------------------------------------------------------
def test_map_style_with_workers_gives_the_same_batches():
    def case(lib):
        data = _data(lib)
        serial = list(data.DataLoader(Squares(9), batch_size=2))
        workers = list(data.DataLoader(Squares(9), batch_size=2, num_workers=2))
        return workers, serial
    both(case)


def test_iterable_dataset_without_sharding_repeats_per_worker():
    """Each worker reads the whole dataset; batches come round-robin from the workers."""
    both(lambda lib: list(_data(lib).DataLoader(_stream(lib, 5), batch_size=2, num_workers=2)))


@pytest.mark.parametrize("batch_size,drop_last", [(None, False), (2, False), (2, True)])
def test_iterable_dataset_sharded_with_get_worker_info(batch_size, drop_last):
    def case(lib):
        loader = _data(lib).DataLoader(_stream(lib, 11, shard=True), batch_size=batch_size,
                                       drop_last=drop_last, num_workers=2)
        return list(loader)
    both(case)


def _info_dataset(lib):
    data = _data(lib)

    class Info(data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            info = data.get_worker_info()
            return {"id": info.id, "num_workers": info.num_workers,
                    "own_copy": info.dataset is not self or True,
                    "dataset_type": type(info.dataset).__name__,
                    "seed_is_initial_seed": lib.initial_seed() == info.seed,
                    "init_tag": getattr(info.dataset, "tag", None),
                    "torch_rand": float(lib.rand(1)), "py_rand": random.random(),
                    "np_rand": float(np.random.rand())}

    return Info()


def test_worker_info_and_worker_init_fn():
    def case(lib):
        data = _data(lib)

        def init(worker_id):
            data.get_worker_info().dataset.tag = f"worker-{worker_id}"

        dataset = _info_dataset(lib)
        samples = list(data.DataLoader(dataset, batch_size=None, num_workers=2,
                                       worker_init_fn=init))
        fixed = [{k: v for k, v in s.items() if not k.endswith("_rand")} for s in samples]
        randoms = {k: len({s[k] for s in samples}) for k in ("torch_rand", "py_rand",
                                                              "np_rand")}
        return fixed, randoms, data.get_worker_info(), hasattr(dataset, "tag")
    both(case)


def test_worker_info_refuses_new_attributes():
    def case(lib):
        data = _data(lib)

        class Poke(data.Dataset):
            def __len__(self):
                return 1

            def __getitem__(self, i):
                info = data.get_worker_info()
                try:
                    info.id = 5
                except AttributeError as err:
                    return type(err).__name__, str(err)
                return "assigned"

        return list(data.DataLoader(Poke(), batch_size=None, num_workers=1))
    both(case)


def _counting(lib):
    class Counting(_data(lib).Dataset):
        def __init__(self):
            self.calls = 0

        def __len__(self):
            return 4

        def __getitem__(self, i):
            self.calls += 1
            return self.calls

    return Counting()


@pytest.mark.parametrize("persistent", [False, True])
def test_persistent_workers_keep_their_state_across_epochs(persistent):
    """Each worker counts the samples it served in its own copy of the dataset: with
    persistent workers the count carries on into the next epoch, otherwise it restarts;
    the loading process's dataset is never touched."""
    def case(lib):
        dataset = _counting(lib)
        loader = _data(lib).DataLoader(dataset, batch_size=None, num_workers=2,
                                       persistent_workers=persistent)
        epochs = [list(loader) for _ in range(3)]
        return epochs, dataset.calls
    both(case)


def test_worker_seeds_differ_between_epochs_and_follow_the_generator():
    def case(lib):
        def draws(seed):
            data = _data(lib)

            class Rand(data.Dataset):
                def __len__(self):
                    return 2

                def __getitem__(self, i):
                    return float(lib.rand(1))

            loader = data.DataLoader(Rand(), batch_size=None, num_workers=2,
                                     generator=lib.Generator().manual_seed(seed))
            return [list(loader) for _ in range(2)]
        a, b = draws(1), draws(1)
        return a == b, a[0] != a[1], draws(2) != a
    both(case)


def test_exception_in_a_worker_reaches_the_caller():
    def case(lib):
        list(_data(lib).DataLoader(Squares(3), sampler=[0, 7], num_workers=2))
    raises_both(case, "index 7 out of range", kind=IndexError)


@pytest.mark.parametrize("kwargs,words", [
    ({"batch_sampler": [[0]], "sampler": [0], "shuffle": True},
     ["sampler option is mutually exclusive with shuffle"]),
    ({"sampler": [0], "shuffle": 3}, ["sampler option is mutually exclusive with shuffle"]),
    ({"batch_sampler": [[0]], "drop_last": 3}, ["batch_sampler option is mutually exclusive"]),
])
def test_option_check_order(kwargs, words):
    raises_both(lambda lib: _data(lib).DataLoader(range(4), **kwargs), *words, kind=ValueError)


def test_multiprocessing_context_of_the_wrong_type():
    raises_both(lambda lib: _data(lib).DataLoader(range(4), num_workers=1,
                                                  multiprocessing_context=object()),
                "multiprocessing_context option should be a valid context", kind=TypeError)


@pytest.mark.parametrize("kwargs", [{"shuffle": 3}, {"sampler": 3}, {"batch_sampler": 3}])
def test_iterable_dataset_rejects_any_given_sampling_option(kwargs):
    raises_both(lambda lib: _data(lib).DataLoader(_stream(lib, 3), **kwargs),
                "DataLoader with IterableDataset: expected unspecified", kind=ValueError)


@pytest.mark.parametrize("as_object", [False, True], ids=["name", "context"])
def test_multiprocessing_context_by_name_or_object(as_object):
    """(fork only: torch's spawn/forkserver workers import torch, seconds each.)"""
    import multiprocessing

    def case(lib):
        context = multiprocessing.get_context("fork") if as_object else "fork"
        return list(_data(lib).DataLoader(range(11), batch_size=3, num_workers=2,
                                          multiprocessing_context=context))
    both(case)


def _sized_per_worker(lib, sizes):
    data = _data(lib)

    class PerWorker(data.IterableDataset):
        def __iter__(self):
            return iter(range(sizes[data.get_worker_info().id]))

        def __len__(self):
            return sum(sizes)

    return PerWorker()


@pytest.mark.parametrize("batch_size,drop_last", [(None, False), (3, False), (3, True)])
def test_workers_of_different_lengths_round_robin_until_all_are_done(batch_size, drop_last):
    def case(lib):
        loader = _data(lib).DataLoader(_sized_per_worker(lib, [2, 7]), num_workers=2,
                                       batch_size=batch_size, drop_last=drop_last)
        return list(loader), len(loader)
    both(case)


def test_warning_past_the_reported_length_with_workers():
    def case(lib):
        loader = _data(lib).DataLoader(_stream(lib, 4, length=4), num_workers=2,
                                       batch_size=None)
        unreported = list(loader)                  # len() not asked: no warning
        reported = len(loader)
        return unreported, reported, list(loader)
    both(case, warns="For multiprocessing data-loading, this")


def test_multi_epoch_batches_alternate_between_workers():
    def case(lib):
        data = _data(lib)

        class WhoAmI(data.IterableDataset):
            def __iter__(self):
                info = data.get_worker_info()
                return iter([info.id] * 6)

        loader = data.DataLoader(WhoAmI(), batch_size=3, num_workers=2)
        return [list(loader) for _ in range(2)]
    both(case)


def test_worker_init_fn_reseeding_is_what_the_worker_sees():
    def case(lib):
        data = _data(lib)

        class Seed(data.Dataset):
            def __len__(self):
                return 4

            def __getitem__(self, i):
                return lib.initial_seed()

        loader = data.DataLoader(Seed(), batch_size=2, num_workers=2,
                                 worker_init_fn=lambda worker_id: lib.manual_seed(12345))
        return list(loader), lib.initial_seed() != 12345
    both(case)


def test_worker_seeds_are_distinct_and_reproducible():
    def case(lib):
        data = _data(lib)

        class Seed(data.Dataset):
            def __len__(self):
                return 3

            def __getitem__(self, i):
                return lib.initial_seed()

        def seeds():
            return {int(s) for s in data.DataLoader(
                Seed(), batch_size=None, num_workers=3,
                generator=lib.Generator().manual_seed(42))}
        return len(seeds()), seeds() == seeds()
    both(case, check_warnings=False)       # torch may warn of 3 workers on a 2-CPU host


@pytest.mark.parametrize("num_workers", [0, 2])
def test_errors_in_iter_and_worker_init_fn_reach_the_caller(num_workers):
    def in_iter(lib):
        class Broken(_data(lib).IterableDataset):
            def __iter__(self):
                raise RuntimeError("Error in __iter__")
        list(_data(lib).DataLoader(Broken(), num_workers=num_workers))
    raises_both(in_iter, "Error in __iter__", kind=RuntimeError)

    def in_init(lib):
        def init(worker_id):
            raise RuntimeError("Error in worker_init_fn")
        list(_data(lib).DataLoader(range(4), num_workers=2, worker_init_fn=init))
    if num_workers:
        raises_both(in_init, "Error in worker_init_fn", kind=RuntimeError)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_builtin_values_are_not_converted_without_batching(num_workers):
    def case(lib):
        data = _data(lib)
        return (list(data.DataLoader(range(5), batch_size=None, num_workers=num_workers)),
                tuple(data.DataLoader(_stream(lib, 5), batch_size=None,
                                      num_workers=num_workers)),
                list(data.DataLoader(_stream(lib, 5), batch_size=2, num_workers=num_workers)))
    both(case)


def test_len_follows_a_growing_dataset():
    def case(lib):
        dataset = [lib.ones(2) for _ in range(4)]
        sequential = _data(lib).DataLoader(dataset, shuffle=False)
        shuffled = _data(lib).DataLoader(dataset, shuffle=True, batch_size=2)
        dataset.append(lib.ones(2))
        return len(sequential), len(shuffled), len(list(shuffled))
    both(case)


def test_two_loaders_iterated_in_turn():
    def case(lib):
        data = _data(lib)
        first = iter(data.DataLoader(range(6), num_workers=1))
        second = iter(data.DataLoader(range(10, 16), batch_size=2, num_workers=2))
        return [next(first), next(first), next(second), next(second), next(first),
                next(second)]
    both(case)


def test_bulk_loading_without_auto_collation():
    """batch_size=None with a sampler that yields lists: the dataset reads each list."""
    def case(lib):
        data = _data(lib)

        class Bulk(data.Dataset):
            def __len__(self):
                return 10

            def __getitem__(self, indices):
                return lib.as_tensor(indices)

        loader = data.DataLoader(Bulk(), batch_size=None, sampler=[[0, 1, 2], [3, 4], [9]],
                                 num_workers=0)
        return loader._auto_collation, list(loader)
    both(case)


def test_batches_from_a_distributed_sampler_do_not_overlap():
    def case(lib):
        data = _data(lib)
        dataset = lib.arange(9, dtype=lib.int32)
        seen = []
        for rank in range(4):
            sampler = data.distributed.DistributedSampler(dataset, 4, rank)
            seen.extend(int(v) for batch in data.DataLoader(dataset, batch_size=2,
                                                             drop_last=True, sampler=sampler)
                        for v in batch)
        return len(seen), len(set(seen)) == len(seen)
    both(case)


def test_worker_info_repr_names_its_fields():
    def case(lib):
        data = _data(lib)

        class Repr(data.Dataset):
            def __len__(self):
                return 1

            def __getitem__(self, i):
                text = repr(data.get_worker_info())
                return [f"{k}=" in text for k in ("id", "num_workers", "seed", "dataset")]

        return list(data.DataLoader(Repr(), batch_size=None, num_workers=1))
    both(case)


@pytest.mark.parametrize("persistent", [False, True])
def test_workers_copy_the_dataset_when_they_start(persistent):
    """Attributes set on the dataset between epochs reach fresh workers, not persistent
    ones (they keep the copy they started with)."""
    def case(lib):
        class Start(_data(lib).Dataset):
            start = 0

            def __len__(self):
                return 2

            def __getitem__(self, i):
                return self.start

        dataset = Start()
        loader = _data(lib).DataLoader(dataset, batch_size=None, num_workers=2,
                                       persistent_workers=persistent)
        seen = []
        for epoch in range(3):
            seen.append(list(loader))
            dataset.start = epoch + 1
        return seen
    both(case)


def test_named_tuple_samples_with_and_without_batching():
    from collections import namedtuple
    Batch = namedtuple("Batch", ["data", "label", "values"])
    Data = namedtuple("Data", ["positive", "negative"])

    def case(lib):
        class Named(_data(lib).Dataset):
            def __len__(self):
                return 4

            def __getitem__(self, i):
                return Batch(Data(i, -i), str(i), lib.full((2,), float(i)))

        data = _data(lib)
        batched = list(data.DataLoader(Named(), batch_size=2))
        single = list(data.DataLoader(Named(), batch_size=None))
        return batched, single, [type(b.data).__name__ for b in batched]
    both(case)


def test_custom_batch_object_from_collate_fn():
    def case(lib):
        class CustomBatch:
            def __init__(self, samples):
                inputs, targets = zip(*samples)
                self.inp, self.tgt = lib.stack(inputs), lib.stack(targets)

        dataset = _data(lib).TensorDataset(lib.arange(10.0).reshape(5, 2), lib.arange(5))
        # (no workers: torch's would have to pickle this test-local class back)
        loader = _data(lib).DataLoader(dataset, batch_size=2, collate_fn=CustomBatch)
        return [(b.inp, b.tgt) for b in loader]
    both(case)


def test_pin_memory_device_is_deprecated():
    def case(lib):
        loader = _data(lib).DataLoader(range(4), batch_size=2, pin_memory=True,
                                       pin_memory_device="cuda")
        return list(loader)
    both(case, warns="pin_memory_device is deprecated")


def test_subset_of_tensor_indices():
    def case(lib):
        data = _data(lib)
        dataset = data.TensorDataset(lib.arange(10) * 3)
        subset = data.Subset(dataset, lib.tensor([7, 2, 5]))
        return len(subset), subset[0], list(data.DataLoader(subset, batch_size=2))
    both(case)


def test_timeout_without_workers_is_refused_when_iterating():
    def case(lib):
        loader = _data(lib).DataLoader(range(3), timeout=1)     # constructing is allowed
        return list(loader)
    raises_both(case, "requires timeout == 0", kind=AssertionError)
