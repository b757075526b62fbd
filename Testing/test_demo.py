"""``xrecon demo`` end to end: every file it promises exists and is read back by independent readers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from PIL import Image
from vtk.util import numpy_support

from conftest import run_xrecon
from SyntheticDataGenLib.cases.sample_data import resources_dir

# the demo adds the shape-model method when the landmark bundle ships
LANDMARK_BUNDLE = resources_dir() / "Models" / "xrecon-landmarks-ap256" / "configs" / "metadata.json"
METHODS = {"depth", "fusion"} | ({"ssm", "combined"} if LANDMARK_BUNDLE.is_file() else set())

METRIC_KEYS = {"assd_mm", "hd95_mm", "chamfer_mm", "dice", "f1", "f1_tau_mm"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    result = run_xrecon("demo", "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result


@pytest.mark.slow
def test_demo_prints_a_table_and_writes_metrics_in_the_design_schema(demo):
    out, result = demo
    assert "ASSD mm" in result.stdout and "fusion" in result.stdout
    document = json.loads((out / "metrics.json").read_text())
    assert set(document["methods"]) == METHODS
    for name, method in document["methods"].items():
        if not method["structures"]:
            assert name == "ssm", f"{name}: no structure evaluated"  # a weak landmark model may fit no bone
            assert document["not_found"]["ssm"], "ssm fitted nothing and listed nothing as not found"
            continue
        for metrics in method["structures"].values():
            assert METRIC_KEYS <= set(metrics)
            assert all(math.isfinite(metrics[key]) for key in METRIC_KEYS)
            assert metrics["chamfer_mm"] == pytest.approx(2 * metrics["assd_mm"])
            assert 0 <= metrics["dice"] <= 1 and 0 <= metrics["f1"] <= 1
        assert method["mean"]["structures"] == len(method["structures"])
        assert method["mean"]["assd_mm"] == pytest.approx(
            sum(m["assd_mm"] for m in method["structures"].values()) / len(method["structures"]))
    assert {"render", "reconstruct_depth", "evaluate_depth", "total"} <= set(document["timing_s"])


@pytest.mark.slow
def test_demo_writes_an_overview_figure(demo):
    out, _ = demo
    with Image.open(out / "overview.png") as image:
        assert image.size == (1800, 1000)
        colours = len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0))
    assert colours > 500


@pytest.mark.slow
def test_demo_models_are_slicer_files_coloured_by_distance(demo):
    out, _ = demo
    names = json.loads((out / "metrics.json").read_text())["methods"]["depth"]["structures"]
    for folder in ("depth", "fusion", "truth"):
        files = sorted((out / folder).glob("*.vtk"))
        assert files, folder
        for path in files:
            assert "SPACE=LPS" in path.read_bytes()[:200].decode("latin-1")
            reader = vtk.vtkPolyDataReader()
            reader.SetFileName(str(path))
            reader.Update()
            distances = reader.GetOutput().GetPointData().GetArray("distance_mm")
            assert distances is not None and np.isfinite(numpy_support.vtk_to_numpy(distances)).all()
    assert {p.stem for p in (out / "depth").glob("*.vtk")} == set(names)


@pytest.mark.slow
def test_demo_radiographs_lie_on_their_detectors(demo):
    out, _ = demo
    from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

    for index in (1, 2, 3):
        geometry = ProjectionGeometry.load(out / f"geometry_view{index}.json")
        image = sitk.ReadImage(str(out / f"radiograph_view{index}.nrrd"))
        assert image.GetSize() == (geometry.width, geometry.height, 1)
        centre_lps = image.TransformContinuousIndexToPhysicalPoint(((geometry.width - 1) / 2, (geometry.height - 1) / 2, 0))
        np.testing.assert_allclose(np.array(centre_lps) * [-1, -1, 1], geometry.detector_center_ras_mm, atol=1e-3)
    markups = json.loads((out / "landmarks_ct.mrk.json").read_text())
    assert markups["markups"][0]["controlPoints"]


@pytest.mark.slow
def test_demo_scene_bundle_opens_in_slicer_mrml(demo):
    slicer = pytest.importorskip("slicer")
    from SingleImageReconLib.scene import close_scene, read_scene_bundle

    out, _ = demo
    scene = read_scene_bundle(out / "scene.mrb")
    try:
        assert scene.GetNumberOfNodesByClass("vtkMRMLModelNode") >= 2
        assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1
        assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 1
        assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") >= 4  # CT + three radiographs
        table = scene.GetFirstNodeByClass("vtkMRMLTableNode")
        assert table.GetNumberOfRows() >= 2
        model = next(scene.GetNthNodeByClass(i, "vtkMRMLModelNode") for i in range(scene.GetNumberOfNodesByClass(
            "vtkMRMLModelNode")) if scene.GetNthNodeByClass(i, "vtkMRMLModelNode").GetName().startswith("depth"))
        assert model.GetPolyData().GetPointData().GetArray("distance_mm") is not None
        assert isinstance(model, slicer.vtkMRMLModelNode)
    finally:
        close_scene(scene)
    picture = sitk.ReadImage(str(out / "scene.png"))  # the 3D view as a picture, read by another reader
    assert picture.GetSize() == (1200, 900)
    pixels = sitk.GetArrayViewFromImage(picture)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 1000, "an empty or flat picture"
