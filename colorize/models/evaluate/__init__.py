"""Judging a model: the eval photos, `colorize eval`, its report and the shared HTML (the metrics are models/net/metrics.py)."""
