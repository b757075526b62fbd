"""A case on disk: CT volumes, bone labels, landmarks, sample cases and propagated labels."""
