"""The MRML nodes of the SyntheticDataGen module: loaded cases, preview images, X-ray geometry model.

This is the one module of ``SyntheticDataGenLib`` that imports ``slicer``, and it needs only the
Qt-free MRML library: the PyPI package ``slicer-core`` outside Slicer, Slicer's own ``slicer``
module inside it. It uses MRML classes only (scene, nodes), never ``slicer.util``,
``slicer.app``, ``sitkUtils`` or Qt, so it is tested without Slicer's GUI; the module file passes
``slicer.mrmlScene`` in. It also reads nodes back (voxels, SimpleITK images, segment masks on a
volume's grid), for this module and for ``SingleImageReconLib.scene``.

Everything is in Slicer's RAS world, millimetres. The preview's nodes are marked with
``ROLE_ATTRIBUTE`` so that later previews, a module reload and a saved scene find them again.
The generic builders (volume, CT, segmentation) take the attribute's name, so that
``SingleImageReconLib.scene`` marks the nodes it builds with them as its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - only for type hints
    import SimpleITK
    import slicer
    import vtk

    from .projection.geometry import ProjectionGeometry

#: Names of the nodes the preview makes (once; later previews re-use them).
DRR_NODE_NAME = "DRR preview"
MASKS_NODE_NAME = "DRR preview masks"
GEOMETRY_MODEL_NAME = "X-ray geometry"
#: Node attribute that marks the preview's nodes, so they are found again after a module reload.
ROLE_ATTRIBUTE = "SyntheticDataGen.Role"
#: Colour (RGB 0..1) of a mask whose structure has no segment colour.
DEFAULT_MASK_COLOR = (1.0, 1.0, 0.0)

#: Distinct colours (RGB 0..1) for segments and plain models, a qualitative palette that stays
#: readable on Slicer's dark and light 3D backgrounds.
PALETTE = (
    (0.90, 0.62, 0.00),  # orange
    (0.34, 0.71, 0.91),  # sky blue
    (0.00, 0.62, 0.45),  # bluish green
    (0.94, 0.89, 0.26),  # yellow
    (0.00, 0.45, 0.70),  # blue
    (0.84, 0.37, 0.00),  # vermillion
    (0.80, 0.47, 0.65),  # reddish purple
    (0.60, 0.60, 0.60),  # grey
    (0.55, 0.34, 0.16),  # brown
    (0.58, 0.40, 0.74),  # purple
)

#: A colour table entry: (name, (r, g, b) in 0..1, opacity in 0..1).
ColorEntry = tuple[str, tuple[float, float, float], float]


def _slicer():
    """The MRML library: ``slicer-core`` outside Slicer, the application's module inside."""
    import slicer

    return slicer


def vtk_matrix(matrix: np.ndarray) -> "vtk.vtkMatrix4x4":
    """A finite 4x4 numpy matrix as a vtkMatrix4x4 (ValueError otherwise)."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"expected a finite 4x4 matrix, got shape {matrix.shape}")
    result = vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            result.SetElement(row, column, float(matrix[row, column]))
    return result


def _image_data(voxels_kji: np.ndarray) -> "vtk.vtkImageData":
    """A vtkImageData (dimensions i, j, k) holding a copy of a [k, j, i] array (bool becomes uint8)."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData

    voxels = np.asarray(voxels_kji)
    if voxels.ndim != 3:
        raise ValueError(f"expected a 3D [k, j, i] array, got shape {voxels.shape}")
    if voxels.dtype == bool:
        voxels = voxels.astype(np.uint8)
    image = vtkImageData()
    image.SetDimensions(voxels.shape[2], voxels.shape[1], voxels.shape[0])
    scalars = numpy_to_vtk(np.ascontiguousarray(voxels).ravel(), deep=True)
    scalars.SetName("ImageScalars")
    image.GetPointData().SetScalars(scalars)
    return image


def _set_detector_image(volume_node, pixels_vu: np.ndarray, geometry: "ProjectionGeometry") -> None:
    """Give a volume node a copy of a [height, width] image, placed on the detector plane (RAS mm)."""
    pixels = np.asarray(pixels_vu)
    if pixels.ndim != 2:
        raise ValueError(f"expected a [height, width] image, got shape {pixels.shape}")
    # A new image each time: SetAndObserveImageData tells views and storage that the voxels changed.
    volume_node.SetAndObserveImageData(_image_data(pixels[None]))
    volume_node.SetIJKToRASMatrix(vtk_matrix(geometry.detector_ijk_to_ras()))


