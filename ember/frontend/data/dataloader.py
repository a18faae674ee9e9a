"""torch.utils.data.DataLoader, with its workers run in the loading process.

A DataLoader with num_workers=N hands batches out as torch's does: a map-style dataset's
batches in the sampler's order, an iterable dataset's batches round-robin over the N
workers, each worker reading (and batching) its own copy of the dataset. ember runs
each worker's share in the calling process, one batch at a time, with everything a
worker sees switched in around it: get_worker_info(), its copy of the dataset, and its
own seeded RNG streams (ember's default generator, `random`, NumPy's global state),
seeded base_seed + worker_id and carried from batch to batch. worker_init_fn runs once
per worker (once for the loader's life with persistent_workers). What is lost is the
parallelism, not the results. pin_memory=True copies every CPU tensor of a batch into
page-locked memory (Tensor.pin_memory) where a GPU is present, so a
`.to("cuda", non_blocking=True)` of it is queued without waiting; without a GPU it
loads as False does (warning, as torch does).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import multiprocessing
import random
import warnings
from collections.abc import Mapping

import numpy as np

from .. import random as ember_random
from ..cuda import is_available as cuda_is_available
from ..factories import randint
from ..tensor import Tensor
from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What get_worker_info() returns inside a worker (torch's frozen dataclass: its
    fields cannot be assigned). worker_method says "multiprocessing": ember's workers
    keep a process's semantics (own dataset copy and RNG streams)."""
    id: int
    num_workers: int
    seed: int
    dataset: object
    rng: object = None
    worker_method: str | None = "multiprocessing"


_current_worker: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """The running worker's WorkerInfo inside a DataLoader worker; None elsewhere."""
    return _current_worker


def _rng_states():
    generator = ember_random.default_generator
    return (generator.initial_seed(), generator.get_state(), random.getstate(),
            np.random.get_state())


def _set_rng_states(states) -> None:
    seed, state, python_state, numpy_state = states
    ember_random.default_generator.manual_seed(seed)
    ember_random.default_generator.set_state(state)
    random.setstate(python_state)
    np.random.set_state(numpy_state)


class _Worker:
    """One worker's dataset copy, RNG streams and WorkerInfo, switched in by `running`."""

    def __init__(self, loader: "DataLoader", worker_id: int, base_seed: int) -> None:
        # a shallow copy: a worker's attribute changes stay its own (its process's, in
        # torch) while the samples' storage is shared
        self.dataset = copy.copy(loader.dataset)
        seed = base_seed + worker_id
        self.info = WorkerInfo(id=worker_id, num_workers=loader.num_workers, seed=seed,
                               dataset=self.dataset)
        saved = _rng_states()
        ember_random.manual_seed(seed)
        random.seed(seed)
        np.random.seed(np.random.SeedSequence([worker_id, base_seed]).generate_state(4))
        self._states = _rng_states()
        _set_rng_states(saved)
        if loader.worker_init_fn is not None:
            with self.running():
                loader.worker_init_fn(worker_id)

    @contextlib.contextmanager
    def running(self):
        global _current_worker
        saved, outer = _rng_states(), _current_worker
        _set_rng_states(self._states)
        _current_worker = self.info
        try:
            yield
        finally:
            self._states = _rng_states()
            _set_rng_states(saved)
            _current_worker = outer


class _InProcess:
    """The loading process itself, for num_workers=0."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def running(self):
        return contextlib.nullcontext()


def _fetch(dataset, indices: list):
    getitems = getattr(dataset, "__getitems__", None)
    return getitems(indices) if getitems else [dataset[i] for i in indices]


_END = object()     # a worker's stream has no more batches


class _LoaderIterator:
    """What iter(loader) returns: next() gives batches; len() is the loader's length."""

    def __init__(self, loader: "DataLoader", batches) -> None:
        self._loader, self._batches = loader, batches
        self._num_yielded = 0

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._batches)
        self._num_yielded += 1
        reported = self._loader._IterableDataset_len_called
        if reported is not None and self._num_yielded > reported:
            self._warn_longer_than_reported(reported)
        if self._loader.pin_memory and cuda_is_available():
            return pin_batch(batch)
        return batch

    def __len__(self) -> int:
        return len(self._loader)

    def _warn_longer_than_reported(self, reported: int) -> None:
        message = (f"Length of IterableDataset {self._loader.dataset} was reported to be "
                   f"{reported}(when accessing len(dataloader)), but {self._num_yielded} "
                   "samples have been fetched. ")
        if self._loader.num_workers > 0:
            message += ("For multiprocessing data-loading, this could be caused by not "
                        "properly configuring the IterableDataset replica at each worker.")
        warnings.warn(message, stacklevel=3)


