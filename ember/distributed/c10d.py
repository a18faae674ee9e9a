"""torch.distributed's process-group API (c10d), over ember's communication engines.

The default group spans every process of the job; `new_group` makes sub-groups. Ranks
in arguments (src, dst) are global ranks, as in PyTorch; `group_src`/`group_dst` are
ranks inside the group. Each function issues its operation to the group's engine and
either waits for it (raising a timeout error that names the rank and the operation) or,
with `async_op=True`, returns the `Work` handle.

Engines: "mpi" (Open MPI or MPICH through mpi4py) for CPU tensors. "gloo" is accepted
as a name for the same CPU engine, since PyTorch scripts ask for it. Processes that
were not started as one MPI job (one by one, each calling init_process_group with its
rank) run the same engine over a TCP mesh instead (tcp_transport.py, tcp_comm.py).
"nccl" runs CUDA tensors' collectives through NVIDIA's nccl4py (nccl_engine.py); its
CPU tensors go to an MPI engine beside it under the launcher, or to a TCP one.
"""
from __future__ import annotations

import datetime
import os
from urllib.parse import parse_qs, urlparse

import numpy as np

from .errors import DistArgumentError, DistError
from . import nccl_lists
from .mpi_engine import MPIEngine, mpi
from .reduce_op import ReduceOp
from .store import PrefixStore

default_pg_timeout = datetime.timedelta(minutes=30)
_CPU_BACKENDS = ("mpi", "gloo")


class ProcessGroup:
    """A set of ranks that communicate; `rank()`/`size()` are positions inside it."""

    def __init__(self, engine: MPIEngine, backend: str, group_name: str):
        self._engine = engine
        self._backend = backend
        self.group_name = group_name

    def rank(self) -> int:
        return self._engine.rank

    def size(self) -> int:
        return self._engine.size

    def name(self) -> str:
        return self._backend

    def __repr__(self) -> str:
        return f"ProcessGroup(backend={self._backend!r}, rank={self.rank()}, size={self.size()})"


class Backend(str):
    """torch.distributed.Backend: a backend's name, lower-cased ("gloo" runs on MPI)."""
    UNDEFINED = "undefined"
    GLOO = "gloo"
    NCCL = "nccl"
    MPI = "mpi"

    def __new__(cls, name: str):
        if not isinstance(name, str):
            raise ValueError(f"Backend constructor parameter must be string-ish, got {name!r}")
        return super().__new__(cls, name.lower())


class GroupMember:
    WORLD: ProcessGroup | None = None
    NON_GROUP_MEMBER = object()


class group:
    """`dist.group.WORLD`, the default group (None before init_process_group)."""
    WORLD: ProcessGroup | None = None


class _State:
    default: ProcessGroup | None = None
    # the default group's MPI engine, for all_reduce's direct path (None: nccl, no group)
    direct: MPIEngine | None = None
    groups: list[ProcessGroup] = []
    init_method: str | None = None
    shrunk = False            # this process survived a rank's death (shrink_group ran)
    store = None              # the store given to init_process_group, under prefix "0/"


# --- initialization ----------------------------------------------------------------------
def is_available() -> bool:
    return True


def is_mpi_available() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def is_nccl_available() -> bool:
    from .nccl_engine import is_available as nccl_importable
    return nccl_importable()


def is_gloo_available() -> bool:
    # "gloo" is served by the MPI engine, on MPI or TCP (scripts test this before asking)
    return True


def is_initialized() -> bool:
    return _State.default is not None


def init_process_group(backend: str | None = None, init_method: str | None = None,
                       timeout: datetime.timedelta | None = None, world_size: int = -1,
                       rank: int = -1, store=None, group_name: str = "", pg_options=None,
                       device_id=None) -> None:
    """Join the default process group.

    Under an MPI launcher (ember.distributed.run, mpirun, ember's spawn) the group is
    the MPI job: `rank`/`world_size` and a `store=` are checked against it, and the
    store is kept as the group's store. Processes started one by one (several ranks,
    none under mpirun) find each other through the rendezvous (`init_method`, or the
    `store`) and connect by TCP (`_world_tcp_engine`)."""
    if _State.default is not None:
        raise ValueError("trying to initialize the default process group twice!")
    shown = _backend_label(backend)
    backend = _check_backend(backend)
    _check_init_method(init_method, store)
    _check_store_ranks(store, rank, world_size)
    timeout_s = (timeout or default_pg_timeout).total_seconds()
    if backend == "nccl":
        engine, store = _init_nccl(rank, world_size, init_method, timeout_s, store)
        _set_default(engine, "nccl", group_name, init_method, store)
        return
    if _use_tcp(rank, world_size, init_method, store):
        engine, store = _world_tcp_engine(rank, world_size, init_method, store, timeout_s)
        _set_default(engine, shown, group_name, init_method, store)
        return
    MPI = mpi()
    if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
        # collectives run on a communication thread while the caller may send/recv
        raise DistError("the mpi backend needs an MPI library initialized with "
                        "MPI_THREAD_MULTIPLE; this one gives thread level "
                        f"{MPI.Query_thread()} (do not set mpi4py.rc.threads=False or "
                        "thread_level below 'multiple')")
    world = MPI.COMM_WORLD
    rank, world_size = _rank_and_size(rank, world_size, init_method)
    if world_size not in (-1, world.Get_size()) or rank not in (-1, world.Get_rank()):
        raise DistError(
            f"init_process_group: rank={rank}, world_size={world_size} do not match the MPI "
            f"job this process belongs to (rank {world.Get_rank()} of {world.Get_size()}); "
            "start the processes with `python -m ember.distributed.run --nproc-per-node N "
            "script.py` (or mpirun)")
    _set_default(_world_mpi_engine(timeout_s), shown, group_name, init_method, store)


