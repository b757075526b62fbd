"""SyntheticDataGen: synthetic radiographs and exact training targets from CT (3D Slicer module).

This file stays thin: it turns GUI state into calls of ``SyntheticDataGenLib`` (Slicer-free,
also used by the ``xrecon`` command) and MRML nodes into arrays/images. All computation lives
in the Lib; batch generation runs the ``xrecon generate`` command in a subprocess, so the GUI
never waits for it. World coordinates are Slicer's RAS, in millimetres.
"""

import logging
import os
import shlex
import shutil
import time
from typing import Annotated, Optional

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import (
    parameterNodeWrapper,
    Choice,
    WithinRange,
)

from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

# The MRML work is in the Lib; the Widget and the self-test find the preview's nodes by these.
from SyntheticDataGenLib import scene
from SyntheticDataGenLib.scene import DRR_NODE_NAME, ROLE_ATTRIBUTE

#: View presets of ``SyntheticDataGenLib.projection.geometry.preset_geometry`` (the .ui combo box lists the same).
PRESETS = ["ap", "pa", "lateral-left", "lateral-right"]
#: Augmentation presets of ``xrecon generate --preset``.
AUGMENTATION_PRESETS = ["none", "light", "heavy"]

#: The preview waits this long after the last change before it renders (milliseconds).
PREVIEW_DEBOUNCE_MS = 300
#: How often the GUI reads the generator's output (milliseconds).
GENERATION_POLL_MS = 100

#
# SyntheticDataGen
#


