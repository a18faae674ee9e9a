"""Data-pipeline code as PyTorch users write it: map-style and iterable datasets, a
DataLoader with collate_fn, samplers, num_workers=0 and 2, pin_memory on the CPU,
random_split with a seeded generator, Subset / ConcatDataset / TensorDataset."""
import collections
import math

import numpy as np
import torch
from torch.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset,
                              IterableDataset, RandomSampler, SequentialSampler, Subset,
                              TensorDataset, WeightedRandomSampler, get_worker_info,
                              random_split)
from torch.utils.data.dataloader import default_collate
from torch.nn.utils.rnn import pad_sequence


class ToyText(Dataset):
    def __init__(self, n=7):
        rng = np.random.default_rng(0)
        self.items = [(rng.integers(1, 9, int(rng.integers(1, 5))).tolist(), i % 3)
                      for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, idx):
        tokens, label = self.items[idx]
        return {"input_ids": torch.tensor(tokens, dtype=torch.long), "label": label,
                "text": f"doc{idx}"}


def pad_collate(batch):
    ids = [b["input_ids"] for b in batch]
    return {"input_ids": pad_sequence(ids, batch_first=True, padding_value=0),
            "lengths": torch.tensor([len(x) for x in ids]),
            "labels": torch.tensor([b["label"] for b in batch]),
            "text": [b["text"] for b in batch]}


def case_collate_fn_and_default_collate():
    loader = DataLoader(ToyText(), batch_size=3, shuffle=False, collate_fn=pad_collate)
    batches = [(b["input_ids"], b["lengths"], b["labels"], b["text"]) for b in loader]
    plain = default_collate([{"x": np.float32(1.5), "y": (1, 2.0), "z": torch.ones(2)},
                             {"x": np.float32(2.5), "y": (3, 4.0), "z": torch.zeros(2)}])
    return batches, len(loader), plain["x"], plain["y"], plain["z"]


def case_worker_processes_and_pin_memory():
    ds = TensorDataset(torch.arange(10.0).view(10, 1), torch.arange(10))
    out = []
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=4, num_workers=workers, pin_memory=True,
                            drop_last=False, persistent_workers=False)
        out.append([(x, y) for x, y in loader])
    return out


class Stream(IterableDataset):
    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            lo, hi = self.start, self.end
        else:
            per = int(math.ceil((self.end - self.start) / float(info.num_workers)))
            lo = self.start + info.id * per
            hi = min(lo + per, self.end)
        return iter(range(lo, hi))


def case_iterable_dataset_sharding():
    single = list(DataLoader(Stream(3, 10), batch_size=None))
    multi = sorted(int(x) for x in DataLoader(Stream(3, 10), num_workers=2))
    batched = [b for b in DataLoader(Stream(0, 5), batch_size=2)]
    return single, multi, batched


def case_samplers():
    g = torch.Generator().manual_seed(0)
    seq = list(SequentialSampler(range(5)))
    bs = list(BatchSampler(SequentialSampler(range(7)), batch_size=3, drop_last=True))
    rs = list(RandomSampler(range(6), generator=g))
    ws = list(WeightedRandomSampler([0.0, 0.0, 1.0, 0.0], num_samples=3, replacement=True))
    loader = DataLoader(range(10), batch_sampler=BatchSampler(SequentialSampler(range(10)),
                                                              batch_size=4, drop_last=False))
    return seq, bs, sorted(rs), ws, [b for b in loader], len(loader)


def case_random_split_subset_concat():
    ds = TensorDataset(torch.arange(10), torch.arange(10) * 2)
    train, val = random_split(ds, [0.8, 0.2], generator=torch.Generator().manual_seed(42))
    a, b, c = random_split(range(10), [5, 3, 2])
    sizes = (len(train), len(val), len(a), len(b), len(c))
    covered = sorted(list(a) + list(b) + list(c))
    idx_train = sorted(int(ds[i][0]) for i in train.indices)
    idx_val = sorted(int(ds[i][0]) for i in val.indices)
    sub = Subset(ds, [1, 3, 5])
    cat = ConcatDataset([sub, TensorDataset(torch.tensor([100]), torch.tensor([200]))])
    return (sizes, covered, sorted(idx_train + idx_val), [sub[i] for i in range(3)],
            len(cat), cat[3], cat.cumulative_sizes)


def case_shuffled_epochs_with_generator():
    g = torch.Generator()
    g.manual_seed(0)
    loader = DataLoader(list(range(8)), batch_size=3, shuffle=True, generator=g)
    epochs = [sorted(torch.cat(list(loader)).tolist()) for _ in range(2)]
    return epochs, [len(b) for b in loader]


Sample = collections.namedtuple("Sample", ["image", "label"])


class NumpyDataset(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        image = np.full((2, 2), i, dtype=np.float64)
        return Sample(image, np.int64(i % 2)), {"id": i, "name": f"s{i}", "mask": i > 2}


def seed_worker(worker_id):
    np.random.seed(worker_id)


def case_numpy_items_namedtuples_and_worker_options():
    g = torch.Generator().manual_seed(3)
    loader = DataLoader(NumpyDataset(), batch_size=2, num_workers=2, worker_init_fn=seed_worker,
                        prefetch_factor=2, persistent_workers=True, generator=g)
    out = []
    for epoch in range(2):
        for sample, meta in loader:
            out.append((type(sample).__name__, sample.image.dtype, sample.image,
                        sample.label, meta["id"], meta["name"], meta["mask"]))
    try:
        TensorDataset(torch.ones(3), torch.ones(4))
        err = None
    except AssertionError as e:
        err = str(e)
    return out, err, len(loader)
