"""Behaviour from PyTorch's test/test_serialization.py, run with torch as the oracle: each
case saves with lib.save and loads with lib.load (ember's files are its own format, so
each library reads its own), and what the loaded objects show must match: values,
dtypes, strides, storage sharing between views, nested containers, file objects, paths,
map_location forms, weights_only's allowlist and errors."""
from __future__ import annotations

import collections
import io
import os
import pathlib
from typing import NamedTuple

import numpy as np
import pytest

from suitedata_oracle import both, plain, raises_both


def _round_trip(lib, obj, **load_kwargs):
    buffer = io.BytesIO()
    lib.save(obj, buffer)
    buffer.seek(0)
    return lib.load(buffer, **load_kwargs)


DTYPES = ["float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64",
          "uint8", "bool", "complex64", "complex128"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_round_trips_exactly(dtype):
    def case(lib):
        values = lib.tensor([[0.5, -1.25, 3.0], [7.0, 0.0, -2.5]])
        if dtype.startswith("complex"):
            values = lib.complex(values, values.flip(1))
        t = values.to(getattr(lib, dtype))
        loaded = _round_trip(lib, {"t": t, "row": t[1], "scalar": t[0, 0]})
        return loaded, [v.is_contiguous() for v in loaded.values()]
    both(case)


def test_views_share_storage_after_load():
    """A tensor and its views saved together are views of one storage again: writing
    through one shows in the others, with the saved strides and offsets."""
    def case(lib):
        base = lib.arange(12.0).reshape(3, 4)
        views = [base, base[1], base.t(), base[:, 1::2], base.view(-1)[5:9]]
        loaded = _round_trip(lib, views)
        shapes = [(tuple(v.shape), v.stride(), v.storage_offset(), v.is_contiguous())
                  for v in loaded]
        loaded[0][1, 1] = -100.0
        return shapes, loaded
    both(case)


def test_view_saved_alone_keeps_its_layout():
    def case(lib):
        base = lib.arange(24).reshape(2, 3, 4)
        t = base.permute(2, 0, 1)[1:3]
        loaded = _round_trip(lib, t)
        return loaded, loaded.stride(), loaded.is_contiguous()
    both(case)


def test_same_tensor_saved_twice_loads_as_one_object():
    def case(lib):
        t = lib.ones(3)
        loaded = _round_trip(lib, {"a": t, "b": [t, t]})
        return loaded["a"] is loaded["b"][0], loaded["b"][0] is loaded["b"][1]
    both(case)


def test_separately_saved_tensors_do_not_share():
    def case(lib):
        a = lib.zeros(3)
        loaded_a, loaded_b = _round_trip(lib, (a, a.clone()))
        loaded_a[0] = 5.0
        return loaded_a, loaded_b
    both(case)


def test_nested_containers_and_python_values():
    def case(lib):
        obj = {"weights": [lib.ones(2), (lib.zeros(1, dtype=lib.int64), None)],
               "meta": {"epoch": 3, "lr": 0.125, "name": "run-1", "done": False,
                        "steps": [1, 2, 3], "pair": (1.5, "x")},
               7: "int key", 2.5: "float key", None: "none key",
               "size": lib.Size([2, 3]), "dtype": lib.float16,
               "ordered": collections.OrderedDict([("b", lib.tensor(1)), ("a", lib.tensor(2))])}
        loaded = _round_trip(lib, obj)
        return loaded, type(loaded["ordered"]).__name__, list(loaded["ordered"]), \
            type(loaded["size"]).__name__, loaded["dtype"] == lib.float16
    both(case)


def test_parameters_and_requires_grad_survive():
    def case(lib):
        p = lib.nn.Parameter(lib.ones(2, 2))
        frozen = lib.nn.Parameter(lib.ones(2), requires_grad=False)
        leaf = lib.zeros(3, requires_grad=True)
        loaded = _round_trip(lib, [p, frozen, leaf, leaf.detach()])
        return [(type(t).__name__, t.requires_grad, t.is_leaf, t.grad_fn is None)
                for t in loaded]
    both(case)


def test_module_state_dict_round_trip():
    def case(lib):
        lib.manual_seed(0)
        model = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.BatchNorm1d(4),
                                  lib.nn.Linear(4, 2))
        state = model.state_dict()
        loaded = _round_trip(lib, state)
        fresh = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.BatchNorm1d(4),
                                  lib.nn.Linear(4, 2))
        result = fresh.load_state_dict(loaded)
        same = all(lib.equal(loaded[k], state[k]) for k in state)
        return list(loaded), type(loaded).__name__, same, list(result.missing_keys), \
            [str(v.dtype) for v in loaded.values()]
    both(case)


