"""MRML scene for QA: radiographs in place, reconstructed and ground-truth bones, landmarks, metrics.

This is the one module of ``SingleImageReconLib`` that imports ``slicer``, and it needs only the
Qt-free MRML library: the PyPI package ``slicer-core`` outside Slicer, Slicer's own ``slicer``
module inside it. It uses MRML classes only (scene, nodes, storage nodes, module logics), never
``slicer.util`` or Qt, so the same code fills ``slicer.mrmlScene`` in the GUI and writes a
``.mrb`` bundle from the ``xrecon`` command. It also reads nodes back for the Lib (voxels,
SimpleITK images and segment masks on a volume's grid, from ``SyntheticDataGenLib.scene``;
radiograph geometry), so the module file keeps only its GUI.

Everything is in Slicer's RAS world, millimetres. Files inside the bundle are written by Slicer's
own storage nodes (LPS on disk, as Slicer does), so a bundle opens in Slicer with every node in
place: radiographs on their detector planes, the CT and its segmentation on the CT grid,
surfaces coloured by signed distance with one fixed millimetre scale for all of them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from SyntheticDataGenLib import scene as _datagen_scene
from SyntheticDataGenLib.scene import PALETTE

if TYPE_CHECKING:  # pragma: no cover - only for type hints
    import SimpleITK
    import slicer
    import vtk

    from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

DISTANCE_ARRAY = "distance_mm"
#: Node attribute holding a radiograph's projection geometry JSON (:func:`add_radiograph`).
GEOMETRY_ATTRIBUTE = "xrecon.geometry"
#: Columns of the metrics table (``SingleImageReconLib.evaluation.metrics.evaluate_structure``; distances in mm).
TABLE_METRICS = ("assd_mm", "hd95_mm", "chamfer_mm", "dice", "iou", "f1")
# Attribute that marks nodes made here, with the role each plays in a QA scene.
ROLE_ATTRIBUTE = "xrecon.role"
#: Attributes of a reconstructed model: the method that made it and its structure (the Compare switch).
METHOD_ATTRIBUTE = "xrecon.method"
STRUCTURE_ATTRIBUTE = "xrecon.structure"
#: Title of the colour legend of the signed distance colours.
LEGEND_TITLE = "Signed distance to the reference (mm)\n+ outside, - inside"


def available() -> bool:
    """Whether Slicer's MRML library can be imported (inside Slicer, or the ``scene`` extra)."""
    import importlib.util

    return importlib.util.find_spec("slicer") is not None


def _slicer():
    """The MRML library: ``slicer-core`` outside Slicer, the application's module inside."""
    import slicer

    return slicer


# --- scene ------------------------------------------------------------------------------------
def new_scene() -> "slicer.vtkMRMLScene":
    """An empty MRML scene that can hold every node made here and read and write ``.mrb`` files.

    The scene gets an application logic, the colour, segmentations, markups, models, volumes and
    tables module logics (they register node classes and segmentation converter rules), the
    colour legend display node class, and a
    data IO manager with a cache manager whose directory is a fresh temporary folder: Slicer
    unpacks a bundle there in ``ReadFromMRB`` and packs one there in ``WriteToMRB``. The logics
    are kept alive with the scene's Python object (``scene.xrecon_logics``).
    """
    slicer = _slicer()
    scene = slicer.vtkMRMLScene()
    application = slicer.vtkSlicerApplicationLogic()
    application.SetMRMLScene(scene)
    logics = [application]
    # The plain MRML colour logic adds Slicer's built-in colour tables (Grey for volumes, ...)
    # without looking for the colour files that only an installed Slicer has.
    logic_classes = [slicer.vtkMRMLColorLogic, slicer.vtkSlicerSegmentationsModuleLogic,
                     slicer.vtkSlicerMarkupsLogic, slicer.vtkSlicerModelsLogic,
                     slicer.vtkSlicerVolumesLogic, slicer.vtkSlicerTablesLogic]
    for logic_class in logic_classes:
        logic = logic_class()
        logic.SetMRMLApplicationLogic(application)
        logic.SetMRMLScene(scene)
        logics.append(logic)
    _drop_duplicate_converter_rules()
    # Slicer's Colors module logic registers the colour legend; the plain MRML one does not.
    scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())
    cache = slicer.vtkCacheManager()
    cache.SetRemoteCacheDirectory(tempfile.mkdtemp(prefix="xrecon-mrml-cache-"))
    io_manager = slicer.vtkDataIOManager()
    io_manager.SetCacheManager(cache)
    scene.SetDataIOManager(io_manager)
    scene.SetCacheManager(cache)
    scene.xrecon_logics = logics
    return scene


