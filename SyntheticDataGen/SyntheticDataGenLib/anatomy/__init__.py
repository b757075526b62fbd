"""Anatomy augmentation: deformations of a CT and its labels (smooth random ones, and towards sampled bone shapes)."""
