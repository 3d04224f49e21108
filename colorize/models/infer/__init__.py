"""Using a trained model: the loaded Colorizer/Bundle, the array core, pictures, `colorize predict`, video."""
