"""`ember.fx.passes.utils.fuser_utils` (torch.fx.passes.utils.fuser_utils' names)."""
from ....frontend.fx.partition import (erase_nodes, fuse_as_graphmodule,  # noqa: F401
                                       fuse_by_partitions, insert_subgm, legalize_graph,
                                       topo_sort, validate_partition)
