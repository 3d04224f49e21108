"""Stages 3-4: the ColorUNet colorizer, its training loop, prediction and evaluation."""
