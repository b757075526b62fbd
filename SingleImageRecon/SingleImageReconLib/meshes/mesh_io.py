"""Surface model files as 3D Slicer reads and writes them.

In memory a surface is in RAS mm. Slicer's model files are LPS unless they say otherwise:
a legacy ``.vtk`` file states it in its header line (``3D Slicer output. SPACE=LPS``), ``.vtp``
in a field-data string array ``SPACE``, ``.stl`` in its header, ``.ply`` and ``.obj`` in a
comment; a file that says nothing is LPS. This module does what ``vtkMRMLModelStorageNode``
does, so that files move between Slicer and ``xrecon`` without a mirror image.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vtkmodules.vtkCommonCore import vtkCommand, vtkStringArray
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersGeneral import vtkTransformPolyDataFilter
from vtkmodules.vtkIOGeometry import vtkOBJReader, vtkSTLReader
from vtkmodules.vtkIOLegacy import vtkPolyDataReader, vtkPolyDataWriter
from vtkmodules.vtkIOPLY import vtkPLYReader
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

from SyntheticDataGenLib.atomic_io import atomic_path
from SyntheticDataGenLib.errors import XreconInputError

SLICER_HEADER = "3D Slicer output. SPACE=LPS"
READABLE_SUFFIXES = (".vtk", ".vtp", ".stl", ".ply", ".obj")
# Legacy file version 4.2, as Slicer writes it: 5.1 (VTK's default since 9.1) cannot be read by
# Slicer versions built on VTK < 9 nor by most other software.
_LEGACY_FILE_VERSION = 42


def _flip_ras_lps(surface: vtkPolyData) -> vtkPolyData:
    """The surface with x and y negated (RAS <-> LPS), as Slicer converts models.

    The map is a rotation by 180° about z (determinant +1), so triangles keep their order and
    the active normals and vectors are rotated with the points; texture coordinates survive.
    """
    flip = vtkTransform()
    flip.Scale(-1.0, -1.0, 1.0)
    transform = vtkTransformPolyDataFilter()
    transform.SetTransform(flip)
    transform.SetInputData(surface)
    transform.Update()
    result = vtkPolyData()
    result.ShallowCopy(transform.GetOutput())
    return result


class _ErrorCatcher:
    """Collects what a VTK object reports as errors, instead of letting it print them."""

    def __init__(self, *objects) -> None:
        self.messages: list[str] = []
        for vtk_object in objects:
            vtk_object.AddObserver(vtkCommand.ErrorEvent, self._on_error)
            vtk_object.AddObserver(vtkCommand.WarningEvent, lambda *_: None)

    def _on_error(self, _caller, _event, message: str | None = None) -> None:
        self.messages.append(" ".join(str(message or "unknown VTK error").split()))

    _on_error.CallDataType = "string0"  # VTK passes the message text as call data

    @property
    def first(self) -> str:
        """The first message without VTK's "ERROR: In file.cxx, line N Class (0x...):" and file name."""
        if not self.messages:
            return ""
        match = re.search(r"\(0x[0-9a-fA-F]+\):\s*(.*)", self.messages[0])
        reason = match.group(1) if match else self.messages[0]
        return re.sub(r"\s*for file:.*$", "", reason) or "unknown VTK error"


def write_model(path: str | os.PathLike, surface_ras: vtkPolyData) -> None:
    """Write a surface as Slicer writes a model: legacy binary ``.vtk`` in LPS, header
    ``3D Slicer output. SPACE=LPS``, point and cell data arrays kept (normals rotated).

    The file appears at once or not at all (temporary file in the same folder, then rename).

    Args:
        path: the ``.vtk`` file to write.
        surface_ras: the surface in RAS mm.

    Raises:
        XreconInputError: the file cannot be written there.
        ValueError: the name does not end in ``.vtk``, or the surface has no points.
    """
    path = Path(path)
    if path.suffix.lower() != ".vtk":
        raise ValueError(f"model file name must end in .vtk: {path}")
    if surface_ras is None or surface_ras.GetNumberOfPoints() == 0:
        raise ValueError(f"refusing to write an empty surface to {path}")
    writer = vtkPolyDataWriter()
    writer.SetInputData(_flip_ras_lps(surface_ras))
    writer.SetFileVersion(_LEGACY_FILE_VERSION)
    writer.SetFileTypeToBinary()
    writer.SetHeader(SLICER_HEADER)
    errors = _ErrorCatcher(writer)
    with atomic_path(path, "model") as temporary:
        writer.SetFileName(str(temporary))
        if not writer.Write() or errors.messages:
            raise OSError(errors.first or "VTK could not write the file")


