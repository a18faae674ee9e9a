"""ember.ao.ns.fx: torch.ao.ns.fx's namespace (the metrics live in utils)."""
