"""Check that DiffDRR 0.6.1, driven by ``SyntheticDataGenLib.projection.diffdrr_peer``, renders our geometry.

Renders the abdomen-pelvis sample (μ = 0.0206/mm · max(0, 1 + HU/1000)) at 64×64 pixels with
DiffDRR (trilinear and Siddon) and with the brute-force reference of ``Testing/reference_drr.py``,
and prints the normalised cross-correlation (NCC) and the ratio of means for each view. Exits
with status 1 when a view's NCC is below 0.99 or its mean ratio is off by more than 2 %.

Not part of the pytest suite (the file name does not match ``test_*.py``; DiffDRR is a
benchmark-only dependency). Run it from a separate benchmark environment, from the repo root:

    python3 -m venv ../venv-bench
    ../venv-bench/bin/pip install torch==2.14.1 && ../venv-bench/bin/pip install diffdrr==0.6.1
    ../venv-bench/bin/pip install -e .
    ../venv-bench/bin/python Testing/benchmarks/check_diffdrr_geometry.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Testing/, for reference_drr

from reference_drr import reference_line_integrals  # noqa: E402
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras, read_ct  # noqa: E402
from SyntheticDataGenLib.projection.diffdrr_peer import render_with_diffdrr  # noqa: E402
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry, preset_geometry  # noqa: E402
from SyntheticDataGenLib.cases.sample_data import sample_case  # noqa: E402

MU_WATER_PER_MM = 0.0206
NCC_MIN = 0.99
MEAN_RATIO_TOLERANCE = 0.02


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def views(isocenter: np.ndarray) -> dict[str, ProjectionGeometry]:
    """The views to compare: 64×64 pixels of 6.4 mm (the default preset's 409.6 mm field)."""
    common = dict(isocenter_ras_mm=isocenter, size_px=(64, 64), pixel_spacing_mm=(6.4, 6.4))
    result = {
        "ap": preset_geometry("ap", **common),
        "lateral-left": preset_geometry("lateral-left", **common),
        "ap lao30 cran15": preset_geometry("ap", lao_deg=30, cranial_deg=15, **common),
    }
    # beyond presets: a mirrored detector (u × v = -beam), a non-square, off-centre detector
    ap = result["ap"]
    result["ap mirrored u"] = ProjectionGeometry(
        ap.source_ras_mm, ap.pixel_center_ras(ap.width - 1, 0), -ap.detector_u_ras, ap.detector_v_ras,
        ap.pixel_spacing_mm, ap.size_px)
    oblique = preset_geometry("pa", lao_deg=-40, cranial_deg=-20, isocenter_ras_mm=isocenter,
                              size_px=(80, 48), pixel_spacing_mm=(5.0, 7.0),
                              translation_ras_mm=(20.0, 0.0, -30.0))
    result["pa rao40 caud20, 80x48, shifted detector"] = ProjectionGeometry(
        oblique.source_ras_mm, oblique.detector_origin_ras_mm + 35.0 * oblique.detector_u_ras
        - 20.0 * oblique.detector_v_ras, oblique.detector_u_ras, oblique.detector_v_ras,
        oblique.pixel_spacing_mm, oblique.size_px)
    return result


def main() -> int:
    torch.set_num_threads(2)
    case = sample_case("abdomen-pelvis")
    image = read_ct(case.ct_path)
    matrix = ijk_to_ras(image)
    hu = sitk.GetArrayFromImage(image).astype(np.float32)
    mu = (MU_WATER_PER_MM * np.maximum(0.0, 1.0 + hu / 1000.0)).astype(np.float32)
    size = np.array(image.GetSize(), dtype=np.float64)
    isocenter = matrix[:3, :3] @ ((size - 1) / 2) + matrix[:3, 3]
    print(f"abdomen-pelvis: {image.GetSize()} voxels of {image.GetSpacing()} mm; isocentre "
          f"{np.round(isocenter, 1).tolist()} RAS mm; DiffDRR trilinear n_points=500 (its default)")
    print(f"{'view':42s} {'renderer':10s} {'NCC':>9s} {'mean ratio':>11s} {'max |diff|/max':>15s} {'s':>6s}")
    failures = 0
    for name, geometry in views(isocenter).items():
        reference = reference_line_integrals(mu, matrix, geometry)
        for renderer in ("trilinear", "siddon"):
            start = time.perf_counter()
            peer = render_with_diffdrr(mu, matrix, geometry, renderer)
            seconds = time.perf_counter() - start
            score = ncc(peer, reference)
            ratio = float(peer.mean() / reference.mean())
            worst = float(np.abs(peer - reference).max() / reference.max())
            ok = score >= NCC_MIN and abs(ratio - 1) <= MEAN_RATIO_TOLERANCE
            failures += not ok
            print(f"{name:42s} {renderer:10s} {score:9.7f} {ratio:11.5f} {worst:15.5f} {seconds:6.2f}"
                  f"{'' if ok else '  FAIL'}")
    print("all views agree" if not failures else f"{failures} comparison(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
