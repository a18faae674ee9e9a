"""`ember.fx.experimental.proxy_tensor` (torch.fx.experimental.proxy_tensor's make_fx)."""
from ...frontend.fx.make_fx import make_fx  # noqa: F401