class SyntheticDataGen(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Synthetic Data Generation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Reconstruction")]
        self.parent.dependencies = []
        self.parent.contributors = ["xrecon developers"]
        self.parent.helpText = _("""
Render synthetic radiographs (digitally reconstructed radiographs, DRRs) from a CT volume and its bone
segmentation, for a calibrated X-ray geometry, together with exact training targets: per-bone masks,
dual-face depth maps and projected landmarks.
<ul>
<li><b>Inputs</b>: the CT (Hounsfield units), its segmentation and the structures (segments) to use.
<b>Describe case</b> measures every segment on the CT grid.</li>
<li><b>Projection geometry</b>: a view preset, C-arm angles (LAO/RAO, cranial/caudal), distances and
detector; the isocentre is the centre of the CT. <b>Show geometry</b> draws the source, the detector and
the ray frustum in the 3D view.</li>
<li><b>Preview</b>: the DRR of the current geometry with the structures' masks overlaid, shown in the
Red slice view as the radiograph is read and on the detector plane in 3D. With <i>Live preview</i> on,
it follows every change. Needs PyTorch (the PyTorch extension).</li>
<li><b>Batch generation</b>: a training set (<code>xrecon generate</code>) written into a folder by a
separate process: the GUI stays usable, and a cancelled run continues where it stopped.</li>
</ul>
Coordinates are RAS, in mm.
See the <a href="https://github.com/xrecon/SlicerXRecon#SyntheticDataGen">module documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Developed by the xrecon developers. Built on 3D Slicer, SimpleITK, PyTorch and MONAI.
""")


#
# SyntheticDataGenParameterNode
#


@parameterNodeWrapper
class SyntheticDataGenParameterNode:
    """
    The parameters of the module, saved with the scene.

    inputVolume - CT volume (Hounsfield units).
    inputSegmentation - bone segmentation of that CT, one segment per structure.
    structures - the segments to render, comma-separated names (the GUI's checkable list).
    preset - radiographic view preset: ap, pa, lateral-left or lateral-right.
    laoDegrees - C-arm rotation about the patient's long axis, degrees (positive LAO, negative RAO).
    cranialDegrees - C-arm tilt, degrees (positive cranial, negative caudal).
    sourceToIsocenterMm - distance from the X-ray source to the isocentre (the CT's centre), mm.
    sourceToDetectorMm - distance from the source to the detector plane, mm.
    detectorSizePx - detector width and height, pixels.
    pixelSpacingMm - detector pixel pitch, mm.
    livePreview - re-render the preview whenever an input or the geometry changes.
    outputDirectory - folder of the generated training set.
    views - number of views (samples) to generate.
    seed - random seed of the generator (same seed, same data set).
    augmentationPreset - augmentation strength of the generator: none, light or heavy.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    inputSegmentation: vtkMRMLSegmentationNode
    structures: str = ""
    preset: Annotated[str, Choice(PRESETS)] = "ap"
    laoDegrees: Annotated[float, WithinRange(-90, 90)] = 0.0
    cranialDegrees: Annotated[float, WithinRange(-45, 45)] = 0.0
    sourceToIsocenterMm: Annotated[float, WithinRange(50, 3000)] = 900.0
    sourceToDetectorMm: Annotated[float, WithinRange(100, 3000)] = 1100.0
    detectorSizePx: Annotated[int, WithinRange(16, 2048)] = 256
    pixelSpacingMm: Annotated[float, WithinRange(0.05, 10)] = 1.6
    livePreview: bool = False
    outputDirectory: str = ""
    views: Annotated[int, WithinRange(1, 1000000)] = 100
    seed: Annotated[int, WithinRange(0, 2147483647)] = 0
    augmentationPreset: Annotated[str, Choice(AUGMENTATION_PRESETS)] = "light"


def structureList(text: str) -> list:
    """Structure names from the parameter node's comma-separated ``structures``."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


#
# SyntheticDataGenWidget
#


class SyntheticDataGenWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """GUI of the module: binds the .ui to the parameter node and calls the logic."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._updatingGui = False
        self._listedSegmentationNode = None  # segmentation whose segments the structure list shows
        self._observedSegmentation = None  # its vtkSegmentation, observed for added/removed/renamed segments
        self._lastPreviewKey = None  # parameters of the preview on screen (or of the one that failed)
        self._previewShown = False  # the first preview also fits the views
        self._job = None  # running GenerationJob
        self._previewTimer = None
        self._generationTimer = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SyntheticDataGen.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)

        # The .ui connects the top-level qMRMLWidget's mrmlSceneChanged(vtkMRMLScene*) signal
        # to the setMRMLScene(vtkMRMLScene*) slot of each node combo box.
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SyntheticDataGenLogic()

        # Update the parameter node when the scene is closed
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Buttons
        self.ui.describeButton.connect("clicked(bool)", self.onDescribeButton)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.previewButton.connect("clicked(bool)", self.onPreviewButton)
        self.ui.generateButton.connect("clicked(bool)", self.onGenerateButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.selectAllStructuresButton.connect("clicked(bool)", lambda: self._checkAllStructures(True))
        self.ui.selectNoStructuresButton.connect("clicked(bool)", lambda: self._checkAllStructures(False))

        # Widgets synchronised by hand (parameterNodeWrapper binds neither a checkable list nor a
        # ctkPathLineEdit to a str)
        self.ui.structuresListWidget.connect("itemChanged(QListWidgetItem*)", self._onStructureItemChanged)
        self.ui.outputDirectoryPathLineEdit.connect("currentPathChanged(QString)", self._onOutputDirectoryChanged)

        table = self.ui.structuresTableWidget
        table.setColumnCount(3)
        table.setHorizontalHeaderLabels([_("Structure"), _("Voxels"), _("Volume (ml)")])

        # Live preview: a single-shot timer restarted by every change renders once the user pauses
        self._previewTimer = qt.QTimer()
        self._previewTimer.setSingleShot(True)
        self._previewTimer.setInterval(PREVIEW_DEBOUNCE_MS)
        self._previewTimer.connect("timeout()", self._onPreviewTimeout)

        # Batch generation: the generator's output is read by a thread; this timer drains it
        self._generationTimer = qt.QTimer()
        self._generationTimer.setInterval(GENERATION_POLL_MS)
        self._generationTimer.connect("timeout()", self._pollGeneration)
        self.ui.generationProgressBar.setRange(0, 1)
        self.ui.generationProgressBar.setValue(0)

        # Make sure parameter node is initialized (needed for module reload)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self._previewTimer:
            self._previewTimer.stop()
        if self._generationTimer:
            self._generationTimer.stop()
        if self._job is not None and self._job.running:
            self._job.cancel(force=True)
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        # Do not react to parameter node changes (GUI is updated when the user enters the module)
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._previewTimer.stop()

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed."""
        self.setParameterNode(None)
        self._clearResults()

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Ensure parameter node exists and observed."""
        self.setParameterNode(self.logic.getParameterNode())

        # Select default inputs if nothing is selected yet, to save a few clicks
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if (firstVolumeNode and not firstVolumeNode.IsA("vtkMRMLLabelMapVolumeNode")
                    and not firstVolumeNode.GetAttribute(ROLE_ATTRIBUTE)):
                self._parameterNode.inputVolume = firstVolumeNode
        if not self._parameterNode.inputSegmentation:
            firstSegmentationNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
            if firstSegmentationNode:
                self._parameterNode.inputSegmentation = firstSegmentationNode

    def setParameterNode(self, inputParameterNode: Optional[SyntheticDataGenParameterNode]) -> None:
        """Set and observe the parameter node; the GUI follows it through connectGui."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets carrying the Qt dynamic property "SlicerParameterName" are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self._syncSegmentationObservation()
        self._refreshStructureList()
        self._syncOutputDirectoryWidget()
        self._updateButtonStates()
        self._schedulePreview()

    # ------------------------------------------------------------------ structures (checkable list)

    def _syncSegmentationObservation(self) -> None:
        """Follow the selected segmentation's segments; a newly chosen segmentation selects all of them."""
        segmentationNode = self._parameterNode.inputSegmentation if self._parameterNode else None
        if segmentationNode is self._listedSegmentationNode:
            return
        previous = self._listedSegmentationNode
        if self._observedSegmentation is not None:
            for event in self._segmentEvents():
                self.removeObserver(self._observedSegmentation, event, self._onSegmentsChanged)
            self._observedSegmentation = None
        self._listedSegmentationNode = segmentationNode
        if segmentationNode is None:
            return
        # The segments live in the node's vtkSegmentation, which reports their changes
        self._observedSegmentation = segmentationNode.GetSegmentation()
        for event in self._segmentEvents():
            self.addObserver(self._observedSegmentation, event, self._onSegmentsChanged)
        if previous is not None or not self._parameterNode.structures:
            # The user picked another segmentation (or none was chosen yet): start with all its segments
            self._parameterNode.structures = ",".join(self.logic.segmentNames(segmentationNode))

    @staticmethod
    def _segmentEvents():
        return (slicer.vtkSegmentation.SegmentAdded, slicer.vtkSegmentation.SegmentRemoved,
                slicer.vtkSegmentation.SegmentModified)

    def _onSegmentsChanged(self, caller=None, event=None) -> None:
        # Segments were added, removed or renamed: update the list once the change is complete
        qt.QTimer.singleShot(0, self._onSegmentsChangedLater)

    def _onSegmentsChangedLater(self) -> None:
        p = self._parameterNode
        if not p or not p.inputSegmentation:
            return
        listWidget = self.ui.structuresListWidget
        listed = {listWidget.item(row).text() for row in range(listWidget.count)}
        added = [name for name in self.logic.segmentNames(p.inputSegmentation) if name not in listed]
        if added:  # new (or renamed) segments start checked
            p.structures = ",".join(structureList(p.structures) + added)
        self._refreshStructureList()
        self._updateButtonStates()

    def _refreshStructureList(self) -> None:
        """Show the selected segmentation's segments, checked as the parameter node says."""
        listWidget = self.ui.structuresListWidget
        segmentationNode = self._parameterNode.inputSegmentation if self._parameterNode else None
        segments = self.logic.segmentNamesAndColors(segmentationNode) if segmentationNode else []
        selected = set(structureList(self._parameterNode.structures)) if self._parameterNode else set()
        wanted = [(name, name in selected) for name, _color in segments]
        shown = [(listWidget.item(row).text(), listWidget.item(row).checkState() == qt.Qt.Checked)
                 for row in range(listWidget.count)]
        if wanted == shown:
            return
        self._updatingGui = True
        try:
            listWidget.clear()
            for name, color in segments:
                item = qt.QListWidgetItem(name)
                item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
                item.setCheckState(qt.Qt.Checked if name in selected else qt.Qt.Unchecked)
                pixmap = qt.QPixmap(12, 12)
                pixmap.fill(qt.QColor.fromRgbF(*color))
                item.setIcon(qt.QIcon(pixmap))
                listWidget.addItem(item)
        finally:
            self._updatingGui = False

    def _onStructureItemChanged(self, item=None) -> None:
        if self._updatingGui or not self._parameterNode:
            return
        listWidget = self.ui.structuresListWidget
        checked = [listWidget.item(row).text() for row in range(listWidget.count)
                   if listWidget.item(row).checkState() == qt.Qt.Checked]
        self._parameterNode.structures = ",".join(checked)

    def _checkAllStructures(self, checked: bool) -> None:
        if not self._parameterNode:
            return
        segmentationNode = self._parameterNode.inputSegmentation
        names = self.logic.segmentNames(segmentationNode) if (checked and segmentationNode) else []
        self._parameterNode.structures = ",".join(names)

    def _selectedStructures(self) -> list:
        """The checked structures that the segmentation has (a renamed segment drops out), in its order."""
        if not self._parameterNode or not self._parameterNode.inputSegmentation:
            return []
        selected = set(structureList(self._parameterNode.structures))
        return [name for name in self.logic.segmentNames(self._parameterNode.inputSegmentation) if name in selected]

    # ------------------------------------------------------------------ output folder

    def _syncOutputDirectoryWidget(self) -> None:
        if not self._parameterNode:
            return
        path = self._parameterNode.outputDirectory
        if self.ui.outputDirectoryPathLineEdit.currentPath != path:
            self._updatingGui = True
            try:
                self.ui.outputDirectoryPathLineEdit.currentPath = path
            finally:
                self._updatingGui = False

    def _onOutputDirectoryChanged(self, path) -> None:
        if self._updatingGui or not self._parameterNode:
            return
        if self._parameterNode.outputDirectory != path:
            self._parameterNode.outputDirectory = path

    # ------------------------------------------------------------------ state of the buttons

    def _updateButtonStates(self, caller=None, event=None) -> None:
        p = self._parameterNode
        hasVolume = bool(p and p.inputVolume)
        hasSegmentation = bool(p and p.inputSegmentation)
        hasStructures = bool(self._selectedStructures())
        running = self._job is not None and self._job.running

        self.ui.describeButton.enabled = hasVolume and hasSegmentation
        self.ui.describeButton.toolTip = (
            _("Measure every segment on the CT grid: voxel count, volume and RAS bounding box.")
            if hasVolume and hasSegmentation else _("Select a CT volume and its segmentation."))
        self.ui.applyButton.enabled = hasVolume
        self.ui.applyButton.toolTip = (
            _("Place the X-ray source and detector (isocentre at the centre of the selected structures, as the "
              "generator has it) and draw them in the 3D view.")
            if hasVolume else _("Select a CT volume."))
        self.ui.previewButton.enabled = hasVolume
        self.ui.previewButton.toolTip = (
            _("Render the DRR of the current geometry with the selected structures' masks.")
            if hasVolume else _("Select a CT volume."))

        missing = []
        if not hasVolume:
            missing.append(_("a CT volume"))
        if not hasSegmentation:
            missing.append(_("a segmentation"))
        elif not hasStructures:
            missing.append(_("at least one structure"))
        if not (p and p.outputDirectory):
            missing.append(_("an output folder"))
        self.ui.generateButton.enabled = not missing and not running
        self.ui.generateButton.toolTip = (
            _("A generation is running.") if running
            else _("Select {what}.").format(what=", ".join(missing)) if missing
            else _("Generate the training set into the output folder in a separate process; "
                   "a folder that holds part of a set is continued."))
        self.ui.cancelButton.enabled = running

    def _clearResults(self) -> None:
        self.ui.structuresTableWidget.setRowCount(0)
        self.ui.caseStatusLabel.text = ""
        self.ui.geometryLabel.text = ""
        self.ui.previewStatusLabel.text = ""
        self._lastPreviewKey = None
        self._previewShown = False
        self.ui.structuresListWidget.clear()
        self.logic.clearCache()

    # ------------------------------------------------------------------ describe case

    def onDescribeButton(self) -> None:
        """Measure the segments of the selected segmentation on the CT grid and show them."""
        with slicer.util.tryWithErrorDisplay(_("Failed to describe the case."), waitCursor=True):
            info = self.logic.describe(self._parameterNode.inputVolume, self._parameterNode.inputSegmentation)
            self._showCaseInfo(info)

    def _showCaseInfo(self, info: dict) -> None:
        ct = info["ct"]
        size = "\u00d7".join(str(int(n)) for n in ct["size"])
        spacing = "\u00d7".join(f"{s:.2f}" for s in ct["spacing_mm"])
        low, high = ct["hu_range"]
        self.ui.caseStatusLabel.text = _("CT: {size} voxels, spacing {spacing} mm, HU {low:.0f} to {high:.0f}; {count} structures.").format(
            size=size, spacing=spacing, low=low, high=high, count=len(info["structures"]))

        table = self.ui.structuresTableWidget
        table.setSortingEnabled(False)
        table.setRowCount(len(info["structures"]))
        for row, (name, structure) in enumerate(info["structures"].items()):
            cells = [name, str(int(structure["voxels"])), f"{structure['volume_ml']:.2f}"]
            for column, text in enumerate(cells):
                item = qt.QTableWidgetItem(text)
                if column > 0:
                    item.setTextAlignment(qt.Qt.AlignRight | qt.Qt.AlignVCenter)
                table.setItem(row, column, item)
        table.resizeColumnsToContents()

    # ------------------------------------------------------------------ geometry

    def _geometryFromParameters(self):
        """The base view of the generator: the preset about the centre of the selected structures."""
        p = self._parameterNode
        isocenter = self.logic.isocenterRas(p.inputVolume, p.inputSegmentation, self._selectedStructures())
        return self.logic.geometry(
            p.inputVolume, p.preset, p.laoDegrees, p.cranialDegrees,
            sourceToIsocenterMm=p.sourceToIsocenterMm, sourceToDetectorMm=p.sourceToDetectorMm,
            detectorSizePx=p.detectorSizePx, pixelSpacingMm=p.pixelSpacingMm, isocenterRas=isocenter)

    def _showGeometrySummary(self, geometry) -> None:
        summary = self.logic.geometrySummary(geometry)
        source = ", ".join(f"{x:.1f}" for x in summary["source_ras_mm"])
        self.ui.geometryLabel.text = _(
            "Source (RAS): ({source}) mm\n"
            "Source-to-detector distance (SID): {sid:.1f} mm\n"
            "Detector: {width}\u00d7{height} px at {su:.3f}\u00d7{sv:.3f} mm").format(
                source=source, sid=summary["sid_mm"],
                width=summary["size_px"][0], height=summary["size_px"][1],
                su=summary["pixel_spacing_mm"][0], sv=summary["pixel_spacing_mm"][1])

    def onApplyButton(self) -> None:
        """Compute the projection geometry, show its key numbers and draw it in the 3D view."""
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the projection geometry."), waitCursor=True):
            geometry = self._geometryFromParameters()
            self._showGeometrySummary(geometry)
            self.logic.updateGeometryModel(geometry)

    # ------------------------------------------------------------------ preview

    def _previewKey(self):
        p = self._parameterNode
        return (p.inputVolume.GetID() if p.inputVolume else None,
                p.inputSegmentation.GetID() if p.inputSegmentation else None,
                tuple(self._selectedStructures()), p.preset, p.laoDegrees, p.cranialDegrees,
                p.sourceToIsocenterMm, p.sourceToDetectorMm, p.detectorSizePx, p.pixelSpacingMm)

    def _schedulePreview(self) -> None:
        p = self._parameterNode
        if not (p and p.livePreview and p.inputVolume) or not self.parent.isEntered:
            self._previewTimer.stop()
            return
        if self._previewKey() != self._lastPreviewKey:
            self._previewTimer.start()  # restarts: renders PREVIEW_DEBOUNCE_MS after the last change

    def _onPreviewTimeout(self) -> None:
        p = self._parameterNode
        if p and p.livePreview and p.inputVolume:
            self._runPreview(interactive=False)

    def onPreviewButton(self) -> None:
        """Render the preview now (also when live preview is off)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to render the preview."), waitCursor=True):
            self._runPreview(interactive=True)

    def _runPreview(self, interactive: bool) -> None:
        """Render the DRR preview; errors of a live preview go to the status line, not a dialog."""
        p = self._parameterNode
        self._lastPreviewKey = self._previewKey()  # a failing state is not retried until it changes
        if not interactive:
            qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            geometry = self._geometryFromParameters()
            self._showGeometrySummary(geometry)
            result = self.logic.preview(p.inputVolume, p.inputSegmentation, self._selectedStructures(), geometry,
                                        fit=not self._previewShown)
            self._previewShown = True
            visible = sum(1 for mask in result["view"].masks if bool(mask.any()))
            self.ui.previewStatusLabel.text = _(
                "DRR {width}\u00d7{height} px rendered in {seconds:.2f} s; {visible} of {count} structures on the detector.").format(
                    width=geometry.width, height=geometry.height, seconds=result["seconds"],
                    visible=visible, count=len(result["view"].names))
        except Exception as error:
            self.ui.previewStatusLabel.text = _("Preview failed: {error}").format(error=error)
            if isinstance(error, TorchUnavailableError) and p.livePreview:
                p.livePreview = False  # do not ask again on every change
            if interactive:
                raise
            logging.warning(f"SyntheticDataGen preview failed: {error}")
        finally:
            if not interactive:
                qt.QApplication.restoreOverrideCursor()

    # ------------------------------------------------------------------ batch generation

    def onGenerateButton(self) -> None:
        """Start ``xrecon generate`` in a subprocess; a timer follows its progress."""
        if self._job is not None and self._job.running:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to start the generation."), waitCursor=True):
            p = self._parameterNode
            self._job = None
            self.ui.generationLogTextEdit.clear()
            self.ui.generationStatusLabel.text = _("Exporting the CT and the segmentation...")
            slicer.app.processEvents()
            try:
                self._job = self.logic.startGeneration(
                    p.inputVolume, p.inputSegmentation, self._selectedStructures(), p.outputDirectory,
                    views=p.views, seed=p.seed, augmentationPreset=p.augmentationPreset,
                    preset=p.preset, laoDegrees=p.laoDegrees, cranialDegrees=p.cranialDegrees,
                    sourceToIsocenterMm=p.sourceToIsocenterMm, sourceToDetectorMm=p.sourceToDetectorMm,
                    detectorSizePx=p.detectorSizePx, pixelSpacingMm=p.pixelSpacingMm)
            except Exception:
                self.ui.generationStatusLabel.text = _("Could not start the generation.")
                raise
            self.ui.outputDirectoryPathLineEdit.addCurrentPathToHistory()
            self.ui.generationLogTextEdit.appendPlainText(shlex.join(self._job.args))
            self.ui.generationProgressBar.setRange(0, max(1, p.views))
            self.ui.generationProgressBar.setValue(0)
            self.ui.generationStatusLabel.text = _("Generating into {folder}...").format(folder=p.outputDirectory)
            self._generationTimer.start()
        self._updateButtonStates()

    def _pollGeneration(self) -> None:
        job = self._job
        if job is None:
            self._generationTimer.stop()
            return
        for event in job.poll():
            if event[0] == "progress":
                done, total = event[1], event[2]
                self.ui.generationProgressBar.setRange(0, max(1, total))
                self.ui.generationProgressBar.setValue(done)
                if not job.cancelled:
                    self.ui.generationStatusLabel.text = _("Generated {done} of {total}.").format(done=done, total=total)
            elif event[0] == "log":
                self.ui.generationLogTextEdit.appendPlainText(event[1])
        if not job.running:
            self._generationTimer.stop()
            self._finishGeneration(job)

    def _finishGeneration(self, job) -> None:
        progress = _("{done} of {total}").format(done=job.done, total=job.total if job.total is not None else "?")
        if job.cancelled:
            self.ui.generationStatusLabel.text = _(
                "Cancelled after {progress}. Press Generate to continue where it stopped.").format(progress=progress)
        elif job.return_code == 0:
            self.ui.generationStatusLabel.text = _("Finished: {progress} in {folder}.").format(
                progress=progress, folder=job.output_dir)
        else:
            lastLine = job.log[-1] if job.log else ""
            self.ui.generationStatusLabel.text = _(
                "Failed (exit status {code}) after {progress}: {message}").format(
                    code=job.return_code, progress=progress, message=lastLine or _("see the log below"))
        self._updateButtonStates()

    def onCancelButton(self) -> None:
        """Stop the generator (terminate, then kill if it does not stop); the folder keeps what was done."""
        if self._job is not None and self._job.running:
            self._job.cancel()
            self.ui.generationStatusLabel.text = _("Cancelling...")
            self.ui.cancelButton.enabled = False


#
# SyntheticDataGenLogic
#


class TorchUnavailableError(RuntimeError):
    """PyTorch is not installed in Slicer and was not installed now."""


class SyntheticDataGenLogic(ScriptedLoadableModuleLogic):
    """Turns MRML nodes into images/arrays and calls ``SyntheticDataGenLib``; usable without the GUI."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._inputsKey = None
        self._inputs = None
        self._caseKey = None
        self._case = None
        self._shownDetectorExtent = None

    def getParameterNode(self):
        return SyntheticDataGenParameterNode(super().getParameterNode())

    # ------------------------------------------------------------------ case loading

    @staticmethod
    def readLabelTable(tablePath) -> dict:
        """Label table CSV (columns ``id,structure``) as {label id: structure name}."""
        from SyntheticDataGenLib.cases.labels import read_label_table

        return {label: name for name, label in read_label_table(tablePath).items()}

    def loadCase(self, ctPath, labelsPath, tablePath, name: Optional[str] = None):
        """Load a CT and its label map (ids named by a CSV ``id,structure``) into the scene.

        Returns (volumeNode, segmentationNode). Each structure present in the label map becomes one
        segment, named after it, on the CT grid; on failure the scene is left as it was
        (``SyntheticDataGenLib.scene.load_case``).
        """
        return scene.load_case(slicer.mrmlScene, ctPath, labelsPath, tablePath, name)

    def loadSampleCase(self, name: str):
        """Load a bundled sample case (``SyntheticDataGenLib.cases.sample_data``): returns (volumeNode, segmentationNode)."""
        from SyntheticDataGenLib.cases.sample_data import sample_case

        case = sample_case(name)
        return self.loadCase(case.ct_path, case.labels_path, case.table_path, name=name)

    @staticmethod
    def sampleCaseNames() -> list:
        """Names of the bundled sample cases."""
        from SyntheticDataGenLib.cases.sample_data import list_sample_cases

        return list(list_sample_cases())

    # ------------------------------------------------------------------ segments -> masks

    @staticmethod
    def segmentNamesAndColors(segmentationNode) -> list:
        """[(segment name, (r, g, b) in 0..1)] in the segmentation's order."""
        return scene.segment_names_and_colors(segmentationNode)

    @classmethod
    def segmentNames(cls, segmentationNode) -> list:
        """Segment names in the segmentation's order."""
        return [name for name, _color in cls.segmentNamesAndColors(segmentationNode)]

    def segmentMasks(self, volumeNode, segmentationNode, names=None, ctImage=None) -> dict:
        """{name: SimpleITK uint8 mask on the CT grid} of the named segments (None: all), in that order.

        Each segment is rasterised on the CT volume's grid (``scene.segment_mask_images``).
        """
        return scene.segment_mask_images(segmentationNode, volumeNode, names, ctImage)

    # ------------------------------------------------------------------ case description

    def describe(self, volumeNode, segmentationNode) -> dict:
        """Describe a CT and its segmentation: ``SyntheticDataGenLib.cases.case_info.describe_case``.

        Every segment is rasterised on the CT grid. Returns a JSON-able dict with "ct" (size,
        spacing_mm, origin_ras_mm, direction_ras, hu_range) and "structures" ({name: voxels,
        volume_ml, bounds_ras_mm}).
        """
        if not volumeNode or not segmentationNode:
            raise ValueError("A CT volume and a segmentation are required")
        from SyntheticDataGenLib.cases.case_info import describe_case
        from SyntheticDataGenLib.cases.labels import Segmentation

        ctImage = scene.volume_image(volumeNode)
        masks = self.segmentMasks(volumeNode, segmentationNode, None, ctImage)
        return describe_case(ctImage, Segmentation.from_masks(masks) if masks else None)

    # ------------------------------------------------------------------ projection geometry

    @staticmethod
    def volumeBoundsRas(volumeNode) -> list:
        """RAS bounding box of the volume (voxel corners): [xmin, xmax, ymin, ymax, zmin, zmax] in mm."""
        bounds = [0.0] * 6
        volumeNode.GetRASBounds(bounds)
        return bounds

    @classmethod
    def volumeCenterRas(cls, volumeNode) -> list:
        """Centre of the volume's RAS bounding box, in mm (the ``xrecon`` commands' default isocentre)."""
        b = cls.volumeBoundsRas(volumeNode)
        return [(b[0] + b[1]) / 2.0, (b[2] + b[3]) / 2.0, (b[4] + b[5]) / 2.0]

    def geometry(self, volumeNode, preset: str = "ap", laoDegrees: float = 0.0, cranialDegrees: float = 0.0,
                 sourceToIsocenterMm: float = 900.0, sourceToDetectorMm: float = 1100.0,
                 detectorSizePx=256, pixelSpacingMm=1.6, isocenterRas=None):
        """Preset projection geometry (``SyntheticDataGenLib.projection.geometry.ProjectionGeometry``).

        Angles in degrees (LAO and cranial positive), distances in mm; ``detectorSizePx`` is one
        number (square) or (width, height), ``pixelSpacingMm`` one number or (su, sv).
        ``isocenterRas`` (mm) defaults to the centre of the volume; :meth:`isocenterRas` gives the
        one ``xrecon generate`` uses (the centre of the selected structures).
        """
        if not volumeNode:
            raise ValueError("A CT volume is required")
        from SyntheticDataGenLib.dataset.generation_command import as_pair
        from SyntheticDataGenLib.projection.geometry import preset_geometry

        return preset_geometry(
            preset,
            isocenter_ras_mm=self.volumeCenterRas(volumeNode) if isocenterRas is None else [float(x) for x in isocenterRas],
            source_to_isocenter_mm=float(sourceToIsocenterMm),
            source_to_detector_mm=float(sourceToDetectorMm),
            size_px=as_pair(detectorSizePx, int),
            pixel_spacing_mm=as_pair(pixelSpacingMm, float),
            lao_deg=float(laoDegrees),
            cranial_deg=float(cranialDegrees),
        )

    @staticmethod
    def geometrySummary(geometry) -> dict:
        """Key numbers of a projection geometry for display: source (RAS, mm), SID (mm: distance from
        the source to the detector plane), detector size (px) and pixel spacing (mm)."""
        return {
            "source_ras_mm": [float(x) for x in geometry.source_ras_mm],
            "sid_mm": float(geometry.source_to_detector_mm),
            "size_px": [int(n) for n in geometry.size_px],
            "pixel_spacing_mm": [float(s) for s in geometry.pixel_spacing_mm],
        }

    # ------------------------------------------------------------------ PyTorch

    @staticmethod
    def ensureTorch():
        """Import PyTorch, installing it through the PyTorch extension (asking the user) if missing.

        Raises TorchUnavailableError when the PyTorch extension is missing or the user declines.
        """
        try:
            import torch

            return torch
        except ImportError:
            pass
        try:
            import PyTorchUtils
        except ImportError:
            raise TorchUnavailableError(
                "The DRR preview needs PyTorch. Install the 'PyTorch' extension from the Extensions Manager, "
                "restart Slicer and try again.") from None
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, torchVersionRequirement=">=2.2")
        if torch is None:
            raise TorchUnavailableError("The DRR preview needs PyTorch, which was not installed.")
        return torch

    # ------------------------------------------------------------------ preview

    def clearCache(self) -> None:
        """Forget the prepared CT (it is kept while CT, segmentation and structures stay the same)."""
        self._inputsKey = self._inputs = None
        self._caseKey = self._case = None
        self._shownDetectorExtent = None

    @staticmethod
    def _contentKey(volumeNode, segmentationNode, structures) -> tuple:
        """What the prepared CT depends on: node IDs, voxel and geometry modification times, structures."""
        imageData = volumeNode.GetImageData()
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        key = [volumeNode.GetID(), imageData.GetMTime() if imageData else None,
               tuple(matrix.GetElement(r, c) for r in range(3) for c in range(4))]
        if segmentationNode:
            segmentation = segmentationNode.GetSegmentation()
            key.append(segmentationNode.GetID())
            binaryLabelmap = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
            for index in range(segmentation.GetNumberOfSegments()):
                segment = segmentation.GetNthSegment(index)
                representation = segment.GetRepresentation(binaryLabelmap)
                key.append((segmentation.GetNthSegmentID(index), segment.GetName(),
                            representation.GetMTime() if representation else None))
        key.append(tuple(structures) if structures is not None else None)
        return tuple(key)

    def segmentLabelmap(self, volumeNode, segmentationNode, names=None, ctImage=None) -> tuple:
        """The named segments (None: all) as one label map on the CT grid: (SimpleITK image, names, overlaps).

        Label k + 1 marks structure k; where structures overlap the later one wins (``overlaps``
        lists those that cover earlier ones; ``SyntheticDataGenLib.cases.label_map.stack_masks``). It is
        also what batch generation writes for ``xrecon generate``.
        """
        import SimpleITK as sitk
        from SyntheticDataGenLib.cases.label_map import stack_masks

        if ctImage is None:
            ctImage = scene.volume_image(volumeNode)
        ids = scene.segment_ids(segmentationNode, names)
        # One segment rasterised at a time: only one full-size mask exists at once
        masks = (scene.segment_masks(segmentationNode, volumeNode, [name])[name] for name in ids)
        labels, overlapping = stack_masks(masks, tuple(reversed(ctImage.GetSize())), len(ids))
        image = sitk.GetImageFromArray(labels)
        image.CopyInformation(ctImage)
        return image, list(ids), [list(ids)[index] for index in overlapping]

    def preparedInputs(self, volumeNode, segmentationNode, structures) -> tuple:
        """(CT SimpleITK image, label map image or None, structure names) of the nodes, kept while unchanged.

        ``structures`` None means every segment, [] none; label k + 1 is structure k (see
        :meth:`segmentLabelmap`). Rasterising segments is the slow part of a first preview; it is
        done again only when the CT, the segments or the choice change.
        """
        scene.check_no_transform(volumeNode)
        key = self._contentKey(volumeNode, segmentationNode, structures)
        if self._inputs is not None and key == self._inputsKey:
            return self._inputs
        ctImage = scene.volume_image(volumeNode)
        labelImage, names = None, []
        if segmentationNode and (structures is None or structures):
            scene.check_no_transform(segmentationNode)
            labelImage, names, overlaps = self.segmentLabelmap(volumeNode, segmentationNode, structures, ctImage)
            if overlaps:
                logging.warning(f"SyntheticDataGen: {', '.join(overlaps)} overlap earlier structures; "
                                "the shared voxels belong to the later structure")
        # Rasterising may have added a binary labelmap to the segmentation: key what is there now
        self._inputsKey = self._contentKey(volumeNode, segmentationNode, structures)
        self._inputs = (ctImage, labelImage, names)
        self._caseKey, self._case = None, None
        return self._inputs

    def caseVolume(self, volumeNode, segmentationNode, structures):
        """The CT and the structures' masks ready to render (``SyntheticDataGenLib.projection.view.CaseVolume``).

        Kept and re-used while the CT, the segmentation and the structures stay the same: preparing
        it takes longer than rendering a view. ``structures`` None means every segment; empty ones
        are left out, as ``xrecon generate`` does. The body is continued past the scan's ends as
        the generator does (``GenerationSettings.extend_body_mm``).
        """
        ctImage, labelImage, names = self.preparedInputs(volumeNode, segmentationNode, structures)
        if self._case is not None and self._caseKey == self._inputsKey:
            return self._case
        self.ensureTorch()
        from SyntheticDataGenLib.cases.labels import Segmentation
        from SyntheticDataGenLib.projection.view import CaseVolume

        segmentation = (Segmentation([labelImage], {name: (0, index + 1) for index, name in enumerate(names)})
                        if names else None)
        present = segmentation.select(None) if segmentation else []
        case = CaseVolume.from_ct(ctImage, segmentation, present, extend_body_mm=self.generatorExtendBodyMm())
        self._caseKey, self._case = self._inputsKey, case
        return case

    @staticmethod
    def generatorExtendBodyMm() -> float:
        """How far ``xrecon generate`` continues the body past the scan's ends (mm), for a preview alike."""
        import dataclasses

        from SyntheticDataGenLib.dataset.generation import GenerationSettings

        defaults = {field.name: field.default for field in dataclasses.fields(GenerationSettings)}
        return float(defaults.get("extend_body_mm", 0.0))

    def isocenterRas(self, volumeNode, segmentationNode=None, structures=None) -> list:
        """Isocentre (RAS mm) that ``xrecon generate`` uses for these inputs: the centre of the
        selected structures (``structures`` None: every segment), or of the CT without any."""
        if not volumeNode:
            raise ValueError("A CT volume is required")
        if not segmentationNode or (structures is not None and not structures):
            return self.volumeCenterRas(volumeNode)
        import SimpleITK as sitk
        from SyntheticDataGenLib.cases.case_info import structures_centre_ras

        ctImage, labelImage, names = self.preparedInputs(volumeNode, segmentationNode, structures)
        masks = [sitk.GetArrayViewFromImage(labelImage) != 0] if labelImage is not None else []
        return [float(x) for x in structures_centre_ras(ctImage, masks)]

    def renderView(self, volumeNode, segmentationNode, structures, geometry):
        """DRR, masks and depth maps of one geometry (``SyntheticDataGenLib.projection.view.render_view``)."""
        from SyntheticDataGenLib.projection.view import render_view

        return render_view(self.caseVolume(volumeNode, segmentationNode, structures), geometry)

    def preview(self, volumeNode, segmentationNode, structures, geometry, show: bool = True, fit: bool = True) -> dict:
        """Render the geometry's DRR and the structures' masks into the preview nodes.

        Updates (creating once) the scalar volume "DRR preview" (line integral, dimensionless), the
        label map "DRR preview masks" (label k + 1 for structure k, later structures over earlier
        ones, coloured as the segments) and the model "X-ray geometry", all placed on the detector
        in RAS. With ``show``, the Red slice view turns to the detector plane and shows them (``fit``
        also fits the slice and 3D views). Returns {"drr", "masks", "model": nodes, "view": the
        rendered ``View``, "seconds": render time}.
        """
        if not volumeNode:
            raise ValueError("A CT volume is required")
        structures = list(structures) if structures is not None else None
        self.caseVolume(volumeNode, segmentationNode, structures)  # prepared (or re-used) outside the timing
        start = time.perf_counter()
        view = self.renderView(volumeNode, segmentationNode, structures, geometry)
        seconds = time.perf_counter() - start

        drrNode = scene.update_drr_node(slicer.mrmlScene, view.line_integral.detach().cpu().numpy(), geometry)
        masksNode = scene.update_masks_node(slicer.mrmlScene, view.masks.detach().cpu().numpy(), geometry,
                                            view.names, dict(self.segmentNamesAndColors(segmentationNode)))
        modelNode = self.updateGeometryModel(geometry)
        if show:
            extent = (tuple(geometry.size_px), tuple(float(s) for s in geometry.pixel_spacing_mm))
            self.showPreview(drrNode, masksNode, geometry, segmentationNode, fit=fit,
                             fitSlice=fit or extent != self._shownDetectorExtent)
            self._shownDetectorExtent = extent
        return {"drr": drrNode, "masks": masksNode, "model": modelNode, "view": view, "seconds": seconds}

    def updateGeometryModel(self, geometry):
        """Draw a projection geometry in the 3D view: the model node "X-ray geometry" (RAS mm).

        Source marker, detector outline, frustum and central ray come from
        ``SyntheticDataGenLib.projection.geometry_model.geometry_polydata``, coloured by its "part" array.
        """
        return scene.update_geometry_model(slicer.mrmlScene, geometry)

    def showPreview(self, drrNode, masksNode, geometry, segmentationNode=None, fit: bool = True,
                    fitSlice: Optional[bool] = None) -> None:
        """Show the DRR (and masks as label layer) in the Red slice view turned to the detector plane.

        The slice view shows the image as a radiograph is read (image column u to the right, row v
        downwards) and, in 3D, on the detector plane. ``fit`` fits the 3D view to the scene and
        shows the segmentation's surfaces in 3D; ``fitSlice`` (default: ``fit``) fits the slice
        view to the image.
        """
        from SyntheticDataGenLib.projection.geometry_model import detector_slice_to_ras

        sliceLogic = slicer.app.applicationLogic().GetSliceLogicByLayoutName("Red") if slicer.app else None
        if sliceLogic is None:
            return
        compositeNode = sliceLogic.GetSliceCompositeNode()
        compositeNode.SetBackgroundVolumeID(drrNode.GetID())
        compositeNode.SetLabelVolumeID(masksNode.GetID() if masksNode else None)
        compositeNode.SetLabelOpacity(0.5)
        sliceNode = sliceLogic.GetSliceNode()
        sliceNode.GetSliceToRAS().DeepCopy(slicer.util.vtkMatrixFromArray(detector_slice_to_ras(geometry)))
        sliceNode.UpdateMatrices()
        sliceNode.SetSliceVisible(True)  # the DRR on the detector plane in 3D
        if fit if fitSlice is None else fitSlice:
            sliceLogic.FitSliceToAll()
        if fit:
            if segmentationNode:
                segmentationNode.CreateClosedSurfaceRepresentation()
            slicer.util.resetThreeDViews()

    # ------------------------------------------------------------------ batch generation

    @staticmethod
    def modulePythonPaths() -> list:
        """Folders that hold ``SyntheticDataGenLib`` and ``SingleImageReconLib`` (for the generator's PYTHONPATH)."""
        from SyntheticDataGenLib.dataset.generation_command import module_python_paths

        here = os.path.dirname(os.path.abspath(__file__))
        candidates = [here]
        module = getattr(getattr(slicer, "modules", None), "singleimagerecon", None)
        if module is not None and getattr(module, "path", None):
            candidates.append(os.path.dirname(os.path.abspath(module.path)))
        candidates.append(os.path.join(os.path.dirname(here), "SingleImageRecon"))  # source tree layout
        return module_python_paths(candidates)

    @staticmethod
    def generationOptions(views: int = 100, seed: int = 0, augmentationPreset: str = "light", preset: str = "ap",
                          laoDegrees: float = 0.0, cranialDegrees: float = 0.0, sourceToIsocenterMm: float = 900.0,
                          sourceToDetectorMm: float = 1100.0, detectorSizePx=256, pixelSpacingMm=1.6):
        """The GUI's generation options as ``SyntheticDataGenLib.dataset.generation_command.GenerationOptions``."""
        from SyntheticDataGenLib.dataset.generation_command import GenerationOptions

        return GenerationOptions(views, seed, augmentationPreset, preset, laoDegrees, cranialDegrees,
                                 sourceToIsocenterMm, sourceToDetectorMm, detectorSizePx, pixelSpacingMm)

    def exportInputs(self, volumeNode, segmentationNode, structures, folder: str):
        """Write the CT and the structures as a label map with its table into a folder.

        ``SyntheticDataGenLib.dataset.generation_inputs.write_generation_inputs`` writes ``STEM.nrrd``,
        ``STEM-labels.nrrd`` (the label map the preview renders, see :meth:`segmentLabelmap`) and
        ``STEM-labels.csv``, STEM made from the CT node's name; unchanged files are left alone, and
        a dataset made from other data is refused. Returns its ``GenerationInputs`` (the paths).
        """
        from SyntheticDataGenLib.errors import XreconInputError
        from SyntheticDataGenLib.dataset.generation_inputs import input_file_stem, write_generation_inputs

        ctImage, labelImage, names = self.preparedInputs(volumeNode, segmentationNode, list(structures))
        if labelImage is None:
            raise XreconInputError("Select at least one structure")
        return write_generation_inputs(ctImage, labelImage, names, folder, input_file_stem(volumeNode.GetName()))

    def startGeneration(self, volumeNode, segmentationNode, structures, outputDirectory: str, **options):
        """Export the inputs and start ``xrecon generate`` in a subprocess; returns its
        ``SyntheticDataGenLib.dataset.generation_job.GenerationJob``.

        The CT and the structures are written into ``OUTPUT/inputs/`` (see :meth:`exportInputs`):
        the dataset keeps what it was made from, and a later run with the same inputs and options
        continues it. ``options`` are those of :meth:`generationOptions`. The command runs with
        Slicer's Python (PythonSlicer) and the modules' folders on PYTHONPATH. The base view's
        isocentre is the centre of the structures, as in the preview.
        """
        from SyntheticDataGenLib.errors import XreconInputError
        from SyntheticDataGenLib.dataset.generation_command import generate_arguments, generation_environment, python_executable
        from SyntheticDataGenLib.dataset.generation_job import GenerationJob

        if not volumeNode or not segmentationNode:
            raise XreconInputError("Select a CT volume and its segmentation")
        if not outputDirectory:
            raise XreconInputError("Select an output folder")
        structures = list(structures)
        if not structures:
            raise XreconInputError("Select at least one structure to generate")
        outputDirectory = os.path.abspath(os.path.expanduser(str(outputDirectory)))
        inputs = self.exportInputs(volumeNode, segmentationNode, structures, os.path.join(outputDirectory, "inputs"))
        args = generate_arguments(python_executable(), inputs, structures, outputDirectory,
                                  self.generationOptions(**options))
        env = generation_environment(self.modulePythonPaths())
        logging.info("SyntheticDataGen: " + shlex.join(args))
        return GenerationJob(args, env=env, cwd=outputDirectory, output_dir=outputDirectory)