def test_optimizer_state_dict_round_trip():
    def case(lib):
        weight = lib.nn.Parameter(lib.tensor([1.0, -2.0]))
        optimizer = lib.optim.Adam([weight], lr=0.1)
        weight.grad = lib.tensor([0.5, 0.5])
        optimizer.step()
        loaded = _round_trip(lib, optimizer.state_dict())
        fresh = lib.optim.Adam([lib.nn.Parameter(lib.tensor([1.0, -2.0]))], lr=0.5)
        fresh.load_state_dict(loaded)
        return loaded["param_groups"][0]["lr"], fresh.param_groups[0]["lr"], \
            sorted(loaded["state"][0]), loaded["state"][0]["exp_avg"]
    both(case)


def test_empty_and_zero_dim_tensors():
    def case(lib):
        return _round_trip(lib, [lib.empty(0), lib.empty(2, 0, 3), lib.tensor(3.5),
                                 lib.tensor(True)])
    both(case)


# --- where the bytes go -----------------------------------------------------------------
@pytest.mark.parametrize("where", ["str", "pathlib", "file", "bytesio"])
def test_paths_and_file_objects(where, tmp_path):
    def case(lib):
        target = tmp_path / f"{lib.__name__}.pt"
        obj = {"x": lib.arange(6).reshape(2, 3)}
        if where == "bytesio":
            buffer = io.BytesIO()
            lib.save(obj, buffer)
            size = buffer.tell()
            return lib.load(io.BytesIO(buffer.getvalue())), size > 0
        if where == "file":
            with open(target, "wb") as f:
                lib.save(obj, f)
            with open(target, "rb") as f:
                return lib.load(f), target.stat().st_size > 0
        path = str(target) if where == "str" else pathlib.Path(target)
        lib.save(obj, path)
        return lib.load(path), os.path.exists(target)
    both(case)


def test_load_from_the_current_position_of_a_file_object():
    def case(lib):
        buffer = io.BytesIO()
        buffer.write(b"header")
        lib.save(lib.tensor([1, 2]), buffer)
        buffer.seek(len(b"header"))
        return lib.load(buffer)
    both(case)


def test_old_format_flag_and_pickle_protocol_are_accepted():
    def case(lib):
        buffer = io.BytesIO()
        lib.save([lib.ones(2)], buffer, _use_new_zipfile_serialization=False,
                 pickle_protocol=2)
        buffer.seek(0)
        return lib.load(buffer)
    both(case)


def test_missing_file_raises_file_not_found(tmp_path):
    raises_both(lambda lib: lib.load(tmp_path / "nothing.pt"), "nothing.pt",
                kind=FileNotFoundError)


# --- map_location ------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["str", "device", "dict", "lambda", "lambda_none"])
def test_map_location_forms(form):
    def case(lib):
        location = {"str": "cpu", "device": lib.device("cpu"), "dict": {"cpu": "cpu"},
                    "lambda": lambda storage, loc: storage,
                    "lambda_none": lambda storage, loc: None}[form]
        loaded = _round_trip(lib, {"a": lib.arange(4.0), "b": lib.ones(2, 2)[0]},
                             map_location=location)
        return loaded, [str(v.device) for v in loaded.values()]
    both(case)


# --- weights_only --------------------------------------------------------------------------
class Settings:
    def __init__(self, depth):
        self.depth = depth


class Point(NamedTuple):
    x: int
    y: int


def test_weights_only_refuses_an_unknown_class_and_names_it():
    def case(lib):
        buffer = io.BytesIO()
        lib.save({"settings": Settings(3), "w": lib.ones(1)}, buffer)
        buffer.seek(0)
        lib.load(buffer, weights_only=True)
    raises_both(case, "Weights only load failed", "Settings", "add_safe_globals")


def test_weights_only_is_the_default():
    def case(lib):
        buffer = io.BytesIO()
        lib.save([Settings(1)], buffer)
        buffer.seek(0)
        lib.load(buffer)
    raises_both(case, "Weights only load failed", "Settings")


def test_weights_only_false_loads_the_object():
    def case(lib):
        loaded = _round_trip(lib, {"settings": Settings(3), "p": Point(1, 2),
                                   "w": lib.ones(1)}, weights_only=False)
        return loaded["settings"].depth, loaded["p"], type(loaded["p"]).__name__, loaded["w"]
    both(case)


def test_add_safe_globals_and_the_context_manager_allow_a_class():
    def case(lib):
        buffer = io.BytesIO()
        lib.save({"settings": Settings(5)}, buffer)
        serialization = lib.serialization
        with serialization.safe_globals([Settings]):
            buffer.seek(0)
            inside = lib.load(buffer, weights_only=True)["settings"].depth
            listed = Settings in serialization.get_safe_globals()
        after = Settings in serialization.get_safe_globals()
        saved = serialization.get_safe_globals()
        serialization.add_safe_globals([Settings])
        try:
            buffer.seek(0)
            added = lib.load(buffer)["settings"].depth
        finally:
            serialization.clear_safe_globals()
            serialization.add_safe_globals(saved)
        return inside, listed, after, added
    both(case)


