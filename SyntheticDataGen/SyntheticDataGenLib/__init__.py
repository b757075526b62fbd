"""Slicer-free core of SyntheticDataGen: projection geometry, CT and label I/O, sample cases.

Nothing here imports ``slicer``, ``qt`` or ``ctk``; the Slicer module and the ``xrecon``
command both call these functions.
"""
