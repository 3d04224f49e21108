"""Stage 2: photos -> reproducible, sharded training data (and the loader that reads it back)."""
