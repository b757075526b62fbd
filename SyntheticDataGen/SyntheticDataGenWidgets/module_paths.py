"""Where the modules' Python packages are, for the ``xrecon`` commands that run in another process."""

import os

import slicer


def modulePythonPaths() -> list:
    """Folders that hold ``SyntheticDataGenLib`` and ``SingleImageReconLib`` (the child's PYTHONPATH):
    this module's folder, SingleImageRecon's as Slicer loaded it, and its folder in the source tree."""
    from SyntheticDataGenLib.dataset.generation_command import module_python_paths

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [here]
    module = getattr(getattr(slicer, "modules", None), "singleimagerecon", None)
    if module is not None and getattr(module, "path", None):
        candidates.append(os.path.dirname(os.path.abspath(module.path)))
    candidates.append(os.path.join(os.path.dirname(here), "SingleImageRecon"))  # source tree layout
    return module_python_paths(candidates)
