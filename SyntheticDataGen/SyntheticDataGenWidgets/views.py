"""What Slicer's views show: an image on its detector plane in the Red slice view, a table in the table view."""

import slicer

from SyntheticDataGenLib import scene


def showOnRedView(imageNode, labelNode, geometry, segmentationNode=None, fit: bool = True,
                  fitSlice=None) -> None:
    """Show an image (and a label map over it) on its detector plane in the Red slice view, as the
    radiograph is read (``scene.show_on_slice_view``); ``fitSlice`` (default: ``fit``) fits the
    slice view to the detector, ``fit`` also shows the segmentation's surfaces and fits the 3D view."""
    sliceLogic = slicer.app.applicationLogic().GetSliceLogicByLayoutName("Red") if slicer.app else None
    if sliceLogic is None:
        return
    scene.show_on_slice_view(sliceLogic, imageNode, labelNode, geometry, fit if fitSlice is None else fitSlice)
    if fit:
        if segmentationNode:
            segmentationNode.CreateClosedSurfaceRepresentation()
        slicer.util.resetThreeDViews()


def showTable(tableNode) -> None:
    """Show a table in the four-up table layout."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager is not None:
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
    applicationLogic = slicer.app.applicationLogic()
    applicationLogic.GetSelectionNode().SetActiveTableID(tableNode.GetID())
    applicationLogic.PropagateTableSelection()
