"""``xrecon reconstruct`` and ``xrecon evaluate``: the files they write, and how they refuse bad input.

The bundled network is weak, so nothing here asserts accuracy: only that the pipeline runs end
to end, that its files are what DESIGN.md promises and Slicer reads, and that bad input ends
in one line on stderr (exit status 2) before anything is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from PIL import Image
from vtk.util import numpy_support

from conftest import run_xrecon, xrecon_in_process
from SingleImageReconLib.networks.inference import fit_to_network
from SingleImageReconLib.meshes.mesh_io import read_model
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry, preset_geometry, rotate_detector

STRUCTURES = ["vertebrae_L3", "femur_left"]
METRIC_KEYS = ("assd_mm", "hd95_mm", "chamfer_mm", "dice", "f1", "f1_tau_mm")



def boundary_edges(surface) -> int:
    """Edges with a triangle on one side only: 0 for a closed surface."""
    edges = vtk.vtkFeatureEdges()
    edges.SetInputData(surface)
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOff()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    return edges.GetOutput().GetNumberOfCells()


def read_plain_vtk(path: Path):
    """A legacy .vtk file read as any VTK program would (no Slicer conventions applied)."""
    reader = vtk.vtkPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    assert reader.GetErrorCode() == 0, path
    return reader.GetOutput(), reader.GetHeader()


def point_arrays(surface) -> dict[str, np.ndarray]:
    data = surface.GetPointData()
    return {data.GetArrayName(i): numpy_support.vtk_to_numpy(data.GetArray(i)) for i in range(data.GetNumberOfArrays())}


def detector_corners_ras(geometry: ProjectionGeometry) -> np.ndarray:
    """RAS of the detector's four outer corners (pixel edges, not centres)."""
    return np.array([geometry.pixel_center_ras(u, v) for u in (-0.5, geometry.width - 0.5)
                     for v in (-0.5, geometry.height - 0.5)])


# ----------------------------------------------------------------------------------------------
# End to end on the bundled sample case


@pytest.fixture(scope="module")
def reconstructed(tmp_path_factory):
    """render -> reconstruct of the sample case, with the real command."""
    root = tmp_path_factory.mktemp("e2e")
    render = run_xrecon("render", "--case", "abdomen-pelvis", "--structures", ",".join(STRUCTURES),
                        "--out", root / "R")
    assert render.returncode == 0, render.stderr
    result = run_xrecon("reconstruct", "--image", root / "R" / "drr.nrrd", "--geometry", root / "R" / "geometry.json",
                        "--structures", ",".join(STRUCTURES), "--out", root / "REC")
    return root, result


@pytest.mark.slow
def test_reconstruct_writes_closed_lps_surfaces_named_in_its_summary(reconstructed):
    root, result = reconstructed
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    rec = root / "REC"
    summary = json.loads((rec / "reconstruction.json").read_text())
    assert summary["method"] == "depth" and len(summary["views"]) == 1
    assert set(summary["structures"]) == set(STRUCTURES)
    # what the bundled model does not find is listed, not written (it misses femurs: issue 10)
    assert set(summary["found"]) | set(summary["not_found"]) == set(STRUCTURES) and summary["found"]
    for name in summary["not_found"]:
        assert summary["structures"][name]["file"] is None and not (rec / f"{name}.vtk").exists()
    for name in summary["found"]:
        entry = summary["structures"][name]
        assert entry["file"] == f"{name}.vtk" and entry["views_used"] == [1]
        surface, header = read_plain_vtk(rec / entry["file"])
        assert "SPACE=LPS" in header
        assert surface.GetNumberOfPoints() > 100 and surface.GetNumberOfPolys() > 100
        assert boundary_edges(surface) == 0, f"{name} is not closed"
        arrays = point_arrays(surface)
        assert {"view", "constraint"} <= set(arrays), arrays.keys()
        assert all(len(values) == surface.GetNumberOfPoints() for values in arrays.values())
        # view -1: no view saw the point (the femur runs off the detector's lower edge)
        assert set(np.unique(arrays["view"])) <= {-1, 0} and 0 in arrays["view"]
        assert set(np.unique(arrays["constraint"])) <= {0, 1, 2}
        # LPS on disk, RAS in memory: x and y turned round
        lps = numpy_support.vtk_to_numpy(surface.GetPoints().GetData())
        ras = numpy_support.vtk_to_numpy(read_model(rec / entry["file"]).GetPoints().GetData())
        np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-4)


