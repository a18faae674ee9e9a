"""torch.utils.data._utils: the collate module scripts import to extend default_collate."""
from . import collate  # noqa: F401