# --- nodes found by role ----------------------------------------------------------------------
def add_node(scene: "slicer.vtkMRMLScene", class_name: str, name: str, role: str, *,
             role_attribute: str | None = ROLE_ATTRIBUTE):
    """A new node of ``class_name`` named ``name``, marked with ``role`` in ``role_attribute``
    (unmarked when it is None)."""
    node = scene.AddNewNodeByClass(class_name, name)
    if node is None:
        raise RuntimeError(f"the MRML scene cannot create a {class_name}")
    if role_attribute:
        node.SetAttribute(role_attribute, role)
    return node


def output_node(scene: "slicer.vtkMRMLScene", class_name: str, name: str, role: str):
    """The node of exactly ``class_name`` marked with ``role``, added (named ``name``, with its
    default display nodes) if the scene has none."""
    for index in range(scene.GetNumberOfNodesByClass(class_name)):
        node = scene.GetNthNodeByClass(index, class_name)
        # GetNthNodeByClass also yields subclasses (a label map is a scalar volume): match exactly.
        if node.GetClassName() == class_name and node.GetAttribute(ROLE_ATTRIBUTE) == role:
            return node
    node = add_node(scene, class_name, name, role)
    if hasattr(node, "CreateDefaultDisplayNodes"):
        node.CreateDefaultDisplayNodes()
    return node


def color_table_node(scene: "slicer.vtkMRMLScene", role: str, name: str,
                     entries: Sequence[ColorEntry]) -> "slicer.vtkMRMLColorTableNode":
    """The user colour table with this role holding ``entries`` (entry k is colour k), updated in place."""
    color_node = output_node(scene, "vtkMRMLColorTableNode", name, role)
    was_modifying = color_node.StartModify()
    color_node.SetTypeToUser()
    color_node.SetNumberOfColors(len(entries))
    for index, (entry_name, (r, g, b), opacity) in enumerate(entries):
        color_node.SetColor(index, entry_name, r, g, b, opacity)
    color_node.EndModify(was_modifying)
    return color_node


# --- volumes and segmentations ---------------------------------------------------------------
def add_volume(scene: "slicer.vtkMRMLScene", name: str, voxels_kji: np.ndarray, ijk_to_ras: np.ndarray, *,
               role: str = "volume", window_level: tuple[float, float] | None = None,
               role_attribute: str | None = ROLE_ATTRIBUTE) -> "slicer.vtkMRMLScalarVolumeNode":
    """A scalar volume node holding ``voxels_kji`` ([k, j, i]) placed by a 4x4 IJK->RAS matrix (mm).

    The voxel type is kept (bool becomes uint8). ``window_level`` fixes the display window and
    level (in voxel units, HU for a CT); by default Slicer's automatic window/level is used. The
    volume and its display node are marked with ``role`` in ``role_attribute`` (None: unmarked).
    """
    slicer = _slicer()
    node = add_node(scene, "vtkMRMLScalarVolumeNode", name, role, role_attribute=role_attribute)
    node.SetIJKToRASMatrix(vtk_matrix(ijk_to_ras))
    node.SetAndObserveImageData(_image_data(voxels_kji))
    display = add_node(scene, "vtkMRMLScalarVolumeDisplayNode", f"{name} display", role,
                       role_attribute=role_attribute)
    display.SetAndObserveColorNodeID(slicer.vtkMRMLColorLogic.GetColorTableNodeID(
        slicer.vtkMRMLColorTableNode.Grey))
    if window_level is None:
        display.AutoWindowLevelOn()
    else:
        display.AutoWindowLevelOff()
        display.SetWindowLevel(float(window_level[0]), float(window_level[1]))
    node.SetAndObserveDisplayNodeID(display.GetID())
    return node


def add_ct(scene: "slicer.vtkMRMLScene", name: str, ct: "SimpleITK.Image", *,
           role_attribute: str | None = ROLE_ATTRIBUTE) -> "slicer.vtkMRMLScalarVolumeNode":
    """A scalar volume (role "ct") of a SimpleITK CT (Hounsfield units), in place: its LPS
    geometry becomes RAS (mm); shown with a bone window (width 1800 HU, level 400 HU)."""
    import SimpleITK as sitk

    from .cases.ct_io import ijk_to_ras

    if ct.GetDimension() != 3 or ct.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"CT {name!r} must be a 3D scalar image")
    return add_volume(scene, name, sitk.GetArrayViewFromImage(ct), ijk_to_ras(ct), role="ct",
                      window_level=(1800.0, 400.0), role_attribute=role_attribute)