def _use_tcp(rank: int, world_size: int, init_method, store) -> bool:
    """Processes started one by one cannot form an MPI job (MPI singletons cannot join
    each other: docs/distributed.md), so they connect by TCP. EMBER_DIST_TRANSPORT=tcp
    or =mpi overrides the choice."""
    chosen = os.environ.get("EMBER_DIST_TRANSPORT", "").lower()
    if chosen in ("tcp", "mpi"):
        return chosen == "tcp"
    if chosen:
        raise ValueError(f"EMBER_DIST_TRANSPORT={chosen!r}: expected 'tcp' or 'mpi'")
    if _under_mpi_launcher():
        return False
    if store is not None or not is_mpi_available():
        return True
    _, world_size = _rank_and_size(rank, world_size, init_method)
    if world_size == -1:          # tcp://host:port?rank=0&world_size=2 (torch's URL form)
        world_size = int(parse_qs(urlparse(init_method or "").query).get("world_size",
                                                                         ["-1"])[0])
    return world_size > 1


def _world_tcp_engine(rank: int, world_size: int, init_method, store, timeout_s: float):
    """The default group's engine over a TCP mesh; the peers meet through `store`, or
    through the store that `init_method`'s rendezvous makes (env://: a TCPStore on
    MASTER_ADDR:MASTER_PORT served by rank 0). Returns (engine, the store)."""
    from . import tcp_comm
    from .rendezvous import rendezvous
    from .tcp_transport import connect_mesh
    if store is None:
        store, rank, world_size = next(rendezvous(
            init_method or "env://", rank, world_size,
            timeout=datetime.timedelta(seconds=timeout_s)))
    if not 0 <= rank < world_size:
        raise ValueError(f"init_process_group: rank {rank} is outside [0, {world_size}) "
                         f"(world_size={world_size})")
    mesh = connect_mesh(PrefixStore("ember_tcp/", store), rank, world_size, timeout_s,
                        master_host=getattr(store, "host", None))
    ranks = list(range(world_size))
    comm = tcp_comm.SocketComm(mesh, ranks, ("world",), timeout_s, owns_mesh=True)
    return MPIEngine(comm, ranks, timeout_s, rank, api=tcp_comm), store


def _check_store_ranks(store, rank: int, world_size: int) -> None:
    """A store does not tell who is who: torch requires rank and world_size with it."""
    if store is None:
        return
    if world_size is None or world_size <= 0:
        raise ValueError("init_process_group(store=...): world_size must be positive if "
                         f"using store, got world_size={world_size}")
    if rank is None or rank < 0:
        raise ValueError("init_process_group(store=...): rank must be non-negative if using "
                         f"store, got rank={rank}")


def _backend_label(backend) -> str:
    """What get_backend() reports: the name asked for ("gloo" runs on the MPI engine, but
    scripts compare get_backend() with the name they passed)."""
    return "gloo" if str(backend).lower() == "gloo" else _check_backend(backend)


def _set_default(engine, backend: str, group_name: str, init_method, store=None) -> None:
    pg = ProcessGroup(engine, backend, group_name or "default_pg")
    if store is not None:
        store = PrefixStore("0/", store)        # torch's default group's key space
    _State.default = pg
    _State.direct = engine if isinstance(engine, MPIEngine) and not engine.self_timed \
        else None
    _State.groups = [pg]
    _State.init_method = init_method or "env://"
    _State.store = store
    group.WORLD = GroupMember.WORLD = pg


def _world_mpi_engine(timeout_s: float) -> MPIEngine:
    # a private communicator, so user MPI traffic on COMM_WORLD never matches ours
    world = mpi().COMM_WORLD
    return MPIEngine(world.Dup(), list(range(world.Get_size())), timeout_s, world.Get_rank())


def _under_mpi_launcher() -> bool:
    """Was this process started by mpirun (ember's launcher), so MPI knows the job?"""
    return any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"))


