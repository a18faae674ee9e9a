"""ember.jit.annotations: the typing names TorchScript code imports from
torch.jit.annotations (List, Tuple, Dict, Optional, ...), and the BroadcastingList
aliases, which eagerly are plain lists."""
from typing import Any, Callable, Dict, List, Optional, Tuple, Union  # noqa: F401

BroadcastingList1 = BroadcastingList2 = BroadcastingList3 = List

__all__ = ["Any", "Callable", "Dict", "List", "Optional", "Tuple", "Union",
           "BroadcastingList1", "BroadcastingList2", "BroadcastingList3"]
