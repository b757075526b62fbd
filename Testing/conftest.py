"""Shared fixtures: where the real data lives, and a runner for the ``xrecon`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("XRECON_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's shared real CT cases (``../shared/data``); CI always has them."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data not found at {SHARED_DATA}")
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


# Only a guard against a hung process: far beyond any run on a loaded 2-core machine, so that
# load never fails a test (tests never assert wall times)
HANG_TIMEOUT_S = 3600


def run_xrecon(*args: str) -> subprocess.CompletedProcess:
    """Run ``xrecon`` in a fresh interpreter, as a user would, and capture its output."""
    return subprocess.run([sys.executable, "-m", "SingleImageReconLib.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=HANG_TIMEOUT_S)


def xrecon_in_process(capfd, *args) -> tuple[int, str, str]:
    """Run ``xrecon`` in this interpreter (no second start-up of torch): exit status, stdout, stderr.

    ``capfd`` catches what native libraries (ITK, VTK) print as well as Python's own output;
    an argument error's exit (argparse raises SystemExit) is returned as its status.
    """
    from SingleImageReconLib import cli

    capfd.readouterr()
    try:
        status = cli.main([str(arg) for arg in args])
    except SystemExit as error:
        status = error.code
    out, err = capfd.readouterr()
    return status, out, err


def sample_bone_ap_view(structure: str):
    """Exact AP evidence of one bone of the sample case abdomen-pelvis (its mask and depth maps
    rendered from the reference labels, 256 px of 1.6 mm, about the bone's centre): (ViewEvidence,
    the bone's mask (K, J, I), the labels' ijk-to-RAS matrix)."""
    import numpy as np

    from SingleImageReconLib.reconstruction.surface import ViewEvidence
    from SyntheticDataGenLib.cases.ct_io import ijk_to_ras
    from SyntheticDataGenLib.cases.labels import read_segmentation
    from SyntheticDataGenLib.cases.sample_data import sample_case
    from SyntheticDataGenLib.projection.geometry import preset_geometry

    case = sample_case("abdomen-pelvis")
    segmentation = read_segmentation(case.labels_path, case.table_path)
    matrix = ijk_to_ras(segmentation.reference)
    mask = segmentation.mask_array(structure)
    k, j, i = np.nonzero(mask)
    centre = matrix[:3, :3] @ [i.mean(), j.mean(), k.mean()] + matrix[:3, 3]
    geometry = preset_geometry("ap", isocenter_ras_mm=centre, size_px=(256, 256), pixel_spacing_mm=(1.6, 1.6))
    return ViewEvidence.rendered(mask, matrix, geometry), mask, matrix
