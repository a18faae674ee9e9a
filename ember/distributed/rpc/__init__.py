"""ember.distributed.rpc: torch.distributed.rpc over gRPC (see docs/distributed.md).

Workers meet in `init_rpc` (through an initialized MPI process group, else
MASTER_ADDR/MASTER_PORT served by rank 0), call functions on each other with `rpc_sync`,
`rpc_async` and `remote` (RRefs), and stop with `shutdown`. Tensors travel as raw
buffers; everything else is pickled (functions by qualified name).
"""
from . import functions  # noqa: F401
from ._agent import WorkerInfo  # noqa: F401
from .api import (  # noqa: F401
    RpcBackendOptions, RRef, TensorPipeRpcBackendOptions, get_worker_info, init_rpc, remote,
    rpc_async, rpc_sync, shutdown,
)


def is_available() -> bool:
    try:
        import grpc  # noqa: F401
    except ImportError:
        return False
    return True