def pin_batch(batch):
    """The batch with every CPU tensor in it copied to pinned memory (tuples, lists,
    named tuples and mappings walked; an object with its own pin_memory() asked), as
    torch's pin-memory step does, so `.to("cuda", non_blocking=True)` may be queued."""
    if isinstance(batch, Tensor):
        return batch.pin_memory() if batch.device.type == "cpu" else batch
    if isinstance(batch, (str, bytes)):
        return batch
    if isinstance(batch, Mapping):
        pinned = {k: pin_batch(v) for k, v in batch.items()}
        try:
            return type(batch)(pinned)
        except TypeError:
            return pinned
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(pin_batch(v) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(pin_batch(v) for v in batch)
    if hasattr(batch, "pin_memory"):
        return batch.pin_memory()
    return batch


class DataLoader:
    """Batches a dataset: samplers pick indices, collate_fn builds batches."""

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler=None, batch_sampler=None, num_workers: int = 0, collate_fn=None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True) -> None:
        _check_worker_options(num_workers, timeout, prefetch_factor, persistent_workers)
        _check_multiprocessing_context(multiprocessing_context, num_workers)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.num_workers, self.generator, self.timeout = num_workers, generator, timeout
        self.worker_init_fn, self.multiprocessing_context = worker_init_fn, multiprocessing_context
        self.prefetch_factor = 2 if prefetch_factor is None and num_workers else prefetch_factor
        self.persistent_workers, self.in_order = persistent_workers, in_order
        self.pin_memory, self.pin_memory_device = pin_memory, pin_memory_device
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            _check_iterable_options(shuffle, sampler, batch_sampler)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False     # the batch sampler decides both
            self.batch_size, self.drop_last = batch_size, drop_last
        if batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None and not iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else \
                SequentialSampler(dataset)
        if batch_sampler is None and batch_size is not None and not iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        auto_collation = self._auto_collation
        self.collate_fn = collate_fn or (default_collate if auto_collation else default_convert)
        self._persistent: list | None = None
        self._IterableDataset_len_called = None       # what len(loader) reported (torch's name)
        self._initialized = True

    @property
    def _auto_collation(self) -> bool:
        """Whether samples are batched by the loader (torch's name)."""
        return self.batch_sampler is not None or (
            isinstance(self.dataset, IterableDataset) and self.batch_size is not None)

    @property
    def _index_sampler(self):
        """What yields each fetch's indices: the batch sampler when batching, else the
        sampler (torch's name)."""
        return self.batch_sampler if self._auto_collation else self.sampler

    def __setattr__(self, name, value) -> None:
        if name in _FIXED_OPTIONS and self.__dict__.get("_initialized"):
            raise ValueError(f"{name} attribute should not be set after "
                             f"{type(self).__name__} is initialized")
        super().__setattr__(name, value)

    def _workers(self) -> list:
        if self.num_workers == 0:
            return [_InProcess(self.dataset)]
        if self._persistent is not None:
            return self._persistent
        base_seed = int(randint(0, 2 ** 62, (), generator=self.generator).item())
        workers = [_Worker(self, i, base_seed) for i in range(self.num_workers)]
        if self.persistent_workers:
            self._persistent = workers
        return workers

    def __iter__(self):
        if self.num_workers == 0 and self.timeout != 0:     # torch asserts this at iter()
            raise AssertionError("DataLoader: a timeout applies to worker processes; loading "
                                 "in the main process (num_workers=0) requires timeout == 0")
        if self.pin_memory and self.pin_memory_device:
            warnings.warn("pin_memory_device is deprecated, the current accelerator will be "
                          f"used as the device,ignore pin_memory_device="
                          f"'{self.pin_memory_device}'.", stacklevel=2)
        if self.pin_memory and not cuda_is_available():
            warnings.warn("'pin_memory' argument is set as true but no accelerator is found, "
                          "then device pinned memory won't be used.", stacklevel=2)
        workers = self._workers()
        if isinstance(self.dataset, IterableDataset):
            return _LoaderIterator(self, self._round_robin(workers))
        return _LoaderIterator(self, self._map_batches(workers))

    def _map_batches(self, workers):
        if self.batch_sampler is None:
            chunks = ([index] for index in self.sampler)
        else:
            chunks = iter(self.batch_sampler)
        for number, indices in enumerate(chunks):
            worker = workers[number % len(workers)]
            with worker.running():
                if self.batch_sampler is None:
                    batch = self.collate_fn(worker.dataset[indices[0]])
                else:
                    batch = self.collate_fn(_fetch(worker.dataset, indices))
            yield batch

    def _round_robin(self, workers):
        streams = [self._stream(worker) for worker in workers]
        while streams:
            for stream in list(streams):
                try:
                    batch = next(stream)
                except StopIteration:
                    streams.remove(stream)
                    continue
                yield batch

    def _stream(self, worker):
        """One worker's batches of its own dataset copy (each step run as that worker)."""
        with worker.running():
            samples = iter(worker.dataset)
        while True:
            with worker.running():
                batch = self._next_stream_batch(samples)
            if batch is _END:
                return
            yield batch

    def _next_stream_batch(self, samples):
        if self.batch_size is None:
            sample = next(samples, _END)
            return _END if sample is _END else self.collate_fn(sample)
        batch = []
        for sample in samples:
            batch.append(sample)
            if len(batch) == self.batch_size:
                break
        if not batch or (self.drop_last and len(batch) < self.batch_size):
            return _END
        return self.collate_fn(batch)

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        if self.sampler is not None:
            return len(self.sampler)
        # an IterableDataset's own length; remembered so that iterating past it warns
        length = self._IterableDataset_len_called = len(self.dataset)
        if self.batch_size is None:
            return length
        return length // self.batch_size if self.drop_last else math.ceil(length / self.batch_size)