def close_scene(scene: "slicer.vtkMRMLScene") -> None:
    """Release a scene made by :func:`new_scene`: its nodes, logics and cache folder.

    Scenes not made here (Slicer's own ``slicer.mrmlScene``) are refused, never cleared.
    """
    import vtk

    if not hasattr(scene, "xrecon_logics"):
        raise ValueError("close_scene only closes scenes made by new_scene()")
    logics = scene.xrecon_logics
    cache = scene.GetCacheManager()
    cache_dir = cache.GetRemoteCacheDirectory() if cache is not None else None
    scene.Clear(True)
    # Detaching the segmentations logic warns about the missing scene; that is expected here.
    warnings = vtk.vtkObject.GetGlobalWarningDisplay()
    vtk.vtkObject.GlobalWarningDisplayOff()
    try:
        for logic in reversed(logics):
            logic.SetMRMLScene(None)
    finally:
        vtk.vtkObject.SetGlobalWarningDisplay(warnings)
    scene.xrecon_logics = []
    if cache_dir and os.path.basename(cache_dir.rstrip("/")).startswith("xrecon-mrml-cache-"):
        shutil.rmtree(cache_dir, ignore_errors=True)


def _drop_duplicate_converter_rules() -> None:
    """Keep one segmentation converter rule of each class.

    Every segmentations logic registers its rules in the process-wide converter factory again;
    a second scene in the same process (or in Slicer) would otherwise double them.
    """
    factory = _slicer().vtkSegmentationConverterFactory.GetInstance()
    seen = set()
    for rule in list(factory.GetConverterRules()):
        if rule.GetClassName() in seen:
            factory.UnregisterConverterRule(rule)
        else:
            seen.add(rule.GetClassName())


def add_node(scene, class_name: str, name: str, role: str):
    """A new node of ``class_name`` marked with ``role`` in ``xrecon.role``."""
    return _datagen_scene.add_node(scene, class_name, name, role, role_attribute=ROLE_ATTRIBUTE)


# --- volumes ----------------------------------------------------------------------------------
def add_volume(scene, name: str, voxels_kji: np.ndarray, ijk_to_ras: np.ndarray, *,
               role: str = "volume", window_level: tuple[float, float] | None = None):
    """``SyntheticDataGenLib.scene.add_volume`` (voxels [k, j, i], IJK->RAS in mm), the nodes
    marked with ``role`` in ``xrecon.role``."""
    return _datagen_scene.add_volume(scene, name, voxels_kji, ijk_to_ras, role=role, window_level=window_level,
                                     role_attribute=ROLE_ATTRIBUTE)


def add_radiograph(scene, name: str, image_hw: np.ndarray, geometry: "ProjectionGeometry"):
    """A one-slice scalar volume of a [height, width] radiograph, shown in place on its detector.

    Voxel (i, j, 0) is pixel (u = i, v = j); IJK->RAS is ``geometry.detector_ijk_to_ras()``, so
    the image lies on the detector plane in RAS mm, next to the CT and the surfaces. The pixel
    values (for example a DRR line integral or an intensity) are stored unchanged.
    """
    image = np.asarray(image_hw)
    if image.shape != (geometry.height, geometry.width):
        raise ValueError(f"radiograph {name!r} has shape {image.shape}, but its geometry is "
                         f"{geometry.height}x{geometry.width} (height x width)")
    node = add_volume(scene, name, image[None], geometry.detector_ijk_to_ras(), role="radiograph")
    # The projection geometry travels with the image (the DESIGN.md JSON), for tools in Slicer.
    node.SetAttribute(GEOMETRY_ATTRIBUTE, json.dumps(geometry.to_dict()))
    return node


def add_ct(scene, name: str, ct: "SimpleITK.Image"):
    """``SyntheticDataGenLib.scene.add_ct``: a CT (HU) in place in RAS mm, marked "ct" in ``xrecon.role``."""
    return _datagen_scene.add_ct(scene, name, ct, role_attribute=ROLE_ATTRIBUTE)


