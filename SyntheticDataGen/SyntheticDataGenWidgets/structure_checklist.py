"""The checkable list of the selected segmentation's segments, bound to the parameter node's
comma-separated ``structures``.

parameterNodeWrapper binds no checkable list, so this keeps the two in step by hand, and
follows the segmentation so that added, removed or renamed segments show at once.
"""

import qt

import slicer
from slicer.util import VTKObservationMixin

from SyntheticDataGenLib import scene


def structureList(text: str) -> list:
    """Structure names from the parameter node's comma-separated ``structures``."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def segmentNames(segmentationNode) -> list:
    """Segment names in the segmentation's order."""
    return [name for name, _color in scene.segment_names_and_colors(segmentationNode)]


def _segmentEvents() -> tuple:
    # read when used: vtkSegmentation is there once Slicer has loaded the Segmentations module
    return (slicer.vtkSegmentation.SegmentAdded, slicer.vtkSegmentation.SegmentRemoved,
            slicer.vtkSegmentation.SegmentModified)


class StructureChecklist(VTKObservationMixin):
    """``ui.structuresListWidget`` with its Select all / none buttons; ``changed()`` is called when
    the segments of the observed segmentation change."""

    def __init__(self, ui, changed) -> None:
        VTKObservationMixin.__init__(self)
        self.ui = ui
        self._changed = changed
        self._parameterNode = None
        self._updating = False
        self._listedSegmentationNode = None  # segmentation whose segments the list shows
        self._observedSegmentation = None  # its vtkSegmentation, which reports segment changes
        self.ui.structuresListWidget.connect("itemChanged(QListWidgetItem*)", self._onItemChanged)
        self.ui.selectAllStructuresButton.connect("clicked(bool)", lambda: self.checkAll(True))
        self.ui.selectNoStructuresButton.connect("clicked(bool)", lambda: self.checkAll(False))

    def setParameterNode(self, parameterNode) -> None:
        self._parameterNode = parameterNode

    def selected(self) -> list:
        """The checked structures that the segmentation has (a renamed segment drops out), in its order."""
        p = self._parameterNode
        if not p or not p.inputSegmentation:
            return []
        chosen = set(structureList(p.structures))
        return [name for name in segmentNames(p.inputSegmentation) if name in chosen]

    def update(self) -> None:
        """Follow the parameter node: observe its segmentation and show its segments as checked there."""
        self._followSegmentation()
        self._refresh()

    def checkAll(self, checked: bool) -> None:
        p = self._parameterNode
        if p:
            p.structures = ",".join(segmentNames(p.inputSegmentation) if checked and p.inputSegmentation else [])

    def clear(self) -> None:
        self.ui.structuresListWidget.clear()

    def _followSegmentation(self) -> None:
        """Observe the selected segmentation; a newly chosen one starts with all its segments checked."""
        segmentationNode = self._parameterNode.inputSegmentation if self._parameterNode else None
        if segmentationNode is self._listedSegmentationNode:
            return
        previous = self._listedSegmentationNode
        if self._observedSegmentation is not None:
            for event in _segmentEvents():
                self.removeObserver(self._observedSegmentation, event, self._onSegmentsChanged)
            self._observedSegmentation = None
        self._listedSegmentationNode = segmentationNode
        if segmentationNode is None:
            return
        self._observedSegmentation = segmentationNode.GetSegmentation()
        for event in _segmentEvents():
            self.addObserver(self._observedSegmentation, event, self._onSegmentsChanged)
        if previous is not None or not self._parameterNode.structures:
            self._parameterNode.structures = ",".join(segmentNames(segmentationNode))

    def _onSegmentsChanged(self, caller=None, event=None) -> None:
        # update once the change is complete (a rename is a removal and an addition)
        qt.QTimer.singleShot(0, self._onSegmentsChangedLater)

    def _onSegmentsChangedLater(self) -> None:
        p = self._parameterNode
        if not p or not p.inputSegmentation:
            return
        listWidget = self.ui.structuresListWidget
        listed = {listWidget.item(row).text() for row in range(listWidget.count)}
        added = [name for name in segmentNames(p.inputSegmentation) if name not in listed]
        if added:  # new (or renamed) segments start checked
            p.structures = ",".join(structureList(p.structures) + added)
        self._refresh()
        self._changed()

    def _refresh(self) -> None:
        """Show the segmentation's segments, checked as the parameter node says."""
        listWidget = self.ui.structuresListWidget
        p = self._parameterNode
        segments = scene.segment_names_and_colors(p.inputSegmentation if p else None)
        chosen = set(structureList(p.structures)) if p else set()
        wanted = [(name, name in chosen) for name, _color in segments]
        shown = [(listWidget.item(row).text(), listWidget.item(row).checkState() == qt.Qt.Checked)
                 for row in range(listWidget.count)]
        if wanted == shown:
            return
        self._updating = True
        try:
            listWidget.clear()
            for name, color in segments:
                item = qt.QListWidgetItem(name)
                item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
                item.setCheckState(qt.Qt.Checked if name in chosen else qt.Qt.Unchecked)
                pixmap = qt.QPixmap(12, 12)
                pixmap.fill(qt.QColor.fromRgbF(*color))
                item.setIcon(qt.QIcon(pixmap))
                listWidget.addItem(item)
        finally:
            self._updating = False

    def _onItemChanged(self, item=None) -> None:
        if self._updating or not self._parameterNode:
            return
        listWidget = self.ui.structuresListWidget
        self._parameterNode.structures = ",".join(
            listWidget.item(row).text() for row in range(listWidget.count)
            if listWidget.item(row).checkState() == qt.Qt.Checked)
