"""ember.utils.model_zoo: torch.utils.model_zoo, the older name of the hub's weight loader.

`load_url` is `ember.hub.load_state_dict_from_url`; `tqdm` is the progress bar class
(tqdm is one of ember's dependencies) that packages such as torchvision import from here.
"""
from __future__ import annotations

from tqdm import tqdm  # noqa: F401

from ..hub import load_state_dict_from_url

load_url = load_state_dict_from_url

__all__ = ["load_url", "tqdm"]
