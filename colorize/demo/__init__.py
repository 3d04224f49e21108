"""The demo: procedural landscape scenes (scenes.py) and the offline end-to-end run (run.py)."""