def _init_nccl(rank: int, world_size: int, init_method, timeout_s: float, store=None):
    """The NCCL engine of the default group and the group's store (or None); the
    unique id goes over MPI, a file or the store."""
    from .nccl_engine import create_engine
    if _under_mpi_launcher() and is_mpi_available():
        cpu = _world_mpi_engine(timeout_s)
        rank, world_size = _check_against_mpi(rank, world_size, init_method, cpu)
        return create_engine(rank, world_size, timeout_s, mpi_comm=cpu.comm,
                             cpu_engine=cpu), store
    rank, world_size = _rank_and_size(rank, world_size, init_method)
    if rank < 0 or world_size < 1 or rank >= world_size:
        raise ValueError("init_process_group(backend='nccl') outside the launcher needs rank "
                         "and world_size (arguments, or the RANK and WORLD_SIZE environment "
                         f"variables) with 0 <= rank < world_size; got rank={rank}, "
                         f"world_size={world_size}")
    cpu = None
    if world_size > 1 and not (init_method or "").startswith("file://"):
        # processes started one by one (torchrun's way): the rendezvous store carries
        # NCCL's unique id, and a TCP group beside NCCL takes the CPU tensors
        # (PyTorch's "cpu:gloo,cuda:nccl"); the store is kept as the group's, since rank
        # 0 serves it to the ranks still reading the id
        cpu, store = _world_tcp_engine(rank, world_size, init_method, store, timeout_s)
        init_method = None
    return create_engine(rank, world_size, timeout_s, init_method=init_method, store=store,
                         cpu_engine=cpu), store


def _check_against_mpi(rank: int, world_size: int, init_method, cpu: MPIEngine):
    rank, world_size = _rank_and_size(rank, world_size, init_method)
    if world_size not in (-1, cpu.size) or rank not in (-1, cpu.rank):
        raise DistError(
            f"init_process_group: rank={rank}, world_size={world_size} do not match the MPI "
            f"job this process belongs to (rank {cpu.rank} of {cpu.size})")
    return cpu.rank, cpu.size


def _check_backend(backend) -> str:
    name = "mpi" if backend is None else str(backend).lower()
    if name in _CPU_BACKENDS:
        return "mpi"
    if name in ("nccl", "cuda:nccl", "cpu:gloo,cuda:nccl", "cpu:mpi,cuda:nccl"):
        return "nccl"
    if name.startswith("cpu:") or name.startswith("cuda:"):
        raise DistError(f"backend {backend!r} is not available in ember: use 'mpi' (CPU "
                        "tensors) or 'nccl' (CUDA tensors, CPU ones through MPI)")
    raise ValueError(f"Invalid backend: '{backend}'; ember.distributed supports 'mpi' "
                     "(and 'gloo' as a name for it) and 'nccl'")


def _check_init_method(init_method, store) -> None:
    """MPI finds its peers itself; the rendezvous URL is checked for form only."""
    if store is not None and init_method is not None:
        raise ValueError("Cannot specify both init_method and store.")
    if init_method is None:
        return
    if not init_method.startswith(("env://", "tcp://", "file://")):
        raise ValueError(f"init_method {init_method!r}: expected an 'env://', 'tcp://host:port' "
                         "or 'file://path' URL")


def _rank_and_size(rank: int, world_size: int, init_method) -> tuple[int, int]:
    if init_method in (None, "env://"):
        if rank == -1 and "RANK" in os.environ:
            rank = int(os.environ["RANK"])
        if world_size == -1 and "WORLD_SIZE" in os.environ:
            world_size = int(os.environ["WORLD_SIZE"])
    return rank, world_size


def _get_default_store():
    """The default group's store (torch's private helper, which libraries call): the store
    given to init_process_group under the prefix "0/"; None when the group was made
    without one (MPI found the peers)."""
    _require_init("_get_default_store")
    return _State.store


def destroy_process_group(group: ProcessGroup | None = None) -> None:
    """Free a group's communicator; with no argument, every group and the default one."""
    if group is None or group is _State.default:
        _require_init("destroy_process_group")
        for pg in _State.groups:
            pg._engine.free()
        _State.default, _State.direct, _State.groups = None, None, []
        _State.store = None
        globals()["group"].WORLD = GroupMember.WORLD = None
        return
    if group is GroupMember.NON_GROUP_MEMBER:
        return                            # this rank has no communicator of that group
    group._engine.free()
    _State.groups.remove(group)