# --- segmentation -----------------------------------------------------------------------------
def add_segmentation(scene, name: str, masks: Mapping[str, np.ndarray], ijk_to_ras: np.ndarray, *,
                     closed_surface: bool = True, colors: Mapping[str, Sequence[float]] | None = None,
                     reference_volume=None):
    """``SyntheticDataGenLib.scene.add_segmentation`` of the ground truth: one segment a structure
    from masks [k, j, i] on one grid (IJK->RAS in mm), marked "truth_segmentation" in ``xrecon.role``."""
    return _datagen_scene.add_segmentation(
        scene, name, masks, ijk_to_ras, closed_surface=closed_surface, colors=colors,
        reference_volume=reference_volume, role="truth_segmentation", role_attribute=ROLE_ATTRIBUTE)


# --- models -----------------------------------------------------------------------------------
def distance_color_node(scene, scalar_range_mm: tuple[float, float] = (-5.0, 5.0)):
    """The scene's diverging blue-white-red colour node for signed distances over ``scalar_range_mm``.

    Blue is the low end (negative distance), white zero, red the high end. It is a procedural
    colour node saved with the scene, so a bundle shows the same colours in any Slicer; one node
    a range is shared by all models of the scene.
    """
    low, high = (float(x) for x in scalar_range_mm)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"scalar range must be two finite numbers, low < high, got {scalar_range_mm!r}")
    name = f"DistanceBlueWhiteRed {low:g} to {high:g} mm"
    existing = scene.GetFirstNodeByName(name)
    if existing is not None and existing.IsA("vtkMRMLProceduralColorNode"):
        return existing
    node = add_node(scene, "vtkMRMLProceduralColorNode", name, "distance_colors")
    node.SetHideFromEditors(False)  # listed in the Colors module, stored in the bundle's Data folder
    node.SetDescription("Signed surface distance in mm: blue below zero, white at zero, red above")
    function = node.GetColorTransferFunction()
    function.RemoveAllPoints()
    function.SetColorSpaceToRGB()
    middle = 0.0 if low < 0.0 < high else (low + high) / 2
    function.AddRGBPoint(low, 0.23, 0.30, 0.75)
    function.AddRGBPoint(middle, 0.93, 0.93, 0.93)
    function.AddRGBPoint(high, 0.71, 0.02, 0.15)
    node.SetAttribute("Category", "xrecon")
    return node


def add_model(scene, name: str, surface_ras: "vtk.vtkPolyData", scalars: str | None = DISTANCE_ARRAY,
              scalar_range_mm: tuple[float, float] = (-5.0, 5.0), color: Sequence[float] | None = None, *,
              opacity: float = 1.0, role: str = "model"):
    """A model node showing a surface whose points are in RAS mm.

    When the point array ``scalars`` exists, the model is coloured by it with a diverging colour
    node over the fixed ``scalar_range_mm`` (so a colour means the same millimetres on every
    model); otherwise it has the solid ``color`` (RGB 0..1; a palette colour by default).
    The surface is copied, so later changes to ``surface_ras`` do not reach the scene.
    """
    import vtk

    slicer = _slicer()
    polydata = vtk.vtkPolyData()
    polydata.DeepCopy(surface_ras)
    node = add_node(scene, "vtkMRMLModelNode", name, role)
    node.SetAndObservePolyData(polydata)
    display = add_node(scene, "vtkMRMLModelDisplayNode", f"{name} display", role)
    if color is None:
        color = PALETTE[(scene.GetNumberOfNodesByClass("vtkMRMLModelNode") - 1) % len(PALETTE)]
    display.SetColor(*(float(c) for c in color))
    display.SetOpacity(float(opacity))
    display.SetVisibility2D(True)
    display.SetBackfaceCulling(False)
    if scalars and polydata.GetPointData().GetArray(scalars) is not None:
        color_node = distance_color_node(scene, scalar_range_mm)
        display.SetActiveScalar(scalars, vtk.vtkAssignAttribute.POINT_DATA)
        display.SetAndObserveColorNodeID(color_node.GetID())
        display.SetScalarRangeFlag(slicer.vtkMRMLDisplayNode.UseManualScalarRange)
        display.SetScalarRange(float(scalar_range_mm[0]), float(scalar_range_mm[1]))
        display.SetScalarVisibility(True)
    else:
        display.SetScalarVisibility(False)
    node.SetAndObserveDisplayNodeID(display.GetID())
    return node


def add_distance_legend(scene, model_node):
    """A colour legend for the signed distance colours of ``model_node`` (shown in the 3D views)."""
    display = model_node.GetDisplayNode()
    legend = add_node(scene, "vtkMRMLColorLegendDisplayNode", f"{model_node.GetName()} legend", "legend")
    legend.SetTitleText(LEGEND_TITLE)
    legend.SetLabelFormat("%.0f")
    legend.SetAndObservePrimaryDisplayNode(display)
    model_node.AddAndObserveDisplayNodeID(legend.GetID())
    return legend


