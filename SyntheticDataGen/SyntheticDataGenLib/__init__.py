"""Slicer-free core of SyntheticDataGen: projection geometry, CT and label I/O, sample cases.

Nothing here imports ``qt`` or ``ctk``, and only ``scene.py`` (the MRML seam, Qt-free MRML
classes only, tested with slicer-core) imports ``slicer``; the Slicer module and the ``xrecon``
command both call these functions.
"""
