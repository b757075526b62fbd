"""A picture of a QA scene as Slicer's 3D view shows it, rendered off screen with VTK.

It draws what :func:`.scene.build_qa_scene` puts in a scene, read from the scene's own nodes:
the reconstructed models coloured by their display nodes (the signed-distance colour node over
its fixed range), the reference segmentation's closed surfaces half transparent, each radiograph
on its detector plane, the landmarks as small spheres, and a colour legend that says which sign
lies outside. No ``slicer`` import: it reads the nodes it is given, so the same code pictures a
scene read from a ``.mrb`` by ``slicer-core`` or Slicer's own scene.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .scene import DISTANCE_ARRAY, ROLE_ATTRIBUTE

# Slicer's default 3D view background: a gradient from light blue-grey at the bottom to white-ish.
_BACKGROUND_BOTTOM = (0.76, 0.76, 0.87)
_BACKGROUND_TOP = (0.98, 0.98, 1.0)


def _nodes(scene, class_name: str, role: str | None = None) -> list:
    nodes = [scene.GetNthNodeByClass(index, class_name) for index in range(scene.GetNumberOfNodesByClass(class_name))]
    return [node for node in nodes if role is None or node.GetAttribute(ROLE_ATTRIBUTE) == role]


def _model_actor(node):
    """An actor of a model node as its display node shows it (None when hidden or empty)."""
    import vtk

    display, polydata = node.GetDisplayNode(), node.GetPolyData()
    if display is None or not display.GetVisibility() or polydata is None or not polydata.GetNumberOfPoints():
        return None
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputData(polydata)
    mapper.ScalarVisibilityOff()
    scalars = display.GetActiveScalarName()
    color_node = display.GetColorNode()
    if display.GetScalarVisibility() and scalars and color_node is not None:
        mapper.SetScalarModeToUsePointFieldData()
        mapper.SelectColorArray(scalars)
        mapper.SetLookupTable(_lookup_table(color_node))
        mapper.SetScalarRange(*display.GetScalarRange())
        mapper.ScalarVisibilityOn()
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*display.GetColor())
    actor.GetProperty().SetOpacity(display.GetOpacity())
    return actor


def _lookup_table(color_node):
    """The node's colours as a VTK lookup table (procedural nodes carry a transfer function)."""
    function = color_node.GetColorTransferFunction() if hasattr(color_node, "GetColorTransferFunction") else None
    return function if function is not None else color_node.GetLookupTable()


def _segment_actors(node) -> list:
    """Half-transparent actors of a segmentation node's closed surfaces, in segment colours."""
    import vtk

    segmentation, display = node.GetSegmentation(), node.GetDisplayNode()
    opacity = display.GetOpacity3D() if display is not None else 0.4
    actors = []
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        surface = vtk.vtkPolyData()
        if not node.GetClosedSurfaceRepresentation(segment_id, surface) or not surface.GetNumberOfPoints():
            continue
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(surface)
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*segmentation.GetNthSegment(index).GetColor())
        actor.GetProperty().SetOpacity(opacity)
        actors.append(actor)
    return actors


def _radiograph_actor(node):
    """The radiograph slice on its detector plane, windowed from its 1st to 99th percentile."""
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    image = node.GetImageData()
    if image is None:
        return None
    values = vtk_to_numpy(image.GetPointData().GetScalars()).astype(np.float64)
    low, high = np.percentile(values[np.isfinite(values)], [1, 99]) if values.size else (0.0, 1.0)
    window = vtk.vtkImageMapToWindowLevelColors()
    window.SetInputData(image)
    window.SetWindow(max(high - low, 1e-6))
    window.SetLevel((high + low) / 2)
    window.SetOutputFormatToLuminance()
    window.Update()
    actor = vtk.vtkImageActor()
    actor.GetMapper().SetInputConnection(window.GetOutputPort())
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    actor.SetUserMatrix(matrix)
    return actor


def _landmark_actor(node, radius_mm: float):
    import vtk

    points = vtk.vtkPoints()
    for index in range(node.GetNumberOfControlPoints()):
        points.InsertNextPoint(node.GetNthControlPointPositionWorld(index))
    if not points.GetNumberOfPoints():
        return None
    cloud = vtk.vtkPolyData()
    cloud.SetPoints(points)
    sphere = vtk.vtkSphereSource()
    sphere.SetRadius(radius_mm)
    glyphs = vtk.vtkGlyph3D()
    glyphs.SetInputData(cloud)
    glyphs.SetSourceConnection(sphere.GetOutputPort())
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputConnection(glyphs.GetOutputPort())
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(1.0, 0.5, 0.5)  # Slicer's default control point colour
    return actor