def new_group(ranks=None, timeout=None, backend=None, pg_options=None,
              use_local_synchronization: bool = False, group_desc=None, device_id=None):
    """A sub-group of `ranks` (global ranks). Every process of the job must call it."""
    world = _require_init("new_group")
    size = world.size()
    ranks = list(range(size)) if ranks is None else sorted(int(r) for r in ranks)
    bad = [r for r in ranks if not 0 <= r < size]
    if bad or len(set(ranks)) != len(ranks):
        raise ValueError(f"new_group: ranks {ranks} must be distinct global ranks in "
                         f"[0, {size})")
    shown = world.name() if backend is None else _backend_label(backend)
    backend = world.name() if backend is None else _check_backend(backend)
    timeout_s = world._engine.timeout_s if timeout is None else timeout.total_seconds()
    if getattr(world._engine, "is_device", False):
        engine = _nccl_world_sub_engine(world._engine, ranks, backend, timeout_s)
    elif backend == "nccl":
        engine = _nccl_sub_engine_over_mpi(world._engine, ranks, timeout_s)
    else:
        engine = _mpi_sub_engine(world._engine, ranks, timeout_s)
    if engine is None:
        return GroupMember.NON_GROUP_MEMBER
    pg = ProcessGroup(engine, shown, group_desc or f"group_{len(_State.groups)}")
    _State.groups.append(pg)
    return pg


def _mpi_sub_engine(engine: MPIEngine, ranks: list[int], timeout_s: float):
    """An MPI engine of `ranks` (ranks of `engine`'s communicator), None outside them.
    Collective over `engine`'s communicator."""
    comm = engine.sub_comm(ranks)
    if comm is None:
        return None
    if engine.self_timed:
        comm.timeout_s = timeout_s
    return MPIEngine(comm, [engine.global_ranks[r] for r in ranks], timeout_s,
                     engine.global_rank, api=engine.api)


def _nccl_world_sub_engine(world, ranks: list[int], backend: str, timeout_s: float):
    """A sub-group of an nccl default group: ncclCommSplit, with its MPI companion for
    CPU tensors split alongside (MPI first, then NCCL, the same order on every rank)."""
    cpu = None
    if world.cpu_engine is not None:
        cpu = _mpi_sub_engine(world.cpu_engine, ranks, timeout_s)
    if backend != "nccl":
        if world.cpu_engine is None:
            raise DistError(f"new_group(backend={backend!r}): an mpi sub-group of an nccl "
                            "default group needs the job started by the launcher (python -m "
                            "ember.distributed.run), which gives it MPI")
        return cpu
    return world.split(ranks, timeout_s, cpu_engine=cpu)


def _nccl_sub_engine_over_mpi(world: MPIEngine, ranks: list[int], timeout_s: float):
    """An nccl group inside an mpi default group: a new NCCL unique id, made by the
    sub-group's first rank and broadcast over the sub-group's MPI communicator."""
    from .nccl_engine import create_engine
    cpu = _mpi_sub_engine(world, ranks, timeout_s)
    if cpu is None:
        return None
    return create_engine(cpu.rank, cpu.size, timeout_s, mpi_comm=cpu.comm, cpu_engine=cpu,
                         global_ranks=list(cpu.global_ranks), global_rank=world.global_rank)


def shrink_group(ranks_to_exclude, group: ProcessGroup | None = None, shrink_flags: int = 0,
                 pg_options=None) -> ProcessGroup:
    """A group of `group`'s ranks without the failed ones in `ranks_to_exclude` (ULFM).

    The remaining ranks call it after a rank died (their collectives failed): the
    communicator is revoked and shrunk by MPI to the live processes, which must be
    exactly the group minus `ranks_to_exclude` (group ranks). Shrinking the default
    group makes the result the default group, its ranks renumbered 0..n-1 (as
    PyTorch's shrink_group). Needs the launcher's --ulfm.
    """
    pg = _group(group, "shrink_group")
    engine = pg._engine
    if getattr(engine, "is_device", False):
        raise TypeError("shrink_group: the nccl backend does not support shrinking in ember "
                        "yet (ncclCommShrink); the mpi backend does, with --ulfm")
    excluded = _check_ranks_to_exclude(ranks_to_exclude, engine.size)
    if engine.rank in excluded:
        raise ValueError(f"shrink_group: rank {engine.rank} is in ranks_to_exclude; only the "
                         "remaining ranks call shrink_group")
    survivors_comm, failed = engine.shrink()
    if failed != excluded:
        survivors_comm.Free()
        raise DistError(f"shrink_group: ranks_to_exclude {excluded} must be the ranks that "
                        f"failed; MPI found {failed} failed (it can only remove failed "
                        "processes)")
    kept = [r for r in range(engine.size) if r not in excluded]
    is_default = pg is _State.default
    global_ranks = list(range(len(kept))) if is_default else \
        [engine.global_ranks[r] for r in kept]
    my_global = survivors_comm.Get_rank() if is_default else engine.global_rank
    new_engine = MPIEngine(survivors_comm, global_ranks, engine.timeout_s, my_global)
    new_pg = ProcessGroup(new_engine, pg._backend, pg.group_name)
    engine.abandon()
    _State.shrunk = True
    _State.groups = [new_pg if g is pg else g for g in _State.groups]
    if is_default:
        _State.default, _State.direct = new_pg, new_engine
        globals()["group"].WORLD = GroupMember.WORLD = new_pg
    return new_pg


