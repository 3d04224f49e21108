"""Training one colorizer: the loop, its config (the one source of defaults), DDP, validation, plots."""