# --- landmarks --------------------------------------------------------------------------------
def add_landmarks(scene, name: str, labels: Sequence[str], points_ras: np.ndarray):
    """A point list (markups fiducial) node of named landmarks at RAS positions (mm).

    Rows of ``points_ras`` (shape [n, 3]) with a NaN are left out (landmarks not found).
    """
    points = np.asarray(points_ras, dtype=np.float64).reshape(-1, 3)
    if len(labels) != len(points):
        raise ValueError(f"{len(labels)} landmark labels for {len(points)} points")
    node = add_node(scene, "vtkMRMLMarkupsFiducialNode", name, "landmarks")
    node.CreateDefaultDisplayNodes()
    for label, point in zip(labels, points):
        if np.all(np.isfinite(point)):
            node.AddControlPoint(float(point[0]), float(point[1]), float(point[2]), str(label))
    node.SetLocked(True)
    return node


# --- metrics ----------------------------------------------------------------------------------
def _is_number(value) -> bool:
    return value is None or (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, str))


def add_metrics_table(scene, name: str, rows: Iterable[Mapping[str, object]]):
    """A table node with one row a dict (for example one a method and structure).

    Columns appear in the order keys are first seen. A column whose values are all numbers
    (or missing/None, stored as NaN) is a double column; any other column holds strings (a
    missing value is an empty string).
    """
    import vtk

    rows = [dict(row) for row in rows]
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    node = add_node(scene, "vtkMRMLTableNode", name, "metrics")
    table = node.GetTable()
    for column in columns:
        values = [row.get(column) for row in rows]
        if all(_is_number(value) and not isinstance(value, bool) for value in values):
            array = vtk.vtkDoubleArray()
            for value in values:
                array.InsertNextValue(math.nan if value is None else float(value))
        else:
            array = vtk.vtkStringArray()
            for value in values:
                array.InsertNextValue("" if value is None else str(value))
        array.SetName(str(column))
        table.AddColumn(array)
    node.SetUseColumnTitleAsColumnHeader(True)
    node.Modified()
    return node


# --- reconstruction results -------------------------------------------------------------------
def palette_color(name: str, structures: Sequence[str]) -> tuple[float, float, float] | None:
    """A fixed palette colour (RGB 0..1) for a structure, by its place in ``structures`` (the
    network's, in its order); None for a structure not among them."""
    structures = list(structures)
    return PALETTE[structures.index(name) % len(PALETTE)] if name in structures else None


def put_in_folder(scene, nodes: Iterable, folder_name: str) -> int:
    """Move nodes into a new subject hierarchy folder at the top of the scene's tree; returns its item ID."""
    hierarchy = scene.GetSubjectHierarchyNode()
    folder = hierarchy.CreateFolderItem(hierarchy.GetSceneItemID(), folder_name)
    for node in nodes:
        hierarchy.CreateItem(folder, node)  # moves the node's item (or makes one) under the folder
    return folder


# --- reading nodes ----------------------------------------------------------------------------
# Voxels, SimpleITK images and segment masks are read by ``SyntheticDataGenLib.scene``; they are
# public names of this module too.
volume_ijk_to_ras = _datagen_scene.volume_ijk_to_ras
volume_array = _datagen_scene.volume_array
volume_image = _datagen_scene.volume_image
segment_masks = _datagen_scene.segment_masks


def radiograph_array(radiograph_node) -> np.ndarray:
    """The radiograph's voxels as a float32 [height, width] array (row v, column u).

    The node must be one slice (voxels [1, height, width]) and under no transform; otherwise
    XreconInputError.
    """
    from SyntheticDataGenLib.errors import XreconInputError

    if not radiograph_node or radiograph_node.GetImageData() is None:
        raise XreconInputError("Select a radiograph")
    _datagen_scene.check_no_transform(radiograph_node)
    voxels = volume_array(radiograph_node)
    if voxels.shape[0] != 1:
        raise XreconInputError(f"{radiograph_node.GetName()} is not a radiograph: its voxel array is "
                               f"{'x'.join(map(str, voxels.shape))} (slices x rows x columns), not one slice")
    return np.array(voxels[0], dtype=np.float32)


