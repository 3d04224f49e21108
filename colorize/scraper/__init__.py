"""Stage 1: harvest Unsplash search pages with headless Chromium, download photos, keep a manifest."""

# The per-photo download deadline in seconds, here so that `colorize --help` can show it without
# importing the downloader (requests, Pillow); `download.Caps.deadline` uses this value.
DOWNLOAD_DEADLINE_S = 120.0
