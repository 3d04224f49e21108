"""Judging a model: metrics, the eval photos, `colorize eval`, its report and the shared HTML."""
