"""A user's data pipeline in plain PyTorch: map-style and iterable datasets, dict and
namedtuple samples, default_collate / default_convert, custom collate_fn with
pad_sequence, samplers, random_split, Subset / ConcatDataset / ChainDataset /
StackDataset, __getitems__, worker sharding with get_worker_info and worker_init_fn
(num_workers > 0, persistent workers), DistributedSampler. Each case_* returns what
tests/compat/test_user_programs.py compares between torch and ember."""
import collections
import numpy as np
import torch
from torch.utils.data import (Dataset, IterableDataset, DataLoader, TensorDataset, Subset,
    ConcatDataset, random_split, SequentialSampler, BatchSampler, RandomSampler,
    WeightedRandomSampler, SubsetRandomSampler, default_collate)
from torch.utils.data import ChainDataset, StackDataset, get_worker_info
from torch.utils.data.dataloader import default_collate as dc2
from torch.utils.data.distributed import DistributedSampler
import torch.utils.data.sampler as sampler_module
import random

Point = collections.namedtuple("Point", "x y")

class DictDS(Dataset):
    def __init__(self, n): self.n = n
    def __len__(self): return self.n
    def __getitem__(self, i):
        return {"x": torch.full((3,), float(i)), "y": i, "name": f"s{i}", "p": Point(torch.tensor([i]), float(i))}

class Stream(IterableDataset):
    def __init__(self, n): self.n = n
    def __iter__(self):
        for i in range(self.n):
            yield torch.arange(2) + i, i * 2

def case_dict_collate():
    dl = DataLoader(DictDS(5), batch_size=2, shuffle=False)
    out = []
    for b in dl:
        out.append([b["x"], b["y"], b["name"], b["p"].x, b["p"].y, type(b["p"]).__name__, len(dl)])
    return out

def case_iterable():
    dl = DataLoader(Stream(5), batch_size=2, drop_last=False)
    return [[a, b] for a, b in dl]

def case_iterable_nobatch():
    return [x for x, _ in DataLoader(Stream(3), batch_size=None)]

def case_tensor_ds_subset_concat():
    ds = TensorDataset(torch.arange(10.).reshape(5, 2), torch.arange(5))
    sub = Subset(ds, [4, 0, 2])
    cat = ConcatDataset([sub, ds])
    return [len(cat), cat[3][1].item(), cat[1][0], [x for x, y in DataLoader(cat, batch_size=4)], ds.tensors[1]]

def case_random_split_lengths():
    g = torch.Generator().manual_seed(42)
    a, b = random_split(range(10), [7, 3], generator=g)
    c, d, e = random_split(range(10), [0.5, 0.3, 0.2], generator=torch.Generator().manual_seed(1))
    return [len(a), len(b), sorted(list(a) + list(b)), len(c), len(d), len(e), type(a).__name__]

def case_samplers():
    s = list(BatchSampler(SequentialSampler(range(7)), batch_size=3, drop_last=False))
    s2 = list(BatchSampler(range(7), 3, True))
    g = torch.Generator(); g.manual_seed(0)
    r = sorted(RandomSampler(range(6), generator=g))
    w = list(WeightedRandomSampler([0., 0., 1.], 4))
    sr = sorted(SubsetRandomSampler([3, 1, 2]))
    rr = len(list(RandomSampler(range(6), replacement=True, num_samples=10)))
    return [s, s2, r, w, sr, rr]

def collate_pad(batch):
    seqs = [torch.tensor(s) for s in batch]
    lengths = torch.tensor([len(s) for s in seqs])
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=-1), lengths

def case_custom_collate_and_batch_sampler():
    data = [[1, 2, 3], [4], [5, 6]]
    dl = DataLoader(data, batch_size=2, collate_fn=collate_pad)
    out = [list(b) for b in dl]
    dl2 = DataLoader(data, batch_sampler=[[0, 2], [1]], collate_fn=collate_pad)
    return out + [list(b) for b in dl2]

def case_default_collate_variants():
    a = default_collate([np.array([1., 2.]), np.array([3., 4.])])
    b = default_collate([(1, 2.5), (3, 4.5)])
    c = default_collate([{"a": [1, 2]}, {"a": [3, 4]}])
    d = dc2([torch.tensor(1), torch.tensor(2)])
    e = default_collate([True, False])
    return [a, b, c, d, e, str(a.dtype), str(b[0].dtype), str(b[1].dtype), str(e.dtype)]

def case_shuffle_epoch():
    torch.manual_seed(3)
    dl = DataLoader(TensorDataset(torch.arange(8)), batch_size=3, shuffle=True)
    e1 = torch.cat([x for (x,) in dl]); e2 = torch.cat([x for (x,) in dl])
    return [sorted(e1.tolist()), sorted(e2.tolist()), len(dl)]