# SingleImageRecon refuses transformed nodes with the same check.
_checkNoTransform = scene.check_no_transform


#
# SyntheticDataGenTest
#


class SyntheticDataGenTest(ScriptedLoadableModuleTest):
    """Self-test of the module; runs inside Slicer (Reload and Test, or ctest)."""

    def setUp(self):
        """Reset the state: a scene clear is enough."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run all tests of this module."""
        self.setUp()
        self.test_ParameterNodeDefaults()
        self.setUp()
        self.test_LoadSampleCase()
        self.setUp()
        self.test_DescribeSampleCase()
        self.setUp()
        self.test_PresetGeometrySourceOutsideCT()
        self.setUp()
        self.test_GeometryModel()
        self.setUp()
        self.test_PreviewSampleCase()
        self.setUp()
        self.test_BatchGeneration()
        self.setUp()
        self.test_CancelGeneration()

    def _loadFirstSampleCase(self):
        logic = SyntheticDataGenLogic()
        names = logic.sampleCaseNames()
        self.assertTrue(names, "no bundled sample case")
        volumeNode, segmentationNode = logic.loadSampleCase(names[0])
        return logic, names[0], volumeNode, segmentationNode

    @staticmethod
    def _torchAvailable() -> bool:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            logging.warning("SyntheticDataGen self-test: PyTorch is not installed (PyTorch extension); "
                            "the preview and generation tests are skipped")
            return False
        return True

    @staticmethod
    def _matrix(node):
        import numpy as np

        matrix = vtk.vtkMatrix4x4()
        node.GetIJKToRASMatrix(matrix)
        return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])

    def test_ParameterNodeDefaults(self):
        self.delayDisplay("Parameter node defaults")
        from SyntheticDataGenLib.augmentation.ladder import PRESETS as LIB_AUGMENTATION_PRESETS
        from SyntheticDataGenLib.projection.geometry import PRESETS as LIB_PRESETS

        self.assertEqual(PRESETS, list(LIB_PRESETS))  # the combo box choices match the Lib's presets
        self.assertEqual(AUGMENTATION_PRESETS, list(LIB_AUGMENTATION_PRESETS))
        parameterNode = SyntheticDataGenLogic().getParameterNode()
        self.assertEqual(parameterNode.preset, "ap")
        self.assertEqual(parameterNode.laoDegrees, 0.0)
        self.assertEqual(parameterNode.cranialDegrees, 0.0)
        self.assertEqual(parameterNode.sourceToIsocenterMm, 900.0)
        self.assertEqual(parameterNode.sourceToDetectorMm, 1100.0)
        self.assertEqual(parameterNode.detectorSizePx, 256)
        self.assertEqual(parameterNode.pixelSpacingMm, 1.6)
        self.assertFalse(parameterNode.livePreview)
        self.assertEqual(parameterNode.augmentationPreset, "light")
        parameterNode.preset = "lateral-left"
        parameterNode.laoDegrees = 30.0
        parameterNode.structures = "femur_left,femur_right"
        self.assertEqual(SyntheticDataGenLogic().getParameterNode().preset, "lateral-left")
        self.assertEqual(structureList(SyntheticDataGenLogic().getParameterNode().structures), ["femur_left", "femur_right"])
        with self.assertRaises(ValueError):
            parameterNode.cranialDegrees = 60.0  # outside WithinRange(-45, 45)
        with self.assertRaises(ValueError):
            parameterNode.augmentationPreset = "extreme"
        self.delayDisplay("Test passed")

    def test_LoadSampleCase(self):
        self.delayDisplay("Loading a sample case")
        from SyntheticDataGenLib.self_test import sample_case_checks

        sample_case_checks(slicer.mrmlScene)  # the body is plain MRML, so pytest runs it too
        self.delayDisplay("Test passed")

    def test_DescribeSampleCase(self):
        self.delayDisplay("Describing a sample case")
        logic, name, volumeNode, segmentationNode = self._loadFirstSampleCase()
        info = logic.describe(volumeNode, segmentationNode)

        self.assertEqual([int(n) for n in info["ct"]["size"]], list(volumeNode.GetImageData().GetDimensions()))
        for got, expected in zip(info["ct"]["spacing_mm"], volumeNode.GetSpacing()):
            self.assertAlmostEqual(float(got), expected, places=4)

        segmentation = segmentationNode.GetSegmentation()
        names = {segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())}
        self.assertTrue(info["structures"])
        self.assertEqual(set(info["structures"]), names)

        b = logic.volumeBoundsRas(volumeNode)
        tolerance = 1e-3
        for structureName, structure in info["structures"].items():
            self.assertGreater(structure["voxels"], 0, structureName)
            self.assertGreater(structure["volume_ml"], 0.0, structureName)
            low, high = structure["bounds_ras_mm"]
            for axis in range(3):
                # The structure lies inside the CT (this also checks the LPS/RAS handling)
                self.assertGreaterEqual(low[axis], b[2 * axis] - tolerance, structureName)
                self.assertLessEqual(high[axis], b[2 * axis + 1] + tolerance, structureName)
                self.assertLessEqual(low[axis], high[axis], structureName)
        self.delayDisplay("Test passed")

    def test_PresetGeometrySourceOutsideCT(self):
        self.delayDisplay("Preset geometries")
        logic, name, volumeNode, segmentationNode = self._loadFirstSampleCase()
        b = logic.volumeBoundsRas(volumeNode)

        def inside(point):
            return all(b[2 * axis] <= point[axis] <= b[2 * axis + 1] for axis in range(3))

        for preset in PRESETS:
            for lao, cranial in ((0.0, 0.0), (30.0, 15.0), (-45.0, -20.0)):
                geometry = logic.geometry(volumeNode, preset, lao, cranial)
                summary = logic.geometrySummary(geometry)
                self.assertFalse(inside(summary["source_ras_mm"]), f"{preset} LAO {lao} cranial {cranial}: source inside the CT")
                self.assertGreater(summary["sid_mm"], 0.0)

        # AP: the beam enters the patient's front, so the source is anterior (+A in RAS); PA the reverse
        self.assertGreater(logic.geometrySummary(logic.geometry(volumeNode, "ap"))["source_ras_mm"][1], b[3])
        self.assertLess(logic.geometrySummary(logic.geometry(volumeNode, "pa"))["source_ras_mm"][1], b[2])

        # Distances and detector options reach the geometry
        geometry = logic.geometry(volumeNode, "ap", sourceToIsocenterMm=700.0, sourceToDetectorMm=1000.0,
                                  detectorSizePx=(120, 80), pixelSpacingMm=2.0)
        self.assertEqual(tuple(geometry.size_px), (120, 80))
        self.assertAlmostEqual(float(geometry.source_to_detector_mm), 1000.0, places=6)
        self.delayDisplay("Test passed")

    def test_GeometryModel(self):
        self.delayDisplay("X-ray geometry in 3D")
        import numpy as np

        logic, name, volumeNode, segmentationNode = self._loadFirstSampleCase()
        geometry = logic.geometry(volumeNode, "lateral-left", 20.0, -10.0)
        modelNode = logic.updateGeometryModel(geometry)
        polyData = modelNode.GetPolyData()
        self.assertEqual(polyData.GetNumberOfPoints(), 12)
        self.assertIsNotNone(polyData.GetCellData().GetArray("part"))
        np.testing.assert_allclose(polyData.GetPoint(0), geometry.source_ras_mm, atol=1e-6)
        # Drawn again: the same node, updated
        self.assertIs(logic.updateGeometryModel(logic.geometry(volumeNode, "ap")), modelNode)
        geometryModels = [node for node in slicer.util.getNodesByClass("vtkMRMLModelNode")
                          if node.GetAttribute(ROLE_ATTRIBUTE) == "geometry"]
        self.assertEqual(len(geometryModels), 1)
        self.assertFalse(modelNode.GetDisplayNode().GetVisibility2D())
        self.delayDisplay("Test passed")

    def test_PreviewSampleCase(self):
        self.delayDisplay("DRR preview of a sample case")
        if not self._torchAvailable():
            return
        import numpy as np

        logic, name, volumeNode, segmentationNode = self._loadFirstSampleCase()
        structures = logic.segmentNames(segmentationNode)[:3]

        # The isocentre is the generator's: the centre of the structures
        isocenter = logic.isocenterRas(volumeNode, segmentationNode, structures)
        import SimpleITK as sitk
        from SyntheticDataGenLib.cases.case_info import structures_centre_ras

        # The generator takes the box of the structures' separate masks (CaseLoader.raw): so does this check
        masks = logic.segmentMasks(volumeNode, segmentationNode, structures)
        ctImage = logic.preparedInputs(volumeNode, segmentationNode, structures)[0]
        np.testing.assert_allclose(isocenter, structures_centre_ras(
            ctImage, [sitk.GetArrayViewFromImage(mask) != 0 for mask in masks.values()]), atol=1e-6)

        geometry = logic.geometry(volumeNode, "ap", 10.0, 5.0, detectorSizePx=(96, 64), pixelSpacingMm=4.0,
                                  isocenterRas=isocenter)
        result = logic.preview(volumeNode, segmentationNode, structures, geometry)

        drrNode, masksNode, modelNode = result["drr"], result["masks"], result["model"]
        self.assertEqual(drrNode.GetName(), DRR_NODE_NAME)
        self.assertEqual(drrNode.GetImageData().GetDimensions(), (96, 64, 1))
        self.assertEqual(masksNode.GetImageData().GetDimensions(), (96, 64, 1))
        for node in (drrNode, masksNode):
            ijkToRas = self._matrix(node)
            np.testing.assert_allclose(ijkToRas, geometry.detector_ijk_to_ras(), atol=1e-6)
            for u, v in ((0, 0), (95, 0), (0, 63), (40, 30)):
                np.testing.assert_allclose((ijkToRas @ [u, v, 0, 1])[:3], geometry.pixel_center_ras(u, v), atol=1e-6)
        drr = slicer.util.arrayFromVolume(drrNode)
        self.assertEqual(drr.shape, (1, 64, 96))
        self.assertGreater(float(drr.max()), 0.0)

        # Masks: label k + 1 for structure k, the last structure over the others
        labels = slicer.util.arrayFromVolume(masksNode)[0]
        masks = result["view"].masks.cpu().numpy()
        self.assertEqual(result["view"].names, structures)
        present = set(int(v) for v in np.unique(labels)) - {0}
        self.assertTrue(present)
        self.assertTrue(present <= set(range(1, len(structures) + 1)))
        np.testing.assert_array_equal(labels > 0, masks.any(axis=0))
        self.assertTrue(np.all(labels[masks[-1]] == len(structures)))
        colorNode = masksNode.GetDisplayNode().GetColorNode()
        self.assertEqual(colorNode.GetColorName(1), structures[0])

        # Geometry model
        self.assertEqual(modelNode.GetPolyData().GetNumberOfPoints(), 12)

        # A second preview re-uses the nodes and the prepared CT
        case = logic.caseVolume(volumeNode, segmentationNode, structures)
        counts = {cls: slicer.mrmlScene.GetNumberOfNodesByClass(cls)
                  for cls in ("vtkMRMLScalarVolumeNode", "vtkMRMLModelNode", "vtkMRMLColorTableNode")}
        second = logic.preview(volumeNode, segmentationNode, structures,
                               logic.geometry(volumeNode, "ap", -20.0, 0.0, detectorSizePx=(96, 64), pixelSpacingMm=4.0))
        self.assertIs(second["drr"], drrNode)
        self.assertIs(second["masks"], masksNode)
        self.assertIs(logic.caseVolume(volumeNode, segmentationNode, structures), case)
        for cls, count in counts.items():
            self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass(cls), count, cls)

        # The Red slice view shows the DRR on the detector plane
        sliceLogic = slicer.app.applicationLogic().GetSliceLogicByLayoutName("Red")
        self.assertEqual(sliceLogic.GetSliceCompositeNode().GetBackgroundVolumeID(), drrNode.GetID())
        self.assertEqual(sliceLogic.GetSliceCompositeNode().GetLabelVolumeID(), masksNode.GetID())
        self.delayDisplay("Test passed")

    def _startSmallGeneration(self, views: int, outputDirectory=None, case=None):
        """Start generating a small set from the first sample case (loaded unless ``case`` gives
        (logic, volumeNode, segmentationNode)): returns (job, outputDirectory, case)."""
        import tempfile

        if case is None:
            logic, name, volumeNode, segmentationNode = self._loadFirstSampleCase()
            case = (logic, volumeNode, segmentationNode)
        logic, volumeNode, segmentationNode = case
        structures = logic.segmentNames(segmentationNode)[:2]
        outputDirectory = outputDirectory or tempfile.mkdtemp(prefix="SyntheticDataGenTest-")
        job = logic.startGeneration(volumeNode, segmentationNode, structures, outputDirectory,
                                    views=views, seed=1, augmentationPreset="none", preset="ap",
                                    detectorSizePx=64, pixelSpacingMm=6.4)
        return job, outputDirectory, case

    def test_BatchGeneration(self):
        self.delayDisplay("Batch generation in a subprocess")
        if not self._torchAvailable():
            return
        job, outputDirectory, case = self._startSmallGeneration(views=2)
        try:
            returnCode = job.wait(timeout_s=900, idle=slicer.app.processEvents)
            self.assertEqual(returnCode, 0, "\n".join(list(job.log)[-30:]))
            self.assertTrue(os.path.isfile(os.path.join(outputDirectory, "manifest.jsonl")))
            self.assertIsNotNone(job.total, "no 'progress DONE/TOTAL' line")
            self.assertEqual(job.done, job.total)
            self.assertTrue(os.listdir(os.path.join(outputDirectory, "inputs")))  # what the set was made from

            # Run again with the same inputs and options: the dataset is complete, nothing is redone
            job, _, _ = self._startSmallGeneration(views=2, outputDirectory=outputDirectory, case=case)
            returnCode = job.wait(timeout_s=300, idle=slicer.app.processEvents)
            self.assertEqual(returnCode, 0, "\n".join(list(job.log)[-30:]))
            self.assertEqual(job.done, job.total)
        finally:
            job.cancel(force=True)
            shutil.rmtree(outputDirectory, ignore_errors=True)
        self.delayDisplay("Test passed")

    def test_CancelGeneration(self):
        self.delayDisplay("Cancelling a batch generation")
        if not self._torchAvailable():
            return
        job, outputDirectory, _ = self._startSmallGeneration(views=100000)
        try:
            deadline = time.monotonic() + 60
            while job.running and not job.log and job.total is None and time.monotonic() < deadline:
                job.poll()
                slicer.app.processEvents()
                time.sleep(0.1)
            self.assertTrue(job.running, "\n".join(job.log))
            job.cancel()
            returnCode = job.wait(timeout_s=60, idle=slicer.app.processEvents)
            self.assertTrue(job.cancelled)
            self.assertNotEqual(returnCode, 0)
            self.assertIsNotNone(job.process.poll())
        finally:
            job.cancel(force=True)
            shutil.rmtree(outputDirectory, ignore_errors=True)
        self.delayDisplay("Test passed")