def add_segmentation(scene: "slicer.vtkMRMLScene", name: str, masks: Mapping[str, np.ndarray],
                     ijk_to_ras: np.ndarray, *, closed_surface: bool = True,
                     colors: Mapping[str, Sequence[float]] | None = None, reference_volume=None,
                     role: str = "segmentation",
                     role_attribute: str | None = ROLE_ATTRIBUTE) -> "slicer.vtkMRMLSegmentationNode":
    """A segmentation node with one segment a structure, from boolean masks [k, j, i] on one grid.

    Args:
        masks: structure name -> mask (non-zero = inside), all with the CT grid's shape.
        ijk_to_ras: 4x4 voxel-index -> RAS (mm) matrix of that grid (any direction, spacing).
        closed_surface: also make the closed-surface representation so the bones show in 3D.
        colors: optional structure name -> RGB in 0..1; others get distinct palette colours.
        reference_volume: optional volume node on the same grid (the CT), recorded as the
            segmentation's reference geometry so Slicer's Segment Editor edits on that grid.
        role, role_attribute: the node and its display node are marked with ``role`` in
            ``role_attribute`` (None: unmarked).

    Segments are named (and identified) by structure; the binary labelmap is the source
    representation, which Slicer stores in a ``.seg.nrrd``. The masks' full grid is the
    segmentation's reference image geometry, so editing in Slicer keeps the CT's voxels.
    """
    slicer = _slicer()
    node = add_node(scene, "vtkMRMLSegmentationNode", name, role, role_attribute=role_attribute)
    node.CreateDefaultDisplayNodes()
    segmentation = node.GetSegmentation()
    labelmap_name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    segmentation.SetSourceRepresentationName(labelmap_name)
    shape = None
    world = vtk_matrix(ijk_to_ras)
    for index, (structure, mask) in enumerate(masks.items()):
        mask = np.asarray(mask)
        if shape is None:
            shape = mask.shape
        elif mask.shape != shape:
            raise ValueError(f"mask {structure!r} has shape {mask.shape}, the first mask {shape}")
        labelmap = slicer.vtkOrientedImageData()
        labelmap.ShallowCopy(_image_data(mask != 0))
        labelmap.SetImageToWorldMatrix(world)
        color = (colors or {}).get(structure, PALETTE[index % len(PALETTE)])
        segment_id = node.AddSegmentFromBinaryLabelmapRepresentation(
            labelmap, structure, [float(c) for c in color], structure)
        if not segment_id:
            raise RuntimeError(f"cannot add segment {structure!r} to segmentation {name!r}")
    if reference_volume is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
    elif shape is not None:
        extent = [0, shape[2] - 1, 0, shape[1] - 1, 0, shape[0] - 1]
        segmentation.SetConversionParameter(
            slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
            slicer.vtkSegmentationConverter.SerializeImageGeometry(world, extent))
    if closed_surface and masks:
        node.CreateClosedSurfaceRepresentation()
    display = node.GetDisplayNode()
    if display is not None:
        if role_attribute:
            display.SetAttribute(role_attribute, role)
        display.SetOpacity3D(0.4)
    return node


# --- cases ------------------------------------------------------------------------------------
#: File name endings of CT files, dropped to name the volume node after the file.
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def _name_from_path(path: str | os.PathLike) -> str:
    """The file or folder name without an image file ending ("ct.nii.gz" -> "ct")."""
    name = Path(path).name
    for suffix in _IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def _remove_nodes_added(scene: "slicer.vtkMRMLScene", before: set[str]) -> None:
    """Remove the nodes whose IDs are not in ``before``, newest first; singletons stay (the
    application may make one, such as the subject hierarchy, while nodes are added)."""
    nodes = scene.GetNodes()
    for node in reversed([nodes.GetItemAsObject(index) for index in range(nodes.GetNumberOfItems())]):
        if node.GetID() not in before and not node.GetSingletonTag():
            scene.RemoveNode(node)


def _node_ids(scene: "slicer.vtkMRMLScene") -> set[str]:
    nodes = scene.GetNodes()
    return {nodes.GetItemAsObject(index).GetID() for index in range(nodes.GetNumberOfItems())}


