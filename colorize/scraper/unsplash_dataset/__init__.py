"""The Unsplash Dataset as a source: read a release in place, select photos, download them; write a miniature one."""
