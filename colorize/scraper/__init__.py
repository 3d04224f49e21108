"""Stage 1: harvest Unsplash search pages with headless Chromium, download photos, keep a manifest."""