def _legend(lookup_table):
    import vtk

    bar = vtk.vtkScalarBarActor()
    bar.SetLookupTable(lookup_table)
    bar.SetTitle("mm to the CT surface\nred: outside\nblue: inside")
    bar.SetNumberOfLabels(5)
    bar.SetLabelFormat("%+.0f")
    bar.SetPosition(0.86, 0.2)
    bar.SetWidth(0.12)
    bar.SetHeight(0.6)
    bar.SetTextPositionToPrecedeScalarBar()
    bar.UnconstrainedFontSizeOn()  # otherwise VTK scales the labels to the bar's height
    for text in (bar.GetTitleTextProperty(), bar.GetLabelTextProperty()):
        text.SetColor(0.1, 0.1, 0.1)
        text.ShadowOff()
        text.ItalicOff()
        text.BoldOff()
        text.SetFontSize(18)
    return bar


def save_scene_picture(scene, path: str | os.PathLike, *, models: str | None = None,
                       size_px: tuple[int, int] = (1200, 900), azimuth_deg: float = 25.0,
                       elevation_deg: float = 10.0) -> Path:
    """Render a QA scene's 3D view to a PNG, off screen, and return its path.

    Args:
        scene: a ``vtkMRMLScene`` (from :func:`.scene.read_scene_bundle`, or Slicer's).
        models: only model nodes whose name starts with this (e.g. ``"depth "``: one method's
            surfaces, so methods do not hide each other); None shows every model.
        size_px: (width, height) of the picture.
        azimuth_deg, elevation_deg: the camera's turn from an anterior view (Slicer's default)
            about the body's long axis and up from the horizontal.
    """
    import vtk

    renderer = vtk.vtkRenderer()
    renderer.GradientBackgroundOn()
    renderer.SetBackground(*_BACKGROUND_BOTTOM)
    renderer.SetBackground2(*_BACKGROUND_TOP)
    legend_table = None
    shown = [node for node in _nodes(scene, "vtkMRMLModelNode")
             if node.GetAttribute(ROLE_ATTRIBUTE) in ("model", "truth_model")
             and (models is None or node.GetAttribute(ROLE_ATTRIBUTE) != "model" or node.GetName().startswith(models))]
    focus = vtk.vtkAppendPolyData()
    for node in shown:
        actor = _model_actor(node)
        if actor is not None:
            renderer.AddActor(actor)
            focus.AddInputData(node.GetPolyData())
            display = node.GetDisplayNode()
            if display.GetScalarVisibility() and display.GetActiveScalarName() == DISTANCE_ARRAY:
                legend_table = actor.GetMapper().GetLookupTable()
    for node in _nodes(scene, "vtkMRMLSegmentationNode"):
        for actor in _segment_actors(node):
            renderer.AddActor(actor)
    for node in _nodes(scene, "vtkMRMLScalarVolumeNode", "radiograph"):
        actor = _radiograph_actor(node)
        if actor is not None:
            renderer.AddActor(actor)
    for node in _nodes(scene, "vtkMRMLMarkupsFiducialNode"):
        actor = _landmark_actor(node, radius_mm=2.5)
        if actor is not None:
            renderer.AddActor(actor)
    if legend_table is not None:
        renderer.AddViewProp(_legend(legend_table))
    _place_camera(renderer, focus, azimuth_deg, elevation_deg)
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(True)
    window.SetSize(*size_px)
    window.SetMultiSamples(4)
    window.AddRenderer(renderer)
    window.Render()
    capture = vtk.vtkWindowToImageFilter()
    capture.SetInput(window)
    capture.Update()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputConnection(capture.GetOutputPort())
    writer.Write()
    window.Finalize()
    return path


def _place_camera(renderer, focus, azimuth_deg: float, elevation_deg: float) -> None:
    """An anterior view (looking along −A, superior up), turned, framing the models when any."""
    focus.Update()
    camera = renderer.GetActiveCamera()
    bounds = focus.GetOutput().GetBounds() if focus.GetOutput().GetNumberOfPoints() else None
    renderer.ResetCamera()
    if bounds is not None:
        centre = [(bounds[2 * axis] + bounds[2 * axis + 1]) / 2 for axis in range(3)]
        extent = max(bounds[1] - bounds[0], bounds[3] - bounds[2], bounds[5] - bounds[4])
        camera.SetFocalPoint(*centre)
        camera.SetPosition(centre[0], centre[1] + 4.0 * extent, centre[2])
    else:
        focal = camera.GetFocalPoint()
        camera.SetPosition(focal[0], focal[1] + camera.GetDistance(), focal[2])
    camera.SetViewUp(0.0, 0.0, 1.0)
    camera.Azimuth(azimuth_deg)
    camera.Elevation(elevation_deg)
    camera.OrthogonalizeViewUp()
    renderer.ResetCameraClippingRange()
    if bounds is not None:
        camera.Zoom(1.15)
