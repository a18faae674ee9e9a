"""torch.utils.data.dataloader's names."""
from ...frontend.data.collate import default_collate, default_convert  # noqa: F401
from ...frontend.data.dataloader import DataLoader, WorkerInfo, get_worker_info  # noqa: F401
