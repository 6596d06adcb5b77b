"""Training: the loop, and the run folder it owns (lock, continue rule, metrics log, provenance)."""