def _check_worker_options(num_workers, timeout, prefetch_factor, persistent_workers) -> None:
    if num_workers < 0:
        raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                         "disable multiprocessing.")
    if timeout < 0:
        raise ValueError("timeout option should be non-negative")
    if num_workers == 0 and prefetch_factor is not None:
        raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                         "let num_workers > 0 to enable multiprocessing, otherwise set "
                         "prefetch_factor to None.")
    if prefetch_factor is not None and prefetch_factor < 0:
        raise ValueError("prefetch_factor option should be non-negative")
    if persistent_workers and num_workers == 0:
        raise ValueError("persistent_workers option needs num_workers > 0")


# the options a DataLoader fixes at construction (torch refuses to change them later)
_FIXED_OPTIONS = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset",
                  "persistent_workers")


def _check_multiprocessing_context(context, num_workers: int) -> None:
    """torch's checks: a context only with workers, and a start method that exists
    (ember's workers run in the loading process, so the context is not otherwise used)."""
    if context is None:
        return
    if num_workers == 0:
        raise ValueError("multiprocessing_context can only be used with multi-process "
                         f"loading (num_workers > 0), but got num_workers={num_workers}")
    if isinstance(context, str):
        methods = multiprocessing.get_all_start_methods()
        if context not in methods:
            raise ValueError("multiprocessing_context option should specify a valid start "
                             f"method in {methods!r}, but got "
                             f"multiprocessing_context={context!r}")
    elif not isinstance(context, multiprocessing.context.BaseContext):
        raise TypeError("multiprocessing_context option should be a valid context object or "
                        "a string specifying the start method, but got "
                        f"multiprocessing_context={context}")


def _check_iterable_options(shuffle, sampler, batch_sampler) -> None:
    for name, value in (("shuffle", shuffle), ("sampler", sampler),
                        ("batch_sampler", batch_sampler)):
        if value is not None and value is not False:
            raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} "
                             f"option, but got {name}={value}")
