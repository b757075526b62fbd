"""From per-view network evidence to one closed surface per structure (the depth path)."""