def _check_ranks_to_exclude(ranks_to_exclude, size: int) -> list[int]:
    ranks = [int(r) for r in ranks_to_exclude]
    if not ranks:
        raise ValueError("shrink_group: ranks_to_exclude cannot be empty")
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"shrink_group: ranks_to_exclude {ranks} has duplicates")
    bad = [r for r in ranks if not 0 <= r < size]
    if bad:
        raise ValueError(f"shrink_group: ranks {bad} are outside the group of size {size}")
    if len(ranks) == size:
        raise ValueError("shrink_group: ranks_to_exclude cannot exclude every rank")
    return sorted(ranks)


# --- queries -----------------------------------------------------------------------------
def get_rank(group: ProcessGroup | None = None) -> int:
    if group is GroupMember.NON_GROUP_MEMBER:
        return -1
    return _group(group, "get_rank").rank()


def get_world_size(group: ProcessGroup | None = None) -> int:
    if group is GroupMember.NON_GROUP_MEMBER:
        return -1
    return _group(group, "get_world_size").size()


def get_backend(group: ProcessGroup | None = None) -> str:
    return _group(group, "get_backend").name()


def get_process_group_ranks(group: ProcessGroup | None) -> list[int]:
    return list(_group(group, "get_process_group_ranks")._engine.global_ranks)


def get_global_rank(group: ProcessGroup, group_rank: int) -> int:
    ranks = get_process_group_ranks(group)
    if not 0 <= group_rank < len(ranks):
        raise ValueError(f"Group rank {group_rank} is not part of group {ranks}")
    return ranks[group_rank]


def get_group_rank(group: ProcessGroup, global_rank: int) -> int:
    ranks = get_process_group_ranks(group)
    if global_rank not in ranks:
        raise ValueError(f"Global rank {global_rank} is not part of group {ranks}")
    return ranks.index(global_rank)


def _require_init(fn: str) -> ProcessGroup:
    if _State.default is None:
        raise ValueError(f"{fn}: Default process group has not been initialized, please make "
                         "sure to call init_process_group.")
    return _State.default


def _group(pg, fn: str) -> ProcessGroup:
    default = _require_init(fn)
    return default if pg is None else pg


def _engine(pg, fn: str) -> MPIEngine | None:
    """The group's engine, or None where this rank is not a member (nothing to do)."""
    if pg is GroupMember.NON_GROUP_MEMBER:
        return None
    return _group(pg, fn)._engine


def _on_device(engine, tensor) -> bool:
    """Does this collective run on the GPU (an nccl group and a CUDA tensor)?"""
    return getattr(engine, "is_device", False) and tensor.is_cuda


def _finish(work, async_op: bool):
    if async_op:
        return work
    work.wait()
    return None


def _group_peer(engine: MPIEngine, fn: str, peer, group_peer, name: str):
    """A peer's rank inside the group, from its global rank or its group rank."""
    if peer is not None and group_peer is not None:
        raise ValueError(f"{fn}: pass {name} or group_{name}, not both")
    if group_peer is not None:
        return int(group_peer)
    if peer is None:
        return None
    if peer not in engine.global_ranks:
        raise DistArgumentError(f"{fn}: {name}={peer} is not a rank of the group "
                         f"{engine.global_ranks}")
    return engine.global_ranks.index(peer)


# --- collectives -------------------------------------------------------------------------
_SUM = ReduceOp.SUM


def all_reduce(tensor, op=_SUM, group=None, async_op: bool = False):
    # The common call runs MPIEngine.direct_spec's cache hit and direct_allreduce
    # inlined (kept in step with the engine's): a 4 KiB all-reduce is ~1.5 us in MPI,
    # so each Python call or check here costs ~3% of its bus bandwidth.
    if group is None and op is _SUM and not async_op:
        e = _State.direct
        if e is not None:
            arr = tensor._array
            if (e._direct_ref() is arr and e._submitted == e._finished
                    and e._broken is None):
                spec = e._direct_spec
            else:
                spec = e.direct_spec(arr)
            if spec is not None:
                e._seq += 1
                e._running = tensor
                try:
                    e._allreduce(e._in_place, spec, e._sum_op)
                except BaseException as err:     # noqa: BLE001 - named as Work names it
                    e._running = None
                    raise e.direct_failed(tensor, err) from err
                e._running = None
                tensor._storage.version += 1      # tensor._bump_version(), inlined
                return None
    engine = _engine(group, "all_reduce")
    if engine is None:
        return None
    if not async_op and isinstance(engine, MPIEngine):
        spec = engine.direct_spec(tensor._array) if op is _SUM else None
        if spec is not None:
            return engine.direct_allreduce(tensor, spec)
        return engine.allreduce_now(tensor, _op(op))       # MPI's blocking call, no thread
    return _finish(engine.allreduce(tensor, _op(op), blocking=not async_op), async_op)


