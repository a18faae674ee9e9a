"""torch.distributed's key-value stores: Store, TCPStore, FileStore, HashStore, PrefixStore.

Stores serve rendezvous, barriers and small data exchange between processes (and
`init_process_group(store=...)`). See docs/distributed.md, "Stores".
"""
from ._base import Store  # noqa: F401
from .file_store import FileStore  # noqa: F401
from .hash_store import HashStore  # noqa: F401
from .prefix_store import PrefixStore  # noqa: F401
from .tcp_store import TCPStore  # noqa: F401
