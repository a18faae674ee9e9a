"""ember.utils.model_zoo: torch.utils.model_zoo, the older name of the hub's weight loader.

`load_url` is `ember.hub.load_state_dict_from_url`; `tqdm` is the progress bar the hub
uses (packages such as torchvision import it from here).
"""
from __future__ import annotations

from ..hub import load_state_dict_from_url

try:
    from tqdm import tqdm
except ImportError:        # tqdm is optional: a bar that counts silently
    class tqdm:  # noqa: N801 - tqdm's own name
        """Stands in for tqdm.tqdm where tqdm is not installed: counts, prints nothing."""

        def __init__(self, total=None, disable=False, unit=None, unit_scale=None,
                     unit_divisor=None, **kwargs):
            self.total = total
            self.n = 0

        def update(self, n=1):
            self.n += n

        def close(self):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.close()

load_url = load_state_dict_from_url

__all__ = ["load_url", "tqdm"]