def load_case(scene: "slicer.vtkMRMLScene", ct_path: str | os.PathLike, labels_path: str | os.PathLike,
              table_path: str | os.PathLike | None = None, name: str | None = None
              ) -> tuple["slicer.vtkMRMLScalarVolumeNode", "slicer.vtkMRMLSegmentationNode"]:
    """Load a CT and its structures into the scene: returns (volume node, segmentation node).

    The CT (Hounsfield units; ``ct_io.read_ct``) becomes a scalar volume named ``name`` (the CT
    file's name by default), placed in RAS mm. ``labels_path`` is a label map whose ids
    ``table_path`` (CSV ``id,structure``) names, or a Slicer ``.seg.nrrd``, on the CT grid
    (``labels.read_segmentation``). Every non-empty structure becomes one segment named after it,
    on the CT grid, with the CT as the segmentation's reference volume ("<name> labels"). The
    nodes carry no ``ROLE_ATTRIBUTE``: that marks the module's outputs, which it never offers as input.

    Raises XreconInputError for a missing, unreadable or mismatched file. On any failure the
    nodes added so far are removed again: the scene never holds half a case.
    """
    from .cases.ct_io import ijk_to_ras, read_ct
    from .cases.labels import read_segmentation

    ct = read_ct(ct_path)
    structures = read_segmentation(labels_path, table_path, reference=ct)
    before = _node_ids(scene)
    try:
        volume_node = add_ct(scene, scene.GenerateUniqueName(name or _name_from_path(ct_path)), ct,
                             role_attribute=None)
        masks = {structure: structures.mask_array(structure) for structure in structures.select(None)}
        # No closed surface: building one for every bone takes long; Slicer makes it on "Show 3D".
        segmentation_node = add_segmentation(
            scene, scene.GenerateUniqueName(f"{volume_node.GetName()} labels"), masks, ijk_to_ras(ct),
            closed_surface=False, reference_volume=volume_node, role_attribute=None)
    except BaseException:
        _remove_nodes_added(scene, before)
        raise
    return volume_node, segmentation_node


# --- preview ----------------------------------------------------------------------------------
def update_drr_node(scene: "slicer.vtkMRMLScene", line_integral: np.ndarray,
                    geometry: "ProjectionGeometry") -> "slicer.vtkMRMLScalarVolumeNode":
    """The scalar volume "DRR preview" holding a [height, width] DRR line integral (dimensionless
    Σμ·Δl) on the geometry's detector plane (RAS mm), in grey with the window of ``drr_window``."""
    from .projection.drr_display import drr_window

    line_integral = np.asarray(line_integral, dtype=np.float32)
    drr_node = output_node(scene, "vtkMRMLScalarVolumeNode", DRR_NODE_NAME, "drr")
    _set_detector_image(drr_node, line_integral, geometry)
    display_node = drr_node.GetDisplayNode()
    if display_node:
        low, high = drr_window(line_integral)
        display_node.SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")
        display_node.AutoWindowLevelOff()
        display_node.SetWindowLevelMinMax(low, high)  # higher line integral = denser = brighter
        display_node.SetInterpolate(True)
    return drr_node


def update_masks_node(scene: "slicer.vtkMRMLScene", masks: np.ndarray, geometry: "ProjectionGeometry",
                      names: Sequence[str], colors: Mapping[str, tuple[float, float, float]]
                      ) -> "slicer.vtkMRMLLabelMapVolumeNode":
    """The label map "DRR preview masks" of [structure, height, width] masks on the detector plane (RAS mm).

    Label k + 1 marks structure ``names[k]``, later structures over earlier ones
    (``label_map.stack_masks``); each label has the colour ``colors`` gives its name (RGB 0..1,
    yellow where none), in the colour table "DRR preview masks colors".
    """
    from .cases.label_map import stack_masks

    masks = np.asarray(masks)
    if masks.ndim != 3 or len(masks) != len(names):
        raise ValueError(f"expected one [height, width] mask for each of {len(names)} names, got shape {masks.shape}")
    labels, _overlapping = stack_masks(masks, masks.shape[1:], len(masks))
    masks_node = output_node(scene, "vtkMRMLLabelMapVolumeNode", MASKS_NODE_NAME, "masks")
    _set_detector_image(masks_node, labels, geometry)
    color_node = color_table_node(
        scene, "maskColors", f"{MASKS_NODE_NAME} colors",
        [("background", (0.0, 0.0, 0.0), 0.0)] + [(name, colors.get(name, DEFAULT_MASK_COLOR), 1.0) for name in names])
    if masks_node.GetDisplayNode():
        masks_node.GetDisplayNode().SetAndObserveColorNodeID(color_node.GetID())
    return masks_node


