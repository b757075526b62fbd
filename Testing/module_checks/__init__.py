"""Static checks that the Slicer module files match what they bind to: their `.ui` widgets,
the parameter node fields, Slicer's Python API and MRML, and what they import at load time.
Used by ``Testing/test_module_bindings.py``; nothing here imports Slicer's GUI."""