def case_chain_and_sampler_len():
    ch = ChainDataset([Stream(2), Stream(1)])
    return [[x for x, _ in ch], len(DataLoader(range(10), batch_size=4)), len(DataLoader(range(10), batch_size=4, drop_last=True))]

def case_worker_info():
    return [get_worker_info() is None]

def case_pin_memory_and_iter():
    dl = DataLoader(TensorDataset(torch.ones(4, 2)), batch_size=2, pin_memory=False, num_workers=0, persistent_workers=False)
    it = iter(dl)
    first = next(it)
    return [first[0], len(list(it))]

class Shard(IterableDataset):
    def __init__(self, start, end):
        self.start, self.end = start, end
    def __iter__(self):
        info = get_worker_info()
        if info is None:
            lo, hi = self.start, self.end
        else:
            per = -(-(self.end - self.start) // info.num_workers)
            lo = self.start + info.id * per; hi = min(lo + per, self.end)
        return iter(range(lo, hi))

def case_iterable_workers():
    out = []
    for nw in (0, 1, 2, 3):
        out.append([b.tolist() for b in DataLoader(Shard(3, 14), batch_size=2, num_workers=nw)])
        out.append([b.tolist() for b in DataLoader(Shard(3, 14), batch_size=2, num_workers=nw, drop_last=True)])
        out.append([int(b) for b in DataLoader(Shard(3, 8), batch_size=None, num_workers=nw)])
    out.append([[t.tolist() for t in b] for b in DataLoader(Stream(3), batch_size=2, num_workers=2)])
    return out

def init_fn(worker_id):
    info = get_worker_info()
    info.dataset.offset = 100 * (worker_id + 1)

class Offset(Dataset):
    offset = 0
    def __len__(self): return 7
    def __getitem__(self, i):
        info = get_worker_info()
        return i + self.offset, (-1 if info is None else info.id), info.num_workers if info else 0

def case_map_workers():
    out = []
    for nw, pw in ((0, False), (2, False), (3, True)):
        dl = DataLoader(Offset(), batch_size=2, num_workers=nw, worker_init_fn=init_fn if nw else None, persistent_workers=pw, prefetch_factor=4 if nw else None)
        out.append([[t.tolist() for t in b] for b in dl])
        out.append([[t.tolist() for t in b] for b in dl])
        out.append([len(dl), len(iter(dl)), dl.num_workers, dl.batch_size, dl.prefetch_factor])
    ds = Offset()
    list(DataLoader(ds, num_workers=2, worker_init_fn=init_fn))
    out.append(ds.offset)
    out.append(get_worker_info() is None)
    return out

class RandomAug(Dataset):
    def __len__(self): return 6
    def __getitem__(self, i):
        return torch.rand(1).item(), random.random(), float(np.random.rand())

def case_worker_seeding_contract():
    # each worker's streams are distinct, and reseeding the main process reproduces the epoch
    torch.manual_seed(0)
    a = [b for b in DataLoader(RandomAug(), batch_size=None, num_workers=2)]
    torch.manual_seed(0)
    b = [b for b in DataLoader(RandomAug(), batch_size=None, num_workers=2)]
    torch.manual_seed(0); main_before = torch.rand(1).item(); torch.manual_seed(0)
    list(DataLoader(RandomAug(), batch_size=None, num_workers=2))
    w0 = [x[0] for x in a[0::2]]; w1 = [x[0] for x in a[1::2]]
    return [a == b, w0 != w1, len(set(x[1] for x in a)) == 6]

def case_stack_getitems_default_convert():
    s = StackDataset(torch.arange(4), torch.arange(4) * 10)
    d = StackDataset(x=torch.arange(3), y=[np.ones(2) * i for i in range(3)])
    class Fast(Dataset):
        def __len__(self): return 5
        def __getitem__(self, i): raise AssertionError
        def __getitems__(self, idx): return [torch.tensor(i) for i in idx]
    out = [len(s), s[2], [b for b in DataLoader(d, batch_size=2)], [b for b in DataLoader(Fast(), batch_size=2)],
           [b for b in DataLoader([(np.ones(2), 3)], batch_size=None)], [x for x in (Stream(2) + Stream(1))],
           isinstance(sampler_module.SequentialSampler(range(2)), sampler_module.Sampler)]
    ds = DistributedSampler(range(10), num_replicas=3, rank=1, shuffle=False)
    out.append(list(ds))
    return out

class OrderedAug(collections.OrderedDict):
    pass

def case_collate_keeps_mapping_type():
    b = default_collate([OrderedAug(a=1, b=2.0), OrderedAug(a=3, b=4.0)])
    return [type(b).__name__, list(b.keys()), b["a"], b["b"]]