def update_geometry_model(scene: "slicer.vtkMRMLScene", geometry: "ProjectionGeometry",
                          model_node=None) -> "slicer.vtkMRMLModelNode":
    """The model node "X-ray geometry" (or ``model_node``, a model with display nodes) drawing a
    projection geometry in the 3D view (RAS mm).

    Source marker, detector outline, frustum and central ray come from
    ``geometry_model.geometry_polydata``, coloured by its "part" cell array through the colour
    table "X-ray geometry colors" (one colour a part); hidden in the slice views.
    """
    from vtkmodules.vtkFiltersCore import vtkAssignAttribute

    from .projection.geometry_model import PART_COLORS, PART_NAMES, geometry_polydata

    if model_node is None:
        model_node = output_node(scene, "vtkMRMLModelNode", GEOMETRY_MODEL_NAME, "geometry")
    model_node.SetAndObservePolyData(geometry_polydata(geometry))
    color_node = color_table_node(scene, "geometryColors", f"{GEOMETRY_MODEL_NAME} colors",
                                  [(name, color, 1.0) for name, color in zip(PART_NAMES, PART_COLORS)])
    display_node = model_node.GetDisplayNode()
    if display_node:
        display_node.SetVisibility(True)
        display_node.SetVisibility3D(True)
        display_node.SetVisibility2D(False)  # 3D only: the lines would clutter the slice views
        display_node.SetLineWidth(2.0)
        display_node.SetActiveScalar("part", vtkAssignAttribute.CELL_DATA)
        display_node.SetAndObserveColorNodeID(color_node.GetID())
        display_node.SetScalarRangeFlag(_slicer().vtkMRMLDisplayNode.UseManualScalarRange)
        display_node.SetScalarRange(0, len(PART_NAMES) - 1)
        display_node.SetScalarVisibility(True)
    return model_node


def show_on_slice_view(slice_logic, image_node, label_node, geometry: "ProjectionGeometry", fit: bool = True) -> None:
    """Show a detector image (and a label layer, or None) in a slice view turned to the detector plane.

    ``slice_logic`` is a ``vtkMRMLSliceLogic`` (inside Slicer, the Red view's). The view shows the
    image as a radiograph is read (column u to the right, row v downwards) and, in 3D, on the
    detector plane; ``fit`` fits the view to the image.
    """
    from .projection.geometry_model import detector_slice_to_ras

    composite_node = slice_logic.GetSliceCompositeNode()
    composite_node.SetBackgroundVolumeID(image_node.GetID())
    composite_node.SetLabelVolumeID(label_node.GetID() if label_node else None)
    composite_node.SetLabelOpacity(0.5)
    slice_node = slice_logic.GetSliceNode()
    slice_node.GetSliceToRAS().DeepCopy(vtk_matrix(detector_slice_to_ras(geometry)))
    slice_node.UpdateMatrices()
    slice_node.SetSliceVisible(True)  # the image on the detector plane in 3D
    if fit:
        slice_logic.FitSliceToAll()