def test_get_unsafe_globals_in_checkpoint_lists_what_a_load_would_need(tmp_path):
    def case(lib):
        path = tmp_path / f"{lib.__name__}.pt"
        lib.save({"settings": Settings(1), "w": lib.ones(1)}, path)
        return lib.serialization.get_unsafe_globals_in_checkpoint(path)
    both(case)


def test_weights_only_allows_plain_containers_and_builtins():
    def case(lib):
        obj = {"set": {1, 2}, "bytes": b"ab", "bytearray": bytearray(b"c"), "complex": 1 + 2j,
               "ordered": collections.OrderedDict(a=1), "tensor": lib.ones(1),
               "nested": [{"k": (1, [2.5])}]}
        return _round_trip(lib, obj, weights_only=True)
    both(case)


@pytest.mark.parametrize("value", [slice(1, 2), range(3)], ids=repr)
def test_weights_only_refuses_builtins_torch_refuses(value):
    def case(lib):
        _round_trip(lib, {"v": value}, weights_only=True)
    raises_both(case, "Weights only load failed", type(value).__name__)


def test_weights_only_refuses_a_namedtuple_unless_allowed():
    def case(lib):
        buffer = io.BytesIO()
        lib.save([Point(1, 2)], buffer)
        buffer.seek(0)
        lib.load(buffer, weights_only=True)
    raises_both(case, "Weights only load failed", "Point")


def test_loading_garbage_raises():
    def case(lib):
        lib.load(io.BytesIO(b"not a checkpoint at all, just bytes" * 4))
    raises_both(case)


def test_loaded_tensors_are_independent_of_the_saved_ones():
    def case(lib):
        t = lib.arange(3.0)
        buffer = io.BytesIO()
        lib.save(t, buffer)
        t.add_(10)
        buffer.seek(0)
        return lib.load(buffer), t
    both(case)


def test_plain_reports_view_sharing():
    """(A sanity check of the harness: plain() sees values, so sharing shows up.)"""
    import torch
    base = torch.zeros(2)
    view = base[:1]
    base[0] = 1.0
    assert plain(view)[-1] == ("list", [1.0])


def test_saves_and_pickles_one_after_another_in_one_file(tmp_path):
    """Each load reads one saved object and leaves the file at the next one (torch
    does it for its non-zip format)."""
    import pickle

    def case(lib):
        path = tmp_path / f"{lib.__name__}-sequence.bin"
        module = lib.nn.Conv2d(1, 1, (1, 3))
        with open(path, "wb") as f:
            pickle.dump(41, f)
            lib.save(lib.arange(6.0).reshape(2, 3), f, _use_new_zipfile_serialization=False)
            pickle.dump(43, f)
            lib.save({"b": lib.ones(2, dtype=lib.int64)}, f, _use_new_zipfile_serialization=False)
            lib.save(module.state_dict(), f, _use_new_zipfile_serialization=False)
        with open(path, "rb") as f:
            i = pickle.load(f)
            a = lib.load(f)
            j = pickle.load(f)
            b = lib.load(f)
            state = lib.load(f)
            rest = f.read()
        return i, a, j, b, sorted(state), rest
    both(case)


def test_gzip_file_objects(tmp_path):
    import gzip

    def case(lib):
        path = tmp_path / f"{lib.__name__}.pt.gz"
        with gzip.open(path, "wb") as f:
            lib.save([lib.eye(2), "x"], f)
        with gzip.open(path, "rb") as f:
            return lib.load(f)
    both(case)


def test_file_like_object_with_only_read_write_seek_tell():
    class FileLike:
        def __init__(self, data=b""):
            self._buffer = io.BytesIO(data)
            self.write, self.read = self._buffer.write, self._buffer.read
            self.seek, self.tell = self._buffer.seek, self._buffer.tell
            self.readline, self.flush = self._buffer.readline, self._buffer.flush

    def case(lib):
        out = FileLike()
        lib.save(lib.arange(5), out)
        out.seek(0)
        return lib.load(FileLike(out.read()))
    both(case)


@pytest.mark.parametrize("target", [lambda lib: [], lambda lib: np.zeros(2)],
                         ids=["list", "ndarray"])
def test_saving_into_something_that_is_not_a_file_raises(target):
    raises_both(lambda lib: lib.save([1, 2], target(lib)), kind=AttributeError)


def test_whole_module_needs_weights_only_false():
    def case(lib):
        buffer = io.BytesIO()
        lib.manual_seed(0)
        lib.save(lib.nn.Linear(2, 3), buffer)
        buffer.seek(0)
        module = lib.load(buffer, weights_only=False)
        return type(module).__name__, module.in_features, module.out_features, \
            [tuple(p.shape) for p in module.parameters()]
    both(case)


