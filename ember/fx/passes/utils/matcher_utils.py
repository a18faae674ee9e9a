"""`ember.fx.passes.utils.matcher_utils` (torch.fx.passes.utils.matcher_utils' names)."""
from ....frontend.fx.matcher_utils import InternalMatch, SubgraphMatcher  # noqa: F401
