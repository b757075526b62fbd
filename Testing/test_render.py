"""``xrecon render``: the files DESIGN.md names, read back with independent readers."""

import json

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import run_xrecon
from SyntheticDataGenLib.projection.attenuation import hu_to_mu
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras, read_ct
from SyntheticDataGenLib.projection.depth import render_depth
from SyntheticDataGenLib.projection.drr import render_drr
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry
from SyntheticDataGenLib.cases.labels import read_segmentation
from SyntheticDataGenLib.cases.landmarks import read_markups_json, write_markups_json
from SyntheticDataGenLib.cases.sample_data import sample_case

STRUCTURES = ["femur_left", "vertebrae_L3"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "view"
    case = sample_case("abdomen-pelvis")
    segmentation = read_segmentation(case.labels_path, case.table_path, reference=read_ct(case.ct_path))
    kji = np.argwhere(segmentation.mask_array("femur_left")).mean(axis=0)
    matrix = ijk_to_ras(read_ct(case.ct_path))
    femur_centre = matrix[:3, :3] @ kji[::-1] + matrix[:3, 3]
    landmarks = out.parent / "landmarks.mrk.json"
    write_markups_json(landmarks, ["femur centre", "far away"], np.array([femur_centre, femur_centre + [0, 0, 2000]]))
    result = run_xrecon("render", "--case", "abdomen-pelvis", "--structures", ",".join(STRUCTURES),
                        "--geometry", "ap", "--lao", "10", "--detector-size-px", "160", "140",
                        "--pixel-spacing-mm", "2.5", "2.5", "--landmarks", landmarks, "--out", out)
    assert result.returncode == 0, result.stderr
    return out, femur_centre


def test_render_writes_the_design_files(rendered):
    out, _ = rendered
    names = {p.name for p in out.iterdir()}
    expected = {".xrecon-output", "drr.nrrd", "geometry.json", "landmarks.mrk.json"} | {
        f"{kind}_{s}.nrrd" for kind in ("mask", "front", "back") for s in STRUCTURES}
    assert names == expected


def test_images_lie_on_the_detector_plane(rendered):
    out, _ = rendered
    geometry = ProjectionGeometry.load(out / "geometry.json")
    data, header = nrrd.read(str(out / "drr.nrrd"))  # pynrrd: independent of SimpleITK
    assert data.shape[:2] == (geometry.width, geometry.height)
    directions = np.asarray(header["space directions"], dtype=float)
    origin = np.asarray(header["space origin"], dtype=float)
    assert header["space"] in ("left-posterior-superior", "LPS")
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    for u, v in [(0, 0), (159, 0), (0, 139), (80, 60)]:
        position_ras = (origin + u * directions[0] + v * directions[1]) * lps_to_ras
        np.testing.assert_allclose(position_ras, geometry.pixel_center_ras(u, v), atol=1e-4)


def test_drr_and_targets_equal_the_library_renderers(rendered):
    out, _ = rendered
    geometry = ProjectionGeometry.load(out / "geometry.json")
    case = sample_case("abdomen-pelvis")
    ct = read_ct(case.ct_path)
    matrix = ijk_to_ras(ct)
    mu = hu_to_mu(torch.from_numpy(sitk.GetArrayFromImage(ct).astype(np.float32)))
    drr = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "drr.nrrd")))[0]
    np.testing.assert_allclose(drr, render_drr(mu, matrix, geometry)[0].numpy(), rtol=1e-6)
    assert drr.min() >= 0 and drr.max() > 1
    segmentation = read_segmentation(case.labels_path, case.table_path, reference=ct)
    for structure in STRUCTURES:
        depth = render_depth(segmentation.mask_array(structure), matrix, geometry)
        mask = nrrd.read(str(out / f"mask_{structure}.nrrd"))[0][:, :, 0].T
        front = nrrd.read(str(out / f"front_{structure}.nrrd"))[0][:, :, 0].T
        back = nrrd.read(str(out / f"back_{structure}.nrrd"))[0][:, :, 0].T
        assert np.array_equal(mask.astype(bool), depth.mask.numpy()) and mask.any()
        np.testing.assert_allclose(front, depth.front_mm.numpy())
        np.testing.assert_allclose(back, depth.back_mm.numpy())
        assert np.all(front[mask == 0] == 0) and np.all(back[mask == 1] > front[mask == 1])