def test_basic_python_values_load_weights_only():
    def case(lib):
        data = {"int": 123, "str": "world", "float": 3.14, "bool": False, "none": None,
                "big": 2 ** 62, "neg": -7, "inf": float("inf"), "nested": {"t": (1, [2])}}
        return _round_trip(lib, data, weights_only=True)
    both(case)


@pytest.mark.parametrize("views", [
    lambda lib: (lambda a: [a, a.imag])(lib.complex(lib.ones(3), lib.zeros(3))),
    lambda lib: (lambda a: [a, a.view(lib.int32)])(lib.ones(3)),
], ids=["complex_and_imag", "float_and_int_view"])
def test_one_storage_viewed_as_two_dtypes_is_refused(views):
    raises_both(lambda lib: lib.save(views(lib), io.BytesIO()),
                "Cannot save multiple tensors or storages that view the same data as "
                "different types", kind=RuntimeError)


@pytest.mark.parametrize("view", [lambda lib: lib.ones(3).view(lib.int32),
                                  lambda lib: lib.complex(lib.ones(3), lib.zeros(3)).imag],
                         ids=["int_view", "imag"])
def test_a_view_of_another_dtype_saved_alone(view):
    both(lambda lib: _round_trip(lib, [view(lib)]))


SCHEDULERS = {
    "MultiStepLR": lambda s, o: s.MultiStepLR(o, [2, 4, 4]),
    "OneCycleLR": lambda s, o: s.OneCycleLR(o, 1.0, total_steps=10),
    "CyclicLR": lambda s, o: s.CyclicLR(o, 0.1, 1.0, step_size_up=2),
    "LambdaLR": lambda s, o: s.LambdaLR(o, lambda e: 0.5 ** e),
    "ReduceLROnPlateau": lambda s, o: s.ReduceLROnPlateau(o, patience=0),
    "SequentialLR": lambda s, o: s.SequentialLR(o, [s.StepLR(o, 2), s.ExponentialLR(o, 0.9)],
                                                [2]),
    "CosineAnnealingWarmRestarts": lambda s, o: s.CosineAnnealingWarmRestarts(o, 2),
}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_training_checkpoint_with_a_scheduler_loads_weights_only(name):
    """The usual checkpoint (model, optimizer and scheduler state dicts, epoch, loss)
    loads with weights_only=True and training resumes where it stopped."""
    def case(lib):
        def build():
            model = lib.nn.Linear(2, 1)
            optimizer = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            return model, optimizer, SCHEDULERS[name](lib.optim.lr_scheduler, optimizer)

        def epoch(model, optimizer, scheduler):
            loss = model(lib.ones(3, 2)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step(*([1.0] if name == "ReduceLROnPlateau" else []))
            return loss

        lib.manual_seed(0)
        model, optimizer, scheduler = build()
        for _ in range(3):
            loss = epoch(model, optimizer, scheduler)
        buffer = io.BytesIO()
        lib.save({"epoch": 3, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict(), "loss": loss}, buffer)
        buffer.seek(0)
        checkpoint = lib.load(buffer, weights_only=True)
        model2, optimizer2, scheduler2 = build()
        model2.load_state_dict(checkpoint["model"])
        optimizer2.load_state_dict(checkpoint["optimizer"])
        scheduler2.load_state_dict(checkpoint["scheduler"])
        resumed = [epoch(model2, optimizer2, scheduler2) for _ in range(2)]
        original = [epoch(model, optimizer, scheduler) for _ in range(2)]
        return (checkpoint["epoch"], checkpoint["loss"].requires_grad,
                scheduler2.get_last_lr() == scheduler.get_last_lr(),
                [a.item() == b.item() for a, b in zip(resumed, original)],
                type(checkpoint["scheduler"].get("milestones")).__name__)
    both(case)


def test_devices_and_dtypes_in_a_checkpoint_load_weights_only():
    def case(lib):
        loaded = _round_trip(lib, {"device": lib.device("cpu"), "dtype": lib.bfloat16,
                                   "devices": [lib.device("cpu", 0)]}, weights_only=True)
        return str(loaded["device"]), type(loaded["device"]).__name__, loaded["dtype"], \
            [str(d) for d in loaded["devices"]]
    both(case)


def test_loading_an_empty_stream_raises_eof():
    raises_both(lambda lib: lib.load(io.BytesIO(b"")), kind=EOFError)


def test_map_location_to_a_missing_cuda_device_raises():
    import torch

    import ember
    if torch.cuda.is_available() or ember.cuda.is_available():
        pytest.skip("a CUDA device is present")
    raises_both(lambda lib: _round_trip(lib, lib.ones(1), map_location="cuda"),
                kind=RuntimeError)
