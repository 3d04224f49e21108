"""Using a trained model: the loaded Colorizer/Bundle, the one coloring path, pictures, `colorize predict`,
video, and the Python API behind `colorize.load`."""
