"""ember.distributed: torch.distributed's API over proven communication engines.

Process groups and collectives run on MPI (mpi4py with Open MPI or MPICH, installed by
`pip install 'ember[distributed]'`); mpi4py is imported when a group is created, so
this package imports without it. Processes not started as one MPI job connect by TCP
(tcp_transport.py). Launch jobs with
`python -m ember.distributed.run --nproc-per-node N script.py`. See docs/distributed.md.
"""
from .c10d import (  # noqa: F401
    Backend, GroupMember, P2POp, ProcessGroup, all_gather, all_gather_into_tensor, all_reduce,
    all_to_all, all_to_all_single, barrier, batch_isend_irecv, broadcast, default_pg_timeout,
    destroy_process_group, gather, get_backend, get_global_rank, get_group_rank,
    get_process_group_ranks, get_rank, get_world_size, group, init_process_group, irecv,
    is_available, is_gloo_available, is_initialized, is_mpi_available, is_nccl_available,
    isend, new_group, recv, reduce, reduce_scatter, reduce_scatter_tensor, scatter, send,
    shrink_group,
)
from .c10d_helpers import (  # noqa: F401
    all_gather_coalesced, all_reduce_coalesced, get_default_backend_for_device,
    get_node_local_rank, is_backend_available, is_torchelastic_launched, new_subgroups,
    new_subgroups_by_enumeration, supports_complex,
)
from .errors import (  # noqa: F401
    DistBackendError, DistError, DistNetworkError, DistStoreError, QueueEmptyError,
)
from .monitored_barrier import monitored_barrier  # noqa: F401
from .object_collectives import (  # noqa: F401
    all_gather_object, broadcast_object_list, gather_object, recv_object_list,
    scatter_object_list, send_object_list,
)
from .reduce_op import ReduceOp  # noqa: F401
from .rendezvous import register_rendezvous_handler, rendezvous  # noqa: F401
from .sampler import DistributedSampler  # noqa: F401
from .store import FileStore, HashStore, PrefixStore, Store, TCPStore  # noqa: F401
from .reducer import GradBucket  # noqa: F401
from .work import Work  # noqa: F401
from . import autograd, nn, rpc  # noqa: F401,E402 - torch.distributed.{autograd,nn,rpc}
