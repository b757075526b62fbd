"""Reconstructions against the CT labels: surface distances, metrics and the overview figure."""
