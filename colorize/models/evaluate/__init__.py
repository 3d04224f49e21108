"""Judging a model: the eval photos, the one evaluator (`colorize eval`), its defaults, its report and the
shared HTML. The metrics themselves live in `models/net/metrics.py` (training's validation uses them too)."""