def reduce(tensor, dst=None, op=ReduceOp.SUM, group=None, async_op: bool = False,
           group_dst=None):
    engine = _engine(group, "reduce")
    if engine is None:
        return None
    root = _root(engine, "reduce", dst, group_dst, "dst")
    return _finish(engine.reduce(tensor, root, _op(op), blocking=not async_op), async_op)


def broadcast(tensor, src=None, group=None, async_op: bool = False, group_src=None):
    engine = _engine(group, "broadcast")
    if engine is None:
        return None
    root = _root(engine, "broadcast", src, group_src, "src")
    return _finish(engine.broadcast(tensor, root, blocking=not async_op), async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    engine = _engine(group, "all_gather_into_tensor")
    if engine is None:
        return None
    _check_same_dtype("all_gather_into_tensor", output_tensor, input_tensor)
    if output_tensor.numel() != input_tensor.numel() * engine.size:
        raise DistArgumentError("all_gather_into_tensor: output tensor size must be equal to "
                         f"world_size ({engine.size}) times input tensor size; got "
                         f"{list(output_tensor.shape)} and {list(input_tensor.shape)}")
    if _on_device(engine, input_tensor):
        return _finish(engine.all_gather_tensor(output_tensor, input_tensor), async_op)
    out = engine.stage(output_tensor, "all_gather_into_tensor", read=False)
    return _finish(engine.allgather(out, input_tensor, blocking=not async_op), async_op)


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    engine = _engine(group, "all_gather")
    if engine is None:
        return None
    _check_list("all_gather", tensor_list, engine.size, tensor)
    if _on_device(engine, tensor):
        return _finish(nccl_lists.all_gather(engine, tensor_list, tensor), async_op)
    flat = engine.stage_array(np.empty((engine.size,) + tuple(tensor.shape),
                                       _wire_dtype(tensor)))
    work = engine.allgather(flat, tensor, blocking=not async_op)
    return _finish(_then_scatter_into(work, flat.buf, tensor_list), async_op)


def gather(tensor, gather_list=None, dst=None, group=None, async_op: bool = False,
           group_dst=None):
    engine = _engine(group, "gather")
    if engine is None:
        return None
    root = _root(engine, "gather", dst, group_dst, "dst")
    _check_root_only_list("gather", "gather_list", gather_list, engine.rank == root)
    if _on_device(engine, tensor):
        if engine.rank == root:
            _check_list("gather", gather_list, engine.size, tensor)
        return _finish(nccl_lists.gather(engine, gather_list, tensor, root), async_op)
    if engine.rank != root:
        return _finish(engine.gather(None, tensor, root, blocking=not async_op), async_op)
    _check_list("gather", gather_list, engine.size, tensor)
    flat = engine.stage_array(np.empty((engine.size,) + tuple(tensor.shape),
                                       _wire_dtype(tensor)))
    work = engine.gather(flat, tensor, root, blocking=not async_op)
    return _finish(_then_scatter_into(work, flat.buf, gather_list), async_op)


def scatter(tensor, scatter_list=None, src=None, group=None, async_op: bool = False,
            group_src=None):
    engine = _engine(group, "scatter")
    if engine is None:
        return None
    root = _root(engine, "scatter", src, group_src, "src")
    _check_root_only_list("scatter", "scatter_list", scatter_list, engine.rank == root)
    if _on_device(engine, tensor):
        if engine.rank == root:
            _check_list("scatter", scatter_list, engine.size, tensor)
        return _finish(nccl_lists.scatter(engine, tensor, scatter_list, root), async_op)
    flat = None
    if engine.rank == root:
        _check_list("scatter", scatter_list, engine.size, tensor)
        flat = engine.stage_array(_stack(scatter_list, tensor))
    return _finish(engine.scatter(tensor, flat, root, blocking=not async_op), async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op: bool = False):
    engine = _engine(group, "reduce_scatter_tensor")
    if engine is None:
        return None
    _check_same_dtype("reduce_scatter_tensor", output, input)
    if input.numel() != output.numel() * engine.size:
        raise DistArgumentError("reduce_scatter_tensor: input tensor size must be equal to "
                         f"world_size ({engine.size}) times output tensor size; got "
                         f"{list(input.shape)} and {list(output.shape)}")
    if _on_device(engine, input):
        return _finish(engine.reduce_scatter_tensor(output, input, _op(op)), async_op)
    flat = engine.stage(input, "reduce_scatter_tensor")
    return _finish(engine.reduce_scatter(output, flat, _op(op),
                                              blocking=not async_op), async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op: bool = False):
    engine = _engine(group, "reduce_scatter")
    if engine is None:
        return None
    _check_list("reduce_scatter", input_list, engine.size, output)
    if _on_device(engine, output):
        return _finish(nccl_lists.reduce_scatter(engine, output, input_list, _op(op)),
                       async_op)
    flat = engine.stage_array(_stack(input_list, output))
    return _finish(engine.reduce_scatter(output, flat, _op(op),
                                              blocking=not async_op), async_op)


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None,
                      group=None, async_op: bool = False):
    engine = _engine(group, "all_to_all_single")
    if engine is None:
        return None
    _check_same_dtype("all_to_all_single", output, input)
    in_counts = _split_counts("all_to_all_single", input, input_split_sizes, engine.size)
    out_counts = _split_counts("all_to_all_single", output, output_split_sizes, engine.size)
    if _on_device(engine, input):
        return _finish(engine.all_to_all_tensor(output, input, out_counts, in_counts), async_op)
    src = engine.stage(input, "all_to_all_single")
    dst = engine.stage(output, "all_to_all_single", read=False)
    return _finish(engine.alltoallv(dst, out_counts, src, in_counts,
                                          blocking=not async_op), async_op)


