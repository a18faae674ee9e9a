"""`ember.fx.proxy` (torch.fx.proxy's names)."""
from ..frontend.fx.proxy import ConversionTraceError, Proxy, ProxyableClassMeta  # noqa: F401
from ..frontend.fx.tracer import GraphAppendingTracer, Tracer as TracerBase  # noqa: F401
from ..ir.errors import TraceError  # noqa: F401