def test_landmarks_are_projected_with_visibility(rendered):
    out, femur_centre = rendered
    geometry = ProjectionGeometry.load(out / "geometry.json")
    labels, points = read_markups_json(out / "landmarks.mrk.json")
    assert labels == ["femur centre", "far away"]
    uv, _ = geometry.project(femur_centre[None])
    np.testing.assert_allclose(points[0], geometry.pixel_center_ras(uv[0, 0], uv[0, 1]), atol=1e-6)
    assert np.isnan(points[1]).all(), "a landmark off the detector is left undefined"
    document = json.loads((out / "landmarks.mrk.json").read_text())
    assert document["markups"][0]["coordinateSystem"] == "LPS"


@pytest.mark.parametrize("args, message", [
    (["--source-to-isocenter-mm", "100", "--source-to-detector-mm", "1000"], "inside the CT"),
    (["--structures", "femur_middle"], "not in the labels"),
    (["--geometry", "oblique"], "unknown geometry preset"),
])
def test_bad_render_input_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    result = run_xrecon("render", "--case", "abdomen-pelvis", "--out", out, *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_detector_facing_away_is_refused(tmp_path):
    ct = read_ct(sample_case("abdomen-pelvis").ct_path)
    run = run_xrecon("render", "--case", "abdomen-pelvis", "--out", tmp_path / "ok", "--detector-size-px", "8", "8")
    assert run.returncode == 0, run.stderr
    geometry = ProjectionGeometry.load(tmp_path / "ok" / "geometry.json")
    flipped = dict(geometry.to_dict())
    flipped["detector_origin_ras_mm"] = (2 * geometry.source_ras_mm - geometry.detector_origin_ras_mm).tolist()
    (tmp_path / "away.json").write_text(json.dumps(flipped))
    result = run_xrecon("render", "--case", "abdomen-pelvis", "--geometry", tmp_path / "away.json",
                        "--out", tmp_path / "away")
    assert result.returncode == 2 and "faces away" in result.stderr
    assert not (tmp_path / "away").exists()
    del ct


def test_physics_options_change_the_drr(tmp_path):
    common = ["--case", "abdomen-pelvis", "--detector-size-px", "48", "48", "--pixel-spacing-mm", "8", "8"]
    images = {}
    for name, extra in {"default": [], "two-material 60 kVp": ["--attenuation", "two-material", "--kvp", "60"],
                        "bone only": ["--structures", "femur_left,femur_right", "--bone-only"]}.items():
        result = run_xrecon("render", *common, *extra, "--out", tmp_path / name.replace(" ", "_"))
        assert result.returncode == 0, result.stderr
        images[name] = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name.replace(" ", "_") / "drr.nrrd")))[0]
    assert images["two-material 60 kVp"].max() > images["default"].max() * 1.05  # 24 keV: bone attenuates more
    bone = images["bone only"]
    assert (bone == 0).mean() > 0.7 and bone.max() > 0 and np.all(bone <= images["default"] + 1e-4)


@pytest.mark.slow
def test_bench_drr_runs_and_reports_accuracy():
    result = run_xrecon("bench", "drr", "--size", "48", "--repeats", "1", "--batch", "2", "--reference-pixels", "40")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("xrecon")]
    assert len(lines) == 2 and "DRR/s" in lines[1]
    for line in lines:  # every-slice and default renderers
        assert float(line.split("NCC ")[1].split(",")[0]) >= 0.999
