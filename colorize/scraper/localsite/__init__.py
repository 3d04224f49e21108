"""The local Unsplash-like site that tests and the demo scrape on 127.0.0.1: its server and its pages."""