def radiograph_geometry(radiograph_node, geometry_path: str | os.PathLike = "",
                        size_px: Sequence[int] | None = None) -> "ProjectionGeometry":
    """The radiograph's ``ProjectionGeometry``: read from ``geometry_path`` (a JSON file), or when
    that is empty the geometry the node carries (``GEOMETRY_ATTRIBUTE``). With ``size_px``
    (width, height in pixels), raises XreconInputError unless the detector has that size."""
    from SyntheticDataGenLib.errors import XreconInputError
    from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

    attribute = radiograph_node.GetAttribute(GEOMETRY_ATTRIBUTE) if radiograph_node else None
    if geometry_path:
        geometry = ProjectionGeometry.load(geometry_path)
    elif attribute:
        geometry = ProjectionGeometry.from_dict(json.loads(attribute))
    else:
        raise XreconInputError("Select the projection geometry file (JSON) of the radiograph")
    if size_px is not None and tuple(size_px) != tuple(geometry.size_px):
        raise XreconInputError(
            f"The radiograph is {size_px[0]}x{size_px[1]} px (width x height) but the geometry's detector is "
            f"{geometry.size_px[0]}x{geometry.size_px[1]} px; select the geometry of this radiograph")
    return geometry


def reference_images(volume_node, segmentation_node, names: Sequence[str] | None = None) -> tuple:
    """(CT as SimpleITK in HU, ``SyntheticDataGenLib.cases.labels.Segmentation`` on the CT grid) of a
    reference CT and the named segments (None: all; names the segmentation lacks are skipped)."""
    from SyntheticDataGenLib.errors import XreconInputError
    from SyntheticDataGenLib.cases.labels import Segmentation

    if not volume_node or not segmentation_node:
        raise XreconInputError("Select a reference CT and its segmentation")
    present = [name for name, _color in _datagen_scene.segment_names_and_colors(segmentation_node)]
    names = present if names is None else [name for name in names if name in present]
    ct = volume_image(volume_node)
    return ct, Segmentation.from_masks(_datagen_scene.segment_mask_images(segmentation_node, volume_node, names, ct))


