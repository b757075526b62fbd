"""Slicer-free core of SingleImageRecon and the ``xrecon`` command.

Networks, losses, training, inference, surfaces, shape models and metrics arrive here with
their issues; ``scene.py`` will be the one file that builds MRML nodes. This package may import
``SyntheticDataGenLib``; never the reverse.
"""
