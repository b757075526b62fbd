"""The headless picture of a QA scene: what Slicer's 3D view shows, drawn from the scene's nodes."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
vtk = pytest.importorskip("vtk")
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy  # noqa: E402

from SingleImageReconLib import scene as qa_scene  # noqa: E402
from SingleImageReconLib.scene_picture import save_scene_picture  # noqa: E402
from SyntheticDataGenLib.projection.geometry import preset_geometry  # noqa: E402


def _sphere(centre, radius_mm: float, distance_mm: float) -> "vtk.vtkPolyData":
    source = vtk.vtkSphereSource()
    source.SetCenter(*centre)
    source.SetRadius(radius_mm)
    source.SetThetaResolution(32)
    source.SetPhiResolution(32)
    source.Update()
    surface = vtk.vtkPolyData()
    surface.DeepCopy(source.GetOutput())
    values = np.full(surface.GetNumberOfPoints(), distance_mm, np.float32)
    array = numpy_to_vtk(values, deep=True)
    array.SetName(qa_scene.DISTANCE_ARRAY)
    surface.GetPointData().AddArray(array)
    return surface


def _read_png(path) -> np.ndarray:
    reader = vtk.vtkPNGReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    width, height, _ = image.GetDimensions()
    return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[..., :3].astype(int)


def _share(pixels: np.ndarray, rgb, tolerance: int = 40) -> float:
    return float((np.abs(pixels - np.asarray(rgb)).max(axis=-1) < tolerance).mean())


def test_models_show_their_distance_colours_and_only_the_chosen_method(tmp_path):
    geometry = preset_geometry("ap", isocenter_ras_mm=(0.0, 0.0, 0.0), size_px=(64, 64), pixel_spacing_mm=(6.0, 6.0))
    image = np.linspace(0.0, 1.0, 64 * 64).reshape(64, 64)
    bundle = tmp_path / "scene.mrb"
    qa_scene.build_qa_scene(bundle, radiographs=[("Radiograph", image, geometry)],
                            models={"depth bone": _sphere((0, 0, 0), 40.0, +5.0),   # all outside: red
                                    "ssm bone": _sphere((0, 0, 0), 45.0, -5.0)},    # all inside: blue
                            truth_masks=None, truth_ijk_to_ras=None)
    scene = qa_scene.read_scene_bundle(bundle)
    try:
        red = _read_png(save_scene_picture(scene, tmp_path / "depth.png", models="depth ", size_px=(400, 300)))
        blue = _read_png(save_scene_picture(scene, tmp_path / "ssm.png", models="ssm ", size_px=(400, 300)))
    finally:
        qa_scene.close_scene(scene)
    dark_red, dark_blue = (181, 5, 38), (59, 76, 191)  # the ends of the distance colour node
    assert _share(red, dark_red) > 0.05 and _share(blue, dark_blue) > 0.05
    # the other method's sphere is larger and would cover this one: it is left out
    assert _share(red, dark_blue) < _share(blue, dark_blue) / 5