def all_to_all(output_tensor_list, input_tensor_list, group=None, async_op: bool = False):
    engine = _engine(group, "all_to_all")
    if engine is None:
        return None
    for name, lst in (("output_tensor_list", output_tensor_list),
                      ("input_tensor_list", input_tensor_list)):
        if len(lst) != engine.size:
            raise DistArgumentError(f"all_to_all: {name} must hold world_size ({engine.size}) "
                             f"tensors, got {len(lst)}")
    if _on_device(engine, input_tensor_list[0]):
        return _finish(nccl_lists.all_to_all(engine, output_tensor_list, input_tensor_list),
                       async_op)
    dtype = _wire_dtype(input_tensor_list[0])
    src = engine.stage_array(np.concatenate([_wire(t, dtype).reshape(-1)
                                             for t in input_tensor_list]))
    dst = engine.stage_array(np.empty(sum(t.numel() for t in output_tensor_list), dtype))
    work = engine.alltoallv(dst, [t.numel() for t in output_tensor_list], src,
                            [t.numel() for t in input_tensor_list], blocking=not async_op)
    return _finish(_then_scatter_into(work, dst.buf, output_tensor_list), async_op)


def barrier(group=None, async_op: bool = False, device_ids=None, timeout=None):
    engine = _engine(group, "barrier")
    if engine is None:
        return None
    timeout_s = None if timeout is None else _seconds(timeout)
    work = engine.barrier(blocking=not async_op, timeout_s=timeout_s)
    if async_op:
        return work
    work.wait(timeout)
    return None


# --- point to point ----------------------------------------------------------------------
def isend(tensor, dst=None, group=None, tag: int = 0, group_dst=None):
    engine = _engine(group, "isend")
    if engine is None:
        return None
    peer = _group_peer(engine, "isend", dst, group_dst, "dst")
    if peer is None:
        raise ValueError("isend: dst (or group_dst) is required")
    return engine.send(tensor, peer, tag)


def irecv(tensor, src=None, group=None, tag: int = 0, group_src=None):
    engine = _engine(group, "irecv")
    if engine is None:
        return None
    peer = _group_peer(engine, "irecv", src, group_src, "src")
    return engine.recv(tensor, peer, tag)


def send(tensor, dst=None, group=None, tag: int = 0, group_dst=None) -> None:
    _check_not_self("send", group, dst, group_dst, "destination")
    work = isend(tensor, dst, group, tag, group_dst)
    if work is not None:
        work.wait()


def recv(tensor, src=None, group=None, tag: int = 0, group_src=None) -> int:
    """Receive into `tensor`; returns the global rank it came from (any rank if src=None)."""
    _check_not_self("recv", group, src, group_src, "source")
    work = irecv(tensor, src, group, tag, group_src)
    if work is None:
        return -1
    work.wait()
    return work.source_rank()


def _check_not_self(fn: str, group, peer, group_peer, role: str) -> None:
    """A blocking send/recv with itself would wait forever (PyTorch refuses it too;
    isend/irecv to oneself are allowed, they can be paired)."""
    engine = _engine(group, fn)
    if engine is None:
        return
    me = engine.rank if group_peer is not None else engine.global_ranks[engine.rank]
    if (group_peer if group_peer is not None else peer) == me:
        raise DistArgumentError(f"{fn}: invalid {role} rank {me}: {role} rank should not be "
                                "the same as the rank of the current process")


class P2POp:
    """torch.distributed.P2POp: one isend or irecv for batch_isend_irecv."""

    def __init__(self, op, tensor, peer=None, group=None, tag: int = 0, group_peer=None):
        if op not in (isend, irecv):
            raise ValueError("Invalid ``op``. Expected ``op`` to be of type "
                             "``ember.distributed.isend`` or ``ember.distributed.irecv``.")
        self.op, self.tensor, self.peer, self.group, self.tag = op, tensor, peer, group, tag
        self.group_peer = group_peer