@pytest.mark.slow
def test_reconstruct_keeps_the_input_geometry_of_each_view(reconstructed):
    root, _ = reconstructed
    given = ProjectionGeometry.load(root / "R" / "geometry.json")
    assert ProjectionGeometry.load(root / "REC" / "view1" / "geometry.json") == given
    summary = json.loads((root / "REC" / "reconstruction.json").read_text())
    assert ProjectionGeometry.from_dict(summary["views"][0]["geometry"]) == given
    for name in STRUCTURES:
        for kind in ("mask", "front", "back"):
            assert (root / "REC" / "view1" / f"{kind}_{name}.nrrd").is_file()


@pytest.mark.slow
def test_evaluate_writes_design_metrics_and_distance_coloured_models(reconstructed):
    root, _ = reconstructed
    (root / "M").mkdir()  # see test_evaluate_creates_the_folder_of_its_output_file
    result = run_xrecon("evaluate", "--recon", root / "REC", "--case", "abdomen-pelvis",
                        "--out", root / "M" / "metrics.json", "--models", root / "M" / "models")
    assert result.returncode == 0, result.stderr
    document = json.loads((root / "M" / "metrics.json").read_text())
    structures = document["methods"]["depth"]["structures"]
    found = json.loads((root / "REC" / "reconstruction.json").read_text())["found"]
    assert set(structures) == set(found) and found
    for name, metrics in structures.items():
        assert set(METRIC_KEYS) <= set(metrics), metrics.keys()
        for key in METRIC_KEYS:
            assert isinstance(metrics[key], (int, float)) and math.isfinite(metrics[key]), (name, key)
        assert metrics["chamfer_mm"] == pytest.approx(2 * metrics["assd_mm"], rel=1e-9)
        assert metrics["assd_mm"] >= 0 and metrics["hd95_mm"] >= 0
        assert 0 <= metrics["dice"] <= 1 and 0 <= metrics["f1"] <= 1
        assert metrics["f1_tau_mm"] == 2.0
    assert all(math.isfinite(seconds) for seconds in document["timing_s"].values())
    for name in found:
        for file in (f"{name}.vtk", f"{name}_truth.vtk"):
            surface, header = read_plain_vtk(root / "M" / "models" / file)
            assert "SPACE=LPS" in header
            distance = point_arrays(surface).get("distance_mm")
            assert distance is not None, f"{file} has no distance_mm"
            assert len(distance) == surface.GetNumberOfPoints() and np.all(np.isfinite(distance))


def _tiny_reconstruction(folder: Path, offset_mm: float = 0.0) -> Path:
    """A reconstruction folder holding one small sphere as vertebrae_L3 (quick to evaluate),
    at the true L3's centre or ``offset_mm`` to the patient's left of it."""
    from SingleImageReconLib.meshes.mesh_io import write_model
    from SyntheticDataGenLib.cases.sample_data import sample_case

    case = sample_case("abdomen-pelvis")
    label = next(int(line.split(",")[0]) for line in case.table_path.read_text().splitlines()
                 if line.endswith(",vertebrae_L3"))
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.Execute(sitk.ReadImage(str(case.labels_path)))
    centre_lps = shapes.GetCentroid(label)
    sphere = vtk.vtkSphereSource()
    sphere.SetCenter(-centre_lps[0] + offset_mm, -centre_lps[1], centre_lps[2])
    sphere.SetRadius(10.0)
    sphere.Update()
    folder.mkdir()
    write_model(folder / "vertebrae_L3.vtk", sphere.GetOutput())
    (folder / "reconstruction.json").write_text(json.dumps(
        {"method": "depth", "structures": {"vertebrae_L3": {"file": "vertebrae_L3.vtk"}}}))
    return folder


def test_evaluate_of_a_small_reconstruction_writes_metrics(tmp_path, capfd):
    recon = _tiny_reconstruction(tmp_path / "REC")
    status, _, err = xrecon_in_process(capfd, "evaluate", "--recon", recon, "--case", "abdomen-pelvis",
                                       "--out", tmp_path / "metrics.json")
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())["methods"]["depth"]["structures"]["vertebrae_L3"]
    assert metrics["chamfer_mm"] == pytest.approx(2 * metrics["assd_mm"])


