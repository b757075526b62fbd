"""Closed triangle surfaces as arrays, and surface model files as Slicer reads and writes them."""