def _space_from_text(text: str | None) -> str | None:
    """"RAS" or "LPS" when the text says ``SPACE=RAS`` or ``SPACE=LPS``, else None."""
    for space in ("RAS", "LPS"):
        if text and f"SPACE={space}" in text:
            return space
    return None


def _read_with(reader, path: Path):
    """Run a reader on a file; VTK's complaints become XreconInputError."""
    errors = _ErrorCatcher(reader, reader.GetExecutive())
    reader.SetFileName(str(path))
    reader.Update()
    if errors.messages:
        raise XreconInputError(f"cannot read model {path}: {errors.first}")
    return reader.GetOutput()


def read_model(path: str | os.PathLike) -> vtkPolyData:
    """Read a surface model file into RAS mm, as Slicer would load it.

    Reads legacy ``.vtk`` polydata, ``.vtp``, ``.stl``, ``.ply`` and ``.obj``. The coordinate
    system is the one the file states (see the module docstring), LPS when it states none.
    Legacy ``.vtk`` files keep every point and cell data array.

    Raises:
        XreconInputError: the file is missing, of another kind, unreadable or holds no surface.
    """
    path = Path(path)
    if not path.is_file():
        raise XreconInputError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    space = None
    if suffix == ".vtk":
        reader = vtkPolyDataReader()
        reader.SetFileName(str(path))
        complaints = _ErrorCatcher(reader)
        if not reader.IsFilePolyData():
            reason = f" ({complaints.first})" if complaints.messages else ""
            raise XreconInputError(f"model file {path} is not a VTK polydata file{reason}")
        for read_all in (reader.ReadAllScalarsOn, reader.ReadAllVectorsOn, reader.ReadAllNormalsOn,
                         reader.ReadAllTensorsOn, reader.ReadAllColorScalarsOn, reader.ReadAllTCoordsOn,
                         reader.ReadAllFieldsOn):
            read_all()
        surface = _read_with(reader, path)
        space = _space_from_text(reader.GetHeader())
    elif suffix == ".vtp":
        reader = vtkXMLPolyDataReader()
        if not reader.CanReadFile(str(path)):
            raise XreconInputError(f"model file {path} is not a VTK XML polydata file")
        surface = _read_with(reader, path)
        field = surface.GetFieldData().GetAbstractArray("SPACE")
        if isinstance(field, vtkStringArray) and field.GetNumberOfValues() > 0:
            space = _space_from_text(f"SPACE={field.GetValue(0)}")
            surface.GetFieldData().RemoveArray("SPACE")  # as Slicer: it would clash when written again
    elif suffix == ".stl":
        reader = vtkSTLReader()
        surface = _read_with(reader, path)
        space = _space_from_text(reader.GetHeader())
    elif suffix == ".ply":
        reader = vtkPLYReader()
        surface = _read_with(reader, path)
        comments = reader.GetComments()
        for index in range(comments.GetNumberOfValues()):
            space = space or _space_from_text(comments.GetValue(index))
    elif suffix == ".obj":
        reader = vtkOBJReader()
        surface = _read_with(reader, path)
        space = _space_from_text(reader.GetComment())
    else:
        raise XreconInputError(
            f"model file {path} has an unknown extension; readable: {', '.join(READABLE_SUFFIXES)}")
    if surface is None or surface.GetNumberOfPoints() == 0 or surface.GetNumberOfCells() == 0:
        raise XreconInputError(f"model file {path} holds no surface (no points or no cells)")
    if space == "RAS":
        result = vtkPolyData()
        result.ShallowCopy(surface)
        return result
    return _flip_ras_lps(surface)