def test_evaluate_warns_when_reconstruction_and_labels_are_far_apart(tmp_path, capfd):
    recon = _tiny_reconstruction(tmp_path / "REC", offset_mm=400.0)  # as if of another patient
    status, _, err = xrecon_in_process(capfd, "evaluate", "--recon", recon, "--case", "abdomen-pelvis",
                                       "--out", tmp_path / "metrics.json")
    assert status == 0 and "vertebrae_L3 do not overlap the labels at all" in err and "same patient" in err
    near = _tiny_reconstruction(tmp_path / "NEAR")
    status, _, err = xrecon_in_process(capfd, "evaluate", "--recon", near, "--case", "abdomen-pelvis",
                                       "--out", tmp_path / "near.json")
    assert status == 0 and "warning" not in err


def test_evaluate_creates_the_folder_of_its_output_file(tmp_path, capfd):
    recon = _tiny_reconstruction(tmp_path / "REC")
    status, _, err = xrecon_in_process(capfd, "evaluate", "--recon", recon, "--case", "abdomen-pelvis",
                                       "--out", tmp_path / "M" / "metrics.json", "--models", tmp_path / "M" / "models")
    assert status == 0, err
    assert (tmp_path / "M" / "metrics.json").is_file()


# ----------------------------------------------------------------------------------------------
# Bad input