def batch_isend_irecv(p2p_op_list: list) -> list:
    """Issue every op of the list (nonblocking, so their order cannot deadlock)."""
    if not p2p_op_list or not all(isinstance(p, P2POp) for p in p2p_op_list):
        raise ValueError("batch_isend_irecv: invalid ``p2p_op_list``. Each op is expected "
                         "to be of type ``ember.distributed.P2POp``.")
    first = p2p_op_list[0]
    engine = _engine(first.group, "batch_isend_irecv")
    if engine is not None and _on_device(engine, first.tensor):
        if any(p.group is not first.group for p in p2p_op_list):
            raise ValueError("batch_isend_irecv: every op of an nccl batch must use the "
                             "same group")
        return engine.batch_p2p([
            (p.op is isend, p.tensor,
             _group_peer(engine, "batch_isend_irecv", p.peer, p.group_peer, "peer"))
            for p in p2p_op_list])
    return [p.op(p.tensor, p.peer, p.group, p.tag, p.group_peer) for p in p2p_op_list]


# --- argument checks and list staging ----------------------------------------------------
def _seconds(timeout) -> float:
    return timeout.total_seconds() if hasattr(timeout, "total_seconds") else float(timeout)


def _op(op) -> ReduceOp:
    if not isinstance(op, ReduceOp):
        raise TypeError(f"op must be an ember.distributed.ReduceOp, got {op!r}")
    return op


def _root(engine, fn, peer, group_peer, name) -> int:
    root = _group_peer(engine, fn, peer, group_peer, name)
    if root is None:
        raise DistArgumentError(f"{fn}: {name} (or group_{name}) is required")
    if not 0 <= root < engine.size:
        raise DistArgumentError(f"{fn}: group_{name}={root} is outside the group of size "
                         f"{engine.size}")
    return root


def _check_same_dtype(fn, a, b) -> None:
    if a.dtype != b.dtype:
        raise DistArgumentError(f"{fn}: output and input must have the same dtype, got {a.dtype} "
                        f"and {b.dtype}")


def _check_root_only_list(fn: str, name: str, tensors, is_root: bool) -> None:
    """A gather/scatter list belongs to the root alone: refuse it on the other ranks, as
    PyTorch does (a caller that passes it everywhere has likely mixed up the root)."""
    if tensors and not is_root:
        role = "destination" if fn == "gather" else "source"
        raise DistArgumentError(f"{fn}: argument ``{name}`` must NOT be specified on "
                                f"non-{role} ranks")


def _check_list(fn, tensors, size, like) -> None:
    if tensors is None or len(tensors) != size:
        got = "None" if tensors is None else len(tensors)
        raise DistArgumentError(f"{fn}: the tensor list must hold world_size ({size}) tensors, "
                         f"got {got}")
    for t in tensors:
        if tuple(t.shape) != tuple(like.shape) or t.dtype != like.dtype:
            raise DistArgumentError(f"{fn}: every tensor of the list must match {list(like.shape)} "
                             f"{like.dtype}, got {list(t.shape)} {t.dtype} (uneven sizes are "
                             "not supported by the mpi backend)")


def _wire_dtype(tensor):
    from ..ir import dtypes
    return np.dtype(np.float32) if tensor.dtype == dtypes.bfloat16 else tensor._array.dtype


def _wire(tensor, dtype) -> np.ndarray:
    return np.asarray(tensor._array, dtype=dtype)


def _stack(tensors, like) -> np.ndarray:
    dtype = _wire_dtype(like)
    return np.ascontiguousarray(np.stack([_wire(t, dtype) for t in tensors]))


def _split_counts(fn, tensor, splits, size) -> list[int]:
    rows = tensor.shape[0] if tensor.ndim else 1
    row_numel = tensor.numel() // rows if rows else 0
    if splits is None:
        if rows % size:
            raise DistArgumentError(f"{fn}: dim 0 ({rows}) must divide evenly by world_size "
                             f"({size}) when no split sizes are given")
        return [rows // size * row_numel] * size
    splits = [int(s) for s in splits]
    if len(splits) != size or sum(splits) != rows:
        raise DistArgumentError(f"{fn}: split sizes {splits} must have world_size ({size}) entries "
                         f"summing to dim 0 ({rows})")
    return [s * row_numel for s in splits]


def _then_scatter_into(work, flat: np.ndarray, tensors):
    """When `work` completes, copy consecutive pieces of `flat` into `tensors`."""
    def scatter_pieces():
        start = 0
        for t in tensors:
            n = t.numel()
            np.copyto(t._array, flat.reshape(-1)[start:start + n].reshape(t._array.shape),
                      casting="unsafe")
            t._bump_version()
            start += n

    work.then_on_completion(scatter_pieces, tensors)
    return work
