"""colorize: scrape photos, prepare reproducible shards, train a compact colorizer, apply it."""

__version__ = "0.1.0"