# --- writing ----------------------------------------------------------------------------------
def write_scene_bundle(scene, path: str | os.PathLike) -> None:
    """Write the scene as a Slicer bundle (``.mrb``), atomically.

    Slicer packs ``<name>/<name>.mrml`` and ``<name>/Data/*`` (name = file name without
    ``.mrb``) into a temporary folder beside ``path``; the finished zip replaces ``path`` with
    one rename, so a reader never sees half a bundle. Raises RuntimeError when Slicer reports
    an error (its messages are in the exception).
    """
    slicer = _slicer()
    path = Path(path).absolute()
    if path.suffix.lower() != ".mrb":
        raise ValueError(f"a Slicer bundle must end in .mrb, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        staged = staging / path.name
        messages = slicer.vtkMRMLMessageCollection()
        ok = scene.WriteToMRB(str(staged), None, messages)
        errors = messages.GetNumberOfMessagesOfType(_vtk_error_event())
        if not ok or errors or not staged.is_file():
            text = messages.GetAllMessagesAsString() or "no message"
            raise RuntimeError(f"Slicer could not write the scene bundle {path}: {text.strip()}")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staged, 0o666 & ~umask)
        os.replace(staged, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _vtk_error_event() -> int:
    import vtk

    return vtk.vtkCommand.ErrorEvent


def read_scene_bundle(path: str | os.PathLike) -> "slicer.vtkMRMLScene":
    """Read a ``.mrb`` into a new scene (see :func:`new_scene`); raises RuntimeError on failure.

    Release the scene with :func:`close_scene` when done (it removes the unpacked files).
    """
    slicer = _slicer()
    path = Path(path).absolute()
    if not path.is_file():
        raise FileNotFoundError(f"scene bundle not found: {path}")
    scene = new_scene()
    messages = slicer.vtkMRMLMessageCollection()
    if not scene.ReadFromMRB(str(path), False, messages):
        text = messages.GetAllMessagesAsString() or "no message"
        close_scene(scene)
        raise RuntimeError(f"Slicer could not read the scene bundle {path}: {text.strip()}")
    return scene


# --- the whole QA bundle ----------------------------------------------------------------------
def _same_grid(ct: "SimpleITK.Image", mask_kji: np.ndarray, mask_ijk_to_ras: np.ndarray) -> bool:
    from SyntheticDataGenLib.cases.ct_io import ijk_to_ras

    return (tuple(ct.GetSize()) == tuple(np.shape(mask_kji))[::-1]
            and bool(np.allclose(ijk_to_ras(ct), mask_ijk_to_ras, atol=1e-3, rtol=0)))


def _landmark_sets(landmarks) -> dict[str, tuple[Sequence[str], np.ndarray]]:
    if landmarks is None:
        return {}
    if isinstance(landmarks, Mapping):
        return {str(name): (labels, points) for name, (labels, points) in landmarks.items()}
    labels, points = landmarks
    return {"Landmarks": (labels, points)}


def build_qa_scene(path: str | os.PathLike, **content) -> None:
    """Build the QA scene of one case (:func:`add_qa_nodes` with ``content``) in a new scene and
    write it to ``path`` (a ``.mrb``), atomically."""
    scene = new_scene()
    try:
        add_qa_nodes(scene, **content)
        write_scene_bundle(scene, path)
    finally:
        close_scene(scene)


def add_qa_nodes(
    scene,
    *,
    radiographs: Sequence[tuple[str, np.ndarray, "ProjectionGeometry"]],
    models: Mapping[str, "vtk.vtkPolyData"],
    model_methods: Mapping[str, tuple[str, str]] | None = None,
    truth_masks: Mapping[str, np.ndarray] | None = None,
    truth_ijk_to_ras: np.ndarray | None = None,
    truth_models: Mapping[str, "vtk.vtkPolyData"] | None = None,
    metrics_rows: Sequence[Mapping[str, object]] = (),
    landmarks=None,
    ct: "SimpleITK.Image | None" = None,
    scalar_range_mm: tuple[float, float] = (-5.0, 5.0),
    segmentation_name: str = "Ground truth",
    metrics_name: str = "Metrics",
) -> dict:
    """Add the QA nodes of one case to ``scene``; returns {"radiographs": [...], "models": {name:
    node}, "landmarks": [...], "metrics": node or None}.

    Args:
        radiographs: (node name, [height, width] image, geometry) for each view, placed on its
            detector plane.
        models: node name -> reconstructed surface in RAS mm; a point array ``distance_mm``
            (signed distance to the ground truth) colours it over ``scalar_range_mm``, and the
            first model so coloured gets the colour legend.
        model_methods: node name -> (method, structure), set as the model's
            ``METHOD_ATTRIBUTE`` and ``STRUCTURE_ATTRIBUTE``.
        truth_masks, truth_ijk_to_ras: ground-truth masks [k, j, i] on the CT grid and that
            grid's IJK->RAS matrix, shown as one segmentation (skipped when None).
        truth_models: optional ground-truth surfaces (RAS mm), shown half transparent.
        metrics_rows: one dict a (method, structure) row of the metrics table.
        landmarks: None, ``(labels, points_ras [n, 3])`` for one point list named
            "Landmarks", or a dict node name -> (labels, points_ras). NaN rows are skipped.
        ct: optional SimpleITK CT (HU); its LPS geometry is converted to RAS.
    """
    nodes: dict = {"radiographs": [], "models": {}, "landmarks": [], "metrics": None}
    ct_node = add_ct(scene, "CT", ct) if ct is not None else None
    for name, image, geometry in radiographs:
        nodes["radiographs"].append(add_radiograph(scene, name, image, geometry))
    if truth_masks:
        if truth_ijk_to_ras is None:
            raise ValueError("truth_masks need truth_ijk_to_ras")
        on_ct_grid = ct_node is not None and _same_grid(ct, next(iter(truth_masks.values())), truth_ijk_to_ras)
        add_segmentation(scene, segmentation_name, truth_masks, truth_ijk_to_ras,
                         reference_volume=ct_node if on_ct_grid else None)
    for name, surface in (truth_models or {}).items():
        add_model(scene, name, surface, scalars=None, opacity=0.5, role="truth_model")
    legend = None
    for name, surface in models.items():
        model = nodes["models"][name] = add_model(scene, name, surface, scalars=DISTANCE_ARRAY,
                                                  scalar_range_mm=scalar_range_mm)
        method, structure = (model_methods or {}).get(name, (None, None))
        if method:
            model.SetAttribute(METHOD_ATTRIBUTE, method)
            model.SetAttribute(STRUCTURE_ATTRIBUTE, structure)
        if legend is None and model.GetDisplayNode().GetScalarVisibility():
            legend = add_distance_legend(scene, model)
    for name, (labels, points) in _landmark_sets(landmarks).items():
        nodes["landmarks"].append(add_landmarks(scene, name, labels, points))
    if metrics_rows:
        nodes["metrics"] = add_metrics_table(scene, metrics_name, metrics_rows)
    return nodes
