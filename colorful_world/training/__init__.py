"""Training: the loop, the state it owns, and the run folder (lock, continue rule, metrics log)."""
