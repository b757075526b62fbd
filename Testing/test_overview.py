"""The overview PNG: size, content, atomic write, and the camera convention (AP: patient's left on the
image right, head up; nearer triangles drawn over farther ones)."""

import numpy as np
import pytest
import vtk
from PIL import Image
from vtk.util.numpy_support import numpy_to_vtk

from SingleImageReconLib.evaluation.overview import overview_figure, screen_axes
from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.projection.geometry import preset_geometry

AP_BEAM = (0.0, -1.0, 0.0)  # source in front of the patient (+y, anterior), X-rays travel posteriorly


def sphere(centre_ras, radius=25.0, distance_mm=None, resolution=24) -> vtk.vtkPolyData:
    """A triangulated sphere (RAS mm); ``distance_mm``: a constant, 'varying' (by height), or None."""
    source = vtk.vtkSphereSource()
    source.SetCenter(*centre_ras)
    source.SetRadius(radius)
    source.SetThetaResolution(resolution)
    source.SetPhiResolution(resolution)
    source.Update()
    polydata = vtk.vtkPolyData()
    polydata.DeepCopy(source.GetOutput())
    if distance_mm is not None:
        points = np.array([polydata.GetPoint(i) for i in range(polydata.GetNumberOfPoints())])
        values = (points[:, 2] - centre_ras[2]) / radius * 6.0 if distance_mm == "varying" \
            else np.full(len(points), float(distance_mm))
        array = numpy_to_vtk(values.astype(np.float32), deep=True)
        array.SetName("distance_mm")
        polydata.GetPointData().AddArray(array)
    return polydata


def inputs(**changes) -> dict:
    """A synthetic case: radiograph [96, 128], two probability blobs, a coloured and a plain surface."""
    v, u = np.mgrid[0:96, 0:128].astype(float)
    radiograph = 0.3 + 0.4 * np.exp(-((u - 64) ** 2 / 900 + (v - 48) ** 2 / 1600))
    blobs = np.stack([np.exp(-((u - 90) ** 2 + (v - 40) ** 2) / 200),  # patient's left: image right
                      np.exp(-((u - 40) ** 2 + (v - 55) ** 2) / 300)])
    arguments = dict(
        radiograph=radiograph, mask_probabilities=blobs, names=["femur_left", "femur_right"],
        reconstructions={"femur_left": sphere((-50, 0, 0), distance_mm="varying"),
                         "femur_right": sphere((50, 0, 0))},
        truths={"femur_left": sphere((-48, 0, 2), distance_mm="varying"),
                "femur_right": sphere((50, 0, 0), distance_mm=-2.0)},
        beam_direction_ras=np.array(AP_BEAM), title="synthetic case",
        table_rows=[("femur_left", 1.23, 3.4, 0.91), ("femur_right", float("nan"), 2.0, 0.88)])
    arguments.update(changes)
    return arguments


def rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def middle_panel(image: np.ndarray) -> np.ndarray:
    """The reconstruction panel: the middle third of the width (centred on the image centre, the
    layout being symmetric), above the colour bar."""
    height, width, _ = image.shape
    return image[: int(0.8 * height), width // 3: 2 * width // 3]


def centroid(mask: np.ndarray) -> np.ndarray:
    rows, columns = np.nonzero(mask)
    assert len(rows) > 200, "too few pixels of that colour"
    return np.array([rows.mean(), columns.mean()])


def reds(panel):
    return (panel[..., 0] > panel[..., 2] + 40) & (panel[..., 0] > panel[..., 1] + 40)


def blues(panel):
    return panel[..., 2] > panel[..., 0] + 40


def test_writes_a_full_png_with_content_and_no_temporary_file(tmp_path):
    out = tmp_path / "overview.png"
    out.write_bytes(b"old")
    overview_figure(out, **inputs())
    image = Image.open(out)
    assert image.format == "PNG" and image.size == (1800, 1000)
    pixels = rgb(out)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500
    assert reds(middle_panel(pixels)).sum() > 500 and blues(middle_panel(pixels)).sum() > 500
    assert [p.name for p in tmp_path.iterdir()] == ["overview.png"]


def test_ap_view_puts_patient_left_on_image_right_and_head_up():
    right, up, forward = screen_axes(AP_BEAM, (0, 0, 1))
    geometry = preset_geometry("ap")  # the radiograph's own layout: u to the image right, v down
    np.testing.assert_allclose(right, geometry.detector_u_ras, atol=1e-12)
    np.testing.assert_allclose(up, -geometry.detector_v_ras, atol=1e-12)
    np.testing.assert_allclose(forward, geometry.beam_direction_ras, atol=1e-12)


def test_pa_and_lateral_line_up_with_their_radiographs_when_given_the_detector_u():
    for preset in ("pa", "lateral-left", "lateral-right"):
        geometry = preset_geometry(preset)
        right, up, _ = screen_axes(geometry.beam_direction_ras, (0, 0, 1), geometry.detector_u_ras)
        np.testing.assert_allclose(right, geometry.detector_u_ras, atol=1e-12)
        np.testing.assert_allclose(up, -geometry.detector_v_ras, atol=1e-12)
    # from the source of a PA beam (behind the patient), the patient's right is on the screen right
    np.testing.assert_allclose(screen_axes((0, 1, 0))[0], (1, 0, 0), atol=1e-12)


def test_one_coloured_sphere_at_patient_left_lands_in_the_right_half(tmp_path):
    """RAS x < 0 is the patient's left. The truth panel's sphere at the patient's right sets the
    shared framing, so the reconstruction panel shows its only (red) sphere off-centre."""
    out = tmp_path / "left.png"
    overview_figure(out, **inputs(reconstructions={"femur_left": sphere((-60, 0, 0), distance_mm=4.0)},
                                  truths={"femur_right": sphere((60, 0, 0))}, table_rows=None))
    panel = middle_panel(rgb(out))
    row, column = centroid(reds(panel))
    assert column > 0.6 * panel.shape[1]
    assert reds(panel[:, : panel.shape[1] // 2]).sum() == 0
    rows, columns = np.nonzero(reds(panel))  # a whole circle: not cropped, equal aspect
    assert abs(np.ptp(columns) - np.ptp(rows)) <= 0.05 * np.ptp(rows)


def test_a_wide_scene_fits_in_the_panel_unstretched(tmp_path):
    out = tmp_path / "wide.png"
    overview_figure(out, **inputs(reconstructions={"left": sphere((-300, 0, 0), radius=60, distance_mm=4.0),
                                                   "right": sphere((300, 0, 0), radius=60, distance_mm=-4.0)},
                                  truths={}))
    panel = middle_panel(rgb(out))
    for mask in (reds(panel), blues(panel)):
        rows, columns = np.nonzero(mask)
        assert abs(np.ptp(columns) - np.ptp(rows)) <= 0.05 * np.ptp(rows)


def test_left_right_and_head_up_in_one_panel(tmp_path):
    out = tmp_path / "two.png"
    surfaces = {"left_superior": sphere((-60, 0, 40), distance_mm=4.0),
                "right_inferior": sphere((60, 0, -40), distance_mm=-4.0)}
    overview_figure(out, **inputs(reconstructions=surfaces, truths={}))
    panel = middle_panel(rgb(out))
    red, blue = centroid(reds(panel)), centroid(blues(panel))
    assert red[1] > blue[1] + 50  # patient's left to the image right
    assert red[0] < blue[0] - 20  # head up


def test_nearer_surface_hides_the_farther_one(tmp_path):
    """Same screen position: the anterior sphere (nearer the AP source) is painted over the posterior one."""
    out = tmp_path / "depth.png"
    overview_figure(out, **inputs(reconstructions={"posterior": sphere((0, -40, 0), distance_mm=-4.0),
                                                   "anterior": sphere((0, 40, 0), distance_mm=4.0)},
                                  truths={}))
    panel = middle_panel(rgb(out))
    assert reds(panel).sum() > 1000 and blues(panel).sum() < 0.01 * reds(panel).sum()


def test_robust_to_empty_inputs_nans_and_missing_masks(tmp_path):
    nan_surface = sphere((0, 0, 0), distance_mm=1.0)
    values = np.full(nan_surface.GetNumberOfPoints(), np.nan, np.float32)
    values[::3] = 2.0
    array = numpy_to_vtk(values, deep=True)
    array.SetName("distance_mm")
    nan_surface.GetPointData().AddArray(array)  # replaces the constant one
    blobs = inputs()["mask_probabilities"]
    blobs[1] = 0.0  # a structure that was not found
    blobs[0, :3, :3] = np.nan
    radiograph = inputs()["radiograph"]
    radiograph[0, 0] = np.nan
    overview_figure(tmp_path / "nan.png", **inputs(radiograph=radiograph, mask_probabilities=blobs,
                                                   reconstructions={"a": nan_surface}, truths={}))
    overview_figure(tmp_path / "empty.png", **inputs(mask_probabilities=None, names=[],
                                                     reconstructions={}, truths={}, table_rows=[], title=""))
    overview_figure(tmp_path / "no_masks.png", **inputs(mask_probabilities=np.zeros((0, 96, 128)), names=[]))
    for name in ("nan.png", "empty.png", "no_masks.png"):
        assert Image.open(tmp_path / name).size == (1800, 1000)


def test_mismatched_names_are_refused(tmp_path):
    with pytest.raises(XreconInputError, match="mask channels"):
        overview_figure(tmp_path / "x.png", **inputs(names=["only_one"]))
    assert not any(tmp_path.iterdir())
