"""The MRML nodes of the SyntheticDataGen module: preview images, X-ray geometry model, segments.

This is the one module of ``SyntheticDataGenLib`` that imports ``slicer``, and it needs only the
Qt-free MRML library: the PyPI package ``slicer-core`` outside Slicer, Slicer's own ``slicer``
module inside it. It uses MRML classes only (scene, nodes), never ``slicer.util``,
``slicer.app``, ``sitkUtils`` or Qt, so it is tested without Slicer's GUI; the module file passes
``slicer.mrmlScene`` in.

Everything is in Slicer's RAS world, millimetres. The preview's nodes are marked with
``ROLE_ATTRIBUTE`` so that later previews, a module reload and a saved scene find them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - only for type hints
    import slicer
    import vtk

    from .geometry import ProjectionGeometry

#: Names of the nodes the preview makes (once; later previews re-use them).
DRR_NODE_NAME = "DRR preview"
MASKS_NODE_NAME = "DRR preview masks"
GEOMETRY_MODEL_NAME = "X-ray geometry"
#: Node attribute that marks the preview's nodes, so they are found again after a module reload.
ROLE_ATTRIBUTE = "SyntheticDataGen.Role"
#: Colour (RGB 0..1) of a mask whose structure has no segment colour.
DEFAULT_MASK_COLOR = (1.0, 1.0, 0.0)

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


def _set_detector_image(volume_node, pixels_vu: np.ndarray, geometry: "ProjectionGeometry") -> None:
    """Give a volume node a copy of a [height, width] image, placed on the detector plane (RAS mm)."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData

    pixels = np.ascontiguousarray(pixels_vu)
    if pixels.ndim != 2:
        raise ValueError(f"expected a [height, width] image, got shape {pixels.shape}")
    image = vtkImageData()
    image.SetDimensions(pixels.shape[1], pixels.shape[0], 1)
    scalars = numpy_to_vtk(pixels.ravel(), deep=True)
    scalars.SetName("ImageScalars")
    image.GetPointData().SetScalars(scalars)
    # A new image each time: SetAndObserveImageData tells views and storage that the voxels changed.
    volume_node.SetAndObserveImageData(image)
    volume_node.SetIJKToRASMatrix(vtk_matrix(geometry.detector_ijk_to_ras()))


# --- nodes found by role ----------------------------------------------------------------------
def output_node(scene: "slicer.vtkMRMLScene", class_name: str, name: str, role: str):
    """The node of exactly ``class_name`` marked with ``role``, added (named ``name``, with its
    default display nodes) if the scene has none."""
    for index in range(scene.GetNumberOfNodesByClass(class_name)):
        node = scene.GetNthNodeByClass(index, class_name)
        # GetNthNodeByClass also yields subclasses (a label map is a scalar volume): match exactly.
        if node.GetClassName() == class_name and node.GetAttribute(ROLE_ATTRIBUTE) == role:
            return node
    node = scene.AddNewNodeByClass(class_name, name)
    if node is None:
        raise RuntimeError(f"the MRML scene cannot create a {class_name}")
    node.SetAttribute(ROLE_ATTRIBUTE, role)
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


# --- preview ----------------------------------------------------------------------------------
def update_drr_node(scene: "slicer.vtkMRMLScene", line_integral: np.ndarray,
                    geometry: "ProjectionGeometry") -> "slicer.vtkMRMLScalarVolumeNode":
    """The scalar volume "DRR preview" holding a [height, width] DRR line integral (dimensionless
    Σμ·Δl) on the geometry's detector plane (RAS mm), in grey with the window of ``drr_window``."""
    from .drr_display import drr_window

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
    from .label_map import stack_masks

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


def update_geometry_model(scene: "slicer.vtkMRMLScene", geometry: "ProjectionGeometry") -> "slicer.vtkMRMLModelNode":
    """The model node "X-ray geometry" drawing a projection geometry in the 3D view (RAS mm).

    Source marker, detector outline, frustum and central ray come from
    ``geometry_model.geometry_polydata``, coloured by its "part" cell array through the colour
    table "X-ray geometry colors" (one colour a part); hidden in the slice views.
    """
    from vtkmodules.vtkFiltersCore import vtkAssignAttribute

    from .geometry_model import PART_COLORS, PART_NAMES, geometry_polydata

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
    from .segment_names import segment_ids_by_name

    segmentation = segmentation_node.GetSegmentation()
    segments = [(segmentation.GetNthSegmentID(index), segmentation.GetNthSegment(index).GetName())
                for index in range(segmentation.GetNumberOfSegments())]
    return segment_ids_by_name(segments, names, segmentation_node.GetName())