def _write_png(path: Path, width: int, height: int, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _write_image(path: Path, array: np.ndarray) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def _bad_inputs(tmp_path: Path) -> list[tuple[str, list, list[str]]]:
    """(what, xrecon reconstruct arguments before --out, words the error line must hold)."""
    rng = np.random.default_rng(0)
    geometry_256 = tmp_path / "geometry_256.json"
    preset_geometry("ap", size_px=(256, 256)).save(geometry_256)
    png = _write_png(tmp_path / "radiograph.png", 256, 256)
    png_100x80 = _write_png(tmp_path / "radiograph_100x80.png", 100, 80)
    with_nan = rng.random((256, 256)).astype(np.float32)
    with_nan[100, 120] = np.nan
    nan_nrrd = _write_image(tmp_path / "nan.nrrd", with_nan)
    with_inf = rng.random((256, 256)).astype(np.float32)
    with_inf[10, 20] = np.inf
    inf_mha = _write_image(tmp_path / "inf.mha", with_inf)
    blank = _write_image(tmp_path / "blank.nrrd", np.full((256, 256), 7.0, np.float32))
    volume = _write_image(tmp_path / "volume.nrrd", rng.random((5, 256, 256)).astype(np.float32))
    good_nrrd = _write_image(tmp_path / "good.nrrd", np.add.outer(np.arange(256.0), np.arange(256.0)).astype(np.float32))
    return [
        ("PNG without geometry", ["--image", png], ["no projection geometry", "radiograph.png"]),
        ("preset without pixel spacing", ["--image", png, "--geometry", "ap"], ["--pixel-spacing-mm"]),
        ("image and detector sizes differ", ["--image", png_100x80, "--geometry", geometry_256],
         ["100x80", "256x256"]),
        ("NaN in a NRRD", ["--image", nan_nrrd, "--geometry", geometry_256], ["NaN"]),
        ("infinity in an MHA", ["--image", inf_mha, "--geometry", geometry_256], ["infinite"]),
        ("blank image", ["--image", blank, "--geometry", geometry_256], ["blank"]),
        ("3D volume of several slices", ["--image", volume, "--geometry", geometry_256], ["2D", "(5, 256, 256)"]),
        ("missing file", ["--image", tmp_path / "nope.nrrd", "--geometry", geometry_256], ["not found", "nope.nrrd"]),
        ("geometry count differs from image count",
         ["--image", good_nrrd, good_nrrd, "--geometry", geometry_256, geometry_256, geometry_256],
         ["--geometry", "2 images", "not 3"]),
        ("geometry neither preset nor file", ["--image", good_nrrd, "--geometry", tmp_path / "nope.json"],
         ["neither a preset", "nor a file"]),
        ("unknown structure", ["--image", good_nrrd, "--geometry", geometry_256, "--structures", "femur_left,skull"],
         ["skull", "not in the bundle"]),
    ]


def test_each_bad_input_gives_one_line_exit_2_and_no_output(tmp_path, capfd):
    for what, args, words in _bad_inputs(tmp_path):
        out = tmp_path / f"out_{what.replace(' ', '_')}"
        status, stdout, stderr = xrecon_in_process(capfd, "reconstruct", *args, "--out", out)
        assert status == 2, f"{what}: exit {status}, stderr {stderr!r}"
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, f"{what}: {stderr!r}"
        assert lines[0].startswith("xrecon reconstruct: error: "), f"{what}: {lines[0]!r}"
        for word in words:
            assert word in lines[0], f"{what}: {word!r} not in {lines[0]!r}"
        assert stdout == "", what
        assert not out.exists(), f"{what}: {out} was created"
    assert not list(tmp_path.glob(".*partial*")), "staging folders left behind"


def test_bad_input_through_the_real_command_has_no_traceback(tmp_path):
    png = _write_png(tmp_path / "radiograph.png", 256, 256)
    result = run_xrecon("reconstruct", "--image", png, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no projection geometry" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_nan_in_a_nifti_radiograph_is_refused(tmp_path, capfd):
    image = np.random.default_rng(0).random((256, 256)).astype(np.float32)
    image[100, 120] = np.nan
    path = _write_image(tmp_path / "nan.nii.gz", image)
    from SingleImageReconLib.radiographs.radiograph_io import read_radiograph
    from SyntheticDataGenLib.errors import XreconInputError

    with pytest.raises(XreconInputError, match="NaN"):
        read_radiograph(path)


# ----------------------------------------------------------------------------------------------
# Radiographs of another size than the network's


@pytest.mark.parametrize("size, spacing", [((512, 512), (0.8, 0.8)), ((100, 80), (2.0, 2.5)),
                                           ((512, 384), (0.5, 0.7))])
def test_fit_to_network_keeps_the_detector_outer_edges(size, spacing):
    geometry = rotate_detector(preset_geometry("ap", isocenter_ras_mm=(10, 20, 30), size_px=size,
                                               pixel_spacing_mm=spacing, lao_deg=20.0), 15.0)
    width, height = size
    ramp_u = np.tile(np.arange(width, dtype=np.float32), (height, 1))  # each pixel holds its own u
    image, fitted = fit_to_network(ramp_u, geometry, (256, 256))
    assert image.shape == (256, 256) and fitted.size_px == (256, 256)
    np.testing.assert_allclose(detector_corners_ras(fitted), detector_corners_ras(geometry), atol=1e-9)
    np.testing.assert_allclose(fitted.pixel_spacing_mm, np.asarray(spacing) * np.array(size) / 256)
    assert fitted.source_ras_mm.tolist() == geometry.source_ras_mm.tolist()
    np.testing.assert_allclose(fitted.detector_center_ras_mm, geometry.detector_center_ras_mm, atol=1e-9)
    # the image moved with its geometry: a new pixel holds the old u of its own centre
    new_u = np.arange(256)
    old_u_of_new_centre = (new_u + 0.5) * width / 256 - 0.5
    interior = (old_u_of_new_centre > 1) & (old_u_of_new_centre < width - 2)
    np.testing.assert_allclose(image[128, interior], old_u_of_new_centre[interior], atol=0.5)
    # and one of the network's size is left alone
    same, same_geometry = fit_to_network(image, fitted, (256, 256))
    assert same is image and same_geometry is fitted


@pytest.mark.slow
def test_a_512px_png_with_a_preset_geometry_is_reconstructed(tmp_path, capfd):
    """A picture of twice the network's pixel count: resampled to 256 × 256 over the same detector."""
    status, _, err = xrecon_in_process(capfd, "render", "--case", "abdomen-pelvis", "--structures", "femur_left",
                                       "--detector-size-px", "512", "512", "--pixel-spacing-mm", "0.8", "0.8",
                                       "--out", tmp_path / "R")
    assert status == 0, err
    rendered = ProjectionGeometry.load(tmp_path / "R" / "geometry.json")
    isocenter = rendered.source_ras_mm + 900.0 * rendered.beam_direction_ras
    drr = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "R" / "drr.nrrd"))).squeeze()
    assert drr.shape == (512, 512)
    png = tmp_path / "radiograph.png"
    Image.fromarray(np.round(255 * (drr - drr.min()) / np.ptp(drr)).astype(np.uint8)).save(png)
    status, stdout, err = xrecon_in_process(capfd, "reconstruct", "--image", png, "--geometry", "ap",
                                            "--pixel-spacing-mm", "0.8", "0.8",
                                            "--isocenter", *isocenter.round(6), "--structures", "femur_left",
                                            "--out", tmp_path / "REC")
    assert status == 0, err
    assert "wrote" in stdout
    summary = json.loads((tmp_path / "REC" / "reconstruction.json").read_text())
    assert "femur_left" in summary["structures"]
    network_view = ProjectionGeometry.load(tmp_path / "REC" / "view1" / "geometry.json")
    assert network_view.size_px == (256, 256)
    np.testing.assert_allclose(network_view.pixel_spacing_mm, [1.6, 1.6])
    np.testing.assert_allclose(detector_corners_ras(network_view), detector_corners_ras(rendered), atol=1e-3)
