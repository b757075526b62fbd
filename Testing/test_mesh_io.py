"""Model files: written as Slicer writes them (LPS on disk, RAS in memory), read from Slicer's formats."""

from pathlib import Path

import numpy as np
import pytest
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersSources import vtkSphereSource
from vtkmodules.vtkIOGeometry import vtkSTLWriter
from vtkmodules.vtkIOLegacy import vtkPolyDataReader, vtkPolyDataWriter
from vtkmodules.vtkIOPLY import vtkPLYWriter
from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

from SingleImageReconLib.meshes.mesh_io import read_model, write_model
from SyntheticDataGenLib.errors import XreconInputError

CENTRE_RAS = (10.0, -20.0, 30.0)


def _points(surface: vtkPolyData) -> np.ndarray:
    return vtk_to_numpy(surface.GetPoints().GetData()).astype(np.float64)


@pytest.fixture
def surface() -> vtkPolyData:
    """An off-centre sphere (RAS) with outward normals and a scalar array to carry along."""
    source = vtkSphereSource()
    source.SetCenter(*CENTRE_RAS)
    source.SetRadius(5.0)
    source.SetThetaResolution(12)
    source.SetPhiResolution(8)
    source.Update()
    result = vtkPolyData()
    result.DeepCopy(source.GetOutput())
    distance = numpy_to_vtk(np.linspace(-1.0, 1.0, result.GetNumberOfPoints()), deep=True)
    distance.SetName("Distance")
    result.GetPointData().AddArray(distance)
    return result


def test_round_trip_keeps_ras_points_normals_and_arrays(tmp_path, surface):
    path = tmp_path / "femur.vtk"
    write_model(path, surface)
    back = read_model(path)
    np.testing.assert_allclose(_points(back), _points(surface), atol=1e-5)
    assert back.GetNumberOfCells() == surface.GetNumberOfCells()
    np.testing.assert_allclose(vtk_to_numpy(back.GetPointData().GetArray("Distance")),
                               vtk_to_numpy(surface.GetPointData().GetArray("Distance")))
    normals = vtk_to_numpy(back.GetPointData().GetNormals())
    np.testing.assert_allclose(normals, vtk_to_numpy(surface.GetPointData().GetNormals()), atol=1e-6)
    outward = np.einsum("ij,ij->i", normals, _points(back) - CENTRE_RAS)
    assert np.all(outward > 0)
    assert [p.name for p in tmp_path.iterdir()] == ["femur.vtk"]  # no temporary file left behind


def test_file_is_lps_with_slicer_header(tmp_path, surface):
    path = tmp_path / "femur.vtk"
    write_model(path, surface)
    assert path.read_bytes().split(b"\n")[:2] == [b"# vtk DataFile Version 4.2", b"3D Slicer output. SPACE=LPS"]
    plain = vtkPolyDataReader()  # no coordinate conversion: sees what is on disk
    plain.SetFileName(str(path))
    plain.Update()
    on_disk = _points(plain.GetOutput())
    np.testing.assert_allclose(on_disk, _points(surface) * [-1, -1, 1], atol=1e-5)
    normals_on_disk = vtk_to_numpy(plain.GetOutput().GetPointData().GetNormals())
    np.testing.assert_allclose(normals_on_disk, vtk_to_numpy(surface.GetPointData().GetNormals()) * [-1, -1, 1],
                               atol=1e-6)


def _write_plain(path: Path, surface: vtkPolyData, header: str | None = None) -> None:
    """Write a file with VTK's own writers, points as given (no conversion)."""
    suffix = path.suffix
    writer = {".vtk": vtkPolyDataWriter, ".vtp": vtkXMLPolyDataWriter, ".stl": vtkSTLWriter,
              ".ply": vtkPLYWriter}[suffix]()
    writer.SetInputData(surface)
    writer.SetFileName(str(path))
    if header is not None:
        if suffix == ".ply":
            writer.AddComment(header)
        else:
            writer.SetHeader(header)
    assert writer.Write()


@pytest.mark.parametrize("suffix", [".vtk", ".stl", ".ply"])
def test_stated_space_is_honoured_and_unstated_means_lps(tmp_path, surface, suffix):
    lps = _points(surface) * [-1, -1, 1]
    _write_plain(tmp_path / f"ras{suffix}", surface, "SPACE=RAS")
    _write_plain(tmp_path / f"lps{suffix}", surface, "3D Slicer output. SPACE=LPS")
    _write_plain(tmp_path / f"plain{suffix}", surface)
    for name, expected_ras in (("ras", _points(surface)), ("lps", lps), ("plain", lps)):
        read = read_model(tmp_path / f"{name}{suffix}")
        assert np.allclose(np.sort(_points(read), axis=0), np.sort(expected_ras, axis=0), atol=1e-4), name


def test_reads_slicer_written_files_of_every_kind(tmp_path, surface):
    slicer = pytest.importorskip("slicer")
    scene = slicer.vtkMRMLScene()
    model = scene.AddNewNodeByClass("vtkMRMLModelNode")
    model.SetAndObservePolyData(surface)
    for suffix in (".vtk", ".vtp", ".stl", ".ply"):
        for space in (slicer.vtkMRMLStorageNode.CoordinateSystemLPS, slicer.vtkMRMLStorageNode.CoordinateSystemRAS):
            storage = slicer.vtkMRMLModelStorageNode()
            scene.AddNode(storage)
            storage.SetCoordinateSystem(space)
            path = tmp_path / f"model{space}{suffix}"
            storage.SetFileName(str(path))
            assert storage.WriteData(model)
            read = read_model(path)
            assert np.allclose(np.sort(_points(read), axis=0), np.sort(_points(surface), axis=0), atol=1e-4), path.name


def test_slicer_loads_our_file_in_place(tmp_path, surface):
    slicer = pytest.importorskip("slicer")
    path = tmp_path / "femur.vtk"
    write_model(path, surface)
    scene = slicer.vtkMRMLScene()
    model = scene.AddNewNodeByClass("vtkMRMLModelNode")
    storage = slicer.vtkMRMLModelStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(model)
    np.testing.assert_allclose(_points(model.GetPolyData()), _points(surface), atol=1e-5)


def test_bad_files_raise_one_line_input_errors(tmp_path, surface):
    good = tmp_path / "good.vtk"
    write_model(good, surface)
    data = good.read_bytes()
    (tmp_path / "truncated.vtk").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.vtk").write_text("not a model\n")
    (tmp_path / "text.vtp").write_text("<VTKFile")
    (tmp_path / "empty.stl").write_text("solid empty\nendsolid empty\n")
    (tmp_path / "model.xyz").write_text("1 2 3\n")
    for name in ("missing.vtk", "truncated.vtk", "text.vtk", "text.vtp", "empty.stl", "model.xyz"):
        with pytest.raises(XreconInputError) as error:
            read_model(tmp_path / name)
        assert name in str(error.value) and "\n" not in str(error.value)


def test_write_refuses_other_formats_and_unwritable_places(tmp_path, surface):
    with pytest.raises(ValueError):
        write_model(tmp_path / "femur.stl", surface)
    with pytest.raises(ValueError):
        write_model(tmp_path / "empty.vtk", vtkPolyData())
    with pytest.raises(XreconInputError):
        write_model(tmp_path / "no" / "such" / "folder" / "femur.vtk", surface)