# --- any node ---------------------------------------------------------------------------------
def remove_node_with_helpers(node) -> None:
    """Remove a node and its display and storage nodes from its scene (nothing for None or a node
    in no scene)."""
    if node is None or node.GetScene() is None:
        return
    scene = node.GetScene()
    helpers = []
    if hasattr(node, "GetNumberOfDisplayNodes"):
        helpers += [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    if hasattr(node, "GetNumberOfStorageNodes"):
        helpers += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
    for helper in helpers:
        if helper is not None and helper.GetScene() is not None:
            scene.RemoveNode(helper)
    scene.RemoveNode(node)


def check_no_transform(node) -> None:
    """Refuse (XreconInputError) a node under a transform: the Lib works in the node's own RAS
    and would otherwise silently ignore the transform. None passes."""
    if node is not None and node.GetParentTransformNode() is not None:
        from .errors import XreconInputError

        raise XreconInputError(
            f"{node.GetName()} is under the transform {node.GetParentTransformNode().GetName()}; "
            "harden the transform (Transforms module) first")


# --- segments ---------------------------------------------------------------------------------
def segment_names_and_colors(segmentation_node) -> list[tuple[str, tuple[float, float, float]]]:
    """[(segment name, (r, g, b) in 0..1)] in the segmentation's order; [] for no node."""
    if not segmentation_node:
        return []
    segmentation = segmentation_node.GetSegmentation()
    segments = (segmentation.GetNthSegment(index) for index in range(segmentation.GetNumberOfSegments()))
    return [(segment.GetName(), tuple(float(c) for c in segment.GetColor())) for segment in segments]


def segment_ids(segmentation_node, names: Sequence[str] | None = None) -> dict[str, str]:
    """{name: segment ID} of the named segments (None: all), in the order asked for.

    Raises XreconInputError for a missing name or one that several segments share
    (``segment_names.segment_ids_by_name``).
    """
    from .cases.segment_names import segment_ids_by_name

    segmentation = segmentation_node.GetSegmentation()
    segments = [(segmentation.GetNthSegmentID(index), segmentation.GetNthSegment(index).GetName())
                for index in range(segmentation.GetNumberOfSegments())]
    return segment_ids_by_name(segments, names, segmentation_node.GetName())


def segment_labelmap(segmentation_node, volume_node, names: Sequence[str] | None = None,
                     volume: "SimpleITK.Image | None" = None) -> tuple["SimpleITK.Image", list[str], list[str]]:
    """The named segments (None: all) as one label map on the volume's grid: (SimpleITK image,
    names, overlaps).

    Label k + 1 marks structure k; where structures overlap the later one wins (``overlaps``
    lists those that cover earlier ones; ``label_map.stack_masks``). ``volume`` is the volume
    node's SimpleITK image (:func:`volume_image`, read here when not given). One segment is
    rasterised at a time, so only one full-size mask exists at once.
    """
    import SimpleITK as sitk

    from .cases.label_map import stack_masks

    volume = volume_image(volume_node) if volume is None else volume
    ids = list(segment_ids(segmentation_node, names))
    masks = (segment_masks(segmentation_node, volume_node, [name])[name] for name in ids)
    labels, overlapping = stack_masks(masks, tuple(reversed(volume.GetSize())), len(ids))
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(volume)
    return image, ids, [ids[index] for index in overlapping]


def content_key(volume_node, segmentation_node=None) -> tuple:
    """What an image made from these nodes depends on: node IDs, the voxels' and segments'
    modification times, the volume's geometry and the segments' names. Equal keys, same data."""
    image_data = volume_node.GetImageData()
    key = [volume_node.GetID(), image_data.GetMTime() if image_data else None,
           tuple(volume_ijk_to_ras(volume_node)[:3].ravel())]
    if segmentation_node:
        segmentation = segmentation_node.GetSegmentation()
        key.append(segmentation_node.GetID())
        binary_labelmap = _slicer().vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            representation = segment.GetRepresentation(binary_labelmap)
            key.append((segmentation.GetNthSegmentID(index), segment.GetName(),
                        representation.GetMTime() if representation else None))
    return tuple(key)


# --- reading nodes ----------------------------------------------------------------------------
def volume_bounds_ras(volume_node) -> list[float]:
    """RAS bounding box of the volume (voxel corners): [xmin, xmax, ymin, ymax, zmin, zmax] in mm."""
    bounds = [0.0] * 6
    volume_node.GetRASBounds(bounds)
    return bounds


def volume_center_ras(volume_node) -> list[float]:
    """Centre of the volume's RAS bounding box, in mm (the ``xrecon`` commands' default isocentre)."""
    b = volume_bounds_ras(volume_node)
    return [(b[0] + b[1]) / 2.0, (b[2] + b[3]) / 2.0, (b[4] + b[5]) / 2.0]


def volume_ijk_to_ras(volume_node) -> np.ndarray:
    """The volume's 4x4 IJK->RAS matrix (mm)."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    matrix = vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _volume_scalars(volume_node) -> tuple:
    """(vtk scalar array, [k, j, i] shape) of a one-component scalar volume (ValueError otherwise)."""
    image = volume_node.GetImageData() if volume_node is not None else None
    if image is None or image.GetPointData().GetScalars() is None:
        raise ValueError(f"{volume_node.GetName() if volume_node else 'None'} has no voxels")
    scalars = image.GetPointData().GetScalars()
    if scalars.GetNumberOfComponents() != 1:
        raise ValueError(f"{volume_node.GetName()} has {scalars.GetNumberOfComponents()} components, not 1")
    i, j, k = image.GetDimensions()
    return scalars, (k, j, i)


def volume_array(volume_node) -> np.ndarray:
    """A copy of a scalar volume's voxels as a [k, j, i] array in the voxel type of the node."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    scalars, shape = _volume_scalars(volume_node)
    return vtk_to_numpy(scalars).reshape(shape).copy()


def volume_image(volume_node) -> "SimpleITK.Image":
    """A scalar volume as a SimpleITK image: the voxels and the node's RAS geometry as ITK's LPS
    origin (mm), spacing (mm) and direction, the inverse of ``ct_io.ijk_to_ras``."""
    import SimpleITK as sitk

    from .cases.ct_io import LPS_TO_RAS

    matrix = volume_ijk_to_ras(volume_node)
    # LPS_TO_RAS is its own inverse: it takes RAS back to LPS as well.
    axes_lps = LPS_TO_RAS @ matrix[:3, :3]
    spacing = np.linalg.norm(axes_lps, axis=0)
    image = sitk.GetImageFromArray(volume_array(volume_node))
    image.SetSpacing(spacing.tolist())
    image.SetDirection((axes_lps / spacing).ravel().tolist())
    image.SetOrigin((LPS_TO_RAS @ matrix[:3, 3]).tolist())
    return image


def _reference_geometry(volume_node) -> "slicer.vtkOrientedImageData":
    """An empty oriented image with the volume's extent and IJK->RAS (mm): the grid to rasterise on."""
    slicer = _slicer()
    geometry = slicer.vtkOrientedImageData()
    geometry.SetExtent(volume_node.GetImageData().GetExtent())
    geometry.SetGeometryFromImageToWorldMatrix(vtk_matrix(volume_ijk_to_ras(volume_node)))
    return geometry


def segment_masks(segmentation_node, volume_node, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """{name: bool mask [k, j, i] on the volume's grid} of the named segments (None: all), in that order.

    A volume without voxels raises ValueError. Each segment's binary labelmap is resampled
    (nearest neighbour) onto the volume's grid, as Slicer's ``arrayFromSegmentBinaryLabelmap``
    does; parts outside the volume are cut off.
    Neither node may be under a transform (XreconInputError), since the grids are compared in
    their own RAS. Missing or ambiguous names raise XreconInputError (``segment_ids``).
    """
    from vtkmodules.util.numpy_support import vtk_to_numpy

    slicer = _slicer()
    check_no_transform(segmentation_node)
    check_no_transform(volume_node)
    # The grid's shape without copying the voxels: callers may ask for one segment at a time.
    _scalars, shape = _volume_scalars(volume_node)
    reference = _reference_geometry(volume_node)
    masks = {}
    for name, segment_id in segment_ids(segmentation_node, names).items():
        labelmap = slicer.vtkOrientedImageData()
        segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
        resampled = slicer.vtkOrientedImageData()
        # Not linear interpolation (False), no padding beyond the volume's extent (False).
        ok = slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
            labelmap, reference, resampled, False, False)
        scalars = resampled.GetPointData().GetScalars() if ok else None
        if scalars is None:
            raise RuntimeError(f"Slicer could not rasterise segment {name!r} on the grid of {volume_node.GetName()}")
        masks[name] = vtk_to_numpy(scalars).reshape(shape) > 0
    return masks


def segment_mask_images(segmentation_node, volume_node, names: Sequence[str] | None = None,
                        volume: "SimpleITK.Image | None" = None) -> dict[str, "SimpleITK.Image"]:
    """{name: SimpleITK uint8 mask on the volume's grid} of the named segments (None: all), in
    that order (:func:`segment_masks`), each with the geometry of ``volume`` (the volume node's
    SimpleITK image, :func:`volume_image`, read here when not given)."""
    import SimpleITK as sitk

    volume = volume_image(volume_node) if volume is None else volume
    images = {}
    for name, mask in segment_masks(segmentation_node, volume_node, names).items():
        images[name] = sitk.GetImageFromArray(mask.astype(np.uint8))
        images[name].CopyInformation(volume)
    return images
